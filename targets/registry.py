"""Find targets by name. Built-ins register exactly as plugins do.

A factory is ``factory(weights: Path | None) -> Target``. Names are dotted
(``stargan.celeba``, ``stargan.tiny``). Plugins declare an entry point in the group
``disrupt.targets`` whose value is a module (importing it registers its targets)
or a zero-argument callable that registers them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

from targets.base import Target, WeightsSpec

ENTRY_POINT_GROUP = "disrupt.targets"
# Built-in modules, imported on first lookup; the same path plugins take.
_BUILTIN_MODULES = (
    "targets.stargan",
    "targets.ganimation",
    "targets.attgan",
    "targets.pix2pix",
    "targets.cyclegan",
    "targets.bundled",
)

Factory = Callable[[Path | None], Target]


class UnknownTargetError(LookupError):
    """No target is registered under that name."""


@dataclass(frozen=True)
class TargetInfo:
    name: str
    factory: Factory
    description: str
    weights: WeightsSpec | None  # official / bundled weights this factory expects
    needs_weights: bool  # True when the user must pass a checkpoint path
    bundled: bool = False  # weights ship inside the package


_REGISTRY: dict[str, TargetInfo] = {}
_loaded = False


def register_target(
    name: str,
    *,
    description: str,
    weights: WeightsSpec | None = None,
    needs_weights: bool = False,
    bundled: bool = False,
) -> Callable[[Factory], Factory]:
    """Decorator: register ``factory`` under ``name``. A duplicate name is an error."""

    def decorate(factory: Factory) -> Factory:
        if name in _REGISTRY:
            raise ValueError(f"target {name!r} is already registered")
        _REGISTRY[name] = TargetInfo(name, factory, description, weights, needs_weights, bundled)
        return factory

    return decorate


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    import importlib

    for module in _BUILTIN_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # a real import error inside the module
                raise
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.value in _BUILTIN_MODULES:
            continue
        loaded = ep.load()
        if callable(loaded):
            loaded()


def list_targets() -> list[TargetInfo]:
    """Every registered target, sorted by name."""
    _load_all()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def target_info(name: str) -> TargetInfo:
    _load_all()
    if name not in _REGISTRY:
        choices = ", ".join(sorted(_REGISTRY))
        raise UnknownTargetError(f"unknown target {name!r}; choose one of: {choices}")
    return _REGISTRY[name]


def load_target(name: str, weights: str | Path | None = None) -> Target:
    """Build the target registered as ``name``, loading ``weights`` where it needs them.

    Raises :class:`UnknownTargetError` (listing the choices) for an unknown name,
    ``targets.checkpoints.CheckpointError`` for a missing or unfitting checkpoint.
    """
    info = target_info(name)
    path = Path(weights) if weights is not None else None
    if info.needs_weights and path is None:
        from targets.checkpoints import CheckpointError

        raise CheckpointError(
            f"target {name!r} needs its checkpoint: pass weights=PATH (CLI: --weights PATH)"
        )
    return info.factory(path)
