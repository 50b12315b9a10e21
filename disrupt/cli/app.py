"""The ``disrupt`` command line. Results go to stdout, diagnostics to stderr.

Exit codes: 0 ok, 1 a runtime failure (bad file, bad checkpoint), 2 a usage error.
Heavy imports (torch) happen inside commands so ``--help`` is instant.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

app = typer.Typer(
    name="disrupt",
    help="Immunize photos against deepfake image-translation networks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_FAILURE = 1
EXIT_USAGE = 2


def _err(message: str) -> None:
    typer.echo(f"error: {message}", err=True)


class UsageError(Exception):
    """A bad option value: reported on one line, exit code 2."""


def _usage_exit(exc: Exception) -> typer.Exit:
    """Report ``exc`` as a usage error, as given (``error: ...``); the exit to raise (2)."""
    _err(str(exc))
    return typer.Exit(EXIT_USAGE)


def parse_eps(text: str, option: str = "--eps") -> float:
    """``"8/255"`` or ``"0.031"`` -> float in (0, 1]; raises :class:`UsageError` otherwise."""
    from disrupt.core.budget import parse_fraction
    from disrupt.errors import SettingError

    try:
        value = parse_fraction(text)
    except SettingError as exc:
        raise UsageError(f"{option}: {exc}") from None
    if not 0 < value <= 1:
        raise UsageError(f"{option} must be in (0, 1], got {text}")
    return value


def _expand_inputs(paths: list[Path]) -> list[Path]:
    """Files as given; directories expanded to the images inside (not recursive)."""
    from disrupt.imaging import IMAGE_SUFFIXES

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


def _check_strength(strength: str) -> None:
    """:class:`UsageError` unless ``strength`` names a preset (low, mid, high)."""
    from disrupt.core.budget import STRENGTHS

    if strength not in STRENGTHS:
        *first, last = STRENGTHS
        raise UsageError(f"--strength must be {', '.join(first)} or {last}, got {strength!r}")


#: ``--detector`` for protect and verify.
DETECTOR_HELP = ("Face detector: haar (OpenCV, built in) or dlib (eye landmarks; finds more "
                 "faces; pip install 'disrupt-deepfakes\\[landmarks]'). Verify with the one "
                 "you protected with.")


def _check_detector(detector: str) -> None:
    """:class:`UsageError` for an unknown ``--detector`` or a missing optional extra."""
    if detector not in ("haar", "dlib"):
        raise UsageError(f"--detector must be haar or dlib, got {detector!r}")
    if detector == "dlib":
        from disrupt.core.landmarks import LANDMARKS_EXTRA, landmarks_available

        if not landmarks_available():
            raise UsageError(f"--detector dlib needs an optional extra: {LANDMARKS_EXTRA}")


def _device_or_exit(device: str) -> Any:
    """The torch device for ``--device``, or exit 2 with a one-line error."""
    try:
        return _check_device_and_seed(device, 0)
    except UsageError as exc:
        raise _usage_exit(exc) from None


def _exit_for(exc: Exception) -> int:
    """Exit code for a library error: 2 for usage (unknown names, bad settings), else 1."""
    from attacks import UnknownAttackError
    from disrupt.bench.config import ConfigError
    from disrupt.errors import SettingError
    from targets import UnknownTargetError

    usage = (UnknownTargetError, UnknownAttackError, ConfigError, SettingError, UsageError)
    return EXIT_USAGE if isinstance(exc, usage) else EXIT_FAILURE


def _fail(exc: Exception) -> typer.Exit:
    _err(" ".join(str(exc).strip("'\"").split()))
    return typer.Exit(_exit_for(exc))


def exit_on_sigterm() -> None:
    """Turn SIGTERM into ``SystemExit`` so that half-written temporary files are removed
    exactly as on Ctrl-C (the writers clean up on any exception)."""
    import signal

    def handler(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def main() -> None:
    """Console-script entry point."""
    exit_on_sigterm()
    app()


if __name__ == "__main__":
    main()
