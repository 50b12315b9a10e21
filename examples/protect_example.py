"""Protect the README's example photo against every bundled model and draw the evidence.

One row per bundled model and chosen edit. Columns: the face as the model sees it
in the photo and the same face in the protected photo, both drawn at about twice
their size (to judge visibility), the model's edit of the face, and its edit of the
protected face, with Ruiz et al.'s MSE between the two edits and the verdict (disrupted when
> 0.05 on the [-1, 1] scale). The protected photo is checked with
:func:`disrupt.verify.verify`, which finds the face on the protected file as a
manipulator would; everything is measured on the saved 8-bit file.

Run: python examples/protect_example.py [--photo examples/astronaut.png]
                                        [--out examples/protect_example.png]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from disrupt import protect
from disrupt.eval.figures import compose_grid
from disrupt.verify import verify

HERE = Path(__file__).parent
# One or two telling edits per bundled model; the summary covers every condition.
SHOWN = {
    "stargan.celeba96": ("Blond_Hair", "Male"),
    "attgan.celeba96": ("Eyeglasses", "Male"),
    "cyclegan.utkface64": ("to_old",),
    "faceswap.lfw64": ("as_George_W_Bush",),
}
COLUMNS = ("face (about 2x)", "protected face", "edit of face", "edit of protected face")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=Path, default=HERE / "astronaut.png")
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
        left, top, right, bottom = check.regions[name]
        face = check.original[..., top:bottom, left:right]
        shown = check.protected[..., top:bottom, left:right]
        model = name.split("@")[0]
        for cond in SHOWN.get(model, conditions[:1]):
            k = conditions.index(cond)
            d = by_pair[(name, cond)]
            verdict = "DISRUPTED" if d.disrupted else "not disrupted"
            labels.append(f"{name}\n{cond}\nRuiz MSE {d.ruiz_mse:.3f}\n{verdict}")
            rows.append([face[0], shown[0], clean[k, 0], adv[k, 0]])
    p, r = result.perceptibility, result.region_perceptibility
    title = f"{result.strength}: face {r['psnr']:.1f} dB, dE00 {r['ciede2000_mean']:.1f}"
    compose_grid(rows, row_labels=labels, col_labels=COLUMNS, cell=192,
                 title=title).save(args.out)
    print(f"wrote {args.out}")
    print(f"changed region: PSNR {r['psnr']:.1f} dB, SSIM {r['ssim']:.3f}, CIEDE2000 mean "
          f"{r['ciede2000_mean']:.2f}; photo PSNR {p['psnr']:.1f} dB; "
          f"{result.disrupted_fraction * 100:.0f}% of {len(result.disruption)} (model, "
          "condition) outputs disrupted")
    for v in check.verdicts:
        print(f"  {v.to_dict()}")


if __name__ == "__main__":
    main()
