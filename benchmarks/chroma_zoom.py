"""The README example's face protected with the colour of the change kept and taken
out, drawn at 4x so the grain can be judged.

Protects ``examples/astronaut.png`` with the defaults twice, with
:data:`disrupt.core.pipeline.CHROMA_SHARE` at 1 (the default: the change as the attack
made it) and at 0 (its grey part only, rescaled to the same L2 norm), and writes the
original, the default and the grey face side by side, each cut around the face box and
enlarged 4x without smoothing. Prints each run's visibility over the face, StarGAN's
Ruiz MSE on the saved file, and the share of the change's energy in JPEG's colour
planes (Cb and Cr of ITU-R BT.601; an independent change per channel puts about 65%
there).

With ``--faces N`` it also protects the first N CelebA test faces (009401 on,
CenterCrop(89), as ``default_protection.py`` does) at colour shares 1, 0.5 and 0 and
prints the mean ST-LPIPS (AlexNet, the learned perceptual distance of
:mod:`disrupt.eval.stlpips`; needs ``stlpips-pytorch``) and CIEDE2000 of each share
over the face, with the PSNR, which the rescaling holds equal.

Run: python benchmarks/chroma_zoom.py [--out benchmarks/results/chroma_zoom.png]
     [--faces 10 --images ../shared/data/celeba10k/images] [--json RESULTS.json]

``--json`` also records the README example's figures per share (visibility over the
face, StarGAN's Ruiz MSE, the colour share of the change's energy).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from disrupt import protect
from disrupt.bench.report import write_results_json
from disrupt.core import pipeline
from disrupt.eval.perceptual import region_perceptibility
from disrupt.eval.stlpips import st_lpips

sys.path.insert(0, str(Path(__file__).resolve().parent))
from default_protection import celeba_crop  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "astronaut.png"
#: The face box of the example (left, top, right, bottom), with a margin.
FACE = (75, 15, 150, 90)
ZOOM = 4
#: RGB -> (Y, Cb, Cr) of ITU-R BT.601, JPEG's colour transform.
YCBCR = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5],
                  [0.5, -0.418688, -0.081312]])


def colour_share(original: Image.Image, protected: Image.Image) -> float:
    """The share of the change's energy in the Cb and Cr planes."""
    change = (np.asarray(protected, dtype=np.float64)
              - np.asarray(original, dtype=np.float64)) @ YCBCR.T
    energy = (change**2).sum(axis=(0, 1))
    return float(energy[1:].sum() / energy.sum())


def learned_distance(images: Path, faces: int) -> dict[str, dict[str, float]]:
    """Mean ST-LPIPS, CIEDE2000 and PSNR over ``faces`` CelebA crops, per colour share."""
    out: dict[str, dict[str, float]] = {}
    crops = [celeba_crop(images / f"{i:06d}.jpg") for i in range(9401, 9401 + faces)]
    for share in (1.0, 0.5, 0.0):
        pipeline.CHROMA_SHARE = share
        rows = []
        for x in crops:
            r = protect(x, seed=0, measure=False)
            v = region_perceptibility(r.image, x, None, st_lpips_net=None)
            rows.append((float(st_lpips(r.image, x)[0]), v["ciede2000_mean"], v["psnr"]))
        mean = [sum(col) / len(col) for col in zip(*rows, strict=True)]
        out[f"{share:g}"] = {"st_lpips": mean[0], "ciede2000_mean": mean[1], "psnr": mean[2]}
        print(f"colour share {share:g}: ST-LPIPS {mean[0]:.4f}, CIEDE2000 {mean[1]:.2f}, "
              f"PSNR {mean[2]:.1f} dB over {len(rows)} faces", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/chroma_zoom.png"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--faces", type=int, default=0)
    parser.add_argument("--images", type=Path, default=Path("../shared/data/celeba10k/images"))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    shipped = pipeline.CHROMA_SHARE
    tiles = [Image.open(EXAMPLE).convert("RGB")]
    example: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for share in (1.0, 0.0):
            pipeline.CHROMA_SHARE = share
            saved = Path(tmp) / f"share_{share:g}.png"
            r = protect(EXAMPLE, output=saved, seed=0)
            v = r.region_perceptibility
            stargan = {d.condition: round(d.ruiz_mse, 3) for d in r.disruption
                       if d.target.startswith("stargan")}
            with Image.open(saved) as im:
                tiles.append(im.convert("RGB"))
            in_colour = colour_share(tiles[0], tiles[-1])
            example[f"{share:g}"] = {"region": dict(v), "stargan_ruiz_mse": stargan,
                                     "colour_energy_share": in_colour}
            print(f"colour share {share:g}: face PSNR {v['psnr']:.1f} dB, SSIM {v['ssim']:.3f}, "
                  f"CIEDE2000 {v['ciede2000_mean']:.2f}; StarGAN Ruiz MSE {stargan}; "
                  f"{in_colour:.0%} of the change's energy in Cb, Cr")
    learned = learned_distance(args.images, args.faces) if args.faces else {}
    pipeline.CHROMA_SHARE = shipped
    write_results_json(args.json, {"readme_example": example, "faces": args.faces,
                                   "per_share": learned})
    side = (FACE[2] - FACE[0]) * ZOOM
    strip = Image.new("RGB", (side * len(tiles), side))
    for i, tile in enumerate(tiles):
        strip.paste(tile.crop(FACE).resize((side, side), Image.Resampling.NEAREST), (side * i, 0))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    strip.save(args.out)
    print(f"wrote {args.out}: original, default (colour kept), grey only")


if __name__ == "__main__":
    main()
