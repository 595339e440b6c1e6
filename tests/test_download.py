"""dfr.py download against a real HTTP server on loopback: a good file lands, a wrong hash is
rejected and removed, an interrupted download resumes with a Range request, offline downloads nothing."""
from __future__ import annotations

import hashlib
import os
import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from diffusion_face_restore.models.download import DownloadError, download, names_in_workflow
from diffusion_face_restore.restore.weights import missing_file_message

PAYLOAD = random.Random(0).randbytes(3 * (1 << 20) + 12345)  # seeded: every run serves the same bytes


class Server:
    """Serves PAYLOAD at /weights.pth with Range support; can cut the connection after N bytes."""

    def __init__(self):
        self.cut_after = None
        self.content_type = "application/octet-stream"
        self.ranges = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802 - http.server's name
                start = 0
                header = self.headers.get("Range")
                outer.ranges.append(header)
                if header:
                    start = int(header.split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
                else:
                    self.send_response(200)
                body = PAYLOAD[start:]
                self.send_header("Content-Type", outer.content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if outer.cut_after is not None:
                    self.wfile.write(body[:outer.cut_after])
                    self.wfile.flush()
                    self.connection.shutdown(2)  # the connection drops mid-file
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/weights.pth"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def server():
    server = Server()
    yield server
    server.httpd.shutdown()


def entry(url, sha256=hashlib.sha256(PAYLOAD).hexdigest()):
    return {"name": "weights.pth", "folder": "facerestore_models", "url": url, "sha256": sha256, "size": len(PAYLOAD)}


def quiet(*args, **kwargs):
    pass


def test_good_file_lands_verified(server, tmp_path):
    path = download(entry(server.url), str(tmp_path), report=quiet)
    assert path == str(tmp_path / "facerestore_models" / "weights.pth")
    assert open(path, "rb").read() == PAYLOAD and not os.path.exists(path + ".part")
    assert download(entry(server.url), str(tmp_path), report=quiet) == path  # already there: nothing fetched
    assert server.ranges == [None]


def test_downloaded_files_are_readable_by_the_group_sharing_the_models_folder(server, tmp_path):
    old = os.umask(0o022)
    try:
        path = download(entry(server.url), str(tmp_path), report=quiet)
    finally:
        os.umask(old)
    assert os.stat(path).st_mode & 0o777 == 0o644


def test_wrong_hash_is_rejected_and_removed(server, tmp_path):
    with pytest.raises(DownloadError, match="sha256 differs.*was removed"):
        download(entry(server.url, sha256="0" * 64), str(tmp_path), report=quiet)
    assert os.listdir(tmp_path / "facerestore_models") == []


def test_interrupted_download_resumes(server, tmp_path):
    server.cut_after = 1 << 20
    with pytest.raises(DownloadError, match="interrupted.*again to resume"):
        download(entry(server.url), str(tmp_path), report=quiet, timeout=10)
    partial = tmp_path / "facerestore_models" / "weights.pth.part"
    assert partial.exists() and 0 < partial.stat().st_size < len(PAYLOAD)
    assert not (tmp_path / "facerestore_models" / "weights.pth").exists()
    have = partial.stat().st_size
    server.cut_after = None
    download(entry(server.url), str(tmp_path), report=quiet)
    assert server.ranges[-1] == f"bytes={have}-"  # only the rest was fetched
    assert (tmp_path / "facerestore_models" / "weights.pth").read_bytes() == PAYLOAD


def test_a_web_page_instead_of_the_file_is_refused_with_the_manual_steps(server, tmp_path):
    server.content_type = "text/html; charset=utf-8"  # Google Drive's quota or sign-in page
    drive = {**entry(server.url, sha256=None), "size": None, "fallback": "open the Drive page in a browser"}
    with pytest.raises(DownloadError, match="sent a web page instead of the file. open the Drive page in a browser"):
        download(drive, str(tmp_path), report=quiet)
    assert os.listdir(tmp_path / "facerestore_models") == []


def test_without_a_published_hash_the_file_must_load_as_the_expected_network(server, tmp_path):
    unpublished = {**entry(server.url, sha256=None), "size": None, "expect": {"architecture": "GFPGAN"}, "fallback": "try a browser"}
    with pytest.raises(DownloadError, match="the downloaded file is wrong .*was removed. try a browser"):
        download(unpublished, str(tmp_path), report=quiet)  # random bytes are no network
    assert os.listdir(tmp_path / "facerestore_models") == []


def test_offline_and_manual_files_download_nothing(server, tmp_path, monkeypatch):
    with pytest.raises(DownloadError, match="downloads are off"):
        download(entry(server.url), str(tmp_path), offline=True, report=quiet)
    monkeypatch.setenv("DFR_OFFLINE", "1")
    with pytest.raises(DownloadError, match="downloads are off"):
        download(entry(server.url), str(tmp_path), report=quiet)
    manual = {**entry(server.url), "manual": "Baidu Netdisk only"}
    with pytest.raises(DownloadError, match="cannot be downloaded by a script: Baidu"):
        download(manual, str(tmp_path), report=quiet)
    assert server.ranges == []


def test_workflows_name_their_files_and_errors_point_to_the_command():
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    assert names_in_workflow(os.path.join(here, "workflows", "DR2 restoration.json")) == [
        "DR2_FFHQ.pkl", "SPARNetHD_FFHQ_DR2aug.pth", "detection_Resnet50_Final.pth"]
    message = missing_file_message("FaceDiffusionLoader", "iddpm_ffhq512_ema500000.pth", "face_diffusion", None)
    assert "'python dfr.py download iddpm_ffhq512_ema500000.pth' in the pack's folder" in message  # a checkout's command
    assert "Baidu" in missing_file_message("FaceDiffusionLoader", "DR2_FFHQ.pkl", "face_diffusion", None)
