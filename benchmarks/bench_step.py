"""Cost of the attack at equal work: the research code's loop against ours, 128x128 StarGAN.

The official StarGAN architecture (conv_dim 64, 6 residual blocks, 5 CelebA classes;
~8.4M weights) at 128x128 with **seeded random weights** (no trained 128 px model is
bundled; per-step cost does not depend on the weights), in its test-time train mode.
Both loops attack the same pre-cropped images with the same objective (each class
against its own clean output, the same tie-break), random start, step and steps
(:func:`disrupt.bench.speed.compare_loops`): the research code's structure (one
forward per class, ``.backward()`` with weight gradients) against ours (classes
batched, input gradient only). The run fails unless the results agree. For seconds
to the same disruption with trained weights see ``bench_time_to_disruption.py``.

Run: ``python benchmarks/bench_step.py [--steps 10] [--batch 1] [--threads 1] [--repeats 2]
[--out benchmarks/results]`` (writes ``bench_step.json`` and ``bench_step.md``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from disrupt.bench.report import environment
from disrupt.bench.speed import compare_loops
from disrupt.files import write_atomically
from targets.base import Condition, GeneratorTarget
from targets.stargan import StarGANGenerator

ATTRS = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young")


def make_target(seed: int) -> GeneratorTarget:
    """The official 128 px StarGAN architecture with seeded random weights, train mode."""
    torch.manual_seed(seed)
    net = StarGANGenerator(conv_dim=64, c_dim=5, repeat_num=6)
    conds = [Condition(a, F.one_hot(torch.tensor(i), 5).float()) for i, a in enumerate(ATTRS)]
    return GeneratorTarget("stargan.random128", net, input_size=(128, 128), conditions=conds,
                           mode="train")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    env = environment(0, dev)  # when the run starts: its commit
    target = make_target(0).to(dev)
    x = torch.rand(args.batch, 3, 128, 128, generator=torch.Generator().manual_seed(1)).to(dev)
    # Ruiz et al.'s budget: 0.05 and step 0.01 on [-1, 1].
    result = compare_loops([target], x, eps=0.025, alpha=0.005, steps=args.steps,
                           repeats=args.repeats)
    text = (
        f"# Attack loops at equal work: official StarGAN at 128x128, random weights\n\n"
        f"threads {env['torch_threads']}, commit {str(env['git_commit'])[:12]}"
        f"{' (dirty)' if env['git_dirty'] else ''}, {env['device_name']} "
        f"({env['cpu_count']} CPUs), device {dev}, torch {torch.__version__}; other jobs "
        f"shared the CPU.\nbatch {args.batch}, {len(target.conditions)} classes, "
        f"L-inf 6.4/255, step 1.28/255, {args.steps} steps, fastest of {args.repeats}\n\n"
        f"| loop | s per step | speed-up |\n|---|---|---|\n"
        f"| research code's (one pass per class, weight gradients) "
        f"| {result.naive_s / args.steps:.3f} | 1.00x |\n"
        f"| ours (classes batched, input gradient only) | {result.ours_s / args.steps:.3f} "
        f"| {result.speedup:.2f}x |\n\n"
        f"Equal results (checked): {result.same_pixels:.2%} of pixels identical; objective "
        f"{result.score_naive:.6g} (research loop) vs {result.score_ours:.6g} (ours).\n")
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        payload = json.dumps({"environment": env, **result.to_dict()}, indent=2).encode()
        write_atomically(args.out / "bench_step.json", lambda f: f.write(payload))
        write_atomically(args.out / "bench_step.md", lambda f: f.write(text.encode()))


if __name__ == "__main__":
    main()
