"""The built-in MTCNN detector against facenet-pytorch's MTCNN (installed --no-deps for the tests),
on the shared real photos: the same faces, boxes, landmarks and scores within float32 rounding;
the pack's weight file holds exactly facenet-pytorch's tensors; FaceDetect uses it without any
file in the models folder."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from testdata import to_image_batch

from diffusion_face_restore.face.detection.mtcnn import MTCNNDetector
from diffusion_face_restore.models import load_model
from diffusion_face_restore.models.checkpoint import load_state_dict
from diffusion_face_restore.restore.faces import MTCNN, MTCNN_WEIGHTS, detect_faces, detector_check

facenet_pytorch = pytest.importorskip("facenet_pytorch", reason="scripts/test installs facenet-pytorch --no-deps")


@pytest.fixture(scope="module")
def ours():
    return MTCNNDetector(load_model(MTCNN_WEIGHTS).module, torch.device("cpu"))


@pytest.fixture(scope="module")
def reference():
    return facenet_pytorch.MTCNN(keep_all=True, device="cpu")


def by_position(boxes: np.ndarray, *others: np.ndarray):
    order = np.lexsort(boxes[:, :2].T[::-1])
    return (boxes[order],) + tuple(o[order] for o in others)


def test_the_shipped_weights_are_facenet_pytorchs(reference):
    shipped = load_state_dict(MTCNN_WEIGHTS)
    theirs = {f"{name}.{key}": value for name in ("pnet", "rnet", "onet") for key, value in getattr(reference, name).state_dict().items()}
    assert set(shipped) == set(theirs)
    for key, value in theirs.items():
        assert torch.equal(shipped[key], value.float()), key


def test_same_faces_boxes_landmarks_and_scores_as_facenet_pytorch(ours, reference, whole_photos, aligned_faces, astronaut, grace_hopper):
    photos = {**whole_photos, **dict(list(aligned_faces.items())[:4]), "astronaut": astronaut, "grace_hopper": grace_hopper}
    faces = 0
    for name, photo in photos.items():
        found = ours.detect_one(photo)
        boxes, scores, points = reference.detect(photo, landmarks=True)
        assert len(found) == (0 if boxes is None else len(boxes)), name
        if not found:
            continue
        faces += len(found)
        our_boxes, our_scores, our_points = by_position(np.array([f.box for f in found]), np.array([f.score for f in found]),
                                                        np.array([f.landmarks for f in found]))
        their_boxes, their_scores, their_points = by_position(*(np.asarray(a, np.float64) for a in (boxes, scores, points)))
        # float32 arithmetic in a different order: a few 1e-5 px at most
        np.testing.assert_allclose(our_boxes, their_boxes, atol=1e-3, rtol=0, err_msg=name)
        np.testing.assert_allclose(our_points, their_points, atol=1e-3, rtol=0, err_msg=name)
        np.testing.assert_allclose(our_scores, their_scores, atol=1e-5, rtol=0, err_msg=name)
    assert faces >= 12, "the shared photos hold at least a dozen faces MTCNN finds"


def test_photos_too_small_for_the_pyramid_or_without_faces_give_nothing(ours):
    assert ours.detect_one(np.zeros((10, 12, 3), np.uint8)) == []  # facenet-pytorch raises here
    assert ours.detect_one(np.full((200, 300, 3), 128, np.uint8)) == []


def test_face_detect_finds_aligned_faces_with_mtcnn_and_no_weight_files(whole_photos, tmp_path):
    from diffusion_face_restore import runtime

    runtime.set_models_dir(str(tmp_path))  # an empty models folder: MTCNN needs none
    try:
        assert detector_check(MTCNN) is True
        faces = detect_faces(to_image_batch(whole_photos["difface_whole_00.jpg"]), MTCNN)
    finally:
        runtime.set_models_dir(None)
    assert len(faces) == 4 and faces.crops.shape == (4, 512, 512, 3)
    for face in faces.faces:
        left_eye, right_eye = face.landmarks[0], face.landmarks[1]
        assert left_eye[0] < right_eye[0], "landmarks in RetinaFace's order: the eye on the photo's left first"
