"""DR-BFR training: stage 1 (the Degradation Representation Module) and stage 2 (a ControlNet and
the DR token projector against a frozen Stable Diffusion UNet). Stage 2 needs diffusers."""
