"""Turn a diffusers Stable Diffusion folder into a single-file checkpoint with ComfyUI's own code
(comfy.diffusers_load + comfy.sd.save_checkpoint), so CheckpointLoaderSimple reads a file ComfyUI
itself wrote. Run with the Python that runs ComfyUI:

    python tests/comfyui/diffusers_to_checkpoint.py COMFYUI_DIR DIFFUSERS_DIR OUTPUT.safetensors
"""
import sys


def main(comfyui_dir: str, diffusers_dir: str, output: str):
    sys.path.insert(0, comfyui_dir)
    sys.argv = [sys.argv[0], "--cpu"]
    import comfy.options

    comfy.options.enable_args_parsing()  # so that comfy.cli_args reads --cpu
    import comfy.diffusers_load
    import comfy.sd

    model, clip, vae = comfy.diffusers_load.load_diffusers(diffusers_dir)
    comfy.sd.save_checkpoint(output, model, clip, vae)
    print("wrote", output)


if __name__ == "__main__":
    main(*sys.argv[1:4])
