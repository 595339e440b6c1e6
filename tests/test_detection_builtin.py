"""The built-in detector finds the faces in real photos, with plausible landmarks."""
import numpy as np
import pytest

from testdata import WHOLE_PHOTO_FACES
from diffusion_face_restore.face.detection import non_maximum_suppression, resize_for_detection
from diffusion_face_restore.face.detection.haar import HaarDetector
from diffusion_face_restore.face.selection import select_faces

DEFAULT_MIN_SCORE = 0.8  # FaceDetect's default


@pytest.fixture(scope="module")
def detector():
    return HaarDetector()


def faces_in(detector, photo):
    found = detector.detect([photo])[0]
    return select_faces(found, photo.shape[0], photo.shape[1], min_score=DEFAULT_MIN_SCORE, min_size=16)


def assert_plausible_landmarks(detection):
    x1, y1, x2, y2 = detection.box
    left_eye, right_eye, nose, left_mouth, right_mouth = detection.landmarks
    assert left_eye[0] < nose[0] < right_eye[0], "nose between the eyes"
    assert left_mouth[0] < right_mouth[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(left_mouth[1], right_mouth[1]), "eyes, nose, mouth top to bottom"
    for x, y in detection.landmarks:
        assert x1 <= x <= x2 and y1 <= y <= y2, "landmarks inside the box"


def test_finds_the_astronaut(detector, astronaut):
    faces = faces_in(detector, astronaut)
    assert len(faces) == 1
    assert_plausible_landmarks(faces[0])
    # Eileen Collins' face is in the upper middle of the picture
    x1, y1, x2, y2 = faces[0].box
    assert 150 < (x1 + x2) / 2 < 300 and 50 < (y1 + y2) / 2 < 200


def test_finds_grace_hopper(detector, grace_hopper):
    faces = faces_in(detector, grace_hopper)
    assert len(faces) == 1
    assert_plausible_landmarks(faces[0])


def test_finds_every_face_in_the_shared_group_photos(detector, whole_photos):
    for name, photo in whole_photos.items():
        faces = faces_in(detector, photo)
        assert len(faces) == WHOLE_PHOTO_FACES[name], f"{name}: found {len(faces)} faces"
        for face in faces:
            assert_plausible_landmarks(face)


def test_finds_nothing_in_a_photo_without_faces(detector, astronaut):
    sky = np.full((400, 600, 3), (120, 160, 220), np.uint8)
    sky += np.random.default_rng(0).integers(0, 12, sky.shape, dtype=np.uint8)
    assert faces_in(detector, sky) == []


def test_detection_on_a_shrunk_photo_reports_photo_coordinates(detector, astronaut):
    # a huge photo: the same face at 4x, detected at bounded resolution, reported in photo pixels
    import cv2

    big = cv2.resize(astronaut, (2048 * 2, 2048 * 2), interpolation=cv2.INTER_CUBIC)
    resized, fx, fy = resize_for_detection(big)
    assert max(resized.shape[:2]) <= 2048 and fx == pytest.approx(0.5)
    small_face = faces_in(detector, astronaut)[0]
    big_face = faces_in(detector, big)[0]
    np.testing.assert_allclose(big_face.landmarks, small_face.landmarks * 8 + 3.5, atol=16)


def test_nms_matches_torchvision_semantics():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10.5]], float)
    scores = np.array([0.9, 0.95, 0.5, 0.8])
    assert non_maximum_suppression(boxes, scores, 0.4) == [1, 2]
    try:
        import torch
        import torchvision
    except Exception:  # torchvision is optional for the pack
        return
    expected = torchvision.ops.nms(torch.tensor(boxes, dtype=torch.float32), torch.tensor(scores, dtype=torch.float32), 0.4)
    assert non_maximum_suppression(boxes, scores, 0.4) == expected.tolist()


def test_nms_matches_torchvision_on_thousands_of_overlapping_candidates():
    """What untrained weights at min_confidence 0 hand to NMS: thousands of boxes, degenerate ones included."""
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 600, size=(3000, 2))
    sizes = rng.choice([0.0, 2.0, 40.0, 120.0], size=(3000, 1)) * rng.uniform(0.5, 1.5, size=(3000, 2))
    boxes = np.concatenate([corners, corners + sizes], axis=1)
    scores = rng.permutation(3000) / 3000.0  # distinct: torchvision does not promise an order among ties
    expected = torchvision.ops.nms(torch.tensor(boxes), torch.tensor(scores), 0.4).tolist()
    assert non_maximum_suppression(boxes, scores, 0.4) == expected
