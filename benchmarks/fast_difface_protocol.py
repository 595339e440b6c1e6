"""Does a fast DifFace setting reproduce the official sampler on faces it was not chosen on? The
protocol of issue 33: many start faces, several sampler seeds, a selection half and a report half.

The exact reference (diffusion/exact_prior.py): a Gaussian mixture with one component per real face
of the shared photos (real_faces: the aligned faces and the faces found in the whole photos, the
astronaut and Grace Hopper), on DifFace's schedule. The start faces are people the mixture does not
hold: faces of the four shared clips (--faces-per-clip frames each, spread over the clip, aligned by
the built-in detector), degraded as an imperfect restorer's estimate (blur 1.5, x2 down, noise 5/255,
JPEG 70) and diffused to t = 400 (DifFace's K = 100 of ddim250), one fixed draw per face.

For each start face and sampler seed: the end points of --samples chains from that x_400, projected
on the mixture's principal directions, against the target as a Frechet distance. The target is what
the official sampler converges to at the same eta: DDIM(eta) with 400 calls (every integer timestep),
and at eta 1 the exact posterior p(x0 | x_400) (its closed form). The floor is another seed of the
limit (eta 1: exact posterior samples).

Halves: the selection half is real_1's and synthetic_1's faces, the report half real_2's and
synthetic_2's (other people): a setting is chosen on the first and reported on the second. Per half
and setting: the mean over faces of the seed-averaged distance, its standard error over faces, and
the seed spread (the mean over faces of the standard deviation across seeds). A setting *matches the
official* when its mean is within the official 100 calls' mean plus one standard error.

A setting is a sampler and a spacing; spacing auto is the node's (the tuned grid of
diffusion/tuned_grids.py where one is stored for that sampler and budget, tuned on the selection half
only, else the fixed spacing auto picks). The seeds the protocol reports (2000, 2001, ...) are not
the ones the grids were tuned with (5000, ...).

    python benchmarks/fast_difface_protocol.py [--size 32] [--samples 400] [--seeds 3] [--eta 0.5]
        [--calls 5,6,8,10,15,20] [--samplers dpm++ 2m sde,sa-solver] [--spacings auto,uniform t,karras,log-SNR]
        [--also "dpm++ 3m sde:karras"] [--faces-per-clip 3] [--device cuda] [--dtype float32] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys

import cv2
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pack_import import import_pack, shared_dir  # noqa: E402

import_pack()
from diffusion_face_restore.degradations.synthetic import DegradationParams, degrade_batch  # noqa: E402
from diffusion_face_restore.diffusion.difface import randn_like_from  # noqa: E402
from diffusion_face_restore.diffusion.exact_prior import (  # noqa: E402
    GaussianMixturePrior, frechet_distance, official_ddim_schedule, sample_moments,
)
from diffusion_face_restore.diffusion.fast_solvers import FAST_SAMPLERS, sample_fast, solver_timesteps  # noqa: E402
from diffusion_face_restore.diffusion.samplers import sample_ddim, sde_noise_fraction  # noqa: E402
from diffusion_face_restore.diffusion.schedule import SPACINGS, NoiseLevels  # noqa: E402
from diffusion_face_restore.restore.faces import DEFAULT_DETECTOR, detect_faces  # noqa: E402
from diffusion_face_restore.restore.pipelines import FAST_DIFFACE_SAMPLER  # noqa: E402
from diffusion_face_restore.training.evaluation import real_faces  # noqa: E402

T_START = 400
LIMIT_CALLS = 400
OFFICIAL_CALLS = 100
CLIPS = ("real_1", "synthetic_1", "real_2", "synthetic_2")
SELECTION = ("real_1", "synthetic_1")  # the report half: the other two clips' people
DEGRADATION = DegradationParams(1.5, 1.5, 0.0, 2.0, 5.0, 70)


def clip_faces(shared: str, size: int, per_clip: int) -> tuple[torch.Tensor, list[str]]:
    """[F, 3, size, size] in [-1, 1]: the largest face of `per_clip` frames spread over each clip,
    FaceDetect's aligned crop resized to size; and each face's clip name."""
    faces, names = [], []
    for clip in CLIPS:
        capture = cv2.VideoCapture(os.path.join(shared, "videos", f"{clip}.mp4"))
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        for index in np.linspace(0, count - 1, per_clip + 2)[1:-1].round().astype(int):
            capture.set(cv2.CAP_PROP_POS_FRAMES, int(index))
            ok, frame = capture.read()
            if not ok:
                raise ValueError(f"{clip}: frame {index} cannot be read")
            image = torch.from_numpy(np.ascontiguousarray(frame[..., ::-1]).astype(np.float32) / 255)[None]
            found = detect_faces(image, DEFAULT_DETECTOR, 512, "largest")
            if len(found) != 1:
                raise ValueError(f"{clip}: no face in frame {index}")
            crop = found.crops.permute(0, 3, 1, 2)
            faces.append(torch.nn.functional.interpolate(crop, size=(size, size), mode="area")[0])
            names.append(clip)
        capture.release()
    return torch.stack(faces).double() * 2 - 1, names


def start_points(faces: torch.Tensor, levels: NoiseLevels, seed: int = 0) -> torch.Tensor:
    """The faces degraded (an imperfect estimate) and diffused to T_START with a fixed draw."""
    degraded = degrade_batch(((faces + 1) / 2).float(), [DEGRADATION] * faces.shape[0], torch.Generator().manual_seed(seed))
    alpha, sigma, _ = levels.alpha_sigma_lambda(T_START)
    noise = torch.randn(faces.shape, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    return alpha * (degraded.double() * 2 - 1) + sigma * noise


class Protocol:
    def __init__(self, prior: GaussianMixturePrior, levels: NoiseLevels, samples: int, eta: float, device: torch.device):
        self.prior, self.levels, self.samples, self.eta = prior, levels, samples, eta
        self.denoise = prior.epsilon_model(levels)
        self.device = device
        self.basis = prior.basis
        # the exact posterior's samples are drawn from a CPU generator: that part runs on the CPU
        self.cpu_prior = prior.to("cpu")

    def draws(self, seed: int):
        return randn_like_from(torch.Generator().manual_seed(seed))

    def moments(self, out: torch.Tensor):
        return sample_moments(out.reshape(self.samples, -1).to(self.basis.dtype) @ self.basis)

    def chains(self, start: torch.Tensor) -> torch.Tensor:
        return start[None].to(self.device, self.prior.means.dtype).expand(self.samples, -1, -1, -1).contiguous()

    def ddim(self, start, calls: int, seed: int):
        return self.moments(sample_ddim(self.denoise, self.chains(start), official_ddim_schedule(T_START, calls), calls - 1, self.eta,
                                        self.draws(seed), clip=False))

    def fast(self, start, sampler: str, calls: int, spacing: str, seed: int, ts: list | None = None):
        """The moments of `sampler`'s end points for `calls` calls on the node's grid for `spacing` (or on ts)."""
        ts = ts if ts is not None else solver_timesteps(sampler, self.levels, T_START, calls, spacing, self.eta)
        return self.moments(sample_fast(sampler, self.denoise, self.chains(start), self.levels, ts, self.eta, self.draws(seed),
                                        clip=False, calls=calls))

    def target_and_floor(self, start):
        """The official sampler's limit at this eta (moments) and the distance of an independent
        sample of it (the floor)."""
        if self.eta == 1.0:
            alpha, sigma, _ = self.levels.alpha_sigma_lambda(T_START)
            x = start.reshape(-1).to(self.cpu_prior.means.dtype)
            exact = [m.to(self.device) for m in self.cpu_prior.posterior_moments_in_basis(x, alpha, sigma)]
            posterior = self.cpu_prior.sample_posterior(x, alpha, sigma, self.samples, torch.Generator().manual_seed(3))
            return exact, frechet_distance(*self.moments(posterior.to(self.device)), *exact)
        limit = self.ddim(start, LIMIT_CALLS, seed=101)
        return limit, frechet_distance(*self.ddim(start, LIMIT_CALLS, seed=102), *limit)


def summarise(per_face: np.ndarray) -> tuple[float, float, float]:
    """per_face [F, S] distances: (mean of the seed means, its standard error over faces, mean seed s.d.)."""
    means = per_face.mean(1)
    error = means.std(ddof=1) / math.sqrt(len(means)) if len(means) > 1 else float("nan")
    spread = per_face.std(1, ddof=1).mean() if per_face.shape[1] > 1 else float("nan")
    return float(means.mean()), float(error), float(spread)


def print_half(title: str, results: dict, faces: list[int], floor: np.ndarray, calls: list[int]):
    official = summarise(results["official DDIM"][OFFICIAL_CALLS][faces])
    bar = official[0] + official[1]
    print(f"\n{title}: {len(faces)} start faces; floor (another sample of the target) {floor[faces].mean():.2f}; official DDIM, "
          f"{OFFICIAL_CALLS} calls: {official[0]:.2f} ± {official[1]:.2f} (seed s.d. {official[2]:.2f}); matches: mean <= {bar:.2f}\n")
    print("| setting \\ UNet calls | " + " | ".join(map(str, calls)) + " | fewest calls that match | within 2x |")
    print("|" + "---|" * (len(calls) + 3))
    for name, by_calls in results.items():
        if name == "official DDIM":
            continue
        cells, fewest, within_twice = [], None, None
        for n in calls:
            mean, error, spread = summarise(by_calls[n][faces])
            cells.append(f"{mean:.2f} ± {error:.2f} (s.d. {spread:.2f})")
            if fewest is None and mean <= bar:
                fewest = n
            if within_twice is None and mean <= 2 * official[0]:
                within_twice = n
        print(f"| {name} | " + " | ".join(cells) + f" | {fewest or '-'} | {within_twice or '-'} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--samples", type=int, default=400, help="chains per start face and seed")
    parser.add_argument("--seeds", type=int, default=3, help="sampler seeds per start face")
    parser.add_argument("--eta", type=float, default=FAST_DIFFACE_SAMPLER["eta"])
    parser.add_argument("--faces-per-clip", type=int, default=3)
    parser.add_argument("--calls", default="5,6,8,10,15,20")
    parser.add_argument("--spacings", default=",".join(SPACINGS))
    parser.add_argument("--samplers", default="dpm++ 2m sde", help=f"comma-separated, of {', '.join(FAST_SAMPLERS[1:])}")
    parser.add_argument("--also", default="", help="more sampler:spacing settings, comma-separated (dpm++ 3m sde:karras)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    parser.add_argument("--json", help="write every distance (face x seed) here")
    args = parser.parse_args()
    shared = shared_dir()
    if shared is None:
        sys.exit("needs ../shared (or $DFR_SHARED_DIR) for the real faces and clips")
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    calls = [int(n) for n in args.calls.split(",")]
    spacings = args.spacings.split(",")
    settings = [(sampler, spacing) for sampler in args.samplers.split(",") for spacing in spacings]
    settings += [tuple(extra.split(":")) for extra in args.also.split(",") if extra]
    levels = NoiseLevels()
    mixture = real_faces(shared, args.size).double() / 127.5 - 1
    prior = GaussianMixturePrior.fit(mixture).to(device, dtype)
    faces, names = clip_faces(shared, args.size, args.faces_per_clip)
    starts = start_points(faces, levels)
    protocol = Protocol(prior, levels, args.samples, args.eta, device)
    print(f"exact prior: {mixture.shape[0]} real faces at {args.size} px; {len(names)} start faces from the clips; "
          f"{args.samples} chains x {args.seeds} seeds per face; eta {args.eta} (noise fraction {sde_noise_fraction(args.eta):g})",
          flush=True)
    seeds = range(args.seeds)
    results: dict[str, dict[int, np.ndarray]] = {"official DDIM": {OFFICIAL_CALLS: np.zeros((len(names), args.seeds))}}
    for sampler, spacing in settings:
        results[f"{sampler}, {spacing}"] = {n: np.zeros((len(names), args.seeds)) for n in calls}
    floor = np.zeros(len(names))
    for f, start in enumerate(starts):
        target, floor[f] = protocol.target_and_floor(start)
        for s in seeds:
            results["official DDIM"][OFFICIAL_CALLS][f, s] = frechet_distance(*protocol.ddim(start, OFFICIAL_CALLS, 1000 + s), *target)
            for sampler, spacing in settings:
                for n in calls:
                    results[f"{sampler}, {spacing}"][n][f, s] = frechet_distance(*protocol.fast(start, sampler, n, spacing, 2000 + s),
                                                                                 *target)
        print(f"face {f + 1}/{len(names)} ({names[f]}) done", flush=True)
    selection = [i for i, name in enumerate(names) if name in SELECTION]
    report = [i for i, name in enumerate(names) if name not in SELECTION]
    print_half("selection half (real_1, synthetic_1)", results, selection, floor, calls)
    print_half("report half (real_2, synthetic_2: chosen on nothing)", results, report, floor, calls)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"args": vars(args), "faces": names, "floor": floor.tolist(),
                       "distances": {name: {str(n): d.tolist() for n, d in by.items()} for name, by in results.items()}}, handle, indent=1)


if __name__ == "__main__":
    main()
