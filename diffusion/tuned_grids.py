"""Time grids tuned for few network calls, as data: written by benchmarks/tune_time_grids.py --write.

For (sampler, calls): the grid's timesteps as fractions of the start timestep (1.0 first, 0.0 last),
found by minimising the protocol's distance to DDIM(eta)'s many-step limit on the exact prior over the
selection half of the start faces (benchmarks/fast_difface_protocol.py) and judged on the other half.
`spacing auto` uses them at eta > 0 (fast_solvers.solver_timesteps).
"""

TUNED_ETA = 0.5
TUNED_SIZE = 32
TUNED_GRIDS: dict[str, dict[int, tuple[float, ...]]] = {'dpm++ 2m sde': {5: (1.0, 0.6175, 0.2825, 0.1425, 0.0),
                  6: (1.0, 0.7125, 0.4, 0.2225, 0.12, 0.0),
                  8: (1.0, 0.8175, 0.57, 0.41, 0.2675, 0.145, 0.075, 0.0)},
 'er-sde': {5: (1.0, 0.815, 0.5025, 0.245, 0.0),
            6: (1.0, 0.8525, 0.59, 0.3775, 0.1875, 0.0),
            8: (1.0, 0.8975, 0.6925, 0.5475, 0.3725, 0.2, 0.0875, 0.0),
            10: (1.0, 0.9175, 0.7525, 0.6425, 0.49, 0.325, 0.225, 0.1475, 0.08, 0.0)},
 'sa-solver': {5: (1.0, 0.795, 0.1825, 0.045, 0.0),
               6: (1.0, 0.9225, 0.27, 0.095, 0.0225, 0.0),
               8: (1.0, 0.9, 0.5375, 0.225, 0.1225, 0.045, 0.0125, 0.0),
               10: (1.0, 0.9225, 0.555, 0.415, 0.225, 0.125, 0.05, 0.025, 0.0075, 0.0)},
 'seeds-2': {5: (1.0, 0.595, 0.0),
             6: (1.0, 0.7675, 0.3425, 0.0),
             8: (1.0, 0.8525, 0.5425, 0.23, 0.0),
             10: (1.0, 0.8875, 0.5925, 0.405, 0.17, 0.0)}}
