"""Write a benchmark's results: JSON, CSV, a markdown summary, plots and an image grid.

Files written into the output folder by :func:`write_report`:

- ``results.json``: environment (package versions, device, threads, git commit,
  seed), config, notes, cells, aggregates, per-output rows and per-image records.
- ``results.csv`` (per-output rows), ``images.csv`` (per-image perceptibility and
  seconds), ``summary.csv`` (aggregates); every row carries its cell's settings.
- ``summary.md``: the aggregates as a markdown table, with the threshold and notes.
- ``disruption_vs_budget.png`` and ``channels.png`` (matplotlib, Agg backend;
  skipped with a note when matplotlib is not installed).
- ``grid.png``: one row per cell (first image): original, protected, edits.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import json
import os
import platform
import subprocess
import sys
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor

from disrupt.bench.cells import ALL_CONDITIONS
from disrupt.bench.images import BenchImage, image_stem
from disrupt.bench.results import BenchResult
from disrupt.core.seeding import seeded
from disrupt.eval.evaluation import target_outputs
from disrupt.eval.figures import compose_grid
from disrupt.files import json_ready, write_text_atomically
from disrupt.imaging.pixels import from_pil
from targets.base import Target

__all__ = ["environment", "markdown_summary", "write_report"]

_PACKAGES = ("torch", "torchvision", "kornia", "numpy", "pillow", "matplotlib", "rich",
             "typer", "safetensors", "disrupt-deepfakes")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    repo = Path(__file__).resolve().parent.parent
    try:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                              timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def timing_parser(doc: str) -> argparse.ArgumentParser:
    """The argument parser of a timing benchmark script: its docstring's first line,
    ``--threads`` (torch threads, default 2) and ``--out`` (a results JSON)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    return parser


def write_results_json(path: Path | None, payload: Mapping[str, Any], *, seed: int = 0) -> None:
    """Write a benchmark's ``payload`` to ``path`` as indented JSON (nothing when
    ``None``), with the command line that made it and the :func:`environment`."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"command": " ".join(["python", *sys.argv]), **payload,
              "environment": environment(seed, torch.device("cpu"))}
    path.write_text(json.dumps(record, indent=2))


def environment(seed: int, device: torch.device) -> dict[str, Any]:
    """Where and with what a run happened: versions, device, threads, git commit, seed."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "started_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": {p: _version(p) for p in _PACKAGES},
        "device": str(device),
        "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                        else platform.processor() or platform.machine()),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": None if status is None else bool(status),
        "seed": seed,
    }


def _csv_text(rows: Sequence[Mapping[str, Any]]) -> str:
    from io import StringIO

    buf = StringIO()
    columns: list[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in json_ready(dict(r)).items()})
    return buf.getvalue()


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def markdown_summary(result: BenchResult) -> str:
    """The aggregates as a markdown table, with settings, threshold and notes."""
    cfg, env = result.config, result.environment
    thr = cfg.threshold
    lines = [
        f"# Benchmark `{cfg.name}`",
        "",
        f"- images: {cfg.images} ({len({r['image'] for r in result.images})} images"
        + (f", centre crop {cfg.center_crop}" if cfg.center_crop else "")
        + (f", resized to {cfg.resize}x{cfg.resize}" if cfg.resize else "") + ")",
        f"- disrupted: Ruiz MSE (MSE between G(x_adv) and G(x) on [-1,1]) > {thr:g}; measured "
        "on the saved 8-bit PNG, then after each channel (both images through the channel)",
        f"- seed {env['seed']}, device {env['device']}, torch threads {env['torch_threads']}, "
        f"git {env['git_commit'] or 'unknown'}{' (dirty)' if env['git_dirty'] else ''}",
        f"- cells: {len(result.cells)} ({result.skipped} from cache)",
    ]
    lines += [f"- note: {n}" for n in result.notes]
    lines += [
        "",
        "| target | evaluated on | attack | objective | eps /255 | steps | channel | n "
        f"| Ruiz MSE | disrupted (>{thr:g}) | L1 | out PSNR | out SSIM | img PSNR | img SSIM "
        "| max /255 | s/img | edit ok clean -> protected |",
        "|" + "---|" * 18,
    ]
    for a in result.aggregates:
        semantic = ("-" if a["edit_success_clean"] is None else
                    f"{a['edit_success_clean']:.0%} -> {a['edit_success_protected']:.0%}")
        lines.append(
            f"| {a['target']} | {a['evaluated_on']} | {a['attack']} | {a['objective']} "
            f"| {a['eps_255']:.2f} | {a['steps']} | {a['channel']} | {a['n']} "
            f"| {_fmt(a['ruiz_mse'], '.4f')} | {_fmt(a['disrupted_fraction'], '.1%')} "
            f"| {_fmt(a['l1'], '.4f')} | {_fmt(a['output_psnr'], '.2f')} "
            f"| {_fmt(a['output_ssim'], '.3f')} | {_fmt(a['image_psnr'], '.2f')} "
            f"| {_fmt(a['image_ssim'], '.4f')} | {_fmt(a['image_linf_255'], '.0f')} "
            f"| {_fmt(a['seconds_per_image'], '.3f')} | {semantic} |"
        )
    lines += ["", "PSNR of identical outputs is reported as 100 dB. `s/img`: attack seconds "
              "per image (for `specific`, all its per-condition attacks)."]
    return "\n".join(lines) + "\n"


def _series_label(a: Mapping[str, Any]) -> str:
    return f"{a['target']} {a['attack']} {a['objective']} s{a['steps']}"


def _plots(result: BenchResult, out: Path) -> dict[str, Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        result.notes.append("plots skipped: matplotlib is not installed")
        return {}
    own = [a for a in result.aggregates if not a["transfer"]]
    written: dict[str, Path] = {}

    series: dict[str, list[Mapping[str, Any]]] = {}
    for a in own:
        if a["channel"] == "none":
            series.setdefault(_series_label(a), []).append(a)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for label, points in series.items():
        points = sorted(points, key=lambda a: a["eps"])
        xs = [a["eps_255"] for a in points]
        left.plot(xs, [a["disrupted_fraction"] for a in points], marker="o", label=label)
        right.plot(xs, [a["ruiz_mse"] for a in points], marker="o", label=label)
    right.axhline(result.config.threshold, color="grey", linestyle="--", linewidth=1,
                  label=f"threshold {result.config.threshold:g}")
    left.set(xlabel="budget eps (/255)", ylabel=f"fraction Ruiz MSE > {result.config.threshold:g}",
             ylim=(-0.02, 1.02), title="disruption against budget (saved PNG)")
    right.set(xlabel="budget eps (/255)", ylabel="mean Ruiz MSE ([-1,1] scale)",
              title="output distortion against budget")
    right.legend(fontsize=7)
    fig.tight_layout()
    written["plot_budget"] = out / "disruption_vs_budget.png"
    fig.savefig(written["plot_budget"], dpi=100)
    plt.close(fig)

    channels = list(dict.fromkeys(a["channel"] for a in own))
    top_eps = max((a["eps"] for a in own), default=0.0)
    bars: dict[str, dict[str, float]] = {}
    for a in own:
        if a["eps"] == top_eps:
            bars.setdefault(_series_label(a), {})[a["channel"]] = a["disrupted_fraction"]
    shown = list(bars)[:10]
    fig, ax = plt.subplots(figsize=(min(16.0, 4 + 0.2 * len(channels) * max(1, len(shown))), 4.2))
    width = 0.8 / max(1, len(shown))
    for k, label in enumerate(shown):
        xs = [i + (k - (len(shown) - 1) / 2) * width for i in range(len(channels))]
        ax.bar(xs, [bars[label].get(c, 0.0) for c in channels], width, label=label)
    ax.set_xticks(range(len(channels)), channels)
    ax.set(ylabel=f"fraction Ruiz MSE > {result.config.threshold:g}", ylim=(0, 1.02),
           title=f"disruption per channel at eps {top_eps * 255:.3g}/255")
    ax.legend(fontsize=7)
    fig.tight_layout()
    written["plot_channels"] = out / "channels.png"
    fig.savefig(written["plot_channels"], dpi=100)
    plt.close(fig)
    return written


def _grid(result: BenchResult, targets: Mapping[str, Target],
          images: Sequence[BenchImage], out: Path) -> Path | None:
    if not images or result.config.grid_rows == 0:
        return None
    first = images[0]
    rows: list[list[Tensor | None]] = []
    labels: list[str] = []
    for res in result.cells[: result.config.grid_rows]:
        target = targets[res.cell.target]
        names = [c.name for c in target.conditions]
        condition = names[0]
        attacked = ALL_CONDITIONS
        if res.cell.objective == "specific":
            attacked = condition
        assert res.folder is not None
        path = res.folder / f"{image_stem(first.name, attacked)}.png"
        if not path.exists():
            continue
        with Image.open(path) as im:
            saved = from_pil(im)
        edits = []
        for x in (first.x, saved):
            with seeded(result.config.seed, _device(target)):
                edits.append(target_outputs(target, x.to(_device(target)))[0, 0].cpu())
        mse = next((a["ruiz_mse"] for a in result.aggregates
                    if a["cell"] == res.key and a["channel"] == "none" and not a["transfer"]), None)
        labels.append(f"{res.cell.label}\nedit: {condition}\nmean Ruiz MSE {_fmt(mse, '.4f')}")
        rows.append([first.x[0], saved[0], edits[0], edits[1]])
    if not rows:
        return None
    picture = compose_grid(rows, row_labels=labels, col_labels=(
        "original", "protected", "edit of original", "edit of protected"), cell=96,
        title=first.name)
    path = out / "grid.png"
    picture.save(path)
    return path


def _device(target: Target) -> torch.device:
    dev = getattr(target, "device", None)
    return dev if isinstance(dev, torch.device) else torch.device("cpu")


def write_report(result: BenchResult, targets: Mapping[str, Target],
                 images: Sequence[BenchImage]) -> dict[str, Path]:
    """Write every output file into ``result.out``; returns (and stores) ``{kind: path}``."""
    if result.out is None:
        raise ValueError("result.out is not set")
    out = result.out
    files: dict[str, Path] = {}
    files.update(_plots(result, out))
    grid = _grid(result, targets, images, out)
    if grid is not None:
        files["grid"] = grid
    files["csv"] = out / "results.csv"
    write_text_atomically(files["csv"], _csv_text(result.rows))
    files["images_csv"] = out / "images.csv"
    write_text_atomically(files["images_csv"], _csv_text(result.images))
    files["summary_csv"] = out / "summary.csv"
    write_text_atomically(files["summary_csv"], _csv_text(result.aggregates))
    files["markdown"] = out / "summary.md"
    write_text_atomically(files["markdown"], markdown_summary(result))
    files["json"] = out / "results.json"
    payload = {
        "environment": result.environment,
        "config": result.config.to_dict(),
        "notes": result.notes,
        "cells": [{**c.cell.to_dict(), "key": c.key, "seconds": c.seconds, "cached": c.cached,
                   "folder": c.folder} for c in result.cells],
        "aggregates": result.aggregates,
        "rows": result.rows,
        "images": result.images,
        "files": {k: str(v) for k, v in files.items()},
    }
    write_text_atomically(files["json"], json.dumps(json_ready(payload), indent=1, allow_nan=False))
    result.files = files
    return files
