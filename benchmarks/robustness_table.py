"""Print the README's robustness table from the JSON files of ``default_protection.py``.

One row per strength preset (``benchmarks/results/robustness_{low,mid,high}.json``):
visibility, seconds per face, and for each channel the disrupted fraction of the
models named in ``--model`` (default StarGAN and CycleGAN; the others are listed
when they are disrupted anywhere).

Run: python benchmarks/robustness_table.py [--results benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lever_table import SHORT  # the models' short names, shared by the table scripts

LABELS = {"none": "as saved", "jpeg:75": "JPEG 75", "jpeg:50": "JPEG 50",
          "resize:0.5": "resize 50%", "blur:1.5": "blur 1.5"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--prefix", default="robustness_")
    parser.add_argument("--model", action="append", default=None)
    args = parser.parse_args()

    runs = [(s, json.loads((args.results / f"{args.prefix}{s}.json").read_text()))
            for s in ("low", "mid", "high")
            if (args.results / f"{args.prefix}{s}.json").exists()]
    if not runs:
        parser.error(f"no {args.prefix}*.json in {args.results}")
    # By default the StarGAN and CycleGAN that the runs attacked (the files may predate
    # today's bundled set).
    models = args.model or [m for family in ("stargan", "cyclegan")
                            for m in runs[0][1]["targets"] if m.split(".")[0] == family]
    names = " / ".join(SHORT.get(m, m) for m in models)
    print("| strength | faces | PSNR dB | SSIM | s/face | "
          + " | ".join(f"{LABELS[c]} ({names})" for c in LABELS) + " |")
    print("|---|---|---|---|---|" + "---|" * len(LABELS))
    others: set[str] = set()
    for strength, run in runs:
        p = run["perceptibility"]
        faces = run["images"].split(",")[0].replace("CelebA ", "")
        cells = []
        for channel in LABELS:
            rates = run["disrupted_fraction"][channel]
            cells.append(" / ".join(f"{rates[m] * 100:.0f}%" for m in models))
            others |= {m for m, v in rates.items() if m not in models and v > 0}
        print(f"| {strength} | {faces} | {p['psnr']:.1f} | {p['ssim']:.3f} | "
              f"{run['seconds_per_image']:.1f} | " + " | ".join(cells) + " |")
    rest = [m for m in runs[0][1]["targets"] if m not in models]
    if rest:
        print(f"\nOther models: {', '.join(SHORT.get(m, m) for m in rest)}: "
              + ("disrupted somewhere: " + ", ".join(sorted(others)) if others
                 else "0% in every cell"))


if __name__ == "__main__":
    main()
