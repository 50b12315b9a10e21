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
hash of everything that defines them; a re-run skips finished cells. Each cell runs
as chunks, one per batch, each seeded by the run's seed and its batch number alone;
finished chunks of an unfinished cell are kept too, and the chunks can run anywhere
(:mod:`disrupt.distributed` runs them on a Dask cluster).

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
from dataclasses import dataclass
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
from disrupt.core.seeding import MAX_SEED, move_to, seeded
from disrupt.eval.channels import Channel, parse_channel
from disrupt.eval.evaluation import measure_disruption, target_outputs
from disrupt.eval.metrics import perceptibility
from disrupt.eval.semantic import SemanticJudge
from disrupt.files import write_atomically, write_text_atomically
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

CACHE_VERSION = 2  # bump when what a cell stores changes (2: each batch seeded on its own)

Progress = Callable[[int, int, str], None]
"""``progress(done, total, what)``: chunks (one batch of one cell) finished so far,
chunks in the grid, the cell of the chunk just finished (or the next one)."""


@dataclass(frozen=True)
class ChunkTask:
    """One unit of work: batch number ``index`` (its ``images``) of ``cell``."""

    cell: Cell
    key: str
    index: int
    images: list[BenchImage]


@dataclass
class ChunkResult:
    """What one chunk measured, and the PNG bytes of every image it saved (by file name,
    written into the cell's folder by the process that holds the output folder)."""

    index: int
    rows: list[dict[str, Any]]
    images: list[dict[str, Any]]
    pngs: dict[str, bytes]
    seconds: float


Executor = Callable[[Sequence[ChunkTask]], Iterator[tuple[ChunkTask, ChunkResult]]]
"""Runs chunks and yields each with its result as it finishes, in any order. The
default runs them one after the other in this process; :mod:`disrupt.distributed`
runs them on a Dask cluster."""


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


def _png_roundtrip(x: Tensor) -> tuple[bytes, Tensor]:
    """Encode ``(1, 3, H, W)`` as PNG and decode it: ``(the file's bytes, what it holds)``."""
    buf = io.BytesIO()
    to_pil(x).save(buf, format="PNG")
    data = buf.getvalue()
    with Image.open(io.BytesIO(data)) as im:
        return data, from_pil(im).to(x)


def batch_seed(seed: int, index: int) -> int:
    """The seed of the ``index``-th batch of a cell: ``seed`` itself for the first batch,
    then a fixed odd-step walk through the 64-bit seeds. Seeding each batch on its own,
    rather than letting one stream run through a cell, makes a batch's numbers the
    same in every process that runs it (see :mod:`disrupt.distributed`)."""
    return (seed + index * 0x9E3779B97F4A7C15) % (MAX_SEED + 1)


def plan_batches(images: Sequence[BenchImage], size: int) -> list[list[BenchImage]]:
    """The batches every cell runs, in order (see :func:`_batches`)."""
    return list(_batches(images, size))


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

    def run_chunk(self, task: ChunkTask) -> ChunkResult:
        """Attack and measure one batch of one cell; touches no file.

        The batch is seeded on its own (:func:`batch_seed`), so its numbers do not
        depend on which process runs it, nor on the batches run before it.
        """
        cell, key, batch = task.cell, task.key, task.images
        rows: list[dict[str, Any]] = []
        per_image: list[dict[str, Any]] = []
        pngs: dict[str, bytes] = {}
        target = self.targets[cell.target]
        preset = cell.attack.removeprefix(PRESET_PREFIX) if cell.attack.startswith(
            PRESET_PREFIX) else None
        attack = make_attack(cell) if preset is None else None
        budget = resolve_budget(preset) if preset is not None else None
        started = time.perf_counter()
        seed = batch_seed(self.cfg.seed, task.index)
        with seeded(seed, self.device):  # stochastic generators draw from it
            gen = torch.Generator(device=self.device).manual_seed(seed)
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
                saved_list = []
                for i, im in enumerate(batch):
                    data, reloaded = _png_roundtrip(q[i:i + 1])
                    pngs[f"{image_stem(im.name, condition)}.png"] = data
                    saved_list.append(reloaded)
                saved = torch.cat(saved_list)
                per_image += self._perceptibility(cell, key, batch, x, saved, condition, seconds)
                rows += self._measure(cell, key, batch, x, saved, condition)
        return ChunkResult(task.index, rows, per_image, pngs, time.perf_counter() - started)

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


def _chunk_path(folder: Path, index: int) -> Path:
    return folder / f"chunk-{index:05d}.json"


def _read_chunk(folder: Path, key: str, index: int) -> ChunkResult | None:
    """A finished chunk of an unfinished cell (its PNGs were written before it)."""
    try:
        data = json.loads(_chunk_path(folder, index).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if data.get("key") != key or data.get("version") != CACHE_VERSION:
        return None
    return ChunkResult(index, data["rows"], data["images"], {}, float(data["seconds"]))


def _write_chunk(folder: Path, key: str, res: ChunkResult) -> None:
    """The chunk's PNGs, then its record: a record on disk means its images are too."""
    for name, data in res.pngs.items():
        write_atomically(folder / name, lambda f, data=data: f.write(data))  # type: ignore[misc]
    record = {"version": CACHE_VERSION, "key": key, "index": res.index,
              "seconds": res.seconds, "rows": res.rows, "images": res.images}
    write_text_atomically(_chunk_path(folder, res.index), json.dumps(record))


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


def load_runner(cfg: BenchConfig, judges: Mapping[str, SemanticJudge] | None = None
                ) -> tuple[_Runner, list[str], list[str]]:
    """Everything a process needs to run chunks of ``cfg``: targets (on ``cfg.device``),
    judges (``None``: the bundled ones where installed, when ``cfg.semantic``) and
    channels. Returns ``(runner, attacked target names, notes)``."""
    from disrupt.eval.semantic import load_judges

    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    device = torch.device(cfg.device)
    channels = [parse_channel(s) for s in cfg.channels]
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
    return _Runner(cfg, targets, judges, channels, device), names, notes


def _serial(runner: _Runner) -> Executor:
    def execute(tasks: Sequence[ChunkTask]) -> Iterator[tuple[ChunkTask, ChunkResult]]:
        for task in tasks:
            yield task, runner.run_chunk(task)
    return execute


def run_benchmark(
    cfg: BenchConfig,
    out: str | os.PathLike[str],
    *,
    judges: Mapping[str, SemanticJudge] | None = None,
    progress: Progress | None = None,
    write: bool = True,
    executor: Executor | None = None,
    environment_extra: Mapping[str, Any] | None = None,
) -> BenchResult:
    """Run (or resume) the grid of ``cfg``, writing into the folder ``out``.

    Each cell runs as *chunks*, one per batch of ``cfg.batch_size`` images, each seeded
    on its own. This process writes every file: a chunk's PNGs and its record
    (``out/cells/<key>/chunk-NNNNN.json``) as it finishes, then the cell's
    ``cell.json`` once all its chunks are in (the chunk records are then removed). A
    re-run skips finished cells and finished chunks.

    Args:
        cfg: the settings.
        out: output folder (created); cells are cached in ``out/cells/<key>/``.
        judges: evaluators per target name for semantic success; ``None`` loads the
            bundled ones where installed (when ``cfg.semantic``), with a note for each
            target that has none.
        progress: ``progress(done, total, what)`` before the first chunk and after each.
        write: also write the report (JSON, CSV, markdown, plots, grid) into ``out``.
        executor: runs the chunks; ``None`` runs them here, one after the other
            (:func:`disrupt.distributed.bench_executor` runs them on a Dask cluster,
            whose workers load their own targets and judges from ``cfg``).
        environment_extra: recorded in the report's environment (where the chunks ran).

    Returns:
        :class:`BenchResult`.

    Raises:
        ConfigError: bad settings; DisruptError / CheckpointError: unreadable images or
        weights.
    """
    from disrupt.bench.report import environment, write_report

    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = list_images(cfg)
    images = [load_bench_image(p, cfg.center_crop, cfg.resize) for p in files]
    runner, names, notes = load_runner(cfg, judges)
    device, targets = runner.device, runner.targets
    eval_names = list(dict.fromkeys([*names, *cfg.evaluate_on]))
    cells = build_cells(cfg, names)
    context = {
        "version": CACHE_VERSION,
        "images": [(im.name, im.digest) for im in images],
        "center_crop": cfg.center_crop, "resize": cfg.resize,
        "weights": {n: _fingerprint(n, dict(cfg.weights)) for n in eval_names},
        "evaluate_on": list(cfg.evaluate_on), "channels": [c.name for c in runner.channels],
        "threshold": cfg.threshold, "seed": cfg.seed, "device": device.type,
        "batch_size": cfg.batch_size, "judges": sorted(runner.judges),
    }
    batches = plan_batches(images, cfg.batch_size)
    finished: dict[str, CellResult] = {}
    chunks: dict[str, dict[int, ChunkResult]] = {}
    todo: list[ChunkTask] = []
    for cell in cells:
        key = cell_key(cell, context)
        folder = out_dir / "cells" / key
        cached = _read_cell(folder, key, cell)
        if cached is not None:
            finished[key] = cached
            continue
        folder.mkdir(parents=True, exist_ok=True)
        chunks[key] = {}
        for index, batch in enumerate(batches):
            done_chunk = _read_chunk(folder, key, index)
            if done_chunk is not None:
                chunks[key][index] = done_chunk
            else:
                todo.append(ChunkTask(cell, key, index, batch))
    total = len(cells) * len(batches)
    done = total - len(todo)
    if progress is not None:
        progress(done, total, todo[0].cell.label if todo else "done")
    by_key = {cell_key(cell, context): cell for cell in cells}
    stream = (executor or _serial(runner))(todo)
    try:
        for task, res in stream:
            folder = out_dir / "cells" / task.key
            _write_chunk(folder, task.key, res)
            chunks[task.key][task.index] = res
            if len(chunks[task.key]) == len(batches):
                finished[task.key] = _finish_cell(by_key[task.key], task.key,
                                                  chunks.pop(task.key), folder)
            done += 1
            if progress is not None:
                progress(done, total, task.cell.label)
    finally:  # on Ctrl-C too: the executor cancels what it still has queued
        close = getattr(stream, "close", None)
        if close is not None:
            close()
    for key, parts in list(chunks.items()):  # every chunk was already on disk
        finished[key] = _finish_cell(by_key[key], key, parts, out_dir / "cells" / key)
    results = [finished[cell_key(cell, context)] for cell in cells]
    env = environment(cfg.seed, device)
    if environment_extra:
        env.update(environment_extra)
    result = BenchResult(cfg, env, results, aggregate(results), notes, out_dir)
    if write:
        write_report(result, targets, images)
    return result


def _finish_cell(cell: Cell, key: str, parts: Mapping[int, ChunkResult],
                 folder: Path) -> CellResult:
    """Join a cell's chunks in batch order, record the cell, drop the chunk records."""
    ordered = [parts[i] for i in sorted(parts)]
    res = CellResult(cell, key, [r for c in ordered for r in c.rows],
                     [r for c in ordered for r in c.images],
                     sum(c.seconds for c in ordered), folder=folder)
    _write_cell(res, folder)
    for index in parts:
        _chunk_path(folder, index).unlink(missing_ok=True)
    return res
