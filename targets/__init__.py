"""Generators that attacks are aimed at: adapters, checkpoint loaders, bundled weights.

Imports nothing from ``attacks``. Look targets up with :func:`load_target`.
"""

from targets.base import UNCONDITIONAL, Condition, GeneratorTarget, Target, WeightsSpec
from targets.checkpoints import CheckpointError
from targets.registry import (
    TargetInfo,
    UnknownTargetError,
    list_targets,
    load_target,
    register_target,
    target_info,
)

__all__ = [
    "UNCONDITIONAL",
    "CheckpointError",
    "Condition",
    "GeneratorTarget",
    "Target",
    "TargetInfo",
    "UnknownTargetError",
    "WeightsSpec",
    "list_targets",
    "load_target",
    "register_target",
    "target_info",
]
