"""Fetching the weight files of the manifest: resumable, verified, never at import or run time.

Only `python dfr.py download` calls this. A file is written as NAME.part next to its destination;
an interrupted download continues from there with an HTTP Range request; the finished file is
checked against the manifest's size and sha256 (where published) and only then renamed into
place, so a models folder never holds a half-written or unverified file under its real name.
"""
from __future__ import annotations

import os
import urllib.error
import urllib.request

from .manifest import load_manifest, size_and_hash_problems

CHUNK = 1 << 20  # bytes per read
OFFLINE_VARIABLE = "DFR_OFFLINE"


class DownloadError(RuntimeError):
    pass


def offline_requested(flag: bool = False) -> bool:
    return flag or os.environ.get(OFFLINE_VARIABLE, "").strip().lower() in ("1", "true", "yes")


def manual_steps(entry: dict) -> str:
    if entry.get("manual"):
        return entry["manual"]
    if entry.get("fallback"):
        return entry["fallback"]
    return f"download {entry.get('page') or entry['url']} in a browser and put it in models/{entry['folder']}"


def _failed(entry: dict, message: str) -> DownloadError:
    """A download error; for files with a browser fallback (Google Drive), the manual steps too."""
    return DownloadError(f"{message}. {entry['fallback']}" if entry.get("fallback") else message)


def download(entry: dict, models_dir: str, offline: bool = False, report=print, timeout: float = 60.0) -> str:
    """Make models_dir/<folder>/<name> exist and match the manifest; returns its path.

    Skips a file already in place (checked), resumes a .part file, removes a file whose hash is
    wrong. Raises DownloadError with what to do when offline, manual or failing.
    """
    folder = os.path.join(models_dir, entry["folder"])
    destination = os.path.join(folder, entry["name"])
    if os.path.exists(destination):
        problems = size_and_hash_problems(destination, entry)
        if not problems:
            report(f"{entry['name']}: already in {folder}")
            return destination
        raise DownloadError(f"{destination} exists but {'; '.join(problems)}: remove it and run the download again")
    if not entry.get("url") or entry.get("manual"):
        raise DownloadError(f"{entry['name']} cannot be downloaded by a script: {manual_steps(entry)}")
    if offline_requested(offline):
        raise DownloadError(f"{entry['name']} is missing and downloads are off (--offline or ${OFFLINE_VARIABLE}): {manual_steps(entry)}")
    os.makedirs(folder, exist_ok=True)
    partial = destination + ".part"
    have = os.path.getsize(partial) if os.path.exists(partial) else 0
    request = urllib.request.Request(entry["url"], headers={"User-Agent": "diffusion-face-restore"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            if response.headers.get_content_type() == "text/html":
                # a web page (a quota notice, a sign-in form) instead of the file: keep nothing of it
                raise _failed(entry, f"{entry['name']}: the server sent a web page instead of the file")
            resumed = have and response.status == 206
            if have and not resumed:
                have = 0  # the server sent the whole file: start over
            total = response.headers.get("Content-Length")
            total = int(total) + have if total is not None else entry.get("size")
            report(f"{entry['name']}: {'resuming at ' + str(have) + ' bytes' if resumed else 'downloading'} from {entry['url']}")
            with open(partial, "ab" if resumed else "wb") as handle:
                done = have
                for block in iter(lambda: response.read(CHUNK), b""):
                    handle.write(block)
                    done += len(block)
                    if total:
                        report(f"\r{entry['name']}: {done * 100 // total}% of {total / 2 ** 20:.1f} MiB", end="")
            if total:
                report("")
            if total and done < total:  # the connection closed early without an error
                raise DownloadError(f"{entry['name']}: download interrupted at {done} of {total} bytes; run the same command again to resume")
    except (urllib.error.URLError, OSError) as error:
        raise _failed(entry, f"{entry['name']}: download interrupted ({error}); run the same command again to resume") from None
    problems = size_and_hash_problems(partial, entry)
    if not problems and not entry.get("sha256") and entry.get("expect"):
        problems = unpublished_hash_problems(partial, entry)
    if problems:
        os.remove(partial)
        raise _failed(entry, f"{entry['name']}: the downloaded file is wrong ({'; '.join(problems)}) and was removed")
    os.replace(partial, destination)
    report(f"{entry['name']}: ok ({destination})")
    return destination


def unpublished_hash_problems(partial: str, entry: dict) -> list[str]:
    """Without a published sha256, a download is only trusted if it loads as the network it should be."""
    from .manifest import verify_file

    probe = partial + os.path.splitext(entry["name"])[1]  # the loaders read the format off the suffix
    os.replace(partial, probe)
    try:
        return verify_file(probe, entry)
    finally:
        os.replace(probe, partial)


def names_in_workflow(path: str) -> list[str]:
    """Manifest files a UI or API workflow uses (its `models` list and its widget values)."""
    import json

    with open(path, encoding="utf-8") as handle:
        workflow = json.load(handle)
    known = {entry["name"] for entry in load_manifest()}
    values = [m.get("name") for m in workflow.get("models", [])]
    if "nodes" in workflow:
        for node in workflow["nodes"]:
            values += [v for v in node.get("widgets_values", []) if isinstance(v, str)]
    else:  # API format
        for node in workflow.values():
            values += [v for v in node.get("inputs", {}).values() if isinstance(v, str)]
    return sorted({v for v in values if v in known})
