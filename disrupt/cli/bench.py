"""``disrupt bench``: benchmark grids from a config and options, and ``--speed``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from disrupt.cli.app import (
    UsageError,
    _device_or_exit,
    _echo_json,
    _fail,
    _parse_weights,
    _usage_exit,
    app,
)
from disrupt.cli.real_photos import RealPhotoOptions, refuse_others, run_real_photos


def _bench_overrides(options: dict[str, Any]) -> dict[str, Any]:
    """CLI options that were given (not None, not empty), as config keys."""
    return {k: v for k, v in options.items() if v is not None and v != [] and v is not False}


@app.command()
def bench(
    config: Annotated[
        Path | None, typer.Argument(help="Config file (.toml or .json); options override it.")
    ] = None,
    images: Annotated[Path | None, typer.Option(help="Folder of images.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("bench-out"),
    target: Annotated[list[str] | None, typer.Option("--target", "-t",
                                                     help="Target to attack (repeatable).")] = None,
    weights: Annotated[list[Path] | None, typer.Option("--weights", "-w",
                                                       help="NAME=PATH checkpoint.")] = None,
    evaluate_on: Annotated[list[str] | None, typer.Option(
        help="Also evaluate every cell on this target (transfer; repeatable).")] = None,
    attack: Annotated[list[str] | None, typer.Option(help="Attack (repeatable).")] = None,
    eps: Annotated[list[str] | None, typer.Option(help="Budget, e.g. 8/255 (repeatable).")] = None,
    steps: Annotated[list[int] | None, typer.Option(
        help="Iterations (repeatable; --real-photos: one value, default the preset's).")] = None,
    alpha: Annotated[str | None, typer.Option(help="Step size, e.g. 1/255.")] = None,
    objective: Annotated[list[str] | None, typer.Option(
        help="away, joint, iterative, specific, toward, spread (repeatable).")] = None,
    strength: Annotated[list[str] | None, typer.Option(
        help="Also protect() each image at this preset, per target: low, mid, high "
             "(repeatable; a cell 'preset:NAME'); --real-photos: the one preset used "
             "(default mid).")] = None,
    channel: Annotated[list[str] | None, typer.Option(
        help="none, jpeg:Q, resize:S, blur:SIGMA (repeatable).")] = None,
    start: Annotated[str | None, typer.Option(help="First file name to use.")] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many images.")] = None,
    center_crop: Annotated[int | None, typer.Option(help="Centre square crop side.")] = None,
    resize: Annotated[int | None, typer.Option(help="Resize images to NxN.")] = None,
    celeba_crop: Annotated[bool, typer.Option(
        "--celeba-crop", help="CelebA preprocessing: CenterCrop(89), resize 64.")] = False,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda, cuda:N or mps "
                                               "(default: the config's, else cpu).")] = None,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Images per attack batch.")] = None,
    no_semantic: Annotated[bool, typer.Option(
        "--no-semantic", help="Skip evaluator-based semantic success.")] = False,
    speed: Annotated[bool, typer.Option(
        "--speed", help="Time default protect() per photo size, and the research code's loop "
        "against ours at equal work, instead of the grid.")] = False,
    size: Annotated[list[str] | None, typer.Option(
        help="--speed photo size WxH (repeatable); default 256x256, 1024x1024, 4000x3000.")] = None,
    photo: Annotated[Path | None, typer.Option(
        help="--speed: resize this photo instead of random pixels.")] = None,
    repeats: Annotated[int, typer.Option(help="--speed: timed runs each, fastest kept.")] = 1,
    workers: Annotated[int | None, typer.Option(
        help="Run the grid's chunks on a local Dask cluster of N worker processes "
             "(needs the dask extra).")] = None,
    scheduler: Annotated[str | None, typer.Option(
        help="Run on an existing Dask cluster, e.g. tcp://HOST:8786.")] = None,
    real_photos: Annotated[Path | None, typer.Option(
        "--real-photos", metavar="DATA_DIR",
        help="Instead of the grid, protect whole real photos from this folder (lfw/, "
             "utkface/, celeba10k/images/, photos/astronaut.png) and measure every target "
             "as saved, after JPEG 95/75/50, resize 50%, blur 1.5 and a social-platform "
             "chain; writes real_photos.json and real_photos.md.")] = None,
    sets: Annotated[list[str] | None, typer.Option(
        "--sets", help="--real-photos set: lfw, utkface, celeba, astronaut (repeatable; "
                       "default all).")] = None,
    per_set: Annotated[int | None, typer.Option(
        "--per-set", help="--real-photos: photos from each dataset (default 3).")] = None,
    large: Annotated[bool, typer.Option(
        "--large", help="--real-photos: also the astronaut upscaled to 4000x3000 "
                        "(slow).")] = False,
    detector: Annotated[str | None, typer.Option(
        help="--real-photos: face detector, haar (default) or dlib.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON results.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Benchmark a grid of targets x attacks x budgets x steps x objectives (or --speed,
    or --real-photos)."""
    real_only = {"--sets": bool(sets), "--per-set": per_set is not None, "--large": large,
                 "--detector": detector is not None}
    grid_or_speed = {
        "--speed": speed, "CONFIG": config is not None, "--images": images is not None,
        "--evaluate-on": bool(evaluate_on), "--attack": bool(attack), "--eps": bool(eps),
        "--alpha": alpha is not None, "--objective": bool(objective),
        "--channel": bool(channel), "--start": start is not None,
        "--limit": limit is not None, "--center-crop": center_crop is not None,
        "--resize": resize is not None, "--celeba-crop": celeba_crop,
        "--batch-size": batch_size is not None, "--no-semantic": no_semantic,
        "--size": bool(size), "--photo": photo is not None, "--repeats": repeats != 1,
        "--workers": workers is not None, "--scheduler": scheduler is not None}
    try:
        if real_photos is None:
            refuse_others(real_only, "needs --real-photos")
        else:
            refuse_others(grid_or_speed, "cannot be used with --real-photos")
    except UsageError as exc:
        raise _usage_exit(exc) from None
    if real_photos is not None:
        run_real_photos(RealPhotoOptions(
            real_photos, list(sets or []), per_set, large, list(target or []),
            list(weights or []), list(strength or []), list(steps or []), detector, seed,
            device, threads), out, as_json, quiet)
        return
    if speed:
        _speed(target or [], weights or [], size or [], photo, out, seed or 0,
               _device_or_exit(device or "auto"), repeats, threads, as_json, quiet)
        return
    from disrupt.bench.config import BenchConfig, ConfigError, config_from_mapping, load_config

    try:
        weight_pairs = {}
        for w in weights or []:
            name, sep, path = str(w).partition("=")
            if not sep:
                raise UsageError(f"--weights {w}: use NAME=PATH in bench")
            weight_pairs[name] = path
        base = load_config(config) if config is not None else BenchConfig()
        overrides = _bench_overrides({
            "images": images, "targets": target, "weights": weight_pairs or None,
            "evaluate_on": evaluate_on, "attacks": attack, "eps": eps, "steps": steps,
            "alpha": alpha, "objectives": objective, "strengths": strength,
            "channels": channel, "start": start,
            "limit": limit, "center_crop": center_crop, "resize": resize,
            "celeba_crop": celeba_crop, "seed": seed, "threads": threads,
            "batch_size": batch_size,
            "device": str(_device_or_exit(device)) if device else None,
        })
        if no_semantic:
            overrides["semantic"] = False
        cfg = config_from_mapping(overrides, base)
        _check_cluster(workers, scheduler)
    except (ConfigError, UsageError) as exc:
        raise _fail(exc) from None
    _run_bench(cfg, out, as_json, quiet, workers, scheduler)


def _check_cluster(workers: int | None, scheduler: str | None) -> None:
    """:class:`UsageError` for bad ``--workers`` / ``--scheduler`` (no Dask needed)."""
    from disrupt.distributed.cluster import check_cluster_options
    from disrupt.errors import SettingError

    try:
        check_cluster_options(workers, scheduler)
    except SettingError as exc:
        raise UsageError(str(exc)) from None


def _progress_bar(quiet: bool) -> Any:
    """A rich progress bar on stderr, or ``None`` when quiet or not a terminal."""
    if quiet or not sys.stderr.isatty():
        return None
    from rich.console import Console
    from rich.progress import Progress

    return Progress(console=Console(stderr=True), transient=True)


def _run_bench(cfg: Any, out: Path, as_json: bool, quiet: bool, workers: int | None = None,
               scheduler: str | None = None) -> None:
    from contextlib import nullcontext

    from disrupt.bench.config import ConfigError
    from disrupt.bench.grid import run_benchmark
    from disrupt.bench.report import markdown_summary
    from disrupt.errors import DisruptError
    from targets import CheckpointError, UnknownTargetError

    bar = _progress_bar(quiet)
    try:
        with _cluster(workers, scheduler, quiet) as client:
            extra: dict[str, Any] = {}
            executor = None
            if client is not None:
                from disrupt.distributed.bench import bench_executor
                from disrupt.distributed.cluster import describe

                executor, extra = bench_executor(client, cfg), describe(client)
            with bar if bar is not None else nullcontext():
                progress = None
                if bar is not None:
                    task = bar.add_task("bench", total=None)
                    progress = lambda done, total, what: bar.update(  # noqa: E731
                        task, completed=done, total=total, description=what)
                result = run_benchmark(cfg, out, progress=progress, executor=executor,
                                       environment_extra=extra)
    except (ConfigError, DisruptError, CheckpointError, UnknownTargetError, OSError) as exc:
        raise _fail(exc) from None
    for note in result.notes:
        typer.echo(f"note: {note}", err=True)
    if as_json:
        _echo_json({"files": {k: str(v) for k, v in result.files.items()},
                    "cells": len(result.cells), "skipped": result.skipped,
                    "notes": result.notes, "aggregates": result.aggregates})
        return
    typer.echo(markdown_summary(result))
    for kind, path in result.files.items():
        typer.echo(f"{kind}: {path}")


def _speed(targets: list[str], weights: list[Path], sizes: list[str], photo: Path | None,
           out: Path, seed: int, device: str, repeats: int, threads: int | None,
           as_json: bool, quiet: bool) -> None:
    from disrupt.api import default_targets, resolve_targets
    from disrupt.bench.speed import SPEED_SIZES, parse_size, speed_benchmark, write_speed
    from disrupt.errors import DisruptError
    from disrupt.imaging import load_image
    from targets import CheckpointError, UnknownTargetError

    try:
        dims = [parse_size(s) for s in sizes] or list(SPEED_SIZES)
        weight_map = _parse_weights(targets, weights)
        if repeats < 1:
            raise UsageError(f"--repeats must be at least 1, got {repeats}")
        if threads is not None and threads < 1:
            raise UsageError(f"--threads must be at least 1, got {threads}")
    except (ValueError, UsageError) as exc:
        raise _usage_exit(exc) from None
    notes = []
    if not targets and not default_targets():
        targets = ["stargan.tiny"]
        notes.append("no bundled weights installed: timing stargan.tiny (tiny random model; "
                     "the ratio mostly measures resizing, not a real generator)")
    import torch

    from disrupt.bench.report import environment

    if threads is not None:
        torch.set_num_threads(threads)

    env = environment(seed, torch.device(device))  # the commit and threads the run starts with
    bar = _progress_bar(quiet)
    try:
        chosen = resolve_targets(targets or None, weight_map)
        image = load_image(photo).rgb if photo is not None else None
        out.mkdir(parents=True, exist_ok=True)
        if bar is None:
            rows, loops = speed_benchmark(chosen, sizes=dims, seed=seed, device=device,
                                          photo=image, repeats=repeats)
        else:
            with bar:
                task = bar.add_task("speed", total=len(dims))
                rows, loops = speed_benchmark(
                    chosen, sizes=dims, seed=seed, device=device, photo=image, repeats=repeats,
                    progress=lambda d, t, what: bar.update(task, completed=d, total=t,
                                                           description=what))
        files = write_speed(rows, loops, out, notes, env)
    except (DisruptError, CheckpointError, UnknownTargetError, OSError,
            RuntimeError) as exc:  # RuntimeError: the loops' results disagree
        raise _fail(exc) from None
    for note in notes:
        typer.echo(f"note: {note}", err=True)
    if as_json:
        _echo_json({"rows": [r.to_dict() for r in rows], "loops": loops.to_dict(),
                    "notes": notes,
                    "files": {k: str(v) for k, v in files.items()}})
        return
    typer.echo(files["markdown"].read_text())
    for kind, path in files.items():
        typer.echo(f"{kind}: {path}")


def _cluster(workers: int | None, scheduler: str | None, quiet: bool) -> Any:
    """A context giving a Dask client for ``--workers`` / ``--scheduler``, else ``None``;
    says on stderr where the Dask dashboard is, when there is one."""
    from contextlib import contextmanager, nullcontext

    if workers is None and scheduler is None:
        return nullcontext(None)
    from disrupt.distributed.cluster import dashboard_link, open_client

    @contextmanager
    def opened() -> Any:
        with open_client(workers, scheduler) as client:
            link = dashboard_link(client, local=scheduler is None)
            where = scheduler or f"a local cluster of {workers} worker processes"
            if not quiet:
                typer.echo(f"running on {where}"
                           + (f"; Dask dashboard: {link}" if link else ""), err=True)
            yield client

    return opened()
