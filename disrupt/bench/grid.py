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
import inspect
import io
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from attacks import Objective, attack_info, create_attack, quantize_to_uint8_within
from disrupt.bench.config import (
    OBJECTIVES,
    BenchConfig,
    ConfigError,
    config_from_mapping,
    load_config,
)
from disrupt.core.budget import STRENGTHS, resolve_budget
from disrupt.core.objectives import (
    AwayFromClean,
    IterativeConditions,
    JointConditions,
    TowardOutput,
)
from disrupt.core.pipeline import perturb, plan_protection
from disrupt.core.seeding import seeded
from disrupt.core.transforms import SpreadSpectrum
from disrupt.errors import DisruptError
from disrupt.eval.channels import Channel, parse_channel
from disrupt.eval.evaluation import measure_disruption, target_outputs
from disrupt.eval.metrics import perceptibility
from disrupt.eval.semantic import SemanticJudge
from disrupt.files import write_text_atomically
from disrupt.imaging import load_image, to_uint8
from targets.base import Target

log = logging.getLogger(__name__)

__all__ = [
    "CACHE_VERSION",
    "OBJECTIVES",
    "BenchConfig",
    "BenchResult",
    "Cell",
    "ConfigError",
    "config_from_mapping",
    "load_config",
    "run_benchmark",
]

CACHE_VERSION = 1  # bump when what a cell stores changes
PSNR_CAP = 100.0  # dB reported for identical outputs (PSNR is +inf there)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
ALL_CONDITIONS = "all"
PRESET_PREFIX = "preset:"  # attack name of a strength-preset cell: "preset:mid"

Progress = Callable[[int, int, str], None]
"""``progress(done, total, what)``: cells finished so far, cells in the grid, the next cell."""


# ----------------------------------------------------------------------------- data


@dataclass
class BenchImage:
    """One preprocessed image: ``x`` ``(1, 3, H, W)`` in ``[0, 1]`` on the 8-bit grid."""

    name: str
    x: Tensor
    digest: str


def list_images(cfg: BenchConfig) -> list[Path]:
    """The image files a config selects (sorted by name)."""
    if cfg.images is None:
        raise ConfigError("no images: pass --images FOLDER (or set images in the config)")
    folder = cfg.images
    if not folder.is_dir():
        raise DisruptError(f"{folder}: not a folder of images")
    files = sorted(p for p in folder.iterdir()
                   if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if cfg.start is not None:
        files = [p for p in files if p.name >= cfg.start]
    if cfg.limit is not None:
        files = files[: cfg.limit]
    if not files:
        raise DisruptError(f"{folder}: no images selected (suffixes {', '.join(IMAGE_SUFFIXES)})")
    return files


def _center_crop(im: Image.Image, side: int) -> Image.Image:
    """torchvision ``CenterCrop(side)`` for PIL images (offsets rounded the same way)."""
    w, h = im.size
    side_w, side_h = min(side, w), min(side, h)
    left = int(round((w - side_w) / 2.0))
    top = int(round((h - side_h) / 2.0))
    return im.crop((left, top, left + side_w, top + side_h))


def load_bench_image(path: Path, center_crop: int | None, size: int | None) -> BenchImage:
    """Load, centre-crop and resize one image; returns it on the 8-bit grid."""
    loaded = load_image(path)
    im = Image.fromarray(to_uint8(loaded.rgb))
    if center_crop is not None:
        im = _center_crop(im, center_crop)
    if size is not None and im.size != (size, size):
        im = im.resize((size, size), Image.Resampling.BILINEAR)
    arr = np.asarray(im, dtype=np.uint8)
    x = torch.from_numpy(arr.astype(np.float32).transpose(2, 0, 1).copy() / 255.0)[None]
    return BenchImage(path.name, x, hashlib.sha256(arr.tobytes()).hexdigest()[:16])


# ----------------------------------------------------------------------------- cells


@dataclass(frozen=True)
class Cell:
    """One grid point: protect against ``target`` with ``attack`` at budget ``eps``.

    ``alpha`` is the step size actually used; ``steps`` is 1 for single-step attacks.
    A strength-preset cell has ``attack = "preset:<strength>"``, ``eps`` the preset's
    per-pixel cap and ``alpha = 0`` (its L2 step is set per image by the preset).
    """

    target: str
    attack: str
    eps: float
    steps: int
    alpha: float
    objective: str

    @property
    def label(self) -> str:
        return (f"{self.target} {self.attack} {self.objective} "
                f"eps={self.eps * 255:.3g}/255 steps={self.steps}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["eps_255"] = self.eps * 255
        d["alpha_255"] = self.alpha * 255
        return d


def _takes(attack: str, option: str) -> bool:
    return option in inspect.signature(attack_info(attack).factory).parameters


def make_attack(cell: Cell) -> Any:
    """The :class:`attacks.Attack` of ``cell``."""
    return create_attack(
        cell.attack, eps=cell.eps,
        steps=cell.steps if _takes(cell.attack, "steps") else None,
        alpha=cell.alpha if _takes(cell.attack, "alpha") else None,
    )


def build_cells(cfg: BenchConfig, target_names: Sequence[str]) -> list[Cell]:
    """The grid, in a fixed order; single-step attacks appear once per budget."""
    cells: list[Cell] = []
    for target in target_names:
        for attack in cfg.attacks:
            for eps in cfg.eps:
                step_list = cfg.steps if _takes(attack, "steps") else (1,)
                for steps in step_list:
                    alpha = cfg.alpha if _takes(attack, "alpha") else None
                    try:
                        atk = create_attack(
                            attack, eps=eps,
                            steps=steps if _takes(attack, "steps") else None, alpha=alpha)
                    except ValueError as exc:
                        raise ConfigError(f"attack {attack}: {exc}") from None
                    for objective in cfg.objectives:
                        cell = Cell(target, attack, eps, atk.steps, atk.alpha, objective)
                        if cell not in cells:
                            cells.append(cell)
        for strength in cfg.strengths:
            preset = STRENGTHS[strength]
            cells.append(Cell(target, PRESET_PREFIX + strength, preset.eps, preset.steps, 0.0,
                              "away"))
    return cells


def _grey_target(target: Target, x: Tensor) -> Tensor:
    """Flat mid-grey ``(1, 3, h, w)`` at ``target``'s output size: the ``toward`` target."""
    with torch.no_grad():
        y = target(x[:1], target.conditions[0].vector)
    return torch.full((1, 3, *y.shape[-2:]), 0.5, device=x.device)


def make_objectives(objective: str, target: Target, x: Tensor) -> list[tuple[str, Objective]]:
    """``[(attacked_condition, objective)]`` for one batch ``x`` ``(B, 3, H, W)`` in [0, 1].

    One entry named :data:`ALL_CONDITIONS` for every objective but ``specific``,
    which gives one per condition of ``target``.
    """
    if objective == "away":
        return [(ALL_CONDITIONS, AwayFromClean(target, x))]
    if objective == "joint":
        return [(ALL_CONDITIONS, JointConditions(target, x))]
    if objective == "iterative":
        return [(ALL_CONDITIONS, IterativeConditions(target, x))]
    if objective == "toward":
        return [(ALL_CONDITIONS, TowardOutput(target, x, _grey_target(target, x)))]
    if objective == "spread":
        return [(ALL_CONDITIONS, SpreadSpectrum(lambda xb: JointConditions(target, xb), x))]
    if objective == "specific":
        return [(c.name, AwayFromClean(target, x, [c])) for c in target.conditions]
    raise ConfigError(f"unknown objective {objective!r}; choose from {', '.join(OBJECTIVES)}")


# ----------------------------------------------------------------------------- results


@dataclass
class CellResult:
    """What one cell measured: per-output ``rows`` and per-image ``images`` records."""

    cell: Cell
    key: str
    rows: list[dict[str, Any]]
    images: list[dict[str, Any]]
    seconds: float
    cached: bool = False
    folder: Path | None = None


@dataclass
class BenchResult:
    """Everything a run produced. ``rows``: one per (cell, evaluated target, channel,
    image, attacked condition, evaluated condition); ``images``: one per (cell, image,
    attacked condition) with perceptibility and seconds; ``aggregates``: one per
    (cell, evaluated target, channel). ``files`` maps a kind (``json``, ``csv``, ...)
    to the path written, once :func:`disrupt.bench.report.write_report` ran."""

    config: BenchConfig
    environment: dict[str, Any]
    cells: list[CellResult]
    aggregates: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    out: Path | None = None
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def rows(self) -> list[dict[str, Any]]:
        return [r for c in self.cells for r in c.rows]

    @property
    def images(self) -> list[dict[str, Any]]:
        return [r for c in self.cells for r in c.images]

    @property
    def skipped(self) -> int:
        """Cells loaded from the cache instead of run."""
        return sum(c.cached for c in self.cells)


def _finite(value: float) -> float:
    return PSNR_CAP if math.isinf(value) and value > 0 else min(value, PSNR_CAP)


def _mean(values: Iterable[float]) -> float | None:
    vals = list(values)
    return sum(vals) / len(vals) if vals else None


def aggregate(cells: Sequence[CellResult]) -> list[dict[str, Any]]:
    """Means per (cell, evaluated target, channel); fractions as numbers in [0, 1]."""
    out: list[dict[str, Any]] = []
    for res in cells:
        per_image = res.images
        groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for row in res.rows:
            groups.setdefault((row["evaluated_on"], row["channel"]), []).append(row)
        for (evaluated_on, channel), rows in groups.items():
            judged = [r for r in rows if r["edit_success_clean"] is not None]
            worked = [r for r in judged if r["edit_success_clean"]]
            out.append({
                **res.cell.to_dict(),
                "cell": res.key,
                "evaluated_on": evaluated_on,
                "transfer": evaluated_on != res.cell.target,
                "channel": channel,
                "n": len(rows),
                "images": len({r["image"] for r in rows}),
                "ruiz_mse": _mean(r["ruiz_mse"] for r in rows),
                "disrupted_fraction": _mean(float(r["disrupted"]) for r in rows),
                "l1": _mean(r["l1"] for r in rows),
                "output_psnr": _mean(r["psnr"] for r in rows),
                "output_ssim": _mean(r["ssim"] for r in rows),
                "image_psnr": _mean(r["image_psnr"] for r in per_image),
                "image_ssim": _mean(r["image_ssim"] for r in per_image),
                "image_linf_255": max((r["image_linf_255"] for r in per_image), default=None),
                "seconds_per_image": _mean(r["seconds"] for r in per_image),
                "semantic_n": len(judged),
                "edit_success_clean": _mean(float(r["edit_success_clean"]) for r in judged),
                "edit_success_protected": _mean(
                    float(r["edit_success_protected"]) for r in judged),
                "edit_blocked_fraction": _mean(
                    float(not r["edit_success_protected"]) for r in worked),
                "threshold": rows[0]["threshold"],
            })
    return out


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
    Image.fromarray(to_uint8(x)).save(buf, format="PNG")
    data = buf.getvalue()
    if path is not None:
        path.write_bytes(data)
    with Image.open(io.BytesIO(data)) as im:
        arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr.transpose(2, 0, 1).copy())[None].to(x)


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


def image_stem(name: str, condition: str) -> str:
    stem = Path(name).stem
    return stem if condition == ALL_CONDITIONS else f"{stem}.{condition}"


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
    for t in targets.values():
        if isinstance(t, nn.Module):
            t.to(device)
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
