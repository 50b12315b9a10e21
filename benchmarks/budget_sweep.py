"""How much budget does one model need? Each target alone, several eps, after each channel.

For each target and each budget, a batch of CelebA test faces (CenterCrop(89), as in
``default_protection.py``) is attacked with PGD against that target alone (every
condition, :class:`~disrupt.core.objectives.AwayFromClean`), with or without EOT over
JPEG (:data:`~disrupt.core.transforms.JPEG_EOT_TRANSFORMS`, applied to the 89x89 face before
the model's resize), saved as 8-bit, and measured as saved and after JPEG 75 / 50,
a 50% resize and Gaussian blur sigma 1.5. Prints the disrupted fraction (Ruiz MSE >
0.05 on [-1, 1], per face and condition) and the mean Ruiz MSE.

With ``--psnr DB`` the attack is PGD under the L2 budget of that PSNR floor, each
``--eps`` being the per-pixel cap, as the strength presets do (:mod:`disrupt.core.budget`).

Run: python benchmarks/budget_sweep.py --images ../shared/data/celeba10k/images \
         --target stargan.celeba96 --eps 8 --eps 12 --eps 16 --steps 40 --eot jpeg [--limit 8]
     python benchmarks/budget_sweep.py --images ../shared/data/celeba10k/images \
         --target stargan.celeba96 --eps 16 --psnr 33 --steps 40 --eot jpeg
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from default_protection import (  # type: ignore[import-not-found]
    CHANNELS,
    add_face_options,
    celeba_crop,
    parse_face_options,
)

from attacks import Objective, create_attack
from disrupt.core.budget import psnr_floor_attack
from disrupt.core.eot import ExpectationOverTransforms
from disrupt.core.objectives import AwayFromClean
from disrupt.core.rounding import quantize_within
from disrupt.core.transforms import JPEG_EOT_TRANSFORMS
from disrupt.eval.channels import parse_channel
from disrupt.eval.evaluation import measure_disruption
from disrupt.eval.metrics import psnr
from targets import load_target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", action="append", required=True, help="repeatable")
    parser.add_argument("--eps", type=float, action="append", required=True,
                        help="L-inf budget (the cap with --psnr) in 1/255 units, repeatable")
    parser.add_argument("--psnr", type=float, default=None,
                        help="PSNR floor in dB: PGD under that L2 budget, capped at --eps")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--eot", choices=("none", "jpeg"), default="none")
    add_face_options(parser, limit=8, strength=False)
    args = parse_face_options(parser)

    x = torch.cat([celeba_crop(args.images / f"{i:06d}.jpg")
                   for i in range(args.first, args.first + args.limit)])
    channels = [parse_channel(c) for c in CHANNELS]
    rows = []
    for name in args.target:
        target = load_target(name)
        away = AwayFromClean(target, x)  # the clean outputs, once per target
        for eps_255 in args.eps:
            eps = eps_255 / 255
            objective: Objective = away
            if args.eot == "jpeg":
                objective = ExpectationOverTransforms(
                    away, JPEG_EOT_TRANSFORMS,
                    generator=torch.Generator().manual_seed(args.seed + 1))
            attack = create_attack("pgd", eps=eps, steps=args.steps)
            if args.psnr is not None:  # as protect() does it: see disrupt.core.budget
                attack = psnr_floor_attack(attack, args.psnr, x[0].numel())
            start = time.perf_counter()
            adv = attack(x, objective, generator=torch.Generator().manual_seed(args.seed))
            adv = quantize_within(adv, x, attack.eps, attack.norm, linf_cap=attack.linf_cap)
            seconds = time.perf_counter() - start
            cells = {}
            for channel in channels:
                found = [d for b in range(x.shape[0]) for d in
                         measure_disruption([target], channel(x[b:b + 1]),
                                            channel(adv[b:b + 1]), seed=args.seed)[0]]
                cells[channel.name] = {
                    "disrupted": sum(d.disrupted for d in found) / len(found),
                    "mean_ruiz_mse": sum(d.ruiz_mse for d in found) / len(found),
                }
            row = {"target": name, "eps_255": eps_255, "psnr_floor": args.psnr,
                   "steps": args.steps, "eot": args.eot,
                   "psnr": float(psnr(adv, x).mean()), "seconds": seconds, "channels": cells}
            rows.append(row)
            floor = f", PSNR >= {args.psnr:g} dB" if args.psnr is not None else ""
            print(f"{name} eps {eps_255:g}/255{floor}, {args.steps} steps, EOT {args.eot}: "
                  f"PSNR {row['psnr']:.1f} dB, {seconds:.0f} s | "
                  + " | ".join(f"{c} {v['disrupted'] * 100:.0f}% ({v['mean_ruiz_mse']:.3f})"
                               for c, v in cells.items()), flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"faces": args.limit, "first": args.first,
                                        "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
