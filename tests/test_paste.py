"""PasteBack's core: round trips on real photos, agreement with facexlib, masks, colour, odd images."""
import cv2
import numpy as np
import pytest
import torch

from testdata import WHOLE_PHOTO_FACES, facexlib_module, psnr, randomize_batchnorm
from diffusion_face_restore.face.detection.haar import HaarDetector
from diffusion_face_restore.face.find import find_faces
from diffusion_face_restore.face.parsing import parse_labels, soft_parse_mask
from diffusion_face_restore.face.paste import PasteSettings, paste_faces
from diffusion_face_restore.models import build_model


@pytest.fixture(scope="module")
def detector():
    return HaarDetector()


def detect(detector, photo_uint8, **kwargs):
    image = torch.from_numpy(photo_uint8.astype(np.float32) / 255.0)[None]
    return image[0].numpy(), find_faces(image, detector, 512, min_score=0.8, **kwargs)


def paste(photo, face_set, restored, parse_masks=None, **kwargs):
    settings = PasteSettings(**kwargs)
    inverses = [f.inverse for f in face_set.faces]
    originals = list(face_set.crops.numpy())
    return paste_faces(photo, face_set.image_sizes[0], inverses, list(restored), originals, parse_masks, settings)


FACEXLIB_WARP = {"interpolation": "bilinear", "antialias": False}
FACEXLIB_PASTE = {**FACEXLIB_WARP, "mask_geometry": "facexlib"}


def round_trip_figures(detector, photo_uint8):
    photo, face_set = detect(detector, photo_uint8)
    out, coverage = paste(photo, face_set, face_set.crops.numpy())
    inside = coverage > 0
    return face_set, out, photo, inside


def test_round_trip_reproduces_real_photos(detector, astronaut, grace_hopper, whole_photos):
    photos = {"astronaut": astronaut, "grace_hopper": grace_hopper, **whole_photos}
    for name, photo_uint8 in photos.items():
        face_set, out, photo, inside = round_trip_figures(detector, photo_uint8)
        assert len(face_set) >= 1, name
        assert np.array_equal(out[~inside], photo[~inside]), f"{name}: pixels outside the pasted mask changed"
        assert all(face.box_size < 512 for face in face_set.faces)
        figure = psnr(out[inside], photo[inside])
        assert figure > 40.0, f"{name}: round trip only {figure:.1f} dB inside the mask"


def distance_inside_crop_square(face, shape) -> np.ndarray:
    """For every photo pixel, how far (in photo pixels) it lies inside the face's crop square
    (negative outside)."""
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]]
    cx = face.affine[0, 0] * xs + face.affine[0, 1] * ys + face.affine[0, 2]
    cy = face.affine[1, 0] * xs + face.affine[1, 1] * ys + face.affine[1, 2]
    inside = np.minimum.reduce([cx + 0.5, 511.5 - cx, cy + 0.5, 511.5 - cy])
    return inside / np.sqrt(abs(np.linalg.det(face.affine[:, :2])))


def test_round_trip_leaves_no_line_along_the_crop_square(detector, astronaut, grace_hopper, whole_photos):
    # facexlib's mask geometry left a 1 px line of 4-8 grey levels along the right and bottom
    # edges of every small pasted face (its blurred mask edge reached the warp's rim, where the
    # crop is mixed with the black outside it)
    photos = {"astronaut": astronaut, "grace_hopper": grace_hopper, **whole_photos}
    for name, photo_uint8 in photos.items():
        face_set, out, photo, _ = round_trip_figures(detector, photo_uint8)
        levels = np.abs(out - photo).max(-1) * 255
        for index, face in enumerate(face_set.faces):
            depth = distance_inside_crop_square(face, photo.shape)
            edge = (depth > -1) & (depth < 3)
            assert levels[edge].max() <= 2.0, f"{name}, face {index}: a line of {levels[edge].max():.1f} grey levels along the crop edge"


def facexlib_paste(photo_uint8, landmarks, restored_rgb, upscale=1, parse_module=None, background=None):
    helper_module = facexlib_module("facexlib.utils.face_restoration_helper")
    # facexlib's constructor would download its detector and parser: hand it ours (or none)
    original = helper_module.init_detection_model, helper_module.init_parsing_model
    helper_module.init_detection_model = lambda *args, **kwargs: None
    helper_module.init_parsing_model = lambda *args, **kwargs: parse_module
    try:
        helper = helper_module.FaceRestoreHelper(upscale, face_size=512, use_parse=parse_module is not None, device="cpu")
    finally:
        helper_module.init_detection_model, helper_module.init_parsing_model = original
    helper.read_image(np.ascontiguousarray(photo_uint8[..., ::-1]))
    helper.all_landmarks_5 = [np.array(lm, np.float64) for lm in landmarks]
    helper.align_warp_face()
    helper.get_inverse_affine()
    for face in restored_rgb:
        helper.add_restored_face(np.rint(face[..., ::-1] * 255).astype(np.uint8))
    bgr_background = None if background is None else np.ascontiguousarray(background[..., ::-1])
    pasted = helper.paste_faces_to_input_image(upsample_img=bgr_background)
    return helper, pasted[..., ::-1].astype(np.float64)


def assert_within_facexlib_rounding(ours, theirs):
    """facexlib rounds the warped face to uint8 (+-0.5) and truncates the result (0..1 down)."""
    difference = ours.astype(np.float64) * 255 - theirs
    assert difference.min() >= -0.5 - 1e-3 and difference.max() < 1.5 + 1e-3, (difference.min(), difference.max())
    assert np.abs(np.floor(ours * 255 + 1e-3) - theirs).max() <= 1.0


@pytest.mark.parametrize("name", sorted(WHOLE_PHOTO_FACES))
def test_alignment_and_paste_agree_with_facexlib(detector, whole_photos, name):
    photo_uint8 = whole_photos[name]
    photo, face_set = detect(detector, photo_uint8, **FACEXLIB_WARP)
    # a restored face that differs from the crop everywhere: the inverted crop
    restored = [np.rint((1.0 - crop) * 255) / 255 for crop in face_set.crops.numpy()]
    helper, theirs = facexlib_paste(photo_uint8, [f.landmarks for f in face_set.faces], restored)
    for ours_crop, their_crop in zip(face_set.crops.numpy(), helper.cropped_faces):
        assert np.abs(ours_crop * 255 - their_crop[..., ::-1]).max() <= 0.5 + 1e-3, "crops differ beyond uint8 rounding"
    for ours_affine, their_affine in zip(face_set.faces, helper.affine_matrices):
        np.testing.assert_allclose(ours_affine.affine, their_affine, atol=1e-9)
    out, _ = paste(photo, face_set, restored, **FACEXLIB_PASTE)
    assert_within_facexlib_rounding(out, theirs)


def test_paste_on_a_2x_background_agrees_with_facexlib_legacy_offset(detector, astronaut):
    photo, face_set = detect(detector, astronaut, **FACEXLIB_WARP)
    background_uint8 = cv2.resize(astronaut, (1024, 1024), interpolation=cv2.INTER_LANCZOS4)
    restored = [np.rint((1.0 - crop) * 255) / 255 for crop in face_set.crops.numpy()]
    _, theirs = facexlib_paste(astronaut, [f.landmarks for f in face_set.faces], restored, upscale=2, background=background_uint8)
    background = background_uint8.astype(np.float32) / 255
    out, _ = paste_faces(background, face_set.image_sizes[0], [f.inverse for f in face_set.faces], restored, settings=PasteSettings(legacy_offset=True, **FACEXLIB_PASTE))
    assert_within_facexlib_rounding(out, theirs)
    # the exact pixel-centre mapping moves the face by half a pixel: close, not equal
    exact, _ = paste_faces(background, face_set.image_sizes[0], [f.inverse for f in face_set.faces], restored, settings=PasteSettings(**FACEXLIB_PASTE))
    assert 0 < np.abs(exact - out).mean() < 0.01


def test_parsing_mask_paste_agrees_with_facexlib(detector, whole_photos):
    parsenet = facexlib_module("facexlib.parsing.parsenet")
    torch.manual_seed(0)
    reference_parser = randomize_batchnorm(parsenet.ParseNet(in_size=512, out_size=512, parsing_ch=19))
    with torch.no_grad():  # make the random parser's labels vary across the face
        reference_parser.out_mask_conv.conv2d.weight.mul_(20)
    our_parser = build_model(reference_parser.state_dict()).module
    photo_uint8 = whole_photos["difface_whole_03_rgba.png"]
    photo, face_set = detect(detector, photo_uint8, **FACEXLIB_WARP)
    restored = [np.rint((1.0 - crop) * 255) / 255 for crop in face_set.crops.numpy()]
    _, theirs = facexlib_paste(photo_uint8, [f.landmarks for f in face_set.faces], restored, parse_module=reference_parser)
    batch = torch.from_numpy(np.stack(restored)).permute(0, 3, 1, 2).float()
    masks = [soft_parse_mask(labels.numpy(), 512) for labels in parse_labels(our_parser, "ParseNet", batch)]
    assert 0.05 < np.mean([m.std() for m in masks]), "the parsing masks should not be flat"
    out, _ = paste(photo, face_set, restored, masks, parse_combine="replace", **FACEXLIB_PASTE)
    assert_within_facexlib_rounding(out, theirs)
    # our default keeps the soft square mask too (DifFace's helper): never more face than facexlib
    default, _ = paste(photo, face_set, restored, masks, **FACEXLIB_PASTE)
    changed_ours, changed_theirs = np.abs(default - photo).sum(-1) > 0, np.abs(theirs / 255 - photo).sum(-1) > 1.5 / 255
    assert (changed_ours & ~changed_theirs).sum() <= 0.001 * changed_ours.sum()


def test_blend_mixes_restored_and_original(detector, astronaut):
    photo, face_set = detect(detector, astronaut)
    grey = [np.full_like(c, 0.5) for c in face_set.crops.numpy()]
    untouched, mask0 = paste(photo, face_set, grey, blend=0.0)
    assert np.array_equal(untouched, photo) and mask0.max() == 0
    full, mask1 = paste(photo, face_set, grey, blend=1.0)
    half, mask_half = paste(photo, face_set, grey, blend=0.5)
    np.testing.assert_allclose(half, (full + photo) / 2, atol=1e-5)
    np.testing.assert_allclose(mask_half, mask1 / 2, atol=1e-6)


def test_colour_matching_removes_a_colour_cast(detector, astronaut):
    photo, face_set = detect(detector, astronaut)
    crops = face_set.crops.numpy()
    tinted = [np.clip(c * np.array([1.0, 0.7, 0.6], np.float32) + 0.05, 0, 1) for c in crops]
    centre = (slice(160, 352), slice(160, 352))
    for mode in ("adain", "wavelet"):
        from diffusion_face_restore.face.color import match_color

        fixed = match_color(tinted[0], crops[0], mode)
        before = np.abs(tinted[0][centre].mean((0, 1)) - crops[0][centre].mean((0, 1))).max()
        after = np.abs(fixed[centre].mean((0, 1)) - crops[0][centre].mean((0, 1))).max()
        assert after < before / 5, f"{mode}: colour cast {before:.3f} only reduced to {after:.3f}"
    out, _ = paste(photo, face_set, tinted, color_match="wavelet")
    assert psnr(out, photo) > psnr(paste(photo, face_set, tinted)[0], photo) + 6


def test_rgba_keeps_alpha_and_grey_photos_stay_grey(detector, astronaut):
    photo, face_set = detect(detector, astronaut)
    rgba = np.concatenate([photo, np.linspace(0, 1, photo.shape[0] * photo.shape[1], dtype=np.float32).reshape(*photo.shape[:2], 1)], -1)
    colourful = [np.clip(c * np.array([1.2, 0.8, 0.5], np.float32), 0, 1) for c in face_set.crops.numpy()]
    out, coverage = paste(rgba, face_set, colourful)
    assert out.shape == rgba.shape and np.array_equal(out[..., 3], rgba[..., 3])
    assert coverage.max() > 0.99

    grey = np.repeat(photo.mean(-1, keepdims=True), 3, -1)
    out_grey, _ = paste(grey, face_set, colourful)
    assert np.abs(out_grey[..., 0] - out_grey[..., 2]).max() < 1e-6, "a black-and-white photo got colour"
    single = photo.mean(-1, keepdims=True)
    out_single, _ = paste(single, face_set, colourful)
    assert out_single.shape == single.shape


def test_overlapping_faces_composite_in_face_order(detector, astronaut):
    photo, face_set = detect(detector, astronaut)
    face = face_set.faces[0]
    shifted = face.inverse.copy()
    shifted[0, 2] += 20  # a second face, overlapping the first
    red, blue = np.zeros((512, 512, 3), np.float32), np.zeros((512, 512, 3), np.float32)
    red[..., 0], blue[..., 2] = 1.0, 1.0
    out, coverage = paste_faces(photo, face_set.image_sizes[0], [face.inverse, shifted], [red, blue])
    centre = tuple(int(v) for v in face.landmarks[2][::-1])
    assert out[centre][2] > 0.99 and out[centre][0] < 0.01, "the later face lies on top"
    again, _ = paste_faces(photo, face_set.image_sizes[0], [face.inverse, shifted], [red, blue])
    assert np.array_equal(out, again)
    # no seam: the composite changes smoothly along a row through both faces
    # (red to blue is a step of 2 in the channel sum; the feathered edge spreads it over pixels)
    row = out[centre[0], :, :].sum(-1)
    assert np.abs(np.diff(row[(coverage[centre[0]] > 0)])).max() < 0.5


def test_tiny_and_huge_photos(detector, astronaut):
    tiny = cv2.resize(astronaut, (96, 96), interpolation=cv2.INTER_AREA)
    photo, face_set = detect(detector, tiny)
    assert len(face_set) == 1
    out, coverage = paste(photo, face_set, face_set.crops.numpy())
    assert np.array_equal(out[coverage == 0], photo[coverage == 0])

    huge = np.zeros((6000, 6000, 3), np.uint8)
    huge[4000:4512, 3000:3512] = astronaut
    photo, face_set = detect(detector, huge)
    assert len(face_set) == 1
    out, coverage = paste(photo, face_set, face_set.crops.numpy())
    ys, xs = np.nonzero(coverage)
    assert 4000 <= ys.min() and ys.max() < 4512 and 3000 <= xs.min() and xs.max() < 3512
    assert psnr(out[4000:4512, 3000:3512], photo[4000:4512, 3000:3512]) > 40


def test_antialiasing_option_for_faces_pasted_much_smaller(detector, astronaut):
    photo, face_set = detect(detector, astronaut)  # a ~96 px face from a 512 crop: shrunk ~5x
    stripes = np.zeros((512, 512, 3), np.float32)
    stripes[:, ::2] = 1.0
    centre = tuple(int(v) for v in face_set.faces[0].landmarks[2][::-1])
    patch = (slice(centre[0] - 8, centre[0] + 8), slice(centre[1] - 8, centre[1] + 8))
    smooth, _ = paste(photo, face_set, [stripes], antialias=True)
    aliased, _ = paste(photo, face_set, [stripes])
    assert abs(smooth[patch].mean() - 0.5) < 0.03 and smooth[patch].std() < 0.05
    assert aliased[patch].std() > 3 * smooth[patch].std()
