"""How to perturb: one model-agnostic attack loop and its named presets.

Imports nothing from ``targets`` or ``disrupt``. An attack only calls an *objective*,
``objective(x_adv) -> (B,)`` scores to maximise, on images ``(B, C, H, W)`` with values
in ``[0, 1]``. Look attacks up by name with :func:`create_attack`.
"""

from attacks.loop import (
    Attack,
    Callback,
    Norm,
    Objective,
    check_image,
    check_params,
    project,
    random_delta,
    run_attack,
)
from attacks.presets import default_alpha, fgsm, ifgsm, mifgsm, pgd
from attacks.quantize import quantize_to_uint8_within
from attacks.registry import (
    AttackInfo,
    UnknownAttackError,
    attack_info,
    create_attack,
    list_attacks,
    register_attack,
)

__all__ = [
    "Attack",
    "AttackInfo",
    "Callback",
    "Norm",
    "Objective",
    "UnknownAttackError",
    "attack_info",
    "check_image",
    "check_params",
    "create_attack",
    "default_alpha",
    "fgsm",
    "ifgsm",
    "list_attacks",
    "mifgsm",
    "pgd",
    "project",
    "quantize_to_uint8_within",
    "random_delta",
    "register_attack",
    "run_attack",
]
