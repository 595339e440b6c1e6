"""Synthetic degradations of real faces (blur, downscale, noise, JPEG, as the papers train on them)
and clips made from a photo along a known camera path (references for video)."""
