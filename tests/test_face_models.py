"""RetinaFace, ParseNet and BiSeNet: facexlib's checkpoints load strictly and compute what facexlib computes."""
import numpy as np
import pytest
import torch

from testdata import facexlib_module, randomize_batchnorm
from diffusion_face_restore.face.detection.retinaface import RetinaFaceDetector
from diffusion_face_restore.models import FACE_DETECTION, FACE_PARSING, build_model, load_model
from diffusion_face_restore.models.checkpoint import save_safetensors


def facexlib_retinaface(network: str):
    module = facexlib_module("facexlib.detection.retinaface")
    torch.manual_seed(0)
    return randomize_batchnorm(module.RetinaFace(network_name=network, half=False, device="cpu"))


@pytest.mark.parametrize("network,architecture", [("resnet50", "RetinaFace-ResNet50"), ("mobile0.25", "RetinaFace-MobileNet0.25")])
def test_retinaface_official_layout_loads_and_matches_facexlib(tmp_path, network, architecture):
    reference = facexlib_retinaface(network)
    # the released file: a flat state dict; DataParallel copies carry `module.`
    path = tmp_path / "detection.pth"
    torch.save({"module." + k: v for k, v in reference.state_dict().items()}, path)
    ours = load_model(str(path), (FACE_DETECTION,))
    assert ours.architecture == architecture
    x = torch.randn(2, 3, 96, 128) * 60
    with torch.no_grad():
        for theirs, mine in zip(reference(x), ours.module(x)):
            assert torch.equal(theirs, mine)

    converted = tmp_path / "detection.safetensors"
    save_safetensors(ours.module.state_dict(), str(converted))
    again = load_model(str(converted), (FACE_DETECTION,))
    with torch.no_grad():
        assert torch.equal(again.module(x)[2], ours.module(x)[2])


def test_retinaface_detections_match_facexlib_detect_faces(astronaut):
    reference = facexlib_retinaface("mobile0.25")
    ours = build_model(reference.state_dict(), (FACE_DETECTION,)).module
    bgr = np.ascontiguousarray(astronaut[..., ::-1])
    with torch.no_grad():
        # random weights score nothing like a face: keep the top 0.5% of the priors
        network_input = torch.from_numpy(bgr.astype(np.float32)).permute(2, 0, 1)[None] - torch.tensor([104.0, 117.0, 123.0]).view(1, 3, 1, 1)
        threshold = float(reference(network_input)[1][0, :, 1].quantile(0.995))
        expected = reference.detect_faces(bgr, conf_threshold=threshold)
    found = RetinaFaceDetector(ours, min_score=threshold).detect_resized([astronaut])[0]
    assert len(expected) > 3
    assert len(found) == len(expected)
    for detection, row in zip(found, expected):
        np.testing.assert_allclose(detection.box, row[:4], atol=1e-3)
        np.testing.assert_allclose(detection.score, row[4], atol=1e-6)
        np.testing.assert_allclose(detection.landmarks.reshape(-1), row[5:], atol=1e-3)


def test_parsenet_and_bisenet_match_facexlib(tmp_path):
    parsenet = facexlib_module("facexlib.parsing.parsenet")
    bisenet = facexlib_module("facexlib.parsing.bisenet")
    torch.manual_seed(0)
    x = torch.randn(1, 3, 512, 512)
    for name, reference in [
        ("ParseNet", parsenet.ParseNet(in_size=512, out_size=512, parsing_ch=19)),
        ("BiSeNet", bisenet.BiSeNet(num_class=19)),
    ]:
        randomize_batchnorm(reference)
        path = tmp_path / f"{name}.pth"
        torch.save(reference.state_dict(), path)
        ours = load_model(str(path), (FACE_PARSING,))
        assert ours.architecture == name
        with torch.no_grad():
            np.testing.assert_allclose(ours.module(x)[0].numpy(), reference(x)[0].numpy(), atol=1e-5)
