"""Safe checkpoint reading: official layouts load, unsafe or broken files give clear errors."""
import os

import pytest
import torch

from diffusion_face_restore.models import FACE_DETECTION, FACE_PARSING, load_model
from diffusion_face_restore.models.checkpoint import (
    CheckpointError,
    load_state_dict,
    read_safetensors_metadata,
    save_safetensors,
)


def small_state_dict():
    torch.manual_seed(0)
    return {"layer.weight": torch.randn(4, 3), "layer.bias": torch.randn(4)}


def test_module_prefix_and_nesting_are_unwrapped(tmp_path):
    weights = small_state_dict()
    nested = {"iters_start": 300000, "log_step": {"train": 1}, "state_dict": {"module." + k: v for k, v in weights.items()}}
    path = tmp_path / "swinir_like.pth"
    torch.save(nested, path)
    loaded = load_state_dict(str(path))
    assert set(loaded) == set(weights)
    for key in weights:
        assert torch.equal(loaded[key], weights[key])


def test_params_ema_is_preferred_over_params(tmp_path):
    ema, plain = small_state_dict(), {k: torch.zeros_like(v) for k, v in small_state_dict().items()}
    path = tmp_path / "realesrgan_like.pth"
    torch.save({"params": plain, "params_ema": ema}, path)
    assert torch.equal(load_state_dict(str(path))["layer.weight"], ema["layer.weight"])


def test_safetensors_round_trip_keeps_metadata(tmp_path):
    weights = small_state_dict()
    path = tmp_path / "weights.safetensors"
    save_safetensors(weights, str(path), {"architecture": "test"})
    assert torch.equal(load_state_dict(str(path))["layer.bias"], weights["layer.bias"])
    assert read_safetensors_metadata(str(path)) == {"architecture": "test"}
    assert [p.name for p in tmp_path.iterdir()] == ["weights.safetensors"], "no temporary file left behind"


class NotAWeight:
    def __reduce__(self):
        return (os.system, ("echo this should never run",))


def test_pickles_with_code_are_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"weight": NotAWeight()}, path)
    with pytest.raises(CheckpointError, match=r"refused for safety \(.*GLOBAL posix.system.*trusted machine") as error:
        load_state_dict(str(path))
    assert "\n" not in str(error.value) and "PyTorch 2.6" not in str(error.value), "one line, without torch's preamble"


def test_truncated_file_says_download_again(tmp_path):
    good = tmp_path / "good.pth"
    torch.save(small_state_dict(), good)
    broken = tmp_path / "broken.pth"
    broken.write_bytes(good.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="broken.pth .*download it again"):
        load_state_dict(str(broken))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # random bytes name any protocol
def test_damaged_pickles_of_every_kind_say_download_again(tmp_path):
    """Random bytes and a legacy-format file cut anywhere: torch's weights-only unpickler fails on
    them with UnpicklingError, EOFError, IndexError ('pop from empty list'), KeyError or struct.error;
    each must come out as one line that says 'download it again', never as a traceback. (A cut inside
    a class name reads as that shortened name: then the message names both readings.)"""
    generator = torch.Generator().manual_seed(0)
    legacy = tmp_path / "legacy.pth"
    torch.save(small_state_dict(), legacy, _use_new_zipfile_serialization=False)
    whole = legacy.read_bytes()
    damaged = [torch.randint(0, 256, (512,), generator=generator, dtype=torch.uint8).numpy().tobytes() for _ in range(300)]
    damaged += [whole[:cut] for cut in range(1, len(whole), 7)]
    path = tmp_path / "damaged.pth"
    for data in damaged:
        path.write_bytes(data)
        with pytest.raises(CheckpointError) as error:
            load_state_dict(str(path))
        message = str(error.value)
        assert message.startswith("damaged.pth ") and "download it again" in message, message
        assert "\n" not in message


def test_corrupt_safetensors_says_download_again(tmp_path):
    path = tmp_path / "broken.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(CheckpointError, match="download it again"):
        load_state_dict(str(path))


def test_missing_file_is_named(tmp_path):
    with pytest.raises(CheckpointError, match="nothing.pth: no such file"):
        load_state_dict(str(tmp_path / "nothing.pth"))


def test_unknown_network_is_refused(tmp_path):
    path = tmp_path / "mystery.safetensors"
    save_safetensors(small_state_dict(), str(path))
    with pytest.raises(CheckpointError, match="not a network this pack knows"):
        load_model(str(path))


def test_wrong_kind_of_network_is_named(tmp_path):
    from diffusion_face_restore.models.parsenet import ParseNet

    parser = ParseNet(64, [(64, 128)], [(128, 128)], [(128, 64)])
    path = tmp_path / "detection_Resnet50_Final.pth"
    torch.save(parser.state_dict(), path)
    with pytest.raises(CheckpointError, match="is a ParseNet .*face parsing.* not a face detection"):
        load_model(str(path), (FACE_DETECTION,))
    assert load_model(str(path), (FACE_PARSING,)).architecture == "ParseNet"
