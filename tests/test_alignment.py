"""FFHQ five-point alignment: the fit, the warp, and antialiasing of large faces."""
import cv2
import numpy as np
import pytest

from diffusion_face_restore.face import alignment


def similarity(angle_deg, scale, tx, ty):
    a = np.deg2rad(angle_deg)
    return np.array([[scale * np.cos(a), -scale * np.sin(a), tx], [scale * np.sin(a), scale * np.cos(a), ty]])


@pytest.mark.parametrize("crop_size", alignment.CROP_SIZES)
def test_alignment_recovers_a_known_similarity(crop_size):
    truth = similarity(12.0, 1.7, 40.0, -25.0)  # photo -> crop
    inverse = cv2.invertAffineTransform(truth)
    template = alignment.ffhq_template(crop_size)
    landmarks = template @ inverse[:, :2].T + inverse[:, 2]
    estimated = alignment.estimate_alignment(landmarks, crop_size)
    np.testing.assert_allclose(estimated, truth, atol=1e-4)  # LMedS + LM refinement in float32


def test_one_bad_landmark_does_not_spoil_the_fit():
    inverse = cv2.invertAffineTransform(similarity(-5.0, 0.8, 10, 20))
    template = alignment.ffhq_template(512)
    landmarks = template @ inverse[:, :2].T + inverse[:, 2]
    landmarks[4] += (60.0, -45.0)  # a badly placed mouth corner
    estimated = alignment.estimate_alignment(landmarks, 512)
    good = template[:4]
    mapped = landmarks[:4] @ estimated[:, :2].T + estimated[:, 2]
    assert np.abs(mapped - good).max() < 1.0, "LMedS should ignore the outlying landmark"


def test_least_squares_fallback_matches_an_exact_similarity():
    src = np.random.default_rng(1).uniform(0, 100, (5, 2))
    truth = similarity(30, 0.5, 3, 4)
    dst = src @ truth[:, :2].T + truth[:, 2]
    np.testing.assert_allclose(alignment.similarity_least_squares(src, dst), truth, atol=1e-9)


def test_crop_outside_the_photo_is_facexlib_grey():
    photo = np.zeros((50, 50, 3), np.float32)
    crop = alignment.warp_to_crop(photo, np.array([[1.0, 0, 100], [0, 1.0, 100]]), 256)
    np.testing.assert_allclose(crop[0, 0], np.array(alignment.BORDER_GREY_RGB, np.float32), atol=1e-6)
    assert crop[120, 120].max() == 0.0  # photo pixel (20, 20)


def test_antialias_removes_aliasing_of_large_faces():
    # one-pixel stripes shrunk 4x: plain bilinear sampling hits only the white ones (the crop comes
    # out white), area averaging gives the true mean grey
    stripes = np.zeros((2048, 2048, 3), np.float32)
    stripes[:, ::2] = 1.0
    affine = np.array([[0.25, 0, 0], [0, 0.25, 0]])
    aliased = alignment.warp_to_crop(stripes, affine, 512, antialias=False)
    smooth = alignment.warp_to_crop(stripes, affine, 512, antialias=True)
    inner = (slice(8, -8), slice(8, -8))
    assert abs(smooth[inner].mean() - 0.5) < 0.01
    assert smooth[inner].std() < 0.01
    assert abs(aliased[inner].mean() - 0.5) > 0.3


def test_scaled_inverse_maps_pixel_centres():
    inverse = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    scaled = alignment.scale_inverse_affine(inverse, 2.0, 2.0)
    # photo pixel centre 10 is background pixels 20 and 21, centre 20.5
    np.testing.assert_allclose(scaled @ np.array([10.0, 10.0, 1.0]), [20.5, 20.5])
    legacy = alignment.scale_inverse_affine(inverse, 2.0, 2.0, legacy_offset=True)
    np.testing.assert_allclose(legacy @ np.array([10.0, 10.0, 1.0]), [21.0, 21.0])
