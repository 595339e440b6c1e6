"""Saved ComfyUI workflows run without ComfyUI: the pack's nodes and the core nodes its templates use,
over a folder of photos, resumable, with a manifest of what was done and what failed."""
