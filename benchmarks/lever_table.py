"""Print the lever and trade-off tables of the README from default_protection.py results.

    python benchmarks/lever_table.py benchmarks/results/levers/*.json

Each JSON is one run of benchmarks/default_protection.py (one setting over the same
faces). Cells: disrupted as saved / after JPEG 75 / on held-out crops, per model;
then the changed region's PSNR, SSIM and CIEDE2000 mean. With ``--jpeg-output Q``,
"as saved" is the JPEG file and every channel starts from it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SHORT = {"stargan.celeba96": "StarGAN", "stargan.celeba64": "StarGAN 64",
         "attgan.celeba96": "AttGAN", "attgan.celeba64": "AttGAN 64",
         "cyclegan.utkface64": "CycleGAN", "faceswap.lfw64": "face swap"}


def label(run: dict) -> str:
    parts = [f"PSNR >= {run.get('psnr_floor') or 0:g} dB", run.get("objective", "mean")]
    if run.get("perceptual"):
        parts.append(run.get("perceptual_variant", "perceptual (texture caps + high-pass)"))
    if run.get("chroma_share", 1.0) != 1.0:
        parts.append(f"colour share {run['chroma_share']:g}")
    if run.get("crop_jitter"):
        turn = run.get("jitter_rotation")
        parts.append("crop jitter" + (f" turning up to {turn:g} degrees" if turn else ""))
    if run.get("jpeg_output"):
        how = "through its codec" if run.get("through_output") else "saved after the attack"
        parts.append(f"JPEG {run['jpeg_output']} output, {how} (as saved = that file)")
    if run.get("protector"):
        steps = run.get("refine_steps") or 0
        parts.append(f"amortized protector ({run['protector']})"
                     + (f" + {steps} steps" if steps else ", forward pass only"))
    if (run.get("held_out_jitter") or {}).get("rotation"):
        parts.append("[held-out crops turned too]")
    return ", ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+")
    args = parser.parse_args()
    runs = [json.loads(p.read_text()) for p in args.runs]
    names = runs[0]["targets"]
    print(f"{runs[0]['images']}; cells: disrupted as saved / JPEG 75 / held-out crops")
    print("| setting | " + " | ".join(SHORT.get(n, n) for n in names)
          + " | region PSNR | SSIM | CIEDE2000 | s/face |")
    print("|---|" + "---|" * (len(names) + 4))
    for run in runs:
        rate = run["disrupted_fraction"]
        cells = [f"{rate['none'][n] * 100:.0f} / {rate['jpeg:75'][n] * 100:.0f} / "
                 f"{rate['held-out crops'][n] * 100:.0f}%" for n in names]
        r = run["region_perceptibility"]
        print(f"| {label(run)} | " + " | ".join(cells) + f" | {r['psnr']:.1f} dB | "
              f"{r['ssim']:.3f} | {r['ciede2000_mean']:.2f} | {run['seconds_per_image']:.1f} |")


if __name__ == "__main__":
    main()
