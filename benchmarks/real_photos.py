"""The default protection on real photos: whole frames, faces found by protect, real channels.

Where ``default_protection.py`` measures CelebA crops already cut the way the models
expect, this benchmark hands ``protect()`` whole photos, as a user would: LFW and
UTKFace test frames, CelebA test crops and the astronaut (``--large``: also upscaled
to 12 MP; slow), each measured for every bundled model as saved, after JPEG 95/75/50,
resize 50%, blur 1.5 and a social-platform chain, with 95% Wilson intervals.

The photo sets are described in :mod:`disrupt.bench.photo_sets`, the measurement and
the report in :mod:`disrupt.bench.real_photos`; ``disrupt bench --real-photos DATA``
runs the same from the command line. This script keeps its flags and its output.

Run: python benchmarks/real_photos.py [--data ../shared/data] [--sets lfw utkface celeba
         astronaut] [--per-set 3] [--large] [--out results.json] [--md results.md]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from disrupt.bench.photo_sets import SETS, choose_photos
from disrupt.bench.real_photos import markdown, progress_line, report_head, run_benchmark
from disrupt.errors import DisruptError
from disrupt.files import write_text_atomically

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def git_commit() -> dict[str, Any]:
    """``git rev-parse HEAD`` of the repository, and whether the tree had changes."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "--no-optional-locks", *args], cwd=ROOT,
                              capture_output=True, text=True, check=True).stdout.strip()
    try:
        return {"commit": git("rev-parse", "HEAD"),
                "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=SETS)
    parser.add_argument("--per-set", type=int, default=3, help="images from each dataset")
    parser.add_argument("--large", action="store_true",
                        help="also the astronaut upscaled to 4000x3000 (slow)")
    parser.add_argument("--strength", default="mid")
    parser.add_argument("--objective", default=None, choices=["balanced", "mean", "focused"])
    parser.add_argument("--perceptual", default=None, action=argparse.BooleanOptionalAction)
    parser.add_argument("--crop-jitter", default=None, action=argparse.BooleanOptionalAction)
    parser.add_argument("--crops", choices=["canonical", "family"], default=None,
                        help="crops attacked around each detected face (default: the preset's)")
    parser.add_argument("--psnr", type=float, default=None, help="PSNR floor (default: preset)")
    parser.add_argument("--detector", default="haar", choices=["haar", "dlib"],
                        help="face detector for protect and for measuring (default haar)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out", type=Path, default=None, help="JSON results")
    parser.add_argument("--md", type=Path, default=None,
                        help="also write the printed table here, under the command")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    given = sys.argv[1:] if argv is None else argv
    omp = os.environ.get("OMP_NUM_THREADS")
    command = (f"OMP_NUM_THREADS={omp} " if omp else "") + shlex.join(
        ["python", "benchmarks/real_photos.py", *given])

    try:
        photos = choose_photos(args.data, args.sets, args.per_set, large=args.large)
    except DisruptError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{len(photos)} photos: " + ", ".join(f"{p.set}/{p.name}" for p in photos),
          file=sys.stderr, flush=True)

    def progress(record: dict[str, Any]) -> None:
        print(progress_line(record), file=sys.stderr, flush=True)

    results = run_benchmark(photos, seed=args.seed, strength=args.strength,
                            objective=args.objective, perceptual=args.perceptual,
                            crop_jitter=args.crop_jitter, psnr=args.psnr, progress=progress,
                            detector=args.detector, crops=args.crops)
    results = {
        "command": command, "argv": given, "threads": args.threads,
        "omp_num_threads": omp, "torch": torch.__version__,
        "git": git_commit(),
        "sets_asked": args.sets, "per_set": args.per_set, "large": args.large,
        "strength": args.strength, "objective": args.objective, "perceptual": args.perceptual,
        "crop_jitter": args.crop_jitter, "psnr": args.psnr, "detector": args.detector,
        "crops": args.crops, **results,
    }
    text = markdown(results)
    print(text, end="")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomically(args.out, json.dumps(results, indent=2) + "\n")
    if args.md:
        args.md.parent.mkdir(parents=True, exist_ok=True)
        head = report_head(command, threads=args.threads, commit=results["git"]["commit"],
                           dirty=results["git"]["dirty"], seed=args.seed,
                           strength=args.strength)
        write_text_atomically(args.md, head + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
