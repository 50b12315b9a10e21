"""disrupt: immunize photos against deepfake image-translation networks.

Public API (imported lazily so the CLI's ``--help`` stays instant)::

    from disrupt import protect
    result = protect("photo.png", output="photo.protected.png")

Images at every public edge are float32 RGB ``(B, 3, H, W)`` in ``[0, 1]``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "protect": "disrupt.api",
    "ProtectResult": "disrupt.api",
    "default_targets": "disrupt.api",
    "resolve_targets": "disrupt.api",
    "Disruption": "disrupt.eval.evaluation",
    "measure_disruption": "disrupt.eval.evaluation",
    "DisruptError": "disrupt.errors",
    "ImageError": "disrupt.errors",
    "load_image": "disrupt.imaging",
    "save_image": "disrupt.imaging",
    "load_target": "targets",
    "list_targets": "targets",
    "register_target": "targets",
    "GeneratorTarget": "targets",
    "Condition": "targets",
    "create_attack": "attacks",
    "list_attacks": "attacks",
    "register_attack": "attacks",
}

if TYPE_CHECKING:
    from attacks import create_attack, list_attacks, register_attack
    from disrupt.api import ProtectResult, default_targets, protect, resolve_targets
    from disrupt.errors import DisruptError, ImageError
    from disrupt.eval.evaluation import Disruption, measure_disruption
    from disrupt.imaging import load_image, save_image
    from targets import Condition, GeneratorTarget, list_targets, load_target, register_target

__all__ = [
    "Condition",
    "DisruptError",
    "Disruption",
    "GeneratorTarget",
    "ImageError",
    "ProtectResult",
    "create_attack",
    "default_targets",
    "list_attacks",
    "list_targets",
    "load_image",
    "load_target",
    "measure_disruption",
    "protect",
    "register_attack",
    "register_target",
    "resolve_targets",
    "save_image",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'disrupt' has no attribute {name!r}")
