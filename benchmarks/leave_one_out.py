"""Transfer to unseen models: protect against all bundled models but one, test on that one.

For each held-out model M, every face is protected with ``protect()`` against the
other bundled models only, then M's disruption (Ruiz MSE > 0.05 on [-1, 1], per
condition) is measured on the saved 8-bit image. Each row says what the attack saw;
each column is the model evaluated; the last row (all four seen) is the reference.

``--variant mi-di`` is the transfer recipe of the image-classification literature
on top of the default: MI-FGSM momentum (Dong et al., CVPR 2018) and input
diversity (Xie et al., CVPR 2019; resize-and-pad to 1.1x and 1.3x, drawn with the
JPEG EOT at every step), same budget and steps.

Run: python benchmarks/leave_one_out.py --images ../shared/data/celeba10k/images
         [--limit 20] [--first 9301] [--strength mid] [--variant default|mi-di]
         [--out runs/leave_one_out.json]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from default_protection import (  # type: ignore[import-not-found]
    add_face_options,
    celeba_crop,
    parse_face_options,
)

from disrupt import protect
from disrupt.api import default_targets
from disrupt.core.budget import resolve_budget
from disrupt.core.pipeline import perturb, plan_protection
from disrupt.core.transforms import JPEG_EOT_TRANSFORMS, InputDiversity
from disrupt.eval.evaluation import measure_disruption
from targets import load_target
from targets.base import Target

DIVERSE_TRANSFORMS = (*JPEG_EOT_TRANSFORMS, InputDiversity(ratio=1.1, probability=1.0),
                      InputDiversity(ratio=1.3, probability=1.0))


def protect_mi_di(x: torch.Tensor, seen: list[Target], strength: str, seed: int) -> torch.Tensor:
    """The default protection with MI-FGSM and input diversity: the 8-bit image."""
    budget = resolve_budget(strength, attack="mifgsm", eot=True)  # DI is drawn with EOT
    return perturb(x, seen, budget, plan_protection(x, seen), seed=seed,
                   transforms=DIVERSE_TRANSFORMS)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=("default", "mi-di"), default="default")
    add_face_options(parser, first=9301, limit=20)
    args = parse_face_options(parser)

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
            if args.variant == "mi-di":
                image = protect_mi_di(x, seen, args.strength, args.seed)
            else:
                image = protect(x, targets=seen, strength=args.strength, seed=args.seed).image
            for d in measure_disruption(list(models.values()), x, image,
                                        seed=args.seed)[0]:
                rates[d.target].append(float(d.disrupted))
        matrix[row] = {n: float(np.mean(v)) for n, v in rates.items()}
        print(row + ": " + ", ".join(f"{n} {v * 100:.0f}%" for n, v in matrix[row].items()),
              flush=True)

    print(f"\n{args.limit} CelebA faces from {args.first:06d}, strength {args.strength}, "
          f"variant {args.variant}; "
          "cell = fraction of (face, condition) outputs with Ruiz MSE > 0.05")
    print("| protected against | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for row, cells in matrix.items():
        print(f"| {row} | " + " | ".join(f"{cells[n] * 100:.0f}%" for n in names) + " |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"faces": args.limit, "first": args.first,
                                        "strength": args.strength, "variant": args.variant,
                                        "matrix": matrix}, indent=2))


if __name__ == "__main__":
    main()
