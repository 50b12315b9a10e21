"""Benchmark settings: :class:`BenchConfig`, read from TOML/JSON files or CLI options.

Every key of a config file is a field of :class:`BenchConfig` (plus ``celeba_crop``,
``budgets`` and ``description``); an unknown key or a bad value is a
:class:`ConfigError`, which the CLI reports as a usage error (exit code 2).
Budgets and step sizes are in ``[0, 1]`` pixel units and accept fractions
(``"8/255"``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from attacks import attack_info
from disrupt.core.budget import STRENGTHS, parse_fraction
from disrupt.errors import SettingError
from disrupt.eval.channels import DEFAULT_CHANNELS, parse_channel
from disrupt.eval.metrics import RUIZ_THRESHOLD

__all__ = [
    "CELEBA_CROP",
    "OBJECTIVES",
    "BenchConfig",
    "ConfigError",
    "config_from_mapping",
    "load_config",
]

OBJECTIVES: tuple[str, ...] = ("away", "joint", "iterative", "specific", "toward", "spread")
CELEBA_CROP = (89, 64)  # CenterCrop(89) of the 89x109 half-size CelebA, then 64x64


class ConfigError(ValueError):
    """A bad benchmark setting (unknown key, bad value): a usage error, exit code 2."""


# ----------------------------------------------------------------------------- config


@dataclass(frozen=True)
class BenchConfig:
    """Every setting of a benchmark run. Budgets are in ``[0, 1]`` pixel units.

    Data: ``images`` folder (sorted file names, from ``start`` on, at most ``limit``);
    each image is centre-cropped to a ``center_crop`` square and resized to
    ``resize`` x ``resize`` (Pillow bilinear) when those are set. Grid: ``targets`` x
    ``attacks`` x ``eps`` x ``steps`` x ``objectives`` (single-step attacks ignore
    ``steps``); ``alpha`` ``None`` takes each attack's default step size.
    Measurement: ``channels``, ``evaluate_on``, ``threshold`` (Ruiz MSE on ``[-1,1]``),
    ``semantic`` (use evaluators where installed). Execution: ``seed``, ``device``,
    ``threads`` (``None`` keeps torch's), ``batch_size``, ``grid_rows`` (cells drawn in
    the image grid). ``strengths`` adds, per target, one cell per strength preset
    (``"low"``, ``"mid"``, ``"high"``): each image protected by
    :func:`disrupt.protect` at that preset (PSNR floor, cap, EOT; whole image, no face
    search), named ``preset:<strength>`` in the attack column.
    """

    images: Path | None = None
    start: str | None = None
    limit: int | None = None
    center_crop: int | None = None
    resize: int | None = None
    targets: tuple[str, ...] = ()
    weights: tuple[tuple[str, str], ...] = ()
    evaluate_on: tuple[str, ...] = ()
    attacks: tuple[str, ...] = ("pgd",)
    eps: tuple[float, ...] = (8 / 255,)
    steps: tuple[int, ...] = (10,)
    alpha: float | None = None
    objectives: tuple[str, ...] = ("away",)
    strengths: tuple[str, ...] = ()
    channels: tuple[str, ...] = DEFAULT_CHANNELS
    threshold: float = RUIZ_THRESHOLD
    semantic: bool = True
    seed: int = 0
    device: str = "cpu"
    threads: int | None = None
    batch_size: int = 16
    grid_rows: int = 12
    name: str = "bench"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings (paths as strings, ``eps`` also in /255)."""
        d = asdict(self)
        d["images"] = str(self.images) if self.images else None
        d["weights"] = dict(self.weights)
        d["eps_255"] = [round(e * 255, 4) for e in self.eps]
        return d


_KEYS = {f.name for f in fields(BenchConfig)} | {"celeba_crop", "budgets", "description"}


def _fraction(value: object, key: str) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return parse_fraction(value)
        except SettingError:
            pass
    raise ConfigError(f"{key}: {value!r} is not a number or a fraction like 8/255")


def _as_list(value: object) -> list[object]:
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _strings(value: object, key: str) -> tuple[str, ...]:
    items = _as_list(value)
    if not all(isinstance(v, str) and v.strip() for v in items):
        raise ConfigError(f"{key}: expected names (strings), got {value!r}")
    return tuple(dict.fromkeys(str(v).strip() for v in items))


def _int(value: object, key: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{key}: expected an integer >= {minimum}, got {value!r}")
    return value


def config_from_mapping(
    data: Mapping[str, object], base: BenchConfig | None = None, root: Path | None = None
) -> BenchConfig:
    """Validate ``data`` (from TOML/JSON or CLI options) over ``base``.

    Relative paths (``images``, ``weights``) are taken relative to ``root`` (the config
    file's folder) when given. Lists may be given as single values. ``eps``, ``alpha``
    accept numbers or fractions (``"8/255"``); ``celeba_crop = true`` means
    ``center_crop = 89, resize = 64``; ``budgets`` is a synonym of ``eps``.

    Raises:
        ConfigError: an unknown key or a bad value; the message names the key.
    """
    cfg = base or BenchConfig()
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise ConfigError(f"unknown config key(s) {', '.join(unknown)}; known: "
                          + ", ".join(sorted(_KEYS)))
    changes: dict[str, Any] = {}

    def path(value: object, key: str) -> Path:
        if not isinstance(value, (str, os.PathLike)):
            raise ConfigError(f"{key}: expected a path, got {value!r}")
        p = Path(value).expanduser()
        return root / p if root is not None and not p.is_absolute() else p

    for key, value in data.items():
        if value is None or key == "description":
            continue
        if key == "images":
            changes[key] = path(value, key)
        elif key == "start":
            if not isinstance(value, str):
                raise ConfigError(f"start: expected a file name, got {value!r}")
            changes[key] = value
        elif key in ("limit", "center_crop", "resize", "threads"):
            changes[key] = _int(value, key, 1)
        elif key in ("batch_size", "grid_rows"):
            changes[key] = _int(value, key, 1 if key == "batch_size" else 0)
        elif key == "seed":
            changes[key] = _int(value, key, 0)
        elif key == "celeba_crop":
            if not isinstance(value, bool):
                raise ConfigError(f"celeba_crop: expected true or false, got {value!r}")
            if value:
                changes["center_crop"], changes["resize"] = CELEBA_CROP
        elif key in ("targets", "evaluate_on", "attacks", "objectives", "channels",
                     "strengths"):
            changes[key] = _strings(value, key)
        elif key == "weights":
            if not isinstance(value, Mapping):
                raise ConfigError("weights: expected a table of target name = path")
            changes[key] = tuple((str(k), str(path(v, f"weights.{k}"))) for k, v in value.items())
        elif key in ("eps", "budgets"):
            changes["eps"] = tuple(dict.fromkeys(_fraction(v, key) for v in _as_list(value)))
        elif key == "steps":
            changes[key] = tuple(dict.fromkeys(_int(v, key, 1) for v in _as_list(value)))
        elif key == "alpha" or key == "threshold":
            changes[key] = _fraction(value, key)
        elif key == "semantic":
            if not isinstance(value, bool):
                raise ConfigError(f"semantic: expected true or false, got {value!r}")
            changes[key] = value
        elif key in ("device", "name"):
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{key}: expected a string, got {value!r}")
            changes[key] = value
    cfg = replace(cfg, **changes)
    _validate(cfg)
    return cfg


def _validate(cfg: BenchConfig) -> None:
    for e in cfg.eps:
        if not 0 < e <= 1:
            raise ConfigError(f"eps: {e} is outside (0, 1] (use [0,1] units: 8/255, 0.025)")
        if e < 0.5 / 255:
            raise ConfigError(f"eps: {e} is below half an 8-bit level and cannot be saved")
    if not cfg.eps:
        raise ConfigError("eps: give at least one budget")
    if cfg.alpha is not None and not 0 < cfg.alpha <= 1:
        raise ConfigError(f"alpha: {cfg.alpha} is outside (0, 1]")
    if not math.isfinite(cfg.threshold) or cfg.threshold <= 0:
        raise ConfigError(f"threshold: expected a positive number, got {cfg.threshold}")
    bad = [o for o in cfg.objectives if o not in OBJECTIVES]
    if bad or not cfg.objectives:
        raise ConfigError(f"objectives: unknown {bad or '(none)'}; choose from "
                          + ", ".join(OBJECTIVES))
    bad_strengths = [v for v in cfg.strengths if v not in STRENGTHS]
    if bad_strengths:
        raise ConfigError(f"strengths: unknown {bad_strengths}; choose from "
                          + ", ".join(STRENGTHS))
    if not cfg.attacks and not cfg.strengths:
        raise ConfigError("attacks: give at least one attack (or a strength preset)")
    for name in cfg.attacks:
        try:
            attack_info(name)
        except LookupError as exc:
            raise ConfigError(f"attacks: {str(exc).strip(chr(39))}") from None
    if not cfg.channels:
        raise ConfigError("channels: give at least one (none measures the saved image)")
    for spec in cfg.channels:
        try:
            parse_channel(spec)
        except ValueError as exc:
            raise ConfigError(f"channels: {exc}") from None


def load_config(path: str | os.PathLike[str], base: BenchConfig | None = None) -> BenchConfig:
    """Read a ``.toml`` or ``.json`` config file into a :class:`BenchConfig`.

    Raises:
        ConfigError: unreadable file, bad syntax, unknown key or bad value.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config ({exc.strerror or exc})") from None
    try:
        if p.suffix.lower() == ".json":
            data = json.loads(text)
        elif p.suffix.lower() == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            raise ConfigError(f"{p}: config must be a .toml or .json file")
    except (json.JSONDecodeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{p}: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: config must be a table/object of settings")
    try:
        return config_from_mapping(data, base, root=p.parent)
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from None
