"""Find attacks by name. Built-ins register exactly as plugins do.

A factory is ``factory(eps, [alpha=...], [steps=...], [norm=...]) -> Attack``: it
takes the budget positionally and whichever of the shared options it supports as
keywords. Register one with :func:`register_attack`. Plugins declare an entry point
in the group ``disrupt.attacks`` whose value is a module (importing it registers its
attacks) or a zero-argument callable that registers them; both are loaded on the
first lookup, not at import.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from types import ModuleType

from attacks.loop import Attack, Norm

ENTRY_POINT_GROUP = "disrupt.attacks"
# Built-in modules, imported on first lookup; the same path plugins take.
_BUILTIN_MODULES = ("attacks.presets",)

AttackFactory = Callable[..., Attack]


class UnknownAttackError(LookupError):
    """No attack is registered under that name."""


@dataclass(frozen=True)
class AttackInfo:
    """A registry entry: ``name``, a one-line ``description`` and its ``factory``."""

    name: str
    description: str
    factory: AttackFactory


_REGISTRY: dict[str, AttackInfo] = {}
_loaded = False


def register_attack(
    name: str, *, description: str | None = None
) -> Callable[[AttackFactory], AttackFactory]:
    """Decorator: register ``factory`` under ``name``; a duplicate name is a ``ValueError``.

    ``description`` defaults to the first line of the factory's docstring.
    """

    def decorate(factory: AttackFactory) -> AttackFactory:
        if name in _REGISTRY:
            raise ValueError(f"attack {name!r} is already registered")
        doc = description or (inspect.getdoc(factory) or "").strip().split("\n")[0]
        _REGISTRY[name] = AttackInfo(name, doc, factory)
        return factory

    return decorate


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.value in _BUILTIN_MODULES:
            continue
        try:
            loaded = ep.load()
            if callable(loaded) and not isinstance(loaded, ModuleType):
                loaded()
        except Exception as exc:
            raise RuntimeError(
                f"attack plugin {ep.name!r} ({ep.value}) failed to load: {exc}"
            ) from exc


def list_attacks() -> list[tuple[str, str]]:
    """``(name, one-line description)`` of every registered attack, sorted by name."""
    _load_all()
    return [(k, _REGISTRY[k].description) for k in sorted(_REGISTRY)]


def attack_info(name: str) -> AttackInfo:
    """The registry entry for ``name``; :class:`UnknownAttackError` lists the choices."""
    _load_all()
    if name not in _REGISTRY:
        choices = ", ".join(sorted(_REGISTRY))
        raise UnknownAttackError(f"unknown attack {name!r}; choose one of: {choices}")
    return _REGISTRY[name]


def _accepts(factory: AttackFactory, option: str) -> bool:
    params = inspect.signature(factory).parameters.values()
    return any(p.name == option or p.kind is p.VAR_KEYWORD for p in params)


def create_attack(
    name: str,
    *,
    eps: float,
    steps: int | None = None,
    alpha: float | None = None,
    norm: Norm = "linf",
) -> Attack:
    """Build the attack registered as ``name`` with budget ``eps`` (``[0, 1]`` pixel units).

    ``steps`` and ``alpha`` left as ``None`` take the attack's own defaults. An option
    the attack has no use for (``steps`` for single-step ``fgsm``) is a ``ValueError``
    rather than silently ignored; so is a bad value.

    Raises:
        UnknownAttackError: no attack is registered under ``name`` (the message lists them).
        ValueError: an unsupported option or an invalid setting.
    """
    factory = attack_info(name).factory
    options: dict[str, object] = {}
    for option, value in (("steps", steps), ("alpha", alpha), ("norm", norm)):
        if option == "norm" and value == "linf" and not _accepts(factory, "norm"):
            continue  # Linf is every attack's default
        if value is None:
            continue
        if not _accepts(factory, option):
            raise ValueError(f"attack {name!r} takes no {option!r} option (got {value!r})")
        options[option] = value
    return factory(eps, **options)
