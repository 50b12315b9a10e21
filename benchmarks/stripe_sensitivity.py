"""Why the default protection's grain runs in horizontal stripes: the models' response
to stripes of each period and direction, and where the example's perturbation puts
its energy.

1. Sensitivity. For each bundled model, a square wave of +-4/255 (the same L2 energy
   for every pattern) is added at the model's own input to 20 CelebA test faces
   (009401-009420, CenterCrop(89), resized with antialiasing), either as horizontal
   stripes (rows alternate) or as vertical stripes (columns alternate), for periods
   of 2 to 16 input pixels; the figure is the mean over faces and conditions of the
   Ruiz MSE between ``G(x + pattern)`` and ``G(x)`` on ``[-1, 1]``.
2. Spectrum. The change that ``disrupt protect`` made to ``examples/astronaut.png``
   (``examples/astronaut.protected.png``), cut out along the canonical face crop
   that the measurement uses and resized to StarGAN's 96x96 input: the share of its
   luminance energy in the band of periods 3.3-5 pixels along each axis (each band
   is 3.7% of the frequency plane).

Run: python benchmarks/stripe_sensitivity.py --images ../shared/data/celeba10k/images
         [--threads 1] [--out benchmarks/results/stripe_sensitivity.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from disrupt.bench.report import environment
from disrupt.core.faces import CANONICAL_CROP, crop_boxes
from disrupt.core.pipeline import find_faces
from disrupt.eval.evaluation import measure_disruption
from disrupt.imaging import load_image
from targets import load_target

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("stargan.celeba96", "attgan.celeba96", "cyclegan.utkface64", "faceswap.lfw64")
PERIODS = (2, 3, 4, 5, 6, 8, 12, 16)
AMPLITUDE = 4 / 255


def celeba_faces(folder: Path, first: int, count: int, size: tuple[int, int]) -> Tensor:
    """CenterCrop(89) of CelebA ``first`` .. ``first + count - 1``, resized to ``size``."""
    out = []
    for i in range(first, first + count):
        x = load_image(folder / f"{i:06d}.jpg").rgb
        h, w = x.shape[-2:]
        s = min(h, w)
        top, left = (h - s) // 2, (w - s) // 2
        square = x[..., top : top + s, left : left + s]
        out.append(F.interpolate(square, size=size, mode="bilinear", antialias=True,
                                 align_corners=False))
    return torch.cat(out).clamp(0.0, 1.0)


def square_wave(n: int, period: int) -> Tensor:
    """``+-1`` alternating every ``period / 2`` pixels, ``(n,)``."""
    return (((torch.arange(n) * 2 // period) % 2) * 2 - 1).float()


def sensitivity(name: str, faces: Path) -> dict[str, dict[str, float]]:
    """``{"rows": {period: mse}, "cols": {period: mse}}`` for one model."""
    target = load_target(name)
    h, w = target.input_size or (64, 64)
    x = celeba_faces(faces, 9401, 20, (h, w))
    out: dict[str, dict[str, float]] = {"rows": {}, "cols": {}}
    for period in PERIODS:
        patterns = {"rows": square_wave(h, period).view(1, 1, h, 1).expand(1, 3, h, w),
                    "cols": square_wave(w, period).view(1, 1, 1, w).expand(1, 3, h, w)}
        for kind, pattern in patterns.items():
            rows = measure_disruption([target], x, (x + AMPLITUDE * pattern).clamp(0.0, 1.0))
            mses = [d.ruiz_mse for row in rows for d in row]
            out[kind][str(period)] = sum(mses) / len(mses)
    return out


def example_spectrum() -> dict[str, Any]:
    """Band energy shares of the README example's change, at StarGAN's input."""
    clean = load_image(ROOT / "examples" / "astronaut.png").rgb
    protected = load_image(ROOT / "examples" / "astronaut.protected.png").rgb
    face = find_faces(clean)[0]
    box = crop_boxes(face, (clean.shape[-2], clean.shape[-1]), [CANONICAL_CROP])[0]
    change = (protected - clean)[..., box.top : box.bottom, box.left : box.right]
    side = 96
    luma = F.interpolate(change, size=(side, side), mode="bilinear", antialias=True,
                         align_corners=False)[0].mean(dim=0)
    power = torch.fft.fft2(luma).abs().square()
    freq = torch.fft.fftfreq(side).abs()
    fy, fx = freq.view(-1, 1).expand(side, side), freq.view(1, -1).expand(side, side)
    band = (0.2, 0.3)  # cycles per pixel: periods 3.3-5 pixels

    def share(mask: Tensor) -> float:
        return float(power[mask].sum() / power.sum())

    across = (fy > band[0]) & (fy < band[1]) & (fx < 0.1)
    along = (fx > band[0]) & (fx < band[1]) & (fy < 0.1)
    return {"crop": box.as_tuple(), "size": side, "band_cycles_per_pixel": list(band),
            "horizontal_stripes_share": share(across),
            "vertical_stripes_share": share(along),
            "band_area_share": float(across.float().mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, required=True, help="CelebA image folder")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    models = {}
    for name in MODELS:
        models[name] = sensitivity(name, args.images)
        rows, cols = models[name]["rows"], models[name]["cols"]
        print(f"\n{name}: mean Ruiz MSE for +-4/255 stripes at its input")
        print("| period (input px) | horizontal stripes | vertical stripes | ratio |")
        print("|---|---|---|---|")
        for p in map(str, PERIODS):
            print(f"| {p} | {rows[p]:.5f} | {cols[p]:.5f} | {rows[p] / cols[p]:.2f} |")
    spectrum = example_spectrum()
    print(f"\nexample change at StarGAN's input: {spectrum['horizontal_stripes_share']:.1%} of "
          f"its energy in horizontal stripes of period 3.3-5 px, "
          f"{spectrum['vertical_stripes_share']:.1%} in vertical ones "
          f"(each band {spectrum['band_area_share']:.1%} of the plane)")
    if args.out:
        record = {"command": " ".join(["python", *sys.argv]), "amplitude": AMPLITUDE,
                  "faces": "CelebA 009401-009420, CenterCrop(89)", "models": models,
                  "example_spectrum": spectrum,
                  "environment": environment(0, torch.device("cpu"))}
        args.out.write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
