"""Cheaper attack steps? bfloat16 autocast, channels_last and torch.compile, measured once.

1. Seconds per step of our attack step (every class batched, input gradient only) on
   the bundled StarGAN (64x64, trained weights), a batch of CelebA faces, for: float32;
   ``torch.autocast`` bfloat16 (:class:`disrupt.core.precision.Autocast`);
   channels_last memory format (weights and input); ``torch.compile`` of the generator
   (offline: the inductor backend needs only a C compiler). Fastest of the repeats,
   interleaved, in one process.
2. Fidelity of bfloat16 on every bundled model: the same seeded attack (L-inf 8/255,
   10 steps, mean objective) with and without autocast, then Ruiz MSE measured in
   float32 on both results; the relative difference of the mean Ruiz MSE.

Run: python benchmarks/bench_step_options.py --images ../shared/data/celeba10k/images
         [--faces 4] [--threads 1] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
from default_protection import celeba_crop  # type: ignore[import-not-found]

from attacks import Attack
from disrupt.api import default_targets
from disrupt.bench.report import environment
from disrupt.bench.speed import batched_objective, pre_crop
from disrupt.core.precision import Autocast
from disrupt.eval.evaluation import measure_disruption
from disrupt.files import write_atomically
from targets import load_target
from targets.base import GeneratorTarget


def _step_seconds(step: Callable[[], None], repeats: int) -> float:
    step()  # warm-up (compilation happens here)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--faces", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    env = environment(0, torch.device("cpu"))  # when the run starts: its commit
    x = torch.cat([pre_crop(celeba_crop(args.images / f"{i:06d}.jpg"), (64, 64))
                   for i in range(9401, 9401 + args.faces)])
    lines = ["# Attack step options (bundled models, CPU)", ""]

    stargan = load_target("stargan.celeba96")
    assert isinstance(stargan, GeneratorTarget)
    start = (x + 4 / 255).clamp(0, 1)

    def step_with(objective: Callable[[torch.Tensor], torch.Tensor],
                  fmt: torch.memory_format = torch.contiguous_format) -> Callable[[], None]:
        def step() -> None:
            point = start.contiguous(memory_format=fmt).requires_grad_(True)
            torch.autograd.grad(objective(point).sum(), point)
        return step

    plain = batched_objective([stargan], x)
    options: dict[str, Callable[[], None]] = {
        "float32": step_with(plain),
        "bfloat16 autocast": step_with(Autocast(plain)),
    }
    timings = {name: _step_seconds(step, args.repeats) for name, step in options.items()}
    stargan.generator.to(memory_format=torch.channels_last)
    timings["channels_last"] = _step_seconds(
        step_with(batched_objective([stargan], x.contiguous(memory_format=torch.channels_last)),
                  torch.channels_last), args.repeats)
    stargan.generator.to(memory_format=torch.contiguous_format)
    if not args.no_compile:
        eager = stargan.generator
        try:
            stargan.generator = torch.compile(eager)  # type: ignore[assignment]
            timings["torch.compile"] = _step_seconds(step_with(batched_objective([stargan], x)),
                                                     args.repeats)
        except Exception as exc:  # noqa: BLE001 (report why it could not run, then go on)
            lines.append(f"- torch.compile failed: {type(exc).__name__}: {exc}"[:300])
        finally:
            stargan.generator = eager
    lines += [f"StarGAN 64x64, {args.faces} faces x 5 classes per step, threads "
              f"{args.threads}", "", "| step | s per step | vs float32 |", "|---|---|---|"]
    for name, s in timings.items():
        lines.append(f"| {name} | {s:.3f} | {timings['float32'] / s:.2f}x |")

    lines += ["", "## bfloat16 fidelity: mean Ruiz MSE after the same attack", "",
              "| model | float32 | bfloat16 autocast | difference |", "|---|---|---|---|"]
    fidelity: dict[str, list[float]] = {}
    attack = Attack(eps=8 / 255, alpha=2 / 255, steps=10, random_start=True, name="pgd")
    for name in default_targets():
        target = load_target(name)
        objective = batched_objective([target], x)
        mses = []
        for wrap in (objective, Autocast(objective)):
            adv = attack(x, wrap, generator=torch.Generator().manual_seed(0))
            rows = measure_disruption([target], x, adv)
            mses.append(sum(d.ruiz_mse for r in rows for d in r) / sum(len(r) for r in rows))
        fidelity[name] = mses
        lines.append(f"| {name} | {mses[0]:.4f} | {mses[1]:.4f} "
                     f"| {(mses[1] - mses[0]) / mses[0]:+.1%} |")
    lines += ["", f"threads {env['torch_threads']}, commit {str(env['git_commit'])[:12]}"
              f"{' (dirty)' if env['git_dirty'] else ''}, {env['device_name']} "
              f"({env['cpu_count']} CPUs), torch {torch.__version__}; other jobs shared the "
              "CPU; fastest of the repeats."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        payload = json.dumps({"environment": env, "step_seconds": timings,
                              "ruiz_mse_fp32_bf16": fidelity}, indent=2).encode()
        write_atomically(args.out / "step_options.json", lambda f: f.write(payload))
        write_atomically(args.out / "step_options.md", lambda f: f.write(text.encode()))


if __name__ == "__main__":
    main()
