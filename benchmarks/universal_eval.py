"""Universal perturbation (fast mode) against the full attack, on held-apart faces.

Compares, on CelebA test-split faces cropped as the bundled models expect (the same
crops as ``default_protection.py``), for the bundled set:

- ``noise``: random +-eps sign noise, eps the universal's own largest value (what
  any perturbation of that size does);
- ``universal``: the trained universal perturbation alone, resized onto the face
  and saved as 8-bit (no gradient step at all);
- ``universal+N``: ``protect(universal=..., steps=N)``: start from it, refine N steps;
- ``full``: ``protect()`` at the same strength without it (the default attack).

Each row gives seconds per face (perturbation only, models already loaded), PSNR,
and the disrupted fraction (Ruiz MSE > 0.05 on [-1, 1], per face and condition) of
each model as saved and after JPEG 75.

Train the perturbation first (on faces the test never uses), for example:
    python benchmarks/train_universal.py --target stargan.celeba96 --target attgan.celeba96 \
        --target cyclegan.utkface64 --target faceswap.lfw64 \
        --images ../shared/data/celeba10k/images --limit 1000 --steps 500 \
        --out runs/universal/bundled_mid.safetensors
Run: python benchmarks/universal_eval.py --universal bundled \
         --images ../shared/data/celeba10k/images [--limit 50] [--refine-steps 5]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from collections.abc import Callable

import numpy as np
import torch
from default_protection import (  # type: ignore[import-not-found]
    add_face_options,
    celeba_crop,
    parse_face_options,
)

from disrupt import protect
from disrupt.api import default_targets
from disrupt.core.budget import STRENGTHS
from disrupt.core.faces import Box
from disrupt.core.rounding import quantize_within
from disrupt.core.universal import load_universal, place_universal
from disrupt.eval.channels import parse_channel
from disrupt.eval.evaluation import measure_disruption
from disrupt.eval.metrics import psnr
from targets import load_target

CHANNELS = ("none", "jpeg:75")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--universal", required=True, help="a .safetensors file, or \"bundled\"")
    parser.add_argument("--refine-steps", type=int, default=5)
    add_face_options(parser, limit=50)
    args = parse_face_options(parser)

    names = default_targets()
    targets = [load_target(n) for n in names]
    delta = load_universal(args.universal)
    cap = STRENGTHS[args.strength].eps
    if float(delta.abs().max()) > cap + 1e-6:
        parser.error(f"{args.universal}: perturbation exceeds the {args.strength} budget")
    # Noise and the universal alone are compared at the universal's own L-inf size.
    eps = max(float(delta.abs().max()), 0.5 / 255)
    channels = [parse_channel(c) for c in CHANNELS]
    noise_gen = torch.Generator().manual_seed(args.seed)

    def noise(x: torch.Tensor) -> torch.Tensor:
        sign = torch.randint(0, 2, x.shape, generator=noise_gen).to(x) * 2 - 1
        return quantize_within((x + sign * eps).clamp(0, 1), x, eps)

    def universal_only(x: torch.Tensor) -> torch.Tensor:
        whole = Box(0, 0, x.shape[-1], x.shape[-2])
        return quantize_within((x + place_universal(delta, [whole], x.shape)).clamp(0, 1), x, eps)

    def refined(x: torch.Tensor) -> torch.Tensor:
        return protect(x, targets=targets, strength=args.strength, universal=delta,
                       steps=args.refine_steps, seed=args.seed).image

    def full(x: torch.Tensor) -> torch.Tensor:
        return protect(x, targets=targets, strength=args.strength, seed=args.seed).image

    methods: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "noise": noise, "universal": universal_only,
        f"universal+{args.refine_steps}": refined, "full": full,
    }
    faces = [celeba_crop(args.images / f"{i:06d}.jpg")
             for i in range(args.first, args.first + args.limit)]
    table: dict[str, dict[str, object]] = {}
    for method, run in methods.items():
        hits: dict[tuple[str, str], list[float]] = defaultdict(list)
        seconds, psnrs = [], []
        for x in faces:
            start = time.perf_counter()
            adv = run(x)
            seconds.append(time.perf_counter() - start)
            psnrs.append(float(psnr(adv, x)))
            for channel in channels:
                for d in measure_disruption(targets, channel(x), channel(adv), seed=args.seed)[0]:
                    hits[(channel.name, d.target)].append(float(d.disrupted))
        table[method] = {
            "seconds_per_face": float(np.mean(seconds)), "psnr": float(np.mean(psnrs)),
            "disrupted": {c.name: {n: float(np.mean(hits[(c.name, n)])) for n in names}
                          for c in channels},
        }
        print(method, json.dumps(table[method]), flush=True)

    print(f"\n{args.limit} CelebA faces from {args.first:06d}, strength {args.strength}, "
          f"universal {args.universal}; cells: disrupted as saved / after JPEG 75")
    print("| method | s/face | PSNR dB | " + " | ".join(names) + " |")
    print("|---|---|---|" + "---|" * len(names))
    for method, row in table.items():
        rates = row["disrupted"]
        assert isinstance(rates, dict)
        cells = [f"{rates['none'][n] * 100:.0f} / {rates['jpeg:75'][n] * 100:.0f}%"
                 for n in names]
        print(f"| {method} | {row['seconds_per_face']:.2f} | {row['psnr']:.1f} | "
              + " | ".join(cells) + " |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"faces": args.limit, "first": args.first,
                                        "strength": args.strength,
                                        "universal": str(args.universal),
                                        "table": table}, indent=2))


if __name__ == "__main__":
    main()
