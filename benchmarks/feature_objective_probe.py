"""Does pushing a model's encoder features away help disrupt its output? One model alone.

For each face: PGD under the mid budget (PSNR >= 33 dB over the face, cap 16/255, 20
steps, no EOT), maximising the output MSE (Ruiz et al.) plus ``weight`` times the
encoder features' squared change relative to their clean energy (AttGAN: every
encoder output; face swap: the shared code). Prints the mean Ruiz MSE of the outputs
on the 8-bit result.

    python benchmarks/feature_objective_probe.py --target attgan.celeba96 --weight 0.1 \\
        --images ../shared/data/celeba10k/images --limit 3

``--toward checker`` instead pulls every output toward a strong pattern (Ruiz et
al.'s targeted "toward" variant; CMUA-Watermark also attacks toward a fixed target): a
black-and-white checkerboard of 8-pixel squares at the output's size, scored as
``-MSE`` (:class:`disrupt.core.objectives.TowardOutput`); disruption is still measured
as the Ruiz MSE from the clean output.

Results of the README's runs: benchmarks/results/feature_objective_probe.txt.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
from default_protection import celeba_crop  # type: ignore[import-not-found]
from torch import Tensor

from attacks import create_attack
from disrupt.core.budget import psnr_floor_attack
from disrupt.core.objectives import AwayFromClean, TowardOutput
from disrupt.eval.evaluation import measure_disruption
from targets import GeneratorTarget, load_target


def encoder_features(target: GeneratorTarget, x: Tensor) -> list[Tensor]:
    """The encoder outputs of a bundled AttGAN or face swap for ``x`` in ``[0, 1]``."""
    small = target.resize_input(x)
    encode: Any = getattr(target.generator, "encode", None)
    if target.name.startswith("attgan") and encode is not None:
        return list(encode(target.to_native(small)))
    if target.name.startswith("faceswap") and encode is not None:
        return [encode(small)]
    raise ValueError(f"{target.name}: no encoder to probe (attgan.* or faceswap.* only)")


def checkerboard(size: tuple[int, int] | torch.Size, square: int = 8) -> Tensor:
    """``(1, 3, h, w)`` black-and-white squares of ``square`` pixels, in ``[0, 1]``."""
    h, w = int(size[0]), int(size[1])
    ys = torch.arange(h).view(h, 1) // square
    xs = torch.arange(w).view(1, w) // square
    return ((ys + xs) % 2).float().expand(3, h, w).unsqueeze(0).clone()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True)
    parser.add_argument("--weight", type=float, default=0.1)
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--first", type=int, default=9401)
    parser.add_argument("--limit", type=int, default=3)
    parser.add_argument("--toward", choices=["checker"], default=None,
                        help="targeted: pull the outputs toward this pattern instead")
    args = parser.parse_args()
    torch.set_num_threads(1)
    target = load_target(args.target)
    assert isinstance(target, GeneratorTarget)
    mses = []
    for i in range(args.first, args.first + args.limit):
        x = celeba_crop(args.images / f"{i:06d}.jpg")
        away = AwayFromClean(target, x)
        with torch.no_grad():
            clean = [f.detach() for f in encoder_features(target, x)]

        with torch.no_grad():
            size = away.outputs(x).shape[-2:]
        toward = TowardOutput(target, x, checkerboard(size)) if args.toward else None

        def objective(x_adv: Tensor, away: AwayFromClean = away, clean: list[Tensor] = clean,
                      toward: TowardOutput | None = toward) -> Tensor:
            if toward is not None:
                return toward(x_adv)
            score = away(x_adv)
            if args.weight:
                moved = [(a - b).square().flatten(1).mean(1) / (b.square().flatten(1).mean(1)
                                                                  + 1e-8)
                         for a, b in zip(encoder_features(target, x_adv), clean, strict=True)]
                score = score + args.weight * torch.stack(moved).mean(0)
            return score

        attack = psnr_floor_attack(create_attack("pgd", eps=16 / 255, steps=20), 33.0, x.numel())
        x_adv = attack(x, objective, generator=torch.Generator().manual_seed(0))
        rows = measure_disruption([target], x, (x_adv * 255).round() / 255)[0]
        mses.append(sum(r.ruiz_mse for r in rows) / len(rows))
    how = f"toward {args.toward}" if args.toward else f"feature weight {args.weight:g}"
    print(f"{args.target} {how}: mean Ruiz MSE "
          f"{sum(mses) / len(mses):.4f} {[round(m, 4) for m in mses]}")


if __name__ == "__main__":
    main()
