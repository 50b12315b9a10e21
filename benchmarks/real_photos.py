"""The default protection on real photos: whole frames, faces found by protect, real channels.

Where ``default_protection.py`` measures CelebA crops already cut the way the models
expect, this benchmark hands ``protect()`` whole photos, as a user would:

- ``lfw``: 250x250 deep-funneled LFW frames (face in the middle third, head and
  background around it), both people, every k-th file of the sorted list;
- ``utkface``: 200x200 UTKFace frames of the *test* split
  (:func:`targets.training.data.split_of`), ages >= 15 as in training, every k-th;
- ``celeba``: CelebA test crops, CenterCrop(89) of 009401, 009402, ...;
- ``astronaut``: the 512x512 portrait, and with ``--large`` the same upscaled
  (bicubic) into a 4000x3000 12 MP photo (``bench_large_photo.make_photo``; slow).

Each photo is protected with ``protect(image, seed=..., strength=...)`` and the bundled
targets (plus any ``--objective`` / ``--perceptual`` / ``--crop-jitter`` / ``--crops`` /
``--psnr``).
Then every bundled model is measured per condition with the geometry protect uses:

- ``none``: ``result.disruption``, measured by protect on the saved 8-bit image
  through its face crops (rows ``"<target>@face<i>"``; plain names without faces);
- the channels (JPEG 95/75/50, resize 50% and back, Gaussian blur 1.5, and
  ``social``: long side to 1080 px when larger, bicubic, then JPEG 80): the channel
  is applied to the whole original and the whole protected photo, then
  :func:`disrupt.verify.verify` looks for faces on the channel'd protected photo
  (protect's detector and rule) and measures through each face's canonical crop.

Reported per model (the ``@face<i>`` suffix stripped) and per set: the disrupted rate
(Ruiz MSE > 0.05 per (image, face, condition)) with a 95% Wilson interval, the mean
Ruiz MSE, the changed region's visibility (``result.region_perceptibility``: PSNR,
SSIM, CIEDE2000 mean), face-detection status counts and seconds per image.

Run: python benchmarks/real_photos.py [--data ../shared/data] [--sets lfw utkface celeba
         astronaut] [--per-set 3] [--large] [--out results.json] [--md results.md]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from bench_large_photo import make_photo  # type: ignore[import-not-found]
from default_protection import wilson  # type: ignore[import-not-found]
from PIL import Image
from torch import Tensor

from disrupt import protect
from disrupt.api import TargetSpec, resolve_targets
from disrupt.eval.channels import jpeg, parse_channel
from disrupt.eval.metrics import RUIZ_THRESHOLD
from disrupt.imaging.pixels import center_box, from_pil, to_pil
from disrupt.verify import verify
from targets.training.data import CELEBA_CROP, LFW_IDENTITIES, MIN_AGE, split_of

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SETS: tuple[str, ...] = ("lfw", "utkface", "celeba", "astronaut")
SOCIAL = "social:1080+jpeg:80"
#: Channel names in report order; ``none`` is protect's own measurement.
CHANNELS: tuple[str, ...] = (
    "none", "jpeg:95", "jpeg:75", "jpeg:50", "resize:0.5", "blur:1.5", SOCIAL,
)
SOCIAL_LONG_SIDE = 1080
SOCIAL_QUALITY = 80
CELEBA_FIRST = 9401
REGION_KEYS: tuple[str, ...] = ("psnr", "ssim", "ciede2000_mean")


@dataclass(frozen=True)
class Photo:
    """One benchmark photo: its set, a name, and pixels ``(1, 3, H, W)`` in ``[0, 1]``."""

    set: str
    name: str
    image: Tensor


# ----------------------------------------------------------------------------- the set


def _spread(items: Sequence[str], n: int) -> list[str]:
    """``n`` items spread evenly over ``items`` (the middle of each of ``n`` equal runs):
    deterministic, and mixes whatever the sort order groups together."""
    if n >= len(items):
        return list(items)
    return [items[(2 * i + 1) * len(items) // (2 * n)] for i in range(n)]


def _open(path: Path) -> Tensor:
    with Image.open(path) as im:
        return from_pil(im)


def lfw_photos(data: Path, n: int) -> list[Photo]:
    """Whole 250x250 LFW frames of both people (sorted by file name, every k-th)."""
    files = sorted(p for ident in LFW_IDENTITIES for p in (data / "lfw" / ident).glob("*.jpg"))
    return [Photo("lfw", Path(f).name, _open(Path(f)))
            for f in _spread([str(f) for f in files], n)]


def utkface_test_names(data: Path) -> list[str]:
    """Sorted UTKFace file names of the test split with age >= ``MIN_AGE`` (training's rule)."""
    root = data / "utkface"
    with open(root / "labels.csv", newline="") as fh:
        ages = {r["filename"]: int(r["age"]) for r in csv.DictReader(fh)}
    return sorted(n for n, age in ages.items() if age >= MIN_AGE
                  and split_of("utkface", n) == "test" and (root / "images" / n).exists())


def utkface_photos(data: Path, n: int) -> list[Photo]:
    """Whole 200x200 UTKFace test-split frames (every k-th of the sorted names)."""
    return [Photo("utkface", name, _open(data / "utkface" / "images" / name))
            for name in _spread(utkface_test_names(data), n)]


def celeba_photos(data: Path, n: int, first: int = CELEBA_FIRST) -> list[Photo]:
    """CelebA test-split crops: CenterCrop(89) of ``first``, ``first + 1``, ..."""
    photos = []
    for number in range(first, first + n):
        name = f"{number:06d}.jpg"
        if split_of("celeba", name) != "test":
            raise ValueError(f"CelebA {name} is not in the test split")
        with Image.open(data / "celeba10k" / "images" / name) as im:
            photos.append(Photo("celeba", name,
                                from_pil(im.crop(center_box(im.width, im.height, CELEBA_CROP)))))
    return photos


def astronaut_photos(data: Path, large: bool) -> list[Photo]:
    """The 512x512 portrait; with ``large`` also its 4000x3000 upscale (12 MP)."""
    path = data / "photos" / "astronaut.png"
    photos = [Photo("astronaut", path.name, _open(path))]
    if large:
        with tempfile.TemporaryDirectory() as tmp:
            big = make_photo(Path(tmp) / "astronaut_12mp.png")
            photos.append(Photo("astronaut", "astronaut_12mp (4000x3000)", _open(big)))
    return photos


def choose_photos(data: Path, sets: Sequence[str], per_set: int, *,
                  large: bool = False) -> list[Photo]:
    """The benchmark photos of ``sets``: ``per_set`` from each dataset, the astronaut
    once (twice with ``large``)."""
    photos: list[Photo] = []
    for name in sets:
        if name == "lfw":
            photos += lfw_photos(data, per_set)
        elif name == "utkface":
            photos += utkface_photos(data, per_set)
        elif name == "celeba":
            photos += celeba_photos(data, per_set)
        elif name == "astronaut":
            photos += astronaut_photos(data, large)
        else:
            raise ValueError(f"unknown set {name!r} (one of {', '.join(SETS)})")
    return photos


# ----------------------------------------------------------------------------- channels


def social(x: Tensor, long_side: int = SOCIAL_LONG_SIDE, quality: int = SOCIAL_QUALITY) -> Tensor:
    """A social platform's upload: long side down to ``long_side`` px when larger
    (Pillow bicubic, which antialiases when shrinking), then JPEG ``quality``.
    ``(1, 3, H, W)`` in ``[0, 1]`` -> ``(1, 3, h, w)`` on the 8-bit grid."""
    height, width = int(x.shape[-2]), int(x.shape[-1])
    if max(height, width) > long_side:
        scale = long_side / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        x = from_pil(to_pil(x).resize(size, Image.Resampling.BICUBIC)).to(x)
    return jpeg(x, quality)


def channel_fn(name: str) -> Callable[[Tensor], Tensor]:
    """The function for a channel name of :data:`CHANNELS` (``none`` excepted)."""
    return social if name == SOCIAL else parse_channel(name)


# ----------------------------------------------------------------------------- measuring


def model_of(row_target: str) -> str:
    """``"stargan.celeba64@face0"`` -> ``"stargan.celeba64"``."""
    return row_target.split("@", 1)[0]


def _rate(hits: list[float], mses: list[float]) -> dict[str, Any]:
    lo, hi = wilson(hits)
    return {"n": len(hits), "disrupted": int(sum(hits)),
            "rate": float(np.mean(hits)) if hits else 0.0, "ci95": [lo, hi],
            "mean_ruiz_mse": float(np.mean(mses)) if mses else float("nan")}


def measure_photo(
    photo: Photo, targets: Sequence[Any], *, seed: int = 0, strength: str | None = None,
    objective: str | None = None, perceptual: bool | None = None,
    crop_jitter: bool | None = None, psnr: float | None = None, detector: str = "haar",
    crops: str | None = None,
) -> dict[str, Any]:
    """Protect one photo and measure every target per channel (see the module docstring)."""
    start = time.perf_counter()
    result = protect(photo.image, targets=targets, seed=seed, strength=strength,
                     objective=objective, perceptual=perceptual, crop_jitter=crop_jitter,
                     psnr=psnr, detector=detector, crops=crops)
    protect_seconds = time.perf_counter() - start
    rows: dict[str, list[dict[str, Any]]] = {"none": [d.to_dict() for d in result.disruption]}
    face_status = {"none": result.face_status}
    faces = {"none": len(result.faces)}
    for name in CHANNELS[1:]:
        apply = channel_fn(name)
        checked = verify(apply(photo.image), apply(result.image), targets=targets, faces=None,
                         detector=detector, seed=seed)
        rows[name] = [d.to_dict() for d in checked.disruption]
        face_status[name] = checked.face_status
        faces[name] = len(checked.faces)
    return {
        "set": photo.set, "name": photo.name,
        "size": [int(photo.image.shape[-1]), int(photo.image.shape[-2])],
        "face_status": result.face_status, "faces": [list(b) for b in result.faces],
        "channel_face_status": face_status, "channel_faces": faces,
        "region_perceptibility": {k: float(v) for k, v in result.region_perceptibility.items()},
        "perceptibility": result.perceptibility,
        "attack": result.to_dict()["attack"], "strength": result.strength,
        "protect_seconds": protect_seconds, "seconds": time.perf_counter() - start,
        "rows": {name: [{"target": r["target"], "condition": r["condition"],
                         "ruiz_mse": r["ruiz_mse"], "disrupted": r["disrupted"]}
                        for r in rs] for name, rs in rows.items()},
    }


def _models(images: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per model, per channel: rate, interval, mean MSE over (image, face, condition)."""
    hits: dict[tuple[str, str], list[float]] = defaultdict(list)
    mses: dict[tuple[str, str], list[float]] = defaultdict(list)
    for image in images:
        for channel, rows in image["rows"].items():
            for r in rows:
                key = (model_of(r["target"]), channel)
                hits[key].append(float(r["disrupted"]))
                mses[key].append(float(r["ruiz_mse"]))
    names = sorted({m for m, _ in hits})
    return {m: {c: _rate(hits[(m, c)], mses[(m, c)]) for c in CHANNELS} for m in names}


def summarise(images: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per-set and overall aggregates of :func:`measure_photo` records."""
    by_set: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for image in images:
        by_set[image["set"]].append(image)
    sets: dict[str, Any] = {}
    for name, group in by_set.items():
        channel_status: dict[str, dict[str, int]] = {
            c: dict(Counter(i["channel_face_status"][c] for i in group)) for c in CHANNELS}
        sets[name] = {
            "images": [i["name"] for i in group],
            "face_status": dict(Counter(i["face_status"] for i in group)),
            "channel_face_status": channel_status,
            "seconds_per_image": float(np.mean([i["seconds"] for i in group])),
            "protect_seconds_per_image": float(np.mean([i["protect_seconds"] for i in group])),
            "region_perceptibility": {
                k: float(np.mean([i["region_perceptibility"][k] for i in group]))
                for k in REGION_KEYS},
            "models": _models(group),
        }
    return {"sets": sets, "all": {"images": len(images), "models": _models(images)}}


def run_benchmark(
    photos: Sequence[Photo], *, targets: Sequence[TargetSpec] | None = None, seed: int = 0,
    strength: str | None = None, objective: str | None = None,
    perceptual: bool | None = None, crop_jitter: bool | None = None,
    psnr: float | None = None, progress: Callable[[dict[str, Any]], None] | None = None,
    detector: str = "haar", crops: str | None = None,
) -> dict[str, Any]:
    """Protect and measure every photo; ``targets`` ``None`` means the bundled set.

    Returns a JSON-ready dict: ``targets``, ``channels``, ``threshold``, ``images``
    (one :func:`measure_photo` record each), ``sets`` and ``all`` (:func:`summarise`).
    """
    chosen = resolve_targets(targets)
    images = []
    for photo in photos:
        record = measure_photo(photo, chosen, seed=seed, strength=strength,
                               objective=objective, perceptual=perceptual,
                               crop_jitter=crop_jitter, psnr=psnr, detector=detector,
                               crops=crops)
        images.append(record)
        if progress is not None:
            progress(record)
    return {
        "targets": [t.name for t in chosen], "channels": list(CHANNELS),
        "threshold": RUIZ_THRESHOLD,
        "rule": "disrupted: Ruiz MSE > 0.05 on [-1,1], per (image, face, condition); "
                "95% Wilson interval",
        "seed": seed, "images": images, **summarise(images),
    }


# ----------------------------------------------------------------------------- report


def _cell(stats: dict[str, Any]) -> str:
    if not stats["n"]:
        return "-"
    lo, hi = stats["ci95"]
    return (f"{stats['rate'] * 100:.0f}% [{lo * 100:.0f}-{hi * 100:.0f}] "
            f"({stats['mean_ruiz_mse']:.3f}, n={stats['n']})")


def _model_table(models: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    lines = ["| model | " + " | ".join(CHANNELS) + " |", "|---|" + "---|" * len(CHANNELS)]
    for model, per_channel in models.items():
        lines.append(f"| {model} | " + " | ".join(_cell(per_channel[c]) for c in CHANNELS) + " |")
    return lines


def markdown(summary: dict[str, Any]) -> str:
    """The report: a per-set overview, then one disruption table per set and overall."""
    lines = [
        "Cells: disrupted rate [95% Wilson interval] (mean Ruiz MSE, n = (image, face, "
        "condition) outputs); disrupted = Ruiz MSE > 0.05.",
        "",
        "| set | images | face status (protect) | faces found after social | s/image "
        "| protect s/image | region PSNR | region SSIM | region CIEDE2000 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in summary["sets"].items():
        status = ", ".join(f"{k} {v}" for k, v in sorted(s["face_status"].items()))
        after = ", ".join(f"{k} {v}" for k, v in sorted(s["channel_face_status"][SOCIAL].items()))
        r = s["region_perceptibility"]
        lines.append(f"| {name} | {len(s['images'])} | {status} | {after} "
                     f"| {s['seconds_per_image']:.0f} | {s['protect_seconds_per_image']:.0f} "
                     f"| {r['psnr']:.1f} dB | {r['ssim']:.3f} | {r['ciede2000_mean']:.2f} |")
    for name, s in summary["sets"].items():
        lines += ["", f"### {name}: {', '.join(s['images'])}", "", *_model_table(s["models"])]
    lines += ["", f"### all sets ({summary['all']['images']} images)", "",
              *_model_table(summary["all"]["models"])]
    return "\n".join(lines) + "\n"


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

    photos = choose_photos(args.data, args.sets, args.per_set, large=args.large)
    print(f"{len(photos)} photos: " + ", ".join(f"{p.set}/{p.name}" for p in photos),
          file=sys.stderr, flush=True)

    def progress(record: dict[str, Any]) -> None:
        rows = [r for rs in record["rows"].values() for r in rs]
        share = sum(r["disrupted"] for r in rows) / max(1, len(rows))
        print(f"{record['set']}/{record['name']}: {record['seconds']:.0f}s "
              f"(protect {record['protect_seconds']:.0f}s), faces {record['face_status']} "
              f"({len(record['faces'])}), region PSNR "
              f"{record['region_perceptibility']['psnr']:.1f} dB, {share * 100:.0f}% of "
              f"{len(rows)} outputs disrupted", file=sys.stderr, flush=True)

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
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    if args.md:
        args.md.parent.mkdir(parents=True, exist_ok=True)
        head = (f"# Real-photo benchmark of the default protection (sample)\n\n"
                f"Command: `{command}`\n\nthreads {args.threads}, torch {torch.__version__}, "
                f"commit {results['git']['commit']}"
                f"{' (uncommitted changes in the tree)' if results['git']['dirty'] else ''}, "
                f"seed {args.seed}, strength {args.strength}\n\n")
        args.md.write_text(head + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
