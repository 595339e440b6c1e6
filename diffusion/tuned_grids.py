"""Time grids tuned for few network calls, as data: written by benchmarks/tune_time_grids.py --write.

For (sampler, calls): the grid's timesteps as fractions of the start timestep (1.0 first, 0.0 last),
found by minimising the protocol's distance to DDIM(eta)'s many-step limit on the exact prior over the
selection half of the start faces (benchmarks/fast_difface_protocol.py) and judged on the other half.
`spacing auto` uses them at eta > 0 (fast_solvers.solver_timesteps).
"""

TUNED_ETA = 0.5
TUNED_SIZE = 32
TUNED_GRIDS: dict[str, dict[int, tuple[float, ...]]] = {}
