"""The diffusion maths in plain torch: noise schedules and respacing, DifFace's and DR2's samplers as
the official code runs them, few-step solvers, DR2's low-pass, and an exact Gaussian-mixture prior
to measure samplers against."""
