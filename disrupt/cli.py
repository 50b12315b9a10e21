"""The ``disrupt`` command line. Results go to stdout, diagnostics to stderr.

Exit codes: 0 ok, 1 a runtime failure (bad file, bad checkpoint), 2 a usage error.
Heavy imports (torch) happen inside commands so ``--help`` is instant.
"""

from __future__ import annotations

import json
import os
import sys
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    name="disrupt",
    help="Immunize photos against deepfake image-translation networks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
EXIT_FAILURE = 1
EXIT_USAGE = 2


def _err(message: str) -> None:
    typer.echo(f"error: {message}", err=True)


class UsageError(Exception):
    """A bad option value: reported on one line, exit code 2."""


def parse_eps(text: str, option: str = "--eps") -> float:
    """``"8/255"`` or ``"0.031"`` -> float in (0, 1]; raises :class:`UsageError` otherwise."""
    try:
        value = float(Fraction(text.strip())) if "/" in text else float(text)
    except (ValueError, ZeroDivisionError):
        raise UsageError(f"{option}: {text!r} is not a number or a fraction like 8/255") from None
    if not 0 < value <= 1:
        raise UsageError(f"{option} must be in (0, 1], got {text}")
    return value


def _expand_inputs(paths: list[Path]) -> list[Path]:
    """Files as given; directories expanded to the images inside (not recursive)."""
    found: list[Path] = []
    for p in paths:
        if p.is_dir():
            found.extend(
                sorted(
                    c for c in p.iterdir()
                    if c.suffix.lower() in IMAGE_SUFFIXES and ".protected." not in c.name
                )
            )
        else:
            found.append(p)
    return found


def _parse_weights(targets: list[str], weights: list[Path]) -> dict[str, Path]:
    """``--weights`` pairs with ``--target`` in order; ``NAME=PATH`` names its target."""
    mapping: dict[str, Path] = {}
    plain: list[Path] = []
    for w in weights:
        name, sep, path = str(w).partition("=")
        if sep and name in targets:
            mapping[name] = Path(path)
        else:
            plain.append(w)
    if len(plain) > len(targets):
        raise UsageError("--weights: more checkpoints than --target names")
    for target_name, checkpoint in zip(targets, plain, strict=False):
        mapping.setdefault(target_name, checkpoint)
    return mapping


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
    mask: Annotated[
        Path | None,
        typer.Option(help="Image the photo's size: white = protect, black = keep unchanged."),
    ] = None,
    universal: Annotated[
        Path | None,
        typer.Option(help="Universal perturbation (.safetensors) to start from; then "
                     "--steps (default 5) refinement steps."),
    ] = None,
    fast: Annotated[
        bool,
        typer.Option("--fast", help="Start from the universal perturbation bundled for the "
                     "bundled models, then --steps (default 5) refinement steps."),
    ] = False,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    device: Annotated[str, typer.Option(help="auto (a GPU when there is one), cpu, cuda, "
                                        "cuda:N or mps.")] = "auto",
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON results.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Write a protected copy of each PHOTO (NAME.protected.png beside it by default)."""
    # Every option and every output path is checked here, before any model is loaded
    # or any photo attacked.
    try:
        eps_value = parse_eps(eps) if eps is not None else None
        from disrupt.core.budget import STRENGTHS

        if strength not in STRENGTHS:
            *first, last = STRENGTHS
            raise UsageError(f"--strength must be {', '.join(first)} or {last}, "
                             f"got {strength!r}")
        alpha_value = parse_eps(alpha, "--alpha") if alpha is not None else None
        if steps is not None and steps < 1:
            raise UsageError(f"--steps must be at least 1, got {steps}")
        targets = list(target or [])
        repeated = sorted({t for t in targets if targets.count(t) > 1})
        if repeated:
            raise UsageError(f"--target {', '.join(repeated)} given more than once")
        weight_map = _parse_weights(targets, list(weights or []))
        if fast and universal is not None:
            raise UsageError("--fast uses the bundled universal perturbation: drop --universal")
        start_from: Path | str | None = "bundled" if fast else universal
        dev = _check_device_and_seed(device, seed)
    except UsageError as exc:
        _err(str(exc))
        raise typer.Exit(EXIT_USAGE) from None

    from attacks import UnknownAttackError
    from disrupt.api import protect as protect_api
    from disrupt.api import resolve_targets
    from disrupt.core.budget import resolve_budget
    from disrupt.core.universal import load_universal
    from disrupt.errors import DisruptError, SettingError
    from targets import CheckpointError, UnknownTargetError

    try:
        budget = resolve_budget(strength, attack=attack, eps=eps_value, steps=steps,
                                alpha=alpha_value, eot=eot, universal=start_from is not None,
                                psnr=psnr)
        if start_from is not None:
            load_universal(start_from)  # a bad file fails now, not after the models load
    except UnknownAttackError as exc:
        _err(str(exc).strip("'\""))
        raise typer.Exit(EXIT_USAGE) from None
    except SettingError as exc:
        _err(str(exc))
        raise typer.Exit(EXIT_USAGE) from None
    except DisruptError as exc:
        _err(str(exc))
        raise typer.Exit(EXIT_FAILURE) from None

    inputs = _expand_inputs(photos)
    if not inputs:
        _err("no images found in " + ", ".join(str(p) for p in photos))
        raise typer.Exit(EXIT_FAILURE)
    try:
        outputs = _output_paths(inputs, output, overwrite)
    except UsageError as exc:
        _err(str(exc))
        raise typer.Exit(EXIT_USAGE) from None
    except DisruptError as exc:
        _err(str(exc))
        raise typer.Exit(EXIT_FAILURE) from None
    try:
        chosen = resolve_targets(targets or None, weight_map)
    except UnknownTargetError as exc:
        _err(str(exc).strip("'\""))
        raise typer.Exit(EXIT_USAGE) from None
    except (CheckpointError, DisruptError) as exc:
        _err(str(exc))
        raise typer.Exit(EXIT_FAILURE) from None

    typer.echo(
        f"protecting against {', '.join(t.name for t in chosen)} "
        f"with {budget.describe()} "
        f"(strength {strength}, EOT {'on' if budget.eot else 'off'})",
        err=True,
    )

    failures = 0
    results: list[dict[str, Any]] = []
    for photo, out_path in zip(inputs, outputs, strict=True):
        try:
            result = _run_one(protect_api, photo, out_path, chosen, budget, faces, mask,
                              start_from, seed, dev, overwrite, quiet)
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
    if as_json:
        _echo_json(results if len(inputs) > 1 else (results[0] if results else []))
    if failures:
        raise typer.Exit(EXIT_FAILURE)


def _echo_json(value: Any) -> None:
    """Standard JSON on stdout: non-finite numbers (an identical output's PSNR) as null."""
    from disrupt.files import json_ready

    typer.echo(json.dumps(json_ready(value), indent=2, allow_nan=False))


def _check_device_and_seed(device: str, seed: int) -> Any:
    """The torch device for ``--device``; :class:`UsageError` for a bad device or seed."""
    from disrupt.core.seeding import check_seed, resolve_device
    from disrupt.errors import SettingError

    try:
        check_seed(seed)
        return resolve_device(device)
    except SettingError as exc:
        raise UsageError(f"--{str(exc)}") from None


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


def _run_one(protect_api: Any, photo: Path, out_path: Path, chosen: list[Any], budget: Any,
             faces: bool | None, mask: Path | None, start_from: Path | str | None, seed: int,
             device: Any, overwrite: bool, quiet: bool) -> Any:
    options = dict(targets=chosen, budget=budget, faces=faces, mask=mask, universal=start_from,
                   seed=seed, device=device, output=out_path, overwrite=overwrite)
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
    if s.get("masked"):
        where += "; masked"
    if s.get("universal"):
        where += "; started from a universal perturbation"
    return f"  region: {where}"


def _render_budget(a: dict[str, Any]) -> str:
    from disrupt.core.budget import describe_budget

    if a.get("psnr_floor"):
        return describe_budget(a["name"], a["linf_cap_255"] / 255, a["steps"], a["psnr_floor"])
    return describe_budget(a["name"], a["eps"], a["steps"], None)


def _render_summary(s: dict[str, Any]) -> str:
    p = s["perceptibility"]
    lines = [
        f"{s['input']} -> {s['output']}  ({s['size'][0]}x{s['size'][1]}, {s['seconds']:.1f}s)",
        f"  budget: {_render_budget(s['attack'])}, seed {s['seed']}"
        + (f", strength {s['strength']}, EOT {'on' if s.get('eot') else 'off'}"
           if "strength" in s else ""),
        _render_region(s),
        f"  visibility: PSNR {p['psnr']:.1f} dB, SSIM {p['ssim']:.3f}, "
        f"max change {p['linf_255']:.0f}/255",
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


@app.command("targets")
def list_targets_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the registered generator targets."""
    from disrupt.api import default_targets
    from targets import list_targets

    defaults = set(default_targets())
    rows = []
    for info in list_targets():
        if info.bundled:
            kind = "bundled (default)" if info.name in defaults else "bundled (not installed)"
        else:
            kind = "needs --weights" if info.needs_weights else "random init (tests)"
        rows.append({"name": info.name, "kind": kind, "description": info.description})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    width = max(len(r["name"]) for r in rows) if rows else 0
    for r in rows:
        typer.echo(f"{r['name']:<{width}}  {r['kind']:<23}  {r['description']}")


@app.command("attacks")
def list_attacks_cmd() -> None:
    """List the registered attacks."""
    from attacks import list_attacks

    for name, description in list_attacks():
        typer.echo(f"{name:<8}  {description}")


def _device_or_exit(device: str) -> Any:
    """The torch device for ``--device``, or exit 2 with a one-line error."""
    try:
        return _check_device_and_seed(device, 0)
    except UsageError as exc:
        _err(str(exc))
        raise typer.Exit(EXIT_USAGE) from None


def _exit_for(exc: Exception) -> int:
    """Exit code for a library error: 2 for usage (unknown names, bad settings), else 1."""
    from disrupt.bench.config import ConfigError
    from targets import UnknownTargetError

    return EXIT_USAGE if isinstance(exc, (UnknownTargetError, ConfigError, UsageError)) else (
        EXIT_FAILURE)


def _fail(exc: Exception) -> typer.Exit:
    _err(" ".join(str(exc).strip("'\"").split()))
    return typer.Exit(_exit_for(exc))


@app.command()
def verify(
    original: Annotated[Path, typer.Argument(help="The original photo.", show_default=False)],
    protected: Annotated[
        Path, typer.Argument(help="Its protected copy (may be re-saved, e.g. as JPEG).",
                             show_default=False)],
    target: Annotated[
        list[str] | None,
        typer.Option("--target", "-t", help="Target name (repeatable); default: the bundled set."),
    ] = None,
    weights: Annotated[
        list[Path] | None,
        typer.Option("--weights", "-w", help="Checkpoint per --target, in order, or NAME=PATH."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Picture (PNG); default: PROTECTED.verify.png."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for stochastic generators.")] = 0,
    device: Annotated[str, typer.Option(help="auto (a GPU when there is one), cpu, cuda, "
                                        "cuda:N or mps.")] = "auto",
    cell: Annotated[int, typer.Option(help="Picture cell size in pixels.")] = 128,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing picture file (never "
                                            "ORIGINAL or PROTECTED).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON results.")] = False,
) -> None:
    """Run each target on ORIGINAL and PROTECTED; say per target whether it is disrupted."""
    from disrupt.errors import DisruptError
    from disrupt.verify import check_picture_path

    try:
        targets = list(target or [])
        weight_map = _parse_weights(targets, list(weights or []))
        picture = output or protected.with_name(f"{protected.stem}.verify.png")
        if picture.suffix.lower() != ".png":
            raise UsageError(f"{picture}: the picture is written as PNG; use a .png name")
        if not 16 <= cell <= 1024:
            raise UsageError(f"--cell must be between 16 and 1024, got {cell}")
        dev = _check_device_and_seed(device, seed)
    except UsageError as exc:
        _err(str(exc))
        raise typer.Exit(EXIT_USAGE) from None
    try:
        check_picture_path(picture, original, protected, overwrite=overwrite)
    except DisruptError as exc:
        _err(str(exc))
        raise typer.Exit(EXIT_FAILURE) from None

    from disrupt.verify import verify as verify_images
    from targets import CheckpointError, UnknownTargetError

    try:
        result = verify_images(original, protected, targets=targets or None, weights=weight_map,
                               seed=seed, device=dev)
        result.save_picture(picture, cell=cell, overwrite=overwrite)
    except (DisruptError, CheckpointError, UnknownTargetError, OSError) as exc:
        raise _fail(exc) from None
    for note in result.notes:
        typer.echo(f"note: {note}", err=True)
    if as_json:
        _echo_json(result.to_dict())
        return
    typer.echo(_render_verify(result.to_dict()))


def _render_verify(s: dict[str, Any]) -> str:
    p = s["perceptibility"]
    lines = [
        f"{s['original']} vs {s['protected']}  ({s['size'][0]}x{s['size'][1]})",
        f"  visibility: PSNR {p['psnr']:.1f} dB, SSIM {p['ssim']:.3f}, "
        f"max change {p['linf_255']:.0f}/255",
        f"  verdict (disrupted when Ruiz MSE on [-1,1] > {s['threshold']:g}):",
    ]
    for v in s["verdicts"]:
        lines.append(f"    {v['target']}: {v['verdict']} "
                     f"(mean Ruiz MSE {v['mean_ruiz_mse']:.4f})")
        for r in (d for d in s["disruption"] if d["target"] == v["target"]):
            mark = "yes" if r["disrupted"] else "no "
            lines.append(f"      {r['condition']:<22} mse {r['ruiz_mse']:.4f}  {mark}  "
                         f"output PSNR {r['psnr']:.1f} dB")
    lines.append(f"  picture: {s['picture']}")
    return "\n".join(lines)


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
    steps: Annotated[list[int] | None, typer.Option(help="Iterations (repeatable).")] = None,
    alpha: Annotated[str | None, typer.Option(help="Step size, e.g. 1/255.")] = None,
    objective: Annotated[list[str] | None, typer.Option(
        help="away, joint, iterative, specific, toward, spread (repeatable).")] = None,
    strength: Annotated[list[str] | None, typer.Option(
        help="Also protect() each image at this preset, per target: low, mid, high "
             "(repeatable; a cell 'preset:NAME').")] = None,
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
        "--speed", help="Time default protect() per photo size instead of the grid.")] = False,
    size: Annotated[list[str] | None, typer.Option(
        help="--speed photo size WxH (repeatable); default 256x256, 1024x1024, 4000x3000.")] = None,
    photo: Annotated[Path | None, typer.Option(
        help="--speed: resize this photo instead of random pixels.")] = None,
    repeats: Annotated[int, typer.Option(help="--speed: timed runs each, fastest kept.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON results.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Benchmark a grid of targets x attacks x budgets x steps x objectives (or --speed)."""
    if speed:
        _speed(target or [], weights or [], size or [], photo, out, seed or 0,
               _device_or_exit(device or "auto"), repeats, as_json, quiet)
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
    except (ConfigError, UsageError) as exc:
        raise _fail(exc) from None
    _run_bench(cfg, out, as_json, quiet)


def _progress_bar(quiet: bool) -> Any:
    """A rich progress bar on stderr, or ``None`` when quiet or not a terminal."""
    if quiet or not sys.stderr.isatty():
        return None
    from rich.console import Console
    from rich.progress import Progress

    return Progress(console=Console(stderr=True), transient=True)


def _run_bench(cfg: Any, out: Path, as_json: bool, quiet: bool) -> None:
    from disrupt.bench.config import ConfigError
    from disrupt.bench.grid import run_benchmark
    from disrupt.bench.report import markdown_summary
    from disrupt.errors import DisruptError
    from targets import CheckpointError, UnknownTargetError

    bar = _progress_bar(quiet)
    try:
        if bar is None:
            result = run_benchmark(cfg, out)
        else:
            with bar:
                task = bar.add_task("bench", total=None)
                result = run_benchmark(cfg, out, progress=lambda done, total, what: bar.update(
                    task, completed=done, total=total, description=what))
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
           out: Path, seed: int, device: str, repeats: int, as_json: bool, quiet: bool) -> None:
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
    except (ValueError, UsageError) as exc:
        _err(str(exc))
        raise typer.Exit(EXIT_USAGE) from None
    notes = []
    if not targets and not default_targets():
        targets = ["stargan.tiny"]
        notes.append("no bundled weights installed: timing stargan.tiny (tiny random model; "
                     "the ratio mostly measures resizing, not a real generator)")
    bar = _progress_bar(quiet)
    try:
        chosen = resolve_targets(targets or None, weight_map)
        image = load_image(photo).rgb if photo is not None else None
        out.mkdir(parents=True, exist_ok=True)
        if bar is None:
            rows = speed_benchmark(chosen, sizes=dims, seed=seed, device=device, photo=image,
                                   repeats=repeats)
        else:
            with bar:
                task = bar.add_task("speed", total=len(dims))
                rows = speed_benchmark(chosen, sizes=dims, seed=seed, device=device, photo=image,
                                       repeats=repeats, progress=lambda d, t, what: bar.update(
                                           task, completed=d, description=what))
        files = write_speed(rows, out, notes)
    except (DisruptError, CheckpointError, UnknownTargetError, OSError) as exc:
        raise _fail(exc) from None
    for note in notes:
        typer.echo(f"note: {note}", err=True)
    if as_json:
        _echo_json({"rows": [r.to_dict() for r in rows], "notes": notes,
                    "files": {k: str(v) for k, v in files.items()}})
        return
    typer.echo(files["markdown"].read_text())
    for kind, path in files.items():
        typer.echo(f"{kind}: {path}")


def _exit_on_sigterm() -> None:
    """Turn SIGTERM into ``SystemExit`` so that half-written temporary files are removed
    exactly as on Ctrl-C (the writers clean up on any exception)."""
    import signal

    def handler(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def main() -> None:
    """Console-script entry point."""
    _exit_on_sigterm()
    app()


if __name__ == "__main__":
    main()
