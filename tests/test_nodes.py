"""FaceDetect and PasteBack as ComfyUI calls them, without ComfyUI: schemas, real photos, errors."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from testdata import ROOT, facexlib_module, randomize_batchnorm, to_image_batch
from diffusion_face_restore import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
from diffusion_face_restore.face.faces import FaceSet
from diffusion_face_restore import runtime
from diffusion_face_restore.nodes.face_nodes import FaceDetect, PasteBack
from diffusion_face_restore.nodes.types import CATEGORY_ROOT

DETECT_DEFAULTS = dict(detector="mtcnn (built-in)", crop_size="512", selection="all", index=0, min_confidence=0.8, min_face_size=16, max_faces=0)
PASTE_DEFAULTS = dict(blend=1.0, color_match="none", parsing="none", keep_original_accessories=False, mask_erosion=0.1, mask_feather=0.1)


def detect(image, **overrides):
    return FaceDetect().detect(image, **{**DETECT_DEFAULTS, **overrides})


def paste(image, faces, crops, **overrides):
    return PasteBack().paste(image, faces, crops, **{**PASTE_DEFAULTS, **overrides})


@pytest.fixture()
def models_dir(tmp_path):
    runtime.set_models_dir(str(tmp_path))
    (tmp_path / "facedetection").mkdir()
    yield tmp_path / "facedetection"
    runtime.set_models_dir(None)


def test_nodes_are_registered_with_schemas_a_user_can_read():
    assert set(NODE_CLASS_MAPPINGS) >= {
        "FaceDetect", "DegradationEncoder", "DR-ControlNetApply", "DR2GuidedSampler", "DifFaceInit", "Enhancer", "PasteBack"}
    for node_id, cls in NODE_CLASS_MAPPINGS.items():
        assert node_id in NODE_DISPLAY_NAME_MAPPINGS
        assert cls.CATEGORY.startswith(CATEGORY_ROOT + "/"), node_id
        assert len(cls.DESCRIPTION) > 80, node_id
        assert callable(getattr(cls, cls.FUNCTION))
        assert len(cls.RETURN_TYPES) == len(cls.RETURN_NAMES) == len(cls.OUTPUT_TOOLTIPS)
        for section in cls.INPUT_TYPES().values():
            for name, spec in section.items():
                assert len(spec) == 2 and spec[1].get("tooltip"), f"{node_id}.{name} has no tooltip"


def test_importing_the_pack_is_fast_and_loads_no_model():
    code = (
        "import sys, time, torch; sys.path.insert(0, sys.argv[1]); from pack_import import import_pack;"
        "start = time.perf_counter(); pack = import_pack(); took = time.perf_counter() - start;"
        "import gc; modules = [o for o in gc.get_objects() if isinstance(o, torch.nn.Module)];"
        "print(took, len(modules), 'spandrel' in sys.modules, 'facexlib' in sys.modules)"
    )
    took, modules, spandrel, facexlib = subprocess.check_output([sys.executable, "-c", code, ROOT], text=True).split()
    assert float(took) < 1.0, f"importing the pack took {float(took):.2f} s"
    assert modules == "0", "importing the pack built a network"
    assert spandrel == facexlib == "False"


def test_batch_mixing_photos_with_and_without_faces(astronaut):
    empty = np.full_like(astronaut, 128)
    image = to_image_batch(empty, astronaut, empty, astronaut[:, ::-1])
    faces, crops, preview, count = detect(image)
    assert isinstance(faces, FaceSet) and count == 2 == crops.shape[0]
    assert [f.image_index for f in faces.faces] == [1, 3]
    assert preview.shape == image.shape
    assert torch.equal(preview[0], image[0]), "no detections drawn on a photo without faces"
    pasted, mask = paste(image, faces, crops)
    assert pasted.shape == image.shape and mask.shape == image.shape[:3]
    assert torch.equal(pasted[0], image[0]) and torch.equal(pasted[2], image[2])
    assert mask[0].max() == 0 and mask[1].max() > 0.99


def test_no_face_anywhere_gives_a_placeholder_crop_and_the_photo_back():
    image = torch.full((2, 300, 400, 3), 0.5)
    faces, crops, _, count = detect(image)
    assert count == 0 and len(faces) == 0
    # core nodes fail on empty batches: the crops output is one grey placeholder
    assert crops.shape == (1, 512, 512, 3) and abs(float(crops.mean()) - 0.52) < 0.02
    pasted, mask = paste(image, faces, crops)
    assert torch.equal(pasted, image) and mask.max() == 0
    # PasteBack's lazy restored_crops is then never computed in ComfyUI
    assert PasteBack().check_lazy_status(image, faces, None) == []
    assert torch.equal(paste(image, faces, None)[0], image)


def test_paste_back_asks_for_the_restored_crops_only_when_there_are_faces(astronaut):
    image = to_image_batch(astronaut)
    faces, crops, _, _ = detect(image)
    assert PasteBack().check_lazy_status(image, faces, None) == ["restored_crops"]
    assert PasteBack().check_lazy_status(image, faces, crops) == []


def test_aligned_input_passes_through_unchanged(aligned_faces):
    photos = list(aligned_faces.values())[:3]
    image = to_image_batch(*photos)
    faces, crops, _, count = detect(image, detector="aligned input")
    assert count == 3 and torch.equal(crops, image)
    for face in faces.faces:
        np.testing.assert_allclose(face.affine, np.eye(2, 3), atol=1e-12)
    pasted, _ = paste(image, faces, crops)
    assert torch.allclose(pasted, image, atol=1e-6)
    small_faces, small_crops, _, _ = detect(image, detector="aligned input", crop_size="256")
    assert small_crops.shape == (3, 256, 256, 3)


def test_selection_modes_and_face_order(whole_photos):
    photo = whole_photos["difface_whole_00.jpg"]
    image = to_image_batch(photo)
    faces, _, _, count = detect(image)
    centres = [f.center[0] for f in faces.faces]
    assert count == 4 and centres == sorted(centres), "faces are numbered left to right"
    _, _, _, largest = detect(image, selection="largest")
    third, _, _, _ = detect(image, selection="index", index=2)
    assert largest == 1 and third.faces[0].center == faces.faces[2].center
    none, _, _, zero = detect(image, selection="index", index=9)
    assert zero == 0
    _, _, _, two = detect(image, max_faces=2)
    _, _, _, big_only = detect(image, min_face_size=36)
    assert two == 2 and big_only == 2


def test_rgba_grey_and_tiny_inputs(astronaut):
    rgba = torch.cat([to_image_batch(astronaut), torch.ones(1, 512, 512, 1)], dim=-1)
    faces, crops, _, count = detect(rgba)
    assert count == 1
    pasted, _ = paste(rgba, faces, crops)
    assert pasted.shape == rgba.shape and torch.equal(pasted[..., 3], rgba[..., 3])
    grey = to_image_batch(astronaut).mean(-1, keepdim=True)
    faces, crops, _, count = detect(grey)
    assert count == 1 and crops.shape[-1] == 3
    assert paste(grey, faces, crops)[0].shape == grey.shape
    tiny = torch.nn.functional.interpolate(to_image_batch(astronaut).permute(0, 3, 1, 2), size=(80, 80), mode="area").permute(0, 2, 3, 1)
    _, _, _, count = detect(tiny, min_face_size=8)
    assert count == 1


def test_paste_back_restored_crops_of_another_size_onto_a_2x_background(astronaut):
    image = to_image_batch(astronaut)
    faces, crops, _, _ = detect(image)
    half = torch.nn.functional.interpolate(crops.permute(0, 3, 1, 2), size=(256, 256), mode="area").permute(0, 2, 3, 1)
    background = torch.nn.functional.interpolate(image.permute(0, 3, 1, 2), scale_factor=2, mode="bicubic").permute(0, 2, 3, 1).clamp(0, 1)
    pasted, mask = paste(background, faces, half)
    assert pasted.shape == background.shape and mask.shape == (1, 1024, 1024)
    ys, xs = torch.nonzero(mask[0] > 0.5, as_tuple=True)
    box = faces.faces[0].box * 2
    assert box[0] - 40 < xs.float().mean() < box[2] + 40 and box[1] - 40 < ys.float().mean() < box[3] + 40


def test_paste_back_rejects_mismatched_inputs_with_clear_messages(astronaut):
    image = to_image_batch(astronaut)
    faces, crops, _, _ = detect(image)
    with pytest.raises(ValueError, match="2 restored crop.*for 1 face"):
        paste(image, faces, torch.cat([crops, crops]))
    with pytest.raises(ValueError, match="2 photo.*found in 1"):
        paste(torch.cat([image, image]), faces, crops)
    with pytest.raises(ValueError, match="same aspect ratio"):
        paste(image[:, :, :300], faces, crops)
    with pytest.raises(TypeError, match="FaceDetect"):
        paste(image, [object()], crops)


def test_empty_batches_and_invalid_pixels_are_refused_in_one_line(astronaut):
    image = to_image_batch(astronaut)
    with pytest.raises(ValueError, match="FaceDetect's image is an empty batch .0 images.: connect a node"):
        detect(image[:0])
    broken = image.clone()
    broken[0, 200, 300, 1] = float("nan")
    broken[0, 10, 20, 0] = float("inf")
    with pytest.raises(ValueError) as error:
        detect(broken)
    message = str(error.value)
    assert "\n" not in message and message.startswith("FaceDetect's image has 2 NaN or infinite value(s) (first in image 0 at x=20, y=10)")
    faces, crops, _, _ = detect(image)
    with pytest.raises(ValueError, match="PasteBack's image has 2 NaN"):
        paste(broken, faces, crops)
    bad_crops = crops.clone()
    bad_crops[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="restored_crops has 1 NaN.*restorer before PasteBack failed.*precision to bf16 or fp32"):
        paste(image, faces, bad_crops)


def test_missing_detector_file_names_file_folder_and_url(astronaut, models_dir):
    with pytest.raises(FileNotFoundError) as error:
        detect(to_image_batch(astronaut), detector="retinaface_resnet50")
    message = str(error.value)
    assert "\n" not in message
    assert "detection_Resnet50_Final.pth" in message and "models/facedetection" in message and str(models_dir) in message
    assert "https://github.com/xinntao/facexlib/releases/download/v0.1.0/detection_Resnet50_Final.pth" in message


def test_corrupt_detector_file_gives_a_one_line_error(astronaut, models_dir):
    (models_dir / "detection_mobilenet0.25_Final.pth").write_bytes(b"PK\x03\x04 not really a checkpoint")
    with pytest.raises(ValueError) as error:
        detect(to_image_batch(astronaut), detector="retinaface_mobile0.25")
    assert "detection_mobilenet0.25_Final.pth" in str(error.value) and "download it again" in str(error.value)
    assert "\n" not in str(error.value)


def test_retinaface_and_parsing_files_in_official_layout_run_through_the_nodes(astronaut, models_dir):
    retinaface = facexlib_module("facexlib.detection.retinaface")
    parsenet = facexlib_module("facexlib.parsing.parsenet")
    torch.manual_seed(0)
    detector = randomize_batchnorm(retinaface.RetinaFace(network_name="mobile0.25", half=False, device="cpu"))
    torch.save({"module." + k: v for k, v in detector.state_dict().items()}, models_dir / "detection_mobilenet0.25_Final.pth")
    parser = randomize_batchnorm(parsenet.ParseNet(in_size=512, out_size=512, parsing_ch=19))
    torch.save(parser.state_dict(), models_dir / "parsing_parsenet.pth")
    image = to_image_batch(astronaut)
    # random weights detect random "faces": ask for the single most confident one
    faces, crops, _, count = detect(image, detector="retinaface_mobile0.25", min_confidence=0.0, max_faces=1, min_face_size=0)
    assert count == 1 and crops.shape == (1, 512, 512, 3)
    pasted, mask = paste(image, faces, crops, parsing="parsenet")
    assert pasted.shape == image.shape and mask.shape == (1, 512, 512)


def test_parsing_costs_one_network_call_per_face_and_stops_on_cancel(whole_photos, models_dir, monkeypatch):
    from diffusion_face_restore.face import parsing as parsing_module
    from diffusion_face_restore.restore import faces as face_steps

    parsenet = facexlib_module("facexlib.parsing.parsenet")
    torch.manual_seed(0)
    torch.save(randomize_batchnorm(parsenet.ParseNet(in_size=512, out_size=512, parsing_ch=19)).state_dict(),
               models_dir / "parsing_parsenet.pth")
    image = to_image_batch(whole_photos["difface_whole_00.jpg"])
    faces, crops, _, count = detect(image)
    assert count == 4
    calls = []
    real_parse = parsing_module.parse_labels
    monkeypatch.setattr(face_steps, "parse_labels", lambda *a: calls.append(a[2].shape[0]) or real_parse(*a))
    paste(image, faces, crops, parsing="parsenet")
    assert calls == [1, 1, 1, 1], "on a CPU each face is one ParseNet call (cancel points between them)"

    class Cancelled(Exception):
        pass

    def cancel_after_the_first_face():
        if calls:
            raise Cancelled
    calls.clear()
    monkeypatch.setattr(runtime, "check_cancel", cancel_after_the_first_face)
    with pytest.raises(Cancelled):
        paste(image, faces, crops, parsing="parsenet")
    assert calls == [1], "Cancel must stop the parsing after the face in progress"


def test_a_graph_with_several_missing_files_names_them_all_before_running(models_dir):
    """ComfyUI runs every node's VALIDATE_INPUTS before executing anything and reports them together."""
    from diffusion_face_restore.nodes.diffusion_nodes import FaceDiffusionLoader
    from diffusion_face_restore.nodes.enhancer_nodes import FaceEnhancerLoader

    problems = [
        FaceDetect.VALIDATE_INPUTS("retinaface_resnet50"),
        FaceDiffusionLoader.VALIDATE_INPUTS("DR2_FFHQ.pkl"),
        FaceEnhancerLoader.VALIDATE_INPUTS("SPARNetHD_FFHQ_DR2aug.pth"),
        PasteBack.VALIDATE_INPUTS("parsenet"),
    ]
    for problem, name in zip(problems, ["detection_Resnet50_Final.pth", "DR2_FFHQ.pkl", "SPARNetHD_FFHQ_DR2aug.pth", "parsing_parsenet.pth"]):
        assert isinstance(problem, str) and name in problem and "\n" not in problem, problem
    assert FaceDetect.VALIDATE_INPUTS("opencv-haar (built-in)") is True and PasteBack.VALIDATE_INPUTS("none") is True
    (models_dir / "detection_Resnet50_Final.pth").write_bytes(b"placed")  # present: validation passes, loading checks it
    assert FaceDetect.VALIDATE_INPUTS("retinaface_resnet50") is True
    assert "unknown detector" in FaceDetect.VALIDATE_INPUTS("yolo")


def test_runtime_falls_back_to_plain_torch(tmp_path):
    assert runtime.in_comfyui() is False and runtime.comfy_node_classes() == {}
    assert runtime.torch_device().type in ("cpu", "cuda", "mps")
    runtime.check_cancel()
    progress = runtime.Progress(3)
    for _ in range(3):
        progress.update(preview=torch.rand(16, 16, 3))
    assert progress.current == 3
    os.environ["DFR_MODELS_DIR"] = str(tmp_path)
    try:
        assert runtime.model_search_paths("facedetection") == [os.path.join(str(tmp_path), "facedetection")]
        (tmp_path / "facedetection").mkdir()
        (tmp_path / "facedetection" / "x.pth").write_bytes(b"")
        assert runtime.list_model_files("facedetection") == ["x.pth"]
    finally:
        del os.environ["DFR_MODELS_DIR"]


def test_far_off_and_broken_detections_are_drawn_or_dropped():
    from diffusion_face_restore.face.detection import Detection
    from diffusion_face_restore.face.find import align_face, make_face_set
    from diffusion_face_restore.face.preview import draw_detections
    from diffusion_face_restore.face.selection import select_faces

    photo = np.zeros((100, 120, 3), np.float32)
    far = Detection(np.array([-5e11, -5e11, 7e11, 7e11]), np.array([[1e11, 2e11], [3e11, 2e11], [2e11, 3e11], [1e11, 4e11], [3e11, 4e11]]), 0.99)
    broken = Detection(np.array([0.0, 0.0, np.nan, 10.0]), np.zeros((5, 2)), 0.99)
    kept = select_faces([far, broken], 100, 120)
    assert kept == [far]
    face, crop = align_face(photo, 0, far, 256)
    preview = draw_detections(photo, make_face_set([face], [crop], 256, [(100, 120)], "test"), 0)
    assert preview.shape == photo.shape
