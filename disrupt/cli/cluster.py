"""``disrupt protect --workers N / --scheduler ADDRESS``: many photos on a Dask cluster.

Renders exactly what the in-process loop renders (summaries in input order, errors on
stderr as they come, exit 1 when any photo failed), from :func:`protect_many`.
"""

from __future__ import annotations

import sys
from contextlib import closing, nullcontext
from pathlib import Path
from typing import Any

import typer

from disrupt.cli.app import EXIT_FAILURE, _echo_json, _err, _fail


def protect_on_cluster(inputs: list[Path], outputs: list[Path], targets: list[str],
                       weights: dict[str, Path], budget: Any, faces: bool | None,
                       mask: Path | None, start_from: Path | str | None, seed: int,
                       device: str, overwrite: bool, require_disruption: bool, as_json: bool,
                       quiet: bool, workers: int | None, scheduler: str | None, *,
                       detector: str = "haar", jpeg_quality: int | None = None,
                       protector: str | None = None) -> None:
    from disrupt.cli.bench import _cluster
    from disrupt.cli.protect import _render_summary
    from disrupt.distributed.protect import PhotoOutcome, protect_many, settings_from
    from disrupt.errors import DisruptError

    try:
        settings = settings_from(budget, targets=targets or None, weights=weights, faces=faces,
                                 mask=mask, universal=start_from, seed=seed, device=device,
                                 require_disruption=require_disruption, detector=detector,
                                 jpeg_quality=jpeg_quality, protector=protector)
    except DisruptError as exc:
        raise _fail(exc) from None
    outcomes: dict[int, PhotoOutcome] = {}
    failures = 0
    bar = None if quiet or not sys.stderr.isatty() else _bar()
    try:
        with _cluster(workers, scheduler, quiet) as client, bar if bar is not None \
                else nullcontext():
            task = bar.add_task("protect", total=len(inputs)) if bar is not None else None
            stream = protect_many(inputs, settings, outputs=outputs, overwrite=overwrite,
                                  client=client)
            with closing(stream):  # on Ctrl-C too: cancel the photos still queued
                for outcome in stream:
                    outcomes[outcome.index] = outcome
                    if outcome.error is not None:
                        _err(outcome.error)
                        failures += 1
                    elif outcome.not_disrupted is not None:
                        _err(outcome.not_disrupted)
                        failures += 1
                    if bar is not None and task is not None:
                        bar.update(task, completed=len(outcomes),
                                   description=outcome.input.name)
    except DisruptError as exc:
        raise _fail(exc) from None
    results = []
    for index in sorted(outcomes):
        outcome = outcomes[index]
        if outcome.summary is None:
            continue
        if outcome.unchanged:
            typer.echo(f"warning: {outcome.output}: the protected copy equals the input (the "
                       "budget is too small to survive 8-bit rounding)", err=True)
        results.append(outcome.summary)
        if not as_json:
            typer.echo(_render_summary(outcome.summary))
    if as_json:
        _echo_json(results if len(inputs) > 1 else (results[0] if results else []))
    if failures:
        raise typer.Exit(EXIT_FAILURE)


def _bar() -> Any:
    from rich.console import Console
    from rich.progress import Progress

    return Progress(console=Console(stderr=True), transient=True)
