"""``disrupt verify``: both images through every target, a verdict each, a picture.

Targets run as ``disrupt protect`` measures them: through the face crops a manipulator
would cut (faces looked for on the protected image), or on the whole photo.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from disrupt.cli.app import (
    DETECTOR_HELP,
    EXIT_FAILURE,
    UsageError,
    _check_detector,
    _check_device_and_seed,
    _echo_json,
    _err,
    _fail,
    _parse_weights,
    _usage_exit,
    app,
)


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
    faces: Annotated[
        bool | None,
        typer.Option("--faces/--no-faces", help="Run the models on the crops around faces "
                     "found on PROTECTED, as `disrupt protect` measures; default: when the "
                     "photo is over twice the models' input size."),
    ] = None,
    detector: Annotated[str, typer.Option(help=DETECTOR_HELP)] = "haar",
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
        _check_detector(detector)
    except UsageError as exc:
        raise _usage_exit(exc) from None
    try:
        check_picture_path(picture, original, protected, overwrite=overwrite)
    except DisruptError as exc:
        _err(str(exc))
        raise typer.Exit(EXIT_FAILURE) from None

    from disrupt.verify import verify as verify_images
    from targets import CheckpointError, UnknownTargetError

    try:
        result = verify_images(original, protected, targets=targets or None, weights=weight_map,
                               faces=faces, detector=detector, seed=seed, device=dev)
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
        _render_region(s),
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


def _render_region(s: dict[str, Any]) -> str:
    """Where the models ran: the verify counterpart of protect's ``region:`` line."""
    status = s.get("face_status", "off")
    crops = s.get("crops", [])
    n = len(crops)
    boxes = ", ".join("({},{})-({},{})".format(*b) for b in crops)
    where = {
        "used": f"{n} face{'s' if n != 1 else ''} found on the protected image; models run "
                f"on {'their' if n != 1 else 'its'} crop{'s' if n != 1 else ''} {boxes}",
        "none-found": "no face found on the protected image; whole photo",
        "off": "whole photo (--no-faces)",
        "small-image": "whole photo (small image: no face search)",
    }.get(status, status)
    if s.get("detector") not in (None, "haar"):
        where += f" (detector {s['detector']})"
    return f"  region: {where}"
