"""Protect the example face against every bundled model and draw the evidence.

For each bundled model the picture shows one row per chosen edit: the photo, the
protected photo, the model's edit of the photo, and its edit of the protected
photo, with Ruiz et al.'s MSE between the two edits and the verdict (disrupted
when > 0.05 on the [-1, 1] scale). Everything is measured on the saved 8-bit file.

Run: python examples/protect_example.py [--photo examples/face.png]
                                        [--out examples/protect_example.png]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from disrupt import protect
from disrupt.eval.figures import compose_grid
from disrupt.verify import COLUMNS, verify

HERE = Path(__file__).parent
# One or two telling edits per bundled model; the summary covers every condition.
SHOWN = {
    "stargan.celeba64": ("Blond_Hair", "Male"),
    "attgan.celeba64": ("Eyeglasses", "Male"),
    "cyclegan.utkface64": ("to_old",),
    "faceswap.lfw64": ("as_George_W_Bush",),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=Path, default=HERE / "face.png")
    parser.add_argument("--out", type=Path, default=HERE / "protect_example.png")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        saved = Path(tmp) / "protected.png"
        result = protect(args.photo, output=saved, seed=args.seed)
        check = verify(args.photo, saved, seed=args.seed)

    by_pair = {(d.target, d.condition): d for d in check.disruption}
    rows, labels = [], []
    for name, (clean, adv) in check.outputs.items():
        conditions = check.conditions[name]
        for cond in SHOWN.get(name, conditions[:1]):
            k = conditions.index(cond)
            d = by_pair[(name, cond)]
            verdict = "DISRUPTED" if d.disrupted else "not disrupted"
            labels.append(f"{name}\n{cond}\nRuiz MSE {d.ruiz_mse:.3f}\n{verdict}")
            rows.append([check.original[0], check.protected[0], clean[k, 0], adv[k, 0]])
    p = result.perceptibility
    title = f"{result.strength}: {p['psnr']:.1f} dB, max {p['linf_255']:.0f}/255"
    compose_grid(rows, row_labels=labels, col_labels=COLUMNS, cell=128,
                 title=title).save(args.out)
    print(f"wrote {args.out}")
    print(f"perturbation: PSNR {p['psnr']:.1f} dB, SSIM {p['ssim']:.3f}, "
          f"max {p['linf_255']:.0f}/255; {result.disrupted_fraction * 100:.0f}% of "
          f"{len(result.disruption)} (model, condition) outputs disrupted")
    for v in check.verdicts:
        print(f"  {v.to_dict()}")


if __name__ == "__main__":
    main()
