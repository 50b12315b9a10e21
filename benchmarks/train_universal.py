"""Train a universal perturbation against targets on a folder of faces and save it.

    python benchmarks/train_universal.py --target NAME ... --images FOLDER --out u.safetensors
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from disrupt.bench.universal_train import (
    _default_size,
    load_face_folder,
    mean_ruiz_mse,
    train_universal,
)
from disrupt.core.budget import parse_fraction
from disrupt.core.universal import save_universal


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    from targets import load_target

    parser = argparse.ArgumentParser(
        description="Train a universal perturbation (CMUA-style) against several targets.")
    parser.add_argument("--target", action="append", required=True, help="repeatable")
    parser.add_argument("--images", required=True, help="folder of face crops")
    parser.add_argument("--out", required=True, help="output .safetensors file")
    parser.add_argument("--eps", default="8/255")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--limit", type=int, default=2000, help="images used")
    parser.add_argument("--crop", type=float, default=1.0, help="central square, x shorter side")
    parser.add_argument("--no-eot", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    eps = parse_fraction(args.eps)
    targets = [load_target(name) for name in args.target]
    for t in targets:
        if isinstance(t, torch.nn.Module):
            t.to(args.device)
    side = args.size or _default_size(targets)
    images = load_face_folder(args.images, side, limit=args.limit, crop=args.crop).to(args.device)
    n_held = min(64, images.shape[0] // 10)
    train, held_out = (images[:-n_held], images[-n_held:]) if n_held else (images, images)
    delta = train_universal(targets, train, eps=eps, steps=args.steps, size=side,
                            batch_size=args.batch_size, eot=not args.no_eot, seed=args.seed)
    noise = (torch.randint(0, 2, delta.shape, generator=torch.Generator().manual_seed(args.seed))
             * 2 - 1).to(delta) * eps
    save_universal(args.out, delta, eps=eps, targets=args.target)
    print(f"saved {args.out}: (3, {side}, {side}), eps {eps * 255:.1f}/255, "
          f"{args.steps} steps on {train.shape[0]} images")
    seen = " (also trained on: too few images to hold any out)" if not n_held else " (held out)"
    print(f"mean Ruiz MSE on the last {held_out.shape[0]} images{seen}: "
          f"universal {mean_ruiz_mse(targets, held_out, delta):.4f}, "
          f"random sign noise {mean_ruiz_mse(targets, held_out, noise):.4f}")


if __name__ == "__main__":
    main()
