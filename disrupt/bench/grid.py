"""The benchmark grid: targets x attacks x budgets x steps x objectives on a folder of photos.

Every *cell* of the grid protects every image once, saves what a user would get (the
attack's result projected onto the 8-bit grid with
:func:`attacks.quantize_to_uint8_within`, written as PNG and read back), and measures
that file: as saved, and again after each evaluation *channel* (JPEG, resize, blur;
:mod:`disrupt.eval.channels`). Under a channel both images go through it, so the figure is
``G(ch(x_adv))`` against ``G(ch(x))``: what the protection still does once the photo
has been re-compressed, beyond what the channel does to an unprotected photo.

Objectives (how the perturbation is found; see :mod:`disrupt.core.objectives`):

- ``away``: :class:`~disrupt.core.objectives.AwayFromClean` over all conditions at once.
- ``joint``: :class:`~disrupt.core.objectives.JointConditions`, Ruiz et al.'s joint
  class-transferable attack. The same objective as ``away`` under its paper name
  (kept separate so tables read like the paper); the two give equal numbers.
- ``iterative``: :class:`~disrupt.core.objectives.IterativeConditions`, one condition per step.
- ``specific``: Ruiz et al.'s main protocol: one perturbation *per condition*, each
  attacking and evaluated on its own condition only (``K`` attacks per image).
- ``toward``: :class:`~disrupt.core.objectives.TowardOutput` toward a flat mid-grey output
  (0.5 everywhere at the target's output size), a fixed target that needs no
  second image and is far from every real edit.
- ``spread``: :class:`~disrupt.core.transforms.SpreadSpectrum` around ``joint``: the blur
  changes every step (Gaussian sigma 1-3, box 5-9), each pushing ``G(blur(x_adv))``
  away from ``G(blur(x))``; meant to survive the blur channel.

Transfer: ``evaluate_on`` lists more targets; every cell is also measured on them
(``transfer`` is true on those rows). Cells are cached in ``OUT/cells/<key>/`` by a
hash of everything that defines them; a re-run skips finished cells.

The library returns a :class:`BenchResult`; :mod:`disrupt.bench.report` writes the
JSON, CSV, markdown, plots and image grid; the CLI renders.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor

from attacks import quantize_to_uint8_within
from disrupt.bench.cells import (
    ALL_CONDITIONS,
    PRESET_PREFIX,
    Cell,
    build_cells,
    make_attack,
    make_objectives,
)
from disrupt.bench.config import (
    OBJECTIVES,
    BenchConfig,
    ConfigError,
    config_from_mapping,
    load_config,
)
from disrupt.bench.images import BenchImage, image_stem, list_images, load_bench_image
from disrupt.bench.results import BenchResult, CellResult, _finite, aggregate
from disrupt.core.budget import resolve_budget
from disrupt.core.pipeline import perturb, plan_protection
from disrupt.core.seeding import move_to, seeded
from disrupt.eval.channels import Channel, parse_channel
from disrupt.eval.evaluation import measure_disruption, target_outputs
from disrupt.eval.metrics import perceptibility
from disrupt.eval.semantic import SemanticJudge
from disrupt.files import write_text_atomically
from disrupt.imaging.pixels import from_pil, to_pil
from targets.base import Target

log = logging.getLogger(__name__)

__all__ = [
    "CACHE_VERSION",
    "OBJECTIVES",
    "BenchConfig",
    "ConfigError",
    "config_from_mapping",
    "load_config",
    "run_benchmark",
]

CACHE_VERSION = 1  # bump when what a cell stores changes

Progress = Callable[[int, int, str], None]
"""``progress(done, total, what)``: cells finished so far, cells in the grid, the next cell."""


# ----------------------------------------------------------------------------- data


# ----------------------------------------------------------------------------- cells


# ----------------------------------------------------------------------------- results


# ----------------------------------------------------------------------------- running


def _fingerprint(name: str, weights: Mapping[str, str]) -> str | None:
    """What identifies a target's weights: the file's sha256, or the card's, or None."""
    path = weights.get(name)
    if path is not None:
        p = Path(path)
        if p.is_file():
            digest = hashlib.sha256()
            with p.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
            return digest.hexdigest()
        return str(p.resolve())
    try:
        from targets import target_info

        spec = target_info(name).weights
    except LookupError:
        return None
    return spec.sha256 if spec is not None else None


def cell_key(cell: Cell, context: Mapping[str, Any]) -> str:
    """Hash of the cell's settings and everything else that defines its numbers."""
    blob = json.dumps({"cell": cell.to_dict(), **context}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _png_roundtrip(x: Tensor, path: Path | None) -> Tensor:
    """Encode ``(1, 3, H, W)`` as PNG (to ``path`` if given), decode it: what is saved."""
    buf = io.BytesIO()
    to_pil(x).save(buf, format="PNG")
    data = buf.getvalue()
    if path is not None:
        path.write_bytes(data)
    with Image.open(io.BytesIO(data)) as im:
        return from_pil(im).to(x)


def _batches(images: Sequence[BenchImage], size: int) -> Iterator[list[BenchImage]]:
    """Consecutive runs of equally sized images, at most ``size`` long."""
    batch: list[BenchImage] = []
    for im in images:
        if batch and (len(batch) == size or batch[0].x.shape != im.x.shape):
            yield batch
            batch = []
        batch.append(im)
    if batch:
        yield batch


class _Runner:
    """Runs cells against loaded targets; one instance per benchmark run."""

    def __init__(self, cfg: BenchConfig, targets: Mapping[str, Target],
                 judges: Mapping[str, SemanticJudge], channels: Sequence[Channel],
                 device: torch.device) -> None:
        self.cfg = cfg
        self.targets = targets
        self.judges = judges
        self.channels = channels
        self.device = device

    def eval_targets(self, cell: Cell) -> list[str]:
        return list(dict.fromkeys([cell.target, *self.cfg.evaluate_on]))

    def run(self, cell: Cell, key: str, images: Sequence[BenchImage], folder: Path) -> CellResult:
        rows: list[dict[str, Any]] = []
        per_image: list[dict[str, Any]] = []
        target = self.targets[cell.target]
        preset = cell.attack.removeprefix(PRESET_PREFIX) if cell.attack.startswith(
            PRESET_PREFIX) else None
        attack = make_attack(cell) if preset is None else None
        budget = resolve_budget(preset) if preset is not None else None
        started = time.perf_counter()
        with seeded(self.cfg.seed, self.device):  # stochastic generators draw from it
            gen = torch.Generator(device=self.device).manual_seed(self.cfg.seed)
            for batch in _batches(images, self.cfg.batch_size):
                x = torch.cat([im.x for im in batch]).to(self.device)
                t0 = time.perf_counter()
                variants = []
                if budget is not None:  # as protect() does it, image by image
                    q = torch.cat([
                        perturb(xi, [target], budget, plan_protection(xi, [target], faces=False),
                                seed=self.cfg.seed)[0]
                        for xi in x.split(1)])
                    variants.append((ALL_CONDITIONS, q))
                elif attack is not None:
                    for condition, objective in make_objectives(cell.objective, target, x):
                        x_adv = attack(x, objective, generator=gen)
                        variants.append((condition, quantize_to_uint8_within(
                            x_adv, x, cell.eps, norm=attack.norm)))
                seconds = (time.perf_counter() - t0) / len(batch)
                for condition, q in variants:
                    saved = torch.cat([
                        _png_roundtrip(q[i:i + 1], folder / f"{image_stem(im.name, condition)}.png")
                        for i, im in enumerate(batch)])
                    per_image += self._perceptibility(cell, key, batch, x, saved, condition,
                                                      seconds)
                    rows += self._measure(cell, key, batch, x, saved, condition)
        return CellResult(cell, key, rows, per_image, time.perf_counter() - started,
                          folder=folder)

    def _perceptibility(self, cell: Cell, key: str, batch: Sequence[BenchImage], x: Tensor,
                        saved: Tensor, condition: str, seconds: float) -> list[dict[str, Any]]:
        p = perceptibility(saved, x)
        return [{
            "cell": key, "target": cell.target, "attack": cell.attack, "eps": cell.eps,
            "steps": cell.steps, "objective": cell.objective, "image": im.name,
            "attacked_condition": condition,
            "image_psnr": _finite(float(p["psnr"][i])), "image_ssim": float(p["ssim"][i]),
            "image_linf_255": float(p["linf_255"][i]), "image_l2": float(p["l2"][i]),
            "seconds": seconds,
        } for i, im in enumerate(batch)]

    def _measure(self, cell: Cell, key: str, batch: Sequence[BenchImage], x: Tensor,
                 saved: Tensor, condition: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for channel in self.channels:
            xc, ac = channel(x), channel(saved)
            for name in self.eval_targets(cell):
                evaluated = self.targets[name]
                only = condition if (name == cell.target and condition != ALL_CONDITIONS) else None
                measured = measure_disruption([evaluated], xc, ac, threshold=self.cfg.threshold,
                                              seed=self.cfg.seed)
                semantic = self._semantic(name, evaluated, xc, ac)
                for i, im in enumerate(batch):
                    for d in measured[i]:
                        if only is not None and d.condition != only:
                            continue
                        ok = semantic.get(d.condition)
                        rows.append({
                            "cell": key, **cell.to_dict(), "attacked_condition": condition,
                            "evaluated_on": name, "transfer": name != cell.target,
                            "channel": channel.name, "image": im.name, "condition": d.condition,
                            "ruiz_mse": d.ruiz_mse, "disrupted": d.disrupted, "l1": d.l1,
                            "psnr": _finite(d.psnr), "ssim": d.ssim, "threshold": d.threshold,
                            "edit_success_clean": None if ok is None else bool(ok[0][i]),
                            "edit_success_protected": None if ok is None else bool(ok[1][i]),
                        })
        return rows

    def _semantic(self, name: str, target: Target, xc: Tensor,
                  ac: Tensor) -> dict[str, tuple[Tensor, Tensor]]:
        """``{condition: (success on G(x, c), success on G(x_adv, c))}``, each ``(B,)``."""
        judge = self.judges.get(name)
        if judge is None:
            return {}
        outs = []
        for image in (xc, ac):
            with seeded(self.cfg.seed, image.device):
                outs.append(target_outputs(target, image))
        return {c.name: (judge.success(outs[0][k], c.name), judge.success(outs[1][k], c.name))
                for k, c in enumerate(target.conditions) if judge.knows(c.name)}


def _read_cell(folder: Path, key: str, cell: Cell) -> CellResult | None:
    path = folder / "cell.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if data.get("key") != key or data.get("version") != CACHE_VERSION:
        return None
    return CellResult(cell, key, data["rows"], data["images"], float(data["seconds"]),
                      cached=True, folder=folder)


def _write_cell(res: CellResult, folder: Path) -> None:
    data = {"version": CACHE_VERSION, "key": res.key, "cell": res.cell.to_dict(),
            "seconds": res.seconds, "rows": res.rows, "images": res.images}
    write_text_atomically(folder / "cell.json", json.dumps(data))


def _resolve(cfg: BenchConfig) -> tuple[dict[str, Target], list[str], list[str]]:
    """Load every target the run needs; returns ``(targets, attacked names, notes)``."""
    from disrupt.api import default_targets, resolve_targets

    notes: list[str] = []
    names = list(cfg.targets)
    if not names:
        names = default_targets()
        if not names:
            names = ["stargan.tiny"]
            notes.append("no bundled weights installed: benchmarking stargan.tiny (random "
                         "weights, a plumbing check, not a measurement of a real generator)")
    all_names = list(dict.fromkeys([*names, *cfg.evaluate_on]))
    loaded = resolve_targets(all_names, dict(cfg.weights))
    return {t.name: t for t in loaded}, names, notes


def run_benchmark(
    cfg: BenchConfig,
    out: str | os.PathLike[str],
    *,
    judges: Mapping[str, SemanticJudge] | None = None,
    progress: Progress | None = None,
    write: bool = True,
) -> BenchResult:
    """Run (or resume) the grid of ``cfg``, writing into the folder ``out``.

    Args:
        cfg: the settings.
        out: output folder (created); cells are cached in ``out/cells/<key>/``.
        judges: evaluators per target name for semantic success; ``None`` loads the
            bundled ones where installed (when ``cfg.semantic``), with a note for each
            target that has none.
        progress: ``progress(done, total, what)`` before each cell and at the end.
        write: also write the report (JSON, CSV, markdown, plots, grid) into ``out``.

    Returns:
        :class:`BenchResult`.

    Raises:
        ConfigError: bad settings; DisruptError / CheckpointError: unreadable images or
        weights.
    """
    from disrupt.bench.report import environment, write_report
    from disrupt.eval.semantic import load_judges

    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    channels = [parse_channel(s) for s in cfg.channels]
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    device = torch.device(cfg.device)
    files = list_images(cfg)
    images = [load_bench_image(p, cfg.center_crop, cfg.resize) for p in files]
    targets, names, notes = _resolve(cfg)
    move_to(targets.values(), device)
    eval_names = list(dict.fromkeys([*names, *cfg.evaluate_on]))
    if judges is None:
        if cfg.semantic:
            judges, judge_notes = load_judges(eval_names, device)
            notes += judge_notes
        else:
            judges = {}
            notes.append("semantic success not measured (semantic = false)")
    cells = build_cells(cfg, names)
    context = {
        "version": CACHE_VERSION,
        "images": [(im.name, im.digest) for im in images],
        "center_crop": cfg.center_crop, "resize": cfg.resize,
        "weights": {n: _fingerprint(n, dict(cfg.weights)) for n in eval_names},
        "evaluate_on": list(cfg.evaluate_on), "channels": [c.name for c in channels],
        "threshold": cfg.threshold, "seed": cfg.seed, "device": device.type,
        "batch_size": cfg.batch_size, "judges": sorted(judges),
    }
    runner = _Runner(cfg, targets, judges, channels, device)
    results: list[CellResult] = []
    for done, cell in enumerate(cells):
        if progress is not None:
            progress(done, len(cells), cell.label)
        key = cell_key(cell, context)
        folder = out_dir / "cells" / key
        cached = _read_cell(folder, key, cell)
        if cached is not None:
            results.append(cached)
            continue
        folder.mkdir(parents=True, exist_ok=True)
        res = runner.run(cell, key, images, folder)
        _write_cell(res, folder)
        results.append(res)
    if progress is not None:
        progress(len(cells), len(cells), "done")
    result = BenchResult(cfg, environment(cfg.seed, device), results, aggregate(results), notes,
                         out_dir)
    if write:
        write_report(result, targets, images)
    return result
