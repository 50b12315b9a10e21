"""Why the amortized protector's forward pass (``--fast``) is weakest on the 12 MP photo
with the Haar box: the texture caps there, and how much of the change they clip.

For the 512 px astronaut and the 12 MP portrait (``bench_large_photo.make_photo``:
the astronaut upscaled 15x), protected with ``protector="bundled"`` and each
detector, it prints over the canonical face crop: the mean per-pixel cap of the
``mid`` preset (:func:`disrupt.core.masking.texture_caps`, 5 x 5 window), the share of
pixels at the one-level floor, the share of pixels whose change sits at its cap, the
crop's PSNR, and StarGAN's Ruiz MSE per condition on the saved file.

Run: python benchmarks/fast_large_photo_caps.py [--threads 2] [--out RESULTS.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from disrupt import protect
from disrupt.bench.report import environment
from disrupt.core.budget import resolve_budget
from disrupt.core.faces import CANONICAL_CROP, Box, crop_boxes
from disrupt.core.masking import texture_caps
from disrupt.imaging import load_image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_large_photo import make_photo  # noqa: E402
from protect_wall_time import EXAMPLE, SHARED_512  # noqa: E402


def row(photo: Path, detector: str, out: Path) -> dict[str, Any]:
    result = protect(photo, output=out, overwrite=True, protector="bundled",
                     detector=detector)
    clean, saved = load_image(photo).rgb, load_image(out).rgb
    size = (clean.shape[-2], clean.shape[-1])
    box = crop_boxes(Box(*result.faces[0]), size, [CANONICAL_CROP])[0]
    cut = (..., slice(box.top, box.bottom), slice(box.left, box.right))
    cap = resolve_budget("mid").attack.eps  # the per-pixel cap under the PSNR floor
    caps = texture_caps(clean[cut], cap) * 255
    change = (saved - clean)[cut].abs() * 255
    at_cap = (change >= caps - 0.51).float().mean()
    mse = float((saved - clean)[cut].square().mean())
    return {
        "photo": f"{size[1]}x{size[0]}", "detector": detector, "crop": box.as_tuple(),
        "mean_cap_levels": float(caps.mean()),
        "share_at_floor": float((caps <= 1.01).float().mean()),
        "share_of_change_at_cap": float(at_cap),
        "crop_psnr": -10 * float(torch.log10(torch.tensor(mse))),
        "stargan_ruiz_mse": {d.target.split("@")[0] + " " + str(d.condition): d.ruiz_mse
                             for d in result.disruption if d.target.startswith("stargan")},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        small = folder / "astronaut_512.png"
        Image.open(SHARED_512 if SHARED_512.exists() else EXAMPLE).convert("RGB").resize(
            (512, 512), Image.Resampling.BICUBIC).save(small)
        large = make_photo(folder / "large.png")
        for photo in (small, large):
            for detector in ("haar", "dlib"):
                r = row(photo, detector, folder / "out.png")
                rows.append(r)
                mses = ", ".join(f"{v:.3f}" for v in r["stargan_ruiz_mse"].values())
                print(f"{r['photo']} {detector}: crop {r['crop'][2] - r['crop'][0]} px, mean cap "
                      f"{r['mean_cap_levels']:.2f}/255, at floor {r['share_at_floor']:.0%}, "
                      f"change at its cap {r['share_of_change_at_cap']:.0%}, crop PSNR "
                      f"{r['crop_psnr']:.1f} dB, StarGAN Ruiz MSE {mses}", flush=True)
    if args.out:
        args.out.write_text(json.dumps({"command": " ".join(["python", *sys.argv]),
                                        "rows": rows,
                                        "environment": environment(0, torch.device("cpu"))},
                                       indent=2))


if __name__ == "__main__":
    main()
