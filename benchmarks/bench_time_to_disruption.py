"""Seconds to the same disruption: the research code's attack against ours, side by side.

On held-apart CelebA faces (009401 on; CenterCrop(89), resized once to the model's input,
96x96), against the bundled StarGAN (``stargan.celeba96``, 5 conditions, trained weights), with Ruiz
et al.'s budget (L-inf 0.05 and step 0.01 on ``[-1, 1]``: 6.4/255 and 1.3/255 here) and
their 10 steps. One process, one face at a time, the sides interleaved per face:

- ``research``: ``perturb_joint_class`` as published
  (:func:`disrupt.bench.speed.research_joint_class`): one forward per class, weight
  gradients, every class scored against the first class's clean output.
- ``ours, mean``: every class batched in one pass, input gradient only, each class
  against its own clean output (``AwayFromClean``), all 10 steps.
- ``ours, balanced``: ``BalancedAway`` (log of each output's distance relative to the
  threshold, frozen past 1.25x), all 10 steps.
- ``ours, balanced, early stop``: the same, and a face stops as soon as every class
  is past 1.25x the threshold (``stop_at``; at most 10 steps).
- ``ours, balanced, early stop, big steps halving``: the same with a step of the whole
  budget, halved twice (at a third and two thirds of the steps: ``halvings=2``).
- ``... faces batched``: the last on all faces at once (each face freezes on its own;
  the loop ends when all have).

Disruption is measured on the 8-bit result (rounded within the budget): the share of
(face, class) pairs whose Ruiz MSE to that class's clean output exceeds 0.05. The
script fails unless the early-stopping side's rate is at least the research code's.

``--input-size N`` runs the generator at N x N instead of its card's size (the faces are
resized once to N): a fully convolutional StarGAN takes any size, so ``--input-size 128``
times both sides at the official StarGAN's input with the bundled weights (trained at 96).

Run: python benchmarks/bench_time_to_disruption.py --images ../shared/data/celeba10k/images
         [--limit 20] [--threads 1] [--target stargan.celeba96] [--input-size 128]
         [--out benchmarks/results/time_to_disruption]
The 1-minute load average before the run is recorded: above the thread count, other work
shared the CPU.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
from default_protection import celeba_crop  # type: ignore[import-not-found]

from attacks import quantize_to_uint8_within
from disrupt.bench.report import environment
from disrupt.bench.speed import batched_attack, pre_crop, research_joint_class
from disrupt.core.objectives import BalancedAway, balanced_stop_at
from disrupt.eval.evaluation import measure_disruption
from disrupt.files import write_atomically
from targets import load_target
from targets.base import Target

EPS, ALPHA, STEPS = 0.025, 0.005, 10  # Ruiz et al.: 0.05, 0.01 on [-1, 1]; 10 steps
Side = Callable[[Target, torch.Tensor, torch.Generator], torch.Tensor]


def _ours(balanced: bool, early: bool, fast: bool = False) -> Side:
    def run(target: Target, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        stop = balanced_stop_at(BalancedAway(target, x)) if early else None
        return batched_attack([target], x, eps=EPS, alpha=EPS if fast else ALPHA, steps=STEPS,
                              generator=gen, balanced=balanced, stop_at=stop,
                              halvings=2 if fast else 0)
    return run


def _research(target: Target, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return research_joint_class(target, x, eps=EPS, alpha=ALPHA, steps=STEPS, generator=gen)


SIDES: dict[str, Side] = {
    "research (perturb_joint_class as published)": _research,
    "ours, mean": _ours(False, False),
    "ours, balanced": _ours(True, False),
    "ours, balanced, early stop": _ours(True, True),
    "ours, balanced, early stop, big steps halving": _ours(True, True, True),
}
EARLY = "ours, balanced, early stop, big steps halving"
BATCHED = "ours, balanced, early stop, big steps halving, faces batched"
RESEARCH = "research (perturb_joint_class as published)"


def _rate(target: Target, x: torch.Tensor, x_adv: torch.Tensor) -> list[float]:
    saved = quantize_to_uint8_within(x_adv, x, EPS)
    return [float(d.disrupted) for row in measure_disruption([target], x, saved) for d in row]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--first", type=int, default=9401)
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--target", default="stargan.celeba96",
                        help="a trained StarGAN-like target with 5 conditions")
    parser.add_argument("--input-size", type=int, default=None,
                        help="run the generator at this square size instead of its card's")
    parser.add_argument("--out", type=Path, default=None, help="folder for .json and .md")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    torch.set_num_threads(args.threads)
    env = environment(args.seed, torch.device("cpu"))  # when the run starts: its commit
    target = load_target(args.target)
    if args.input_size is not None:
        # A copy: the loaded model is shared within the process, its size must not move.
        target = copy.copy(target)
        target.input_size = (args.input_size, args.input_size)
    size = target.input_size or (64, 64)
    faces = [pre_crop(celeba_crop(args.images / f"{i:06d}.jpg"), size)
             for i in range(args.first, args.first + args.limit)]
    for side in SIDES.values():  # warm-up
        side(target, faces[0], torch.Generator().manual_seed(args.seed))
    seconds = dict.fromkeys([*SIDES, BATCHED], 0.0)
    hits: dict[str, list[float]] = {k: [] for k in seconds}
    for x in faces:
        for name, side in SIDES.items():
            start = time.perf_counter()
            x_adv = side(target, x, torch.Generator().manual_seed(args.seed))
            seconds[name] += time.perf_counter() - start
            hits[name] += _rate(target, x, x_adv)
    batch = torch.cat(faces)
    start = time.perf_counter()
    x_adv = _ours(True, True, True)(target, batch, torch.Generator().manual_seed(args.seed))
    seconds[BATCHED] = time.perf_counter() - start
    hits[BATCHED] = _rate(target, batch, x_adv)

    rates = {k: sum(v) / len(v) for k, v in hits.items()}
    base = seconds[RESEARCH]
    lines = [f"# Seconds to the same disruption ({args.target}, {size[0]}x{size[1]})", "",
             f"{len(faces)} CelebA faces {args.first:06d}-{args.first + len(faces) - 1:06d} "
             f"(CenterCrop(89), resized once to {size[0]}x{size[1]}), 5 classes; L-inf "
             f"{EPS * 255:.1f}/255, step {ALPHA * 255:.2f}/255, at most {STEPS} steps, random "
             "start; disrupted: Ruiz MSE > 0.05 on the 8-bit result, per (face, class).",
             f"threads {env['torch_threads']}, commit {str(env['git_commit'])[:12]}"
             f"{' (dirty)' if env['git_dirty'] else ''}, {env['device_name']} "
             f"({env['cpu_count']} CPUs), torch {torch.__version__}; load average {load:.2f} "
             "before the run.",
             "", "| attack | seconds | per face | disrupted | speed-up |", "|---|---|---|---|---|"]
    for name, s in seconds.items():
        lines.append(f"| {name} | {s:.2f} | {s / len(faces):.3f} | {rates[name]:.1%} "
                     f"| {base / s:.2f}x |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        payload = json.dumps({"environment": env, "target": args.target, "load_average": load,
                              "faces": len(faces), "eps": EPS,
                              "alpha": ALPHA, "steps": STEPS, "seconds": seconds,
                              "input_size": list(size), "disrupted": rates}, indent=2).encode()
        write_atomically(args.out / "time_to_disruption.json", lambda f: f.write(payload))
        write_atomically(args.out / "time_to_disruption.md", lambda f: f.write(text.encode()))
    if rates[EARLY] < rates[RESEARCH] or rates[BATCHED] < rates[RESEARCH]:
        raise SystemExit(f"early stopping disrupted less than the research code: "
                         f"{rates[EARLY]:.1%} / {rates[BATCHED]:.1%} < {rates[RESEARCH]:.1%}")


if __name__ == "__main__":
    main()
