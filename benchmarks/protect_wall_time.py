"""Wall time of the default ``protect`` on the issue's three photo sizes, in one process.

Photos: the README's example (256x256), the astronaut at 512x512 (``../shared``'s
copy, or the example upscaled when it is absent) and a 12-megapixel portrait
(4000x3000, :func:`bench_large_photo.make_photo`). Each is protected from its file
to a PNG, as ``disrupt protect`` does, once with the default full attack and once
with ``--fast`` (the amortized protector's forward pass), and both again with
``--no-measure`` (``measure=False``: no figures after the save). The models are loaded
by a warm-up call first, so the figures leave out the process's start-up, as the
speed aims do. Each row: seconds of the ``protect()`` call (face search, attack,
8-bit rounding, the atomic save and the measurement of every model on the saved
file), the share of outputs disrupted per model, and the visibility over the face.
With ``--repeats N`` every photo and mode runs N times, in N rounds over all of
them (so a slow spell of the machine hits every photo alike); the row's
``seconds`` is the median and ``runs`` lists them all. The same seed gives the
same file each time, so the disruption is that of every run.

``--detector dlib`` places the crops with dlib's HOG detector and eye landmarks (the
``landmarks`` extra) instead of OpenCV's three Haar cascades; ``--modes`` runs only the
named modes (comma-separated, as in :data:`MODES`); ``--device cuda`` times the same
calls on a GPU (each call ends with the saved file, so no extra synchronisation is
needed).

Take the figures with nothing else running; the results file records threads,
commit, machine and the load average before the run.

Run: python benchmarks/protect_wall_time.py [--threads 2] [--repeats 3] [--detector dlib]
         [--modes="--fast --no-measure,--fast"] [--device cuda] [--out RESULTS.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from disrupt import protect
from disrupt.bench.report import environment

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_large_photo import make_photo  # noqa: E402

EXAMPLE = ROOT / "examples" / "astronaut.png"
SHARED_512 = ROOT.parent / "shared" / "data" / "photos" / "astronaut.png"
MODES: dict[str, dict[str, Any]] = {
    "default": {}, "--fast": {"protector": "bundled"},
    "default --no-measure": {"measure": False},
    "--fast --no-measure": {"protector": "bundled", "measure": False},
}


def photos(folder: Path, portrait: Path | None = None) -> dict[str, Path]:
    """The three photos, written into ``folder`` where they must be made; the 512 px
    and 12 MP ones from ``portrait`` (default: ``../shared``'s astronaut, else the
    README example)."""
    if portrait is None:
        portrait = SHARED_512 if SHARED_512.exists() else EXAMPLE
    big = folder / "astronaut_512.png"
    Image.open(portrait).convert("RGB").resize((512, 512), Image.Resampling.BICUBIC).save(big)
    return {"256x256 (README example)": EXAMPLE, "512x512": big,
            "4000x3000 (12 MP)": make_photo(folder / "large.png", portrait=portrait)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--detector", choices=("haar", "dlib"), default="haar")
    parser.add_argument("--modes", default=",".join(MODES),
                        help="comma-separated modes to run, of: " + ", ".join(MODES))
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--portrait", type=Path, default=None,
                        help="source of the 512 px and 12 MP photos (default: ../shared's "
                             "astronaut; give a copy where ../shared is absent)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    unknown = [m for m in args.modes.split(",") if m not in MODES]
    if unknown:
        parser.error(f"unknown mode {unknown[0]!r}; choose from: {', '.join(MODES)}")
    modes = {m: {**MODES[m], "detector": args.detector, "device": args.device}
             for m in args.modes.split(",")}
    load = os.getloadavg()[0]
    torch.set_num_threads(args.threads)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        # Loads every bundled model once (and warms the device up).
        protect(EXAMPLE, steps=1, detector=args.detector, device=args.device)
        protect(EXAMPLE, protector="bundled", detector=args.detector, device=args.device)
        runs: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.repeats - 1):  # the earlier rounds: seconds only
            for label, path in photos(folder, args.portrait).items():
                for mode, options in modes.items():
                    started = time.perf_counter()
                    protect(path, output=folder / "round.png", overwrite=True, seed=args.seed,
                            **options)
                    runs.setdefault((label, mode), []).append(time.perf_counter() - started)
        for label, path in photos(folder, args.portrait).items():
            for mode, options in modes.items():
                started = time.perf_counter()
                r = protect(path, output=folder / f"out_{len(rows)}.png", seed=args.seed,
                            **options)
                times = [*runs.get((label, mode), []), time.perf_counter() - started]
                seconds = statistics.median(times)
                per_model: dict[str, list[bool]] = {}
                for d in r.disruption:
                    per_model.setdefault(d.target.split("@")[0], []).append(d.disrupted)
                rows.append({
                    "photo": label, "mode": mode, "detector": args.detector,
                    "seconds": seconds, "runs": times,
                    "faces": r.faces, "face_status": r.face_status,
                    "disrupted": {m: sum(v) / len(v) for m, v in sorted(per_model.items())},
                    "region_psnr": r.region_perceptibility.get("psnr"),
                    "region_ciede2000": r.region_perceptibility.get("ciede2000_mean"),
                })
                print(f"{label}, {mode}: {seconds:.1f} s, faces {r.faces}", flush=True)
    models = sorted({m for row in rows for m in row["disrupted"]})
    print("\n| photo | mode | seconds | " + " | ".join(models) + " | face PSNR |")
    print("|---|---|---|" + "---|" * len(models) + "---|")
    for row in rows:
        rates = " | ".join(f"{row['disrupted'][m] * 100:.0f}%" if m in row["disrupted"]
                           else "-" for m in models)
        psnr = "-" if row["region_psnr"] is None else f"{row['region_psnr']:.1f} dB"
        print(f"| {row['photo']} | {row['mode']} | {row['seconds']:.2f} | {rates} | {psnr} |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        record = {"command": " ".join(["python", *sys.argv]), "rows": rows,
                  "load_average_before": load,
                  "environment": environment(args.seed, torch.device(args.device))}
        args.out.write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
