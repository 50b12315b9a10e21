"""The cells of a benchmark grid: one (target, attack, budget, steps, objective)
combination each, and the attack and objectives a cell runs.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from attacks import Objective, attack_info, create_attack
from disrupt.bench.config import (
    OBJECTIVES,
    BenchConfig,
    ConfigError,
)
from disrupt.core.budget import STRENGTHS
from disrupt.core.eot import SpreadSpectrum
from disrupt.core.objectives import (
    AwayFromClean,
    IterativeConditions,
    JointConditions,
    TowardOutput,
)
from targets.base import Target

log = logging.getLogger(__name__)


ALL_CONDITIONS = "all"


PRESET_PREFIX = "preset:"  # attack name of a strength-preset cell: "preset:mid"


@dataclass(frozen=True)
class Cell:
    """One grid point: protect against ``target`` with ``attack`` at budget ``eps``.

    ``alpha`` is the step size actually used; ``steps`` is 1 for single-step attacks.
    A strength-preset cell has ``attack = "preset:<strength>"``, ``eps`` the preset's
    per-pixel cap and ``alpha = 0`` (its L2 step is set per image by the preset).
    """

    target: str
    attack: str
    eps: float
    steps: int
    alpha: float
    objective: str

    @property
    def label(self) -> str:
        return (f"{self.target} {self.attack} {self.objective} "
                f"eps={self.eps * 255:.3g}/255 steps={self.steps}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["eps_255"] = self.eps * 255
        d["alpha_255"] = self.alpha * 255
        return d


def _takes(attack: str, option: str) -> bool:
    return option in inspect.signature(attack_info(attack).factory).parameters


def make_attack(cell: Cell) -> Any:
    """The :class:`attacks.Attack` of ``cell``."""
    return create_attack(
        cell.attack, eps=cell.eps,
        steps=cell.steps if _takes(cell.attack, "steps") else None,
        alpha=cell.alpha if _takes(cell.attack, "alpha") else None,
    )


def build_cells(cfg: BenchConfig, target_names: Sequence[str]) -> list[Cell]:
    """The grid, in a fixed order; single-step attacks appear once per budget."""
    cells: list[Cell] = []
    for target in target_names:
        for attack in cfg.attacks:
            for eps in cfg.eps:
                step_list = cfg.steps if _takes(attack, "steps") else (1,)
                for steps in step_list:
                    alpha = cfg.alpha if _takes(attack, "alpha") else None
                    try:
                        atk = create_attack(
                            attack, eps=eps,
                            steps=steps if _takes(attack, "steps") else None, alpha=alpha)
                    except ValueError as exc:
                        raise ConfigError(f"attack {attack}: {exc}") from None
                    for objective in cfg.objectives:
                        cell = Cell(target, attack, eps, atk.steps, atk.alpha, objective)
                        if cell not in cells:
                            cells.append(cell)
        for strength in cfg.strengths:
            preset = STRENGTHS[strength]
            cells.append(Cell(target, PRESET_PREFIX + strength, preset.eps, preset.steps, 0.0,
                              "away"))
    return cells


def _grey_target(target: Target, x: Tensor) -> Tensor:
    """Flat mid-grey ``(1, 3, h, w)`` at ``target``'s output size: the ``toward`` target."""
    with torch.no_grad():
        y = target(x[:1], target.conditions[0].vector)
    return torch.full((1, 3, *y.shape[-2:]), 0.5, device=x.device)


def make_objectives(objective: str, target: Target, x: Tensor) -> list[tuple[str, Objective]]:
    """``[(attacked_condition, objective)]`` for one batch ``x`` ``(B, 3, H, W)`` in [0, 1].

    One entry named :data:`ALL_CONDITIONS` for every objective but ``specific``,
    which gives one per condition of ``target``.
    """
    if objective == "away":
        return [(ALL_CONDITIONS, AwayFromClean(target, x))]
    if objective == "joint":
        return [(ALL_CONDITIONS, JointConditions(target, x))]
    if objective == "iterative":
        return [(ALL_CONDITIONS, IterativeConditions(target, x))]
    if objective == "toward":
        return [(ALL_CONDITIONS, TowardOutput(target, x, _grey_target(target, x)))]
    if objective == "spread":
        return [(ALL_CONDITIONS, SpreadSpectrum(lambda xb: JointConditions(target, xb), x))]
    if objective == "specific":
        return [(c.name, AwayFromClean(target, x, [c])) for c in target.conditions]
    raise ConfigError(f"unknown objective {objective!r}; choose from {', '.join(OBJECTIVES)}")
