"""The default protection on real photos: whole frames, faces found by protect, real channels.

Where a grid benchmark measures crops already cut the way the models expect, this
hands :func:`disrupt.api.protect` whole photos (:mod:`disrupt.bench.photo_sets`), as a
user would. Each photo is protected with ``protect(image, seed=..., strength=...)``;
then every target is measured per condition with the geometry protect uses:

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
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from disrupt.api import TargetSpec, protect, resolve_targets
from disrupt.bench.photo_sets import Photo
from disrupt.eval.channels import jpeg, parse_channel
from disrupt.eval.intervals import wilson
from disrupt.eval.metrics import RUIZ_THRESHOLD
from disrupt.files import json_ready, write_text_atomically
from disrupt.imaging.pixels import from_pil, to_pil
from disrupt.verify import verify

__all__ = ["CHANNELS", "REGION_KEYS", "SOCIAL", "markdown", "measure_photo", "progress_line",
           "report_head", "run_benchmark", "social", "summarise", "write_real_photos"]

SOCIAL = "social:1080+jpeg:80"
#: Channel names in report order; ``none`` is protect's own measurement.
CHANNELS: tuple[str, ...] = (
    "none", "jpeg:95", "jpeg:75", "jpeg:50", "resize:0.5", "blur:1.5", SOCIAL,
)
SOCIAL_LONG_SIDE = 1080
SOCIAL_QUALITY = 80
REGION_KEYS: tuple[str, ...] = ("psnr", "ssim", "ciede2000_mean")


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
    """``"stargan.celeba96@face0"`` -> ``"stargan.celeba96"``."""
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
    crops: str | None = None, steps: int | None = None, device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Protect one photo and measure every target per channel (see the module docstring).

    ``steps`` ``None``: the preset's; the other settings as :func:`disrupt.api.protect`'s.
    Returns a JSON-ready record: ``rows`` per channel (target, condition, ruiz_mse,
    disrupted), face status and boxes, perceptibility, the attack and seconds.
    """
    start = time.perf_counter()
    result = protect(photo.image, targets=targets, seed=seed, strength=strength,
                     objective=objective, perceptual=perceptual, crop_jitter=crop_jitter,
                     psnr=psnr, detector=detector, crops=crops, steps=steps, device=device)
    protect_seconds = time.perf_counter() - start
    rows: dict[str, list[dict[str, Any]]] = {"none": [d.to_dict() for d in result.disruption]}
    face_status = {"none": result.face_status}
    faces = {"none": len(result.faces)}
    for name in CHANNELS[1:]:
        apply = channel_fn(name)
        checked = verify(apply(photo.image), apply(result.image), targets=targets, faces=None,
                         detector=detector, seed=seed, device=device)
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
    """Per-set and overall aggregates of :func:`measure_photo` records: ``{"sets": {set:
    {images, face_status, channel_face_status, seconds, region_perceptibility, models}},
    "all": {images, models}}``; ``models[model][channel]`` holds ``n``, ``disrupted``,
    ``rate`` in [0, 1], ``ci95`` ``[low, high]`` and ``mean_ruiz_mse``."""
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
    detector: str = "haar", crops: str | None = None, steps: int | None = None,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Protect and measure every photo in order; ``targets`` ``None`` means the bundled set.
    ``progress(record)`` is called after each photo.

    Returns a JSON-ready dict: ``targets``, ``channels``, ``threshold``, ``images``
    (one :func:`measure_photo` record each), ``sets`` and ``all`` (:func:`summarise`).
    """
    chosen = resolve_targets(targets)
    images = []
    for photo in photos:
        record = measure_photo(photo, chosen, seed=seed, strength=strength,
                               objective=objective, perceptual=perceptual,
                               crop_jitter=crop_jitter, psnr=psnr, detector=detector,
                               crops=crops, steps=steps, device=device)
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


def progress_line(record: Mapping[str, Any]) -> str:
    """One line on a :func:`measure_photo` record: seconds, faces, region PSNR and the
    share of its outputs (every channel) disrupted."""
    rows = [r for rs in record["rows"].values() for r in rs]
    share = sum(r["disrupted"] for r in rows) / max(1, len(rows))
    return (f"{record['set']}/{record['name']}: {record['seconds']:.0f}s "
            f"(protect {record['protect_seconds']:.0f}s), faces {record['face_status']} "
            f"({len(record['faces'])}), region PSNR "
            f"{record['region_perceptibility']['psnr']:.1f} dB, {share * 100:.0f}% of "
            f"{len(rows)} outputs disrupted")


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


def markdown(summary: Mapping[str, Any]) -> str:
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


def report_head(command: str, *, threads: int, commit: str | None, dirty: bool | None,
                seed: int, strength: str | None) -> str:
    """The markdown file's title and provenance lines, written above :func:`markdown`."""
    return (f"# Real-photo benchmark of the default protection (sample)\n\n"
            f"Command: `{command}`\n\nthreads {threads}, torch {torch.__version__}, "
            f"commit {commit}{' (uncommitted changes in the tree)' if dirty else ''}, "
            f"seed {seed}, strength {strength}\n\n")


def write_real_photos(results: Mapping[str, Any], out: Path, head: str) -> dict[str, Path]:
    """Write ``real_photos.json`` (``results`` as standard JSON, non-finite numbers as
    null) and ``real_photos.md`` (``head`` + :func:`markdown`) into the existing folder
    ``out``, each atomically; returns ``{"json": path, "markdown": path}``."""
    files = {"json": out / "real_photos.json", "markdown": out / "real_photos.md"}
    write_text_atomically(files["json"],
                          json.dumps(json_ready(results), indent=2, allow_nan=False) + "\n")
    write_text_atomically(files["markdown"], head + markdown(results))
    return files
