"""DR-BFR inputs for the real-ComfyUI check: a Stable Diffusion 1.5-architecture model, a DR-BFR
ControlNet written by our exporter, and a DRM bundle with a projector -- all with random weights
(they prove that ComfyUI's loaders accept the files and the graph runs, not quality).

    python tests/comfyui/make_drbfr_models.py OUT_DIR    (needs diffusers and transformers)

Writes OUT_DIR/sd15_diffusers/ (a diffusers folder: tests/comfyui/diffusers_to_checkpoint.py turns
it into a single-file checkpoint with ComfyUI's own code), OUT_DIR/models/controlnet/
dr_controlnet.safetensors and OUT_DIR/models/degradation_models/drm_projector.safetensors.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from pack_import import import_pack  # noqa: E402

import_pack()
from diffusion_face_restore.models.degradation import DegradationModel, DRMConfig  # noqa: E402
from diffusion_face_restore.training.stage1 import export_bundle  # noqa: E402
from diffusion_face_restore.training.stage2 import export_controlnet  # noqa: E402

TOKENS, CONTEXT = 16, 768


def main(out_dir: str):
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    folder = os.path.join(out_dir, "sd15_diffusers")
    unet = UNet2DConditionModel(cross_attention_dim=CONTEXT, attention_head_dim=8, sample_size=64)  # SD1.5's UNet
    unet.save_pretrained(os.path.join(folder, "unet"))
    vae = AutoencoderKL(
        block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4, layers_per_block=2, sample_size=512,
    )
    vae.save_pretrained(os.path.join(folder, "vae"))
    text = CLIPTextModel(CLIPTextConfig(  # CLIP ViT-L/14's text tower, as SD1.5
        hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
        max_position_embeddings=77, projection_dim=768, hidden_act="quick_gelu", vocab_size=49408,
    ))
    # in transformers' classic key layout (text_model.*), which ComfyUI's diffusers loader expects
    from safetensors.torch import save_file

    os.makedirs(os.path.join(folder, "text_encoder"), exist_ok=True)
    weights = {("" if k.startswith("text_model.") else "text_model.") + k: v.contiguous() for k, v in text.state_dict().items()}
    weights["text_projection.weight"] = torch.eye(CONTEXT)
    save_file(weights, os.path.join(folder, "text_encoder", "model.safetensors"))

    controlnet = ControlNetModel.from_unet(unet)
    os.makedirs(os.path.join(out_dir, "models", "controlnet"), exist_ok=True)
    export_controlnet(controlnet, TOKENS, CONTEXT, os.path.join(out_dir, "models", "controlnet", "dr_controlnet.safetensors"))

    os.makedirs(os.path.join(out_dir, "models", "degradation_models"), exist_ok=True)
    drm = DegradationModel(DRMConfig(dim=128, widths=[32, 64, 128, 128], image_size=256)).add_projector(TOKENS, CONTEXT).eval()
    export_bundle(drm, os.path.join(out_dir, "models", "degradation_models", "drm_projector.safetensors"))
    print("DR-BFR inputs in", out_dir)


if __name__ == "__main__":
    main(sys.argv[1])
