"""Photos per second: ``disrupt protect`` of many photos, one by one against batched.

A pipeline of same-size photos (CelebA test faces 009401 on, CenterCrop(89): aligned
face crops, as an upload pipeline that crops faces first would send), protected with
the defaults (bundled set, strength mid) by :func:`disrupt.protect` one at a time and
by :func:`disrupt.batch.protect_batch` (up to ``--batch`` photos per attack), in one
process. It reports how many 8-bit values differ between the two (batched
convolutions can round differently from single-image ones; on the tiny test models
the results are byte-identical, ``tests/test_batch.py``).

Run: python benchmarks/bench_batch.py --images ../shared/data/celeba10k/images
         [--limit 8] [--batch 8] [--threads 1] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from default_protection import celeba_crop  # type: ignore[import-not-found]

from disrupt import protect
from disrupt.api import default_targets
from disrupt.batch import batchable_targets, protect_batch
from disrupt.bench.report import environment
from disrupt.core.budget import resolve_budget
from disrupt.files import write_atomically
from targets import load_target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--first", type=int, default=9401)
    parser.add_argument("--limit", type=int, default=8)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--strength", default="mid")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    env = environment(0, torch.device("cpu"))  # when the run starts: its commit
    names = default_targets()
    targets = [load_target(n) for n in names]
    budget = resolve_budget(args.strength)
    photos = [celeba_crop(args.images / f"{i:06d}.jpg")
              for i in range(args.first, args.first + args.limit)]
    protect(photos[0], targets=targets, budget=budget)  # warm-up
    start = time.perf_counter()
    alone = [protect(p, targets=targets, budget=budget) for p in photos]
    one_by_one = time.perf_counter() - start
    start = time.perf_counter()
    together = protect_batch(photos, targets=targets, budget=budget, batch_size=args.batch)
    batched = time.perf_counter() - start
    diffs = [((a.image - b.image).abs() * 255).round()
             for a, b in zip(alone, together, strict=True)]
    differing = int(sum(int((d > 0).sum()) for d in diffs))
    values = sum(d.numel() for d in diffs)
    largest = int(max(float(d.max()) for d in diffs))
    n = len(photos)
    text = (
        f"# Photos per second: one by one against batched\n\n"
        f"{n} photos of {photos[0].shape[-1]}x{photos[0].shape[-2]} (CelebA "
        f"{args.first:06d}-{args.first + n - 1:06d}, CenterCrop(89)); {', '.join(names)}; "
        f"strength {args.strength} ({budget.describe()}); batch up to {args.batch}; "
        f"targets batchable: {batchable_targets(targets)}\n"
        f"threads {env['torch_threads']}, commit {str(env['git_commit'])[:12]}"
        f"{' (dirty)' if env['git_dirty'] else ''}, {env['device_name']} "
        f"({env['cpu_count']} CPUs), torch {torch.__version__}; other jobs shared the CPU.\n\n"
        f"| mode | seconds | photos/s | speed-up |\n|---|---|---|---|\n"
        f"| one by one (protect) | {one_by_one:.1f} | {n / one_by_one:.3f} | 1.00x |\n"
        f"| batched (protect_batch) | {batched:.1f} | {n / batched:.3f} "
        f"| {one_by_one / batched:.2f}x |\n\n"
        f"8-bit values that differ between the two: {differing} of {values}, by at most "
        f"{largest} level(s). Seconds include measuring each result "
        f"(disruption and perceptibility), as protect() does.\n")
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        payload = json.dumps({"environment": env, "photos": n, "batch": args.batch,
                              "one_by_one_s": one_by_one, "batched_s": batched,
                              "differing_values": differing, "values": values,
                              "largest_difference_levels": largest}, indent=2).encode()
        write_atomically(args.out / "batch_throughput.json", lambda f: f.write(payload))
        write_atomically(args.out / "batch_throughput.md", lambda f: f.write(text.encode()))


if __name__ == "__main__":
    main()
