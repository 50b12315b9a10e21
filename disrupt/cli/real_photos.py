"""``disrupt bench --real-photos DATA_DIR``: the default protection on whole real photos.

The options are checked before any model is loaded or anything is written; the
results go to ``real_photos.json`` and ``real_photos.md`` in ``--out`` (atomically),
the table to stdout and one line per photo to stderr (unless ``--quiet``).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from disrupt.cli.app import (
    UsageError,
    _check_detector,
    _check_device_and_seed,
    _check_strength,
    _echo_json,
    _fail,
    _parse_weights,
    _usage_exit,
)

#: ``--per-set`` when not given: as ``benchmarks/real_photos.py``.
DEFAULT_PER_SET = 3


@dataclass(frozen=True)
class RealPhotoOptions:
    """The ``bench`` options a real-photo run uses (``None``: not given)."""

    data: Path
    sets: list[str]
    per_set: int | None
    large: bool
    targets: list[str]
    weights: list[Path]
    strength: list[str]
    steps: list[int]
    detector: str | None
    seed: int | None
    device: str | None
    threads: int | None


def refuse_others(given: dict[str, bool], why: str) -> None:
    """:class:`UsageError` ``"<option> <why>"`` for the first option in ``given`` that
    was given but means nothing here (e.g. ``--speed`` with ``--real-photos``)."""
    for option, on in given.items():
        if on:
            raise UsageError(f"{option} {why}")


def _one(values: list[Any], option: str) -> Any:
    """The single value of a repeatable option (``None`` when absent)."""
    if len(values) > 1:
        raise UsageError(f"{option}: give one value with --real-photos, got {len(values)}")
    return values[0] if values else None


@dataclass(frozen=True)
class _Checked:
    """The settings of a run, checked, with the defaults filled in."""

    sets: list[str]
    per_set: int
    strength: str
    steps: int | None
    detector: str
    seed: int
    device: Any  # torch.device
    weights: dict[str, Path]


def _check(o: RealPhotoOptions) -> _Checked:
    """:class:`UsageError` for a bad option, ``DisruptError`` for a missing data folder
    or set folder (:func:`disrupt.bench.photo_sets.check_data`); nothing is loaded."""
    from disrupt.bench.photo_sets import SETS, check_data
    from disrupt.core.budget import DEFAULT_STRENGTH

    sets = list(dict.fromkeys(o.sets)) or list(SETS)  # order kept, repeats dropped
    unknown = [s for s in sets if s not in SETS]
    if unknown:
        raise UsageError(f"--sets: unknown set {unknown[0]!r} (one of {', '.join(SETS)})")
    per_set = DEFAULT_PER_SET if o.per_set is None else o.per_set
    if per_set < 1:
        raise UsageError(f"--per-set must be at least 1, got {per_set}")
    strength = _one(o.strength, "--strength") or DEFAULT_STRENGTH
    _check_strength(strength)
    steps = _one(o.steps, "--steps")
    if steps is not None and steps < 1:
        raise UsageError(f"--steps must be at least 1, got {steps}")
    if o.threads is not None and o.threads < 1:
        raise UsageError(f"--threads must be at least 1, got {o.threads}")
    detector = o.detector or "haar"
    _check_detector(detector)
    seed = 0 if o.seed is None else o.seed
    device = _check_device_and_seed(o.device or "cpu", seed)
    weights = _parse_weights(o.targets, o.weights)
    check_data(o.data, sets, per_set)
    return _Checked(sets, per_set, strength, steps, detector, seed, device, weights)


def _command(o: RealPhotoOptions, c: _Checked, out: Path) -> str:
    """The command that repeats this run, every setting spelled out."""
    args = ["disrupt", "bench", "--real-photos", str(o.data),
            *[a for s in c.sets for a in ("--sets", s)], "--per-set", str(c.per_set),
            *(["--large"] if o.large else []),
            *[a for t in o.targets for a in ("--target", t)],
            *[a for w in o.weights for a in ("--weights", str(w))],
            "--strength", c.strength,
            *(["--steps", str(c.steps)] if c.steps is not None else []),
            "--detector", c.detector, "--seed", str(c.seed),
            *(["--device", o.device] if o.device else []),
            *(["--threads", str(o.threads)] if o.threads is not None else []),
            "--out", str(out)]
    return shlex.join(args)


def run_real_photos(o: RealPhotoOptions, out: Path, as_json: bool, quiet: bool) -> None:
    """Check the options, protect and measure the photos, write and print the report.

    Exit 2 for a usage error (an unknown set, a bad number), 1 for a runtime one (a
    missing data folder or set folder, an unreadable photo, a checkpoint problem)."""
    from disrupt.errors import DisruptError

    try:
        checked = _check(o)
    except UsageError as exc:  # reported as given (_fail strips quotes at the ends)
        raise _usage_exit(exc) from None
    except DisruptError as exc:
        raise _fail(exc) from None
    results, files = _run(o, checked, out, _command(o, checked, out), quiet)
    if as_json:
        shown = ("targets", "channels", "threshold", "sets", "all")
        _echo_json({"files": {k: str(v) for k, v in files.items()},
                    **{k: results[k] for k in shown}})
        return
    from disrupt.bench.real_photos import markdown

    typer.echo(markdown(results), nl=False)
    for kind, path in files.items():
        typer.echo(f"{kind}: {path}")


def _run(o: RealPhotoOptions, c: _Checked, out: Path, command: str,
         quiet: bool) -> tuple[dict[str, Any], dict[str, Path]]:
    """Load targets and photos, make ``out``, run, write; runtime errors exit 1 (2 for
    an unknown target)."""
    import torch

    from disrupt.api import resolve_targets
    from disrupt.bench.photo_sets import choose_photos
    from disrupt.bench.real_photos import (
        progress_line,
        report_head,
        run_benchmark,
        write_real_photos,
    )
    from disrupt.bench.report import environment
    from disrupt.errors import DisruptError
    from targets import CheckpointError, UnknownTargetError

    def progress(record: dict[str, Any]) -> None:
        if not quiet:
            typer.echo(progress_line(record), err=True)

    if o.threads is not None:
        torch.set_num_threads(o.threads)
    env = environment(c.seed, c.device)  # the commit and threads the run starts with
    try:
        chosen = resolve_targets(o.targets or None, c.weights)
        photos = choose_photos(o.data, c.sets, c.per_set, large=o.large)
        out.mkdir(parents=True, exist_ok=True)
        if not quiet:
            typer.echo(f"{len(photos)} photos: "
                       + ", ".join(f"{p.set}/{p.name}" for p in photos), err=True)
        measured = run_benchmark(photos, targets=chosen, seed=c.seed, strength=c.strength,
                                 steps=c.steps, detector=c.detector, device=c.device,
                                 progress=progress)
        results = {"command": command, "environment": env, "data": str(o.data),
                   "sets_asked": c.sets, "per_set": c.per_set, "large": o.large,
                   "strength": c.strength, "steps": c.steps, "detector": c.detector,
                   **measured}
        head = report_head(command, threads=env["torch_threads"], commit=env["git_commit"],
                           dirty=env["git_dirty"], seed=c.seed, strength=c.strength)
        files = write_real_photos(results, out, head)
    except (DisruptError, CheckpointError, UnknownTargetError, OSError) as exc:
        raise _fail(exc) from None
    return results, files
