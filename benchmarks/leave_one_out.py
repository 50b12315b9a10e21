"""Transfer to unseen models: protect against all bundled models but one, test on that one.

For each held-out model M, every face is protected with ``protect()`` against the
other bundled models only, then M's disruption (Ruiz MSE > 0.05 on [-1, 1], per
condition) is measured on the saved 8-bit image. Each row says what the attack saw;
each column is the model evaluated; the last row (all four seen) is the reference.

Run: python benchmarks/leave_one_out.py --images ../shared/data/celeba10k/images
         [--limit 20] [--first 9301] [--strength mid] [--out runs/leave_one_out.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from default_protection import celeba_crop  # type: ignore[import-not-found]

from disrupt import protect
from disrupt.api import default_targets
from disrupt.evaluation import measure_disruption
from targets import load_target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--first", type=int, default=9301)
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--strength", default="mid")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    names = default_targets()
    models = {n: load_target(n) for n in names}
    faces = [celeba_crop(args.images / f"{i:06d}.jpg")
             for i in range(args.first, args.first + args.limit)]
    matrix: dict[str, dict[str, float]] = {}
    for held_out in [*names, None]:
        seen = [models[n] for n in names if n != held_out]
        row = f"all but {held_out}" if held_out else "all four"
        rates: dict[str, list[float]] = {n: [] for n in names}
        for x in faces:
            result = protect(x, targets=seen, strength=args.strength, seed=args.seed)
            for d in measure_disruption(list(models.values()), x, result.image,
                                        seed=args.seed)[0]:
                rates[d.target].append(float(d.disrupted))
        matrix[row] = {n: float(np.mean(v)) for n, v in rates.items()}
        print(row + ": " + ", ".join(f"{n} {v * 100:.0f}%" for n, v in matrix[row].items()),
              flush=True)

    print(f"\n{args.limit} CelebA faces from {args.first:06d}, strength {args.strength}; "
          "cell = fraction of (face, condition) outputs with Ruiz MSE > 0.05")
    print("| protected against | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for row, cells in matrix.items():
        print(f"| {row} | " + " | ".join(f"{cells[n] * 100:.0f}%" for n in names) + " |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"faces": args.limit, "first": args.first,
                                        "strength": args.strength, "matrix": matrix}, indent=2))


if __name__ == "__main__":
    main()
