"""``disrupt protect``: options checked, outputs planned, photos protected, summaries.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from disrupt.cli.app import (
    DETECTOR_HELP,
    EXIT_FAILURE,
    UsageError,
    _check_detector,
    _check_device_and_seed,
    _check_strength,
    _echo_json,
    _err,
    _expand_inputs,
    _fail,
    _parse_weights,
    _usage_exit,
    app,
    parse_eps,
)


@app.command()
def protect(
    photos: Annotated[
        list[Path], typer.Argument(help="Image files or folders.", show_default=False)
    ],
    output: Annotated[
        str | None,
        typer.Option("--output", "-o", help="Output file (one input) or folder (existing, or "
                     "ending in /)."),
    ] = None,
    target: Annotated[
        list[str] | None,
        typer.Option("--target", "-t", help="Target name (repeatable); default: bundled set."),
    ] = None,
    weights: Annotated[
        list[Path] | None,
        typer.Option("--weights", "-w", help="Checkpoint per --target, in order, or NAME=PATH."),
    ] = None,
    strength: Annotated[
        str,
        typer.Option(help="Budget preset: low (PSNR >= 37 dB, max 8/255, no EOT), mid (33 dB, "
                     "16/255, EOT), high (30 dB, 24/255, EOT x2). --attack/--eps/--steps/"
                     "--psnr override it."),
    ] = "mid",
    attack: Annotated[
        str | None, typer.Option(help="Attack name (see `disrupt attacks`); default: preset's.")
    ] = None,
    eps: Annotated[
        str | None, typer.Option(help="Largest change per pixel, e.g. 8/255 or 0.031 (the whole "
                                 "L-inf budget with --psnr 0); default: preset's.")
    ] = None,
    psnr: Annotated[
        float | None, typer.Option(help="PSNR floor in dB over the protected pixels (L2 budget); "
                                   "0: none, plain L-inf at --eps; default: preset's.")
    ] = None,
    objective: Annotated[
        str | None, typer.Option(help="balanced (every model pushed toward the disruption "
                                 "threshold, frozen past it), mean (plain mean distance) or "
                                 "focused (the mean, giving up after 15% of the steps "
                                 "on models whose outputs have not moved); default: the "
                                 "preset's.")
    ] = None,
    perceptual: Annotated[
        bool | None, typer.Option("--perceptual/--no-perceptual", help="Cap each pixel by "
                                  "the local texture (flat skin at 1/255; PSNR-floor budgets "
                                  "only); default: the preset's.")
    ] = None,
    crop_jitter: Annotated[
        bool | None, typer.Option("--crop-jitter/--no-crop-jitter", help="Attack through "
                                  "crops drawn around each face's (scale +-10%, shift +-5%); "
                                  "default: the preset's.")
    ] = None,
    crops: Annotated[
        str | None, typer.Option(help="Around each detected face, attack through the "
                                 "canonical crop (where disruption is measured) or the "
                                 "family of seven crops; default: the preset's.")
    ] = None,
    steps: Annotated[
        int | None, typer.Option(help="Attack iterations (>= 1); default: the preset's.")
    ] = None,
    alpha: Annotated[str | None, typer.Option(help="Step size, e.g. 2/255.")] = None,
    eot: Annotated[
        bool | None,
        typer.Option("--eot/--no-eot",
                     help="Average over JPEG recompression (50-95); default: preset's."),
    ] = None,
    faces: Annotated[
        bool | None,
        typer.Option("--faces/--no-faces", help="Protect only the crops around detected faces; "
                     "default: when the photo is over twice the models' input size."),
    ] = None,
    detector: Annotated[str, typer.Option(help=DETECTOR_HELP)] = "haar",
    mask: Annotated[
        Path | None,
        typer.Option(help="Image the photo's size: white = protect, black = keep unchanged."),
    ] = None,
    universal: Annotated[
        Path | None,
        typer.Option(help="Universal perturbation (.safetensors, or 'bundled' for the one "
                     "trained against the bundled models) to start from; then --steps "
                     "(default 5) refinement steps."),
    ] = None,
    fast: Annotated[
        bool,
        typer.Option("--fast", help="One forward pass of the amortized protector bundled for "
                     "the bundled models (same budget and shaping), then --steps (default 0) "
                     "refinement steps."),
    ] = False,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    device: Annotated[str, typer.Option(help="auto (a GPU when there is one), cpu, cuda, "
                                        "cuda:N or mps.")] = "auto",
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
    jpeg_quality: Annotated[int | None, typer.Option(
        help="Quality of a .jpg output (1-100, default 95); the attack optimises through "
        "that JPEG.")] = None,
    require_disruption: Annotated[bool, typer.Option(
        "--require-disruption", help="Exit 1 when any model's output for any condition stays "
        "under the disruption threshold (the protected copy is still written).")] = False,
    measure: Annotated[bool, typer.Option(
        help="Measure visibility and disruption on the saved copy (--no-measure skips it, "
        "the second face search and every model's run on the result: most of a --fast "
        "call's time).")] = True,
    batch: Annotated[int, typer.Option(
        help="Photos of one size protected without faces or a mask share attack batches "
        "of up to N (results differ from one by one only by float rounding, which the steps "
        "amplify); 1 (default): "
        "one at a time, which was as fast on a 2-core CPU.")] = 1,
    workers: Annotated[int | None, typer.Option(
        help="Protect the photos on a local Dask cluster of N worker processes (needs the "
             "dask extra).")] = None,
    scheduler: Annotated[str | None, typer.Option(
        help="Protect the photos on an existing Dask cluster, e.g. tcp://HOST:8786.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON results.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Write a protected copy of each PHOTO (NAME.protected.png beside it by default)."""
    # Every option and every output path is checked here, before any model is loaded
    # or any photo attacked.
    try:
        eps_value = parse_eps(eps) if eps is not None else None
        _check_strength(strength)
        alpha_value = parse_eps(alpha, "--alpha") if alpha is not None else None
        if steps is not None and steps < 1:
            raise UsageError(f"--steps must be at least 1, got {steps}")
        if batch < 1:
            raise UsageError(f"--batch must be at least 1, got {batch}")
        if not measure and require_disruption:
            raise UsageError("--require-disruption needs the measurement: drop --no-measure")
        if not measure and (batch > 1 or workers is not None or scheduler is not None):
            raise UsageError("--no-measure runs photo by photo on this machine: drop --batch, "
                             "--workers and --scheduler")
        targets = list(target or [])
        repeated = sorted({t for t in targets if targets.count(t) > 1})
        if repeated:
            raise UsageError(f"--target {', '.join(repeated)} given more than once")
        weight_map = _parse_weights(targets, list(weights or []))
        if fast and universal is not None:
            raise UsageError("--fast uses the amortized protector, --universal a universal "
                             "perturbation: pass one")
        start_from: Path | str | None = (
            "bundled" if universal is not None and str(universal) == "bundled" else universal)
        dev = _check_device_and_seed(device, seed)
        _check_detector(detector)
        if workers is not None or scheduler is not None:
            from disrupt.cli.bench import _check_cluster

            _check_cluster(workers, scheduler)
    except UsageError as exc:
        raise _usage_exit(exc) from None

    from attacks import UnknownAttackError
    from disrupt.api import check_disrupted, resolve_targets
    from disrupt.api import protect as protect_api
    from disrupt.core.budget import resolve_budget
    from disrupt.core.protector import load_protector
    from disrupt.core.universal import load_universal
    from disrupt.errors import DisruptError, NotDisrupted
    from targets import CheckpointError, UnknownTargetError

    try:
        budget = resolve_budget(strength, attack=attack, eps=eps_value, steps=steps,
                                alpha=alpha_value, eot=eot, universal=start_from is not None,
                                psnr=psnr, objective=objective, perceptual=perceptual,
                                crop_jitter=crop_jitter, crops=crops, protector=fast)
        if start_from is not None:
            load_universal(start_from)  # a bad file fails now, not after the models load
        net = load_protector("bundled") if fast else None
    except (UnknownAttackError, DisruptError) as exc:
        raise _fail(exc) from None

    inputs = _expand_inputs(photos)
    if not inputs:
        _err("no images found in " + ", ".join(str(p) for p in photos))
        raise typer.Exit(EXIT_FAILURE)
    try:
        outputs = _output_paths(inputs, output, overwrite)
        if jpeg_quality is not None:
            _check_jpeg_outputs(outputs, jpeg_quality)
    except (UsageError, DisruptError) as exc:
        raise _fail(exc) from None
    try:
        chosen = resolve_targets(targets or None, weight_map)
    except (UnknownTargetError, CheckpointError, DisruptError) as exc:
        raise _fail(exc) from None

    typer.echo(
        f"protecting against {', '.join(t.name for t in chosen)} "
        f"with {budget.describe()} "
        f"(strength {strength}, EOT {'on' if budget.eot else 'off'})",
        err=True,
    )

    if workers is not None or scheduler is not None:
        from disrupt.cli.cluster import protect_on_cluster

        protect_on_cluster(inputs, outputs, targets, weight_map, budget, faces, mask, start_from,
                           seed, device, overwrite, require_disruption, as_json, quiet,
                           workers, scheduler, detector=detector, jpeg_quality=jpeg_quality,
                           protector="bundled" if fast else None)
        return
    shared: dict[int, Any] = {}
    # Batches share one whole-photo attack: only for the plain path (no mask, start
    # point, JPEG output or other detector), which they reproduce photo by photo.
    plain = (mask is None and start_from is None and net is None and detector == "haar"
             and measure and not any(o.suffix.lower() in (".jpg", ".jpeg") for o in outputs))
    if plain:
        from disrupt.batch import protect_shared

        try:
            shared = protect_shared(inputs, outputs, targets=chosen, budget=budget, faces=faces,
                                    seed=seed, device=dev, overwrite=overwrite,
                                    batch_size=batch)
        except (DisruptError, OSError) as exc:
            raise _fail(exc) from None
    failures = 0
    results: list[dict[str, Any]] = []
    for n, (photo, out_path) in enumerate(zip(inputs, outputs, strict=True)):
        try:
            result = shared.get(n) or _run_one(protect_api, photo, out_path, chosen, budget,
                                               faces, mask, start_from, net, seed, dev,
                                               overwrite, quiet, jpeg_quality, detector,
                                               measure)
        except (DisruptError, CheckpointError, OSError) as exc:
            _err(str(exc))
            failures += 1
            continue
        if result.unchanged:
            typer.echo(f"warning: {out_path}: the protected copy equals the input (the budget "
                       "is too small to survive 8-bit rounding)", err=True)
        summary = result.to_dict()
        results.append(summary)
        if not as_json:
            typer.echo(_render_summary(summary))
        if require_disruption:
            try:
                check_disrupted(result)
            except NotDisrupted as exc:
                _err(str(exc))
                failures += 1
    if as_json:
        _echo_json(results if len(inputs) > 1 else (results[0] if results else []))
    if failures:
        raise typer.Exit(EXIT_FAILURE)


def _output_paths(inputs: list[Path], output: str | None, overwrite: bool) -> list[Path]:
    """Each input's output path, checked before any work: a known image format, an
    existing writable folder, never an input, never shared by two inputs, and not an
    existing file unless ``overwrite``. Raises :class:`UsageError` for choices that can
    never work (exit 2), :class:`~disrupt.errors.ImageError` for the state of the
    file system (exit 1)."""
    from disrupt.errors import ImageError
    from disrupt.imaging import OUTPUT_FORMATS, default_output_path

    if output is not None and len(inputs) > 1 and not (
            Path(output).is_dir() or output.endswith(("/", os.sep))):
        raise UsageError(f"{output}: several inputs need an existing output folder")
    outs = [default_output_path(photo, output) for photo in inputs]
    known = ", ".join(OUTPUT_FORMATS)
    sources = {p.resolve(): p for p in inputs}
    claimed: dict[Path, Path] = {}
    for photo, out in zip(inputs, outs, strict=True):
        folder = out.parent
        if not folder.is_dir():
            raise ImageError(f"{folder}{os.sep}: output folder does not exist")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ImageError(f"{folder}{os.sep}: output folder is not writable")
        if out.suffix.lower() not in OUTPUT_FORMATS:
            raise UsageError(f"{out}: unsupported output format "
                             f"{out.suffix or '(no suffix)'!r} (use {known})")
        key = out.resolve()
        if key in sources:
            raise ImageError(f"{out}: refusing to write a protected copy over the input "
                             f"{sources[key]}")
        if key in claimed:
            raise UsageError(f"{out}: both {claimed[key]} and {photo} would be written "
                             "there; protect them in separate runs or rename one")
        claimed[key] = photo
        if out.is_dir():
            raise ImageError(f"{out}: is a folder")
        if out.exists() and not overwrite:
            raise ImageError(f"{out}: output exists; pass --overwrite to replace it")
    return outs


def _check_jpeg_outputs(outputs: list[Path], quality: int) -> None:
    """``--jpeg-quality`` needs every output to be a JPEG, and a quality Pillow takes."""
    from disrupt.imaging.save import check_jpeg_quality

    check_jpeg_quality(quality)
    other = [o for o in outputs if o.suffix.lower() not in (".jpg", ".jpeg")]
    if other:
        raise UsageError(f"--jpeg-quality needs .jpg outputs; {other[0]} is not one "
                         "(use -o NAME.jpg)")


def _run_one(protect_api: Any, photo: Path, out_path: Path, chosen: list[Any], budget: Any,
             faces: bool | None, mask: Path | None, start_from: Path | str | None,
             protector: Any, seed: int, device: Any, overwrite: bool, quiet: bool,
             jpeg_quality: int | None = None, detector: str = "haar",
             measure: bool = True) -> Any:
    options = dict(targets=chosen, budget=budget, faces=faces, mask=mask, universal=start_from,
                   protector=protector, seed=seed, device=device, output=out_path,
                   overwrite=overwrite, jpeg_quality=jpeg_quality, detector=detector,
                   measure=measure)
    if quiet or not sys.stderr.isatty():
        return protect_api(photo, **options)
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(photo.name, total=budget.attack.steps)
        return protect_api(photo, **options,
                           progress=lambda step, total: bar.update(task, completed=step,
                                                                   total=total))


def _render_region(s: dict[str, Any]) -> str:
    status = s.get("face_status", "off")
    n = len(s.get("faces", []))
    where = {
        "used": f"{n} face{'s' if n != 1 else ''} found; only their crops perturbed",
        "none-found": "no face found; whole photo protected",
        "off": "whole photo (--no-faces)",
        "small-image": "whole photo (small image: no face search)",
        "outside-mask": "faces found outside the mask; the mask decides",
    }.get(status, status)
    if s.get("detector") not in (None, "haar"):
        where += f" (detector {s['detector']})"
    if s.get("masked"):
        where += "; masked"
    if s.get("universal"):
        where += "; started from a universal perturbation"
    if s.get("protector"):
        where += "; amortized protector"
    return f"  region: {where}"


def _render_region_visibility(r: dict[str, Any]) -> str:
    if not r:
        return "  changed region: -"
    psnr = r.get("psnr")
    shown = "inf" if psnr is None or psnr == float("inf") else f"{psnr:.1f}"
    return (f"  changed region ({r['pixels']} px): PSNR {shown} dB, SSIM {r['ssim']:.3f}, "
            f"CIEDE2000 mean {r['ciede2000_mean']:.2f} / p95 {r['ciede2000_p95']:.2f}, "
            f"{r['changed_fraction'] * 100:.0f}% of pixels changed")


def _render_budget(a: dict[str, Any]) -> str:
    from disrupt.core.budget import describe_budget

    if a.get("psnr_floor"):
        return describe_budget(a["name"], a["linf_cap_255"] / 255, a["steps"], a["psnr_floor"])
    return describe_budget(a["name"], a["eps"], a["steps"], None)


def _render_summary(s: dict[str, Any]) -> str:
    p = s["perceptibility"]
    head = [
        f"{s['input']} -> {s['output']}  ({s['size'][0]}x{s['size'][1]}, {s['seconds']:.1f}s)",
        f"  budget: {_render_budget(s['attack'])}, seed {s['seed']}"
        + (f", strength {s['strength']}, EOT {'on' if s.get('eot') else 'off'}"
           if "strength" in s else "")
        + f", objective {s['attack'].get('objective', 'mean')}"
        + (", perceptual shaping" if s["attack"].get("perceptual") else "")
        + (", crop family" if s['attack'].get("crops") == "family" else "")
        + (", crop jitter" if s['attack'].get("crop_jitter") else "")
        + (f", through JPEG q{s['attack']['through_jpeg']}"
           if s["attack"].get("through_jpeg") else ""),
        _render_region(s),
    ]
    if not s.get("measured", True):
        return "\n".join([*head, "  not measured (--no-measure); to measure it: disrupt "
                           f"verify {s['input']} {s['output']}"])
    lines = [
        *head,
        f"  visibility: PSNR {p['psnr']:.1f} dB, SSIM {p['ssim']:.3f}, "
        f"max change {p['linf_255']:.0f}/255",
        _render_region_visibility(s.get("region_perceptibility") or {}),
        f"  disruption (Ruiz MSE on [-1,1], disrupted when > {s['threshold']}):",
    ]
    by_target: dict[str, list[dict[str, Any]]] = {}
    for d in s["disruption"]:
        by_target.setdefault(d["target"], []).append(d)
    for name, rows in by_target.items():
        hit = sum(r["disrupted"] for r in rows)
        lines.append(f"    {name}: {hit}/{len(rows)} conditions disrupted")
        for r in rows:
            mark = "yes" if r["disrupted"] else "no "
            lines.append(
                f"      {r['condition']:<22} mse {r['ruiz_mse']:.4f}  {mark}  "
                f"output PSNR {r['psnr']:.1f} dB"
            )
    lines.append(f"  overall: {s['disrupted_fraction'] * 100:.0f}% of outputs disrupted")
    return "\n".join(lines)
