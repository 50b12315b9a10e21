"""Objectives over random image transforms: expectation over transformation (EOT)
and Ruiz et al.'s spread-spectrum attack against a blur defence.

:class:`ExpectationOverTransforms` wraps any objective and scores it on randomly
transformed copies of ``x_adv`` (Athalye et al., "Synthesizing Robust Adversarial
Examples", ICML 2018), drawn from a seeded ``torch.Generator``; the transforms live in
:mod:`disrupt.core.transforms`. :class:`SpreadSpectrum` (Ruiz et al. 2020, Sec. 3.4)
changes the blur at every attack step instead: at its ``t``-th call it applies blur
``t mod len(blurs)`` (Gaussian sigma 1, 2, 3, then box 5, 7, 9 by default).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from attacks import Objective
from disrupt.core.transforms import (
    DEFAULT_EOT_TRANSFORMS,
    Blur,
    RandomTransform,
    Transform,
    draw_int,
)

#: Ruiz et al.'s cycle: Gaussian sigma 1, 2, 3 then box 5, 7, 9.
SPREAD_SPECTRUM_BLURS: tuple[Blur, ...] = (
    Blur("gaussian", 1.0), Blur("gaussian", 2.0), Blur("gaussian", 3.0),
    Blur("box", 5), Blur("box", 7), Blur("box", 9),
)


class SpreadSpectrum:
    """Cycle blurs over the attack steps: call ``t`` scores ``objectives[t % n](blur_t(x_adv))``.

    Args:
        make_objective: ``make_objective(x_ref) -> objective``, called once per blur
            with the clean batch ``x`` blurred by it. Building the objective on the
            blurred clean image (``lambda xb: AwayFromClean(target, xb)``) pushes
            ``G(blur(x_adv))`` away from ``G(blur(x))``: what a manipulator who blurs
            would have got from the clean photo. Ignore the argument
            (``lambda _: AwayFromClean(target, x)``) to push away from the unblurred
            ``G(x)``, as Ruiz et al.'s code does.
        x: clean images ``(B, 3, H, W)`` in ``[0, 1]``.
        blurs: the cycle; Ruiz et al.'s six by default.

    Stateful like :class:`~disrupt.core.objectives.IterativeConditions`: the attack loop
    calls its objective once per step, so step ``t`` uses blur ``t mod len(blurs)``.
    Build a fresh one (or :meth:`reset`) per attack run.

    Shape:
        ``__call__``: ``(B, 3, H, W)`` in ``[0, 1]`` -> ``(B,)`` scores to maximise.
    """

    def __init__(
        self,
        make_objective: Callable[[Tensor], Objective],
        x: Tensor,
        blurs: Sequence[Blur] = SPREAD_SPECTRUM_BLURS,
    ) -> None:
        self.blurs = tuple(blurs)
        if not self.blurs:
            raise ValueError("blurs must not be empty")
        x = x.detach()
        self.parts = [make_objective(blur(x).clamp(0.0, 1.0)) for blur in self.blurs]
        self.calls = 0

    def reset(self) -> None:
        """Start the cycle again at the first blur."""
        self.calls = 0

    def __call__(self, x_adv: Tensor) -> Tensor:
        k = self.calls % len(self.blurs)
        self.calls += 1
        return self.parts[k](self.blurs[k](x_adv).clamp(0.0, 1.0))


class ExpectationOverTransforms:
    """Average an objective over randomly drawn transforms of ``x_adv`` (EOT).

    Each call draws ``samples`` transforms (a member of ``transforms`` chosen uniformly,
    then its parameters) from ``generator`` and returns the mean of
    ``objective(t(x_adv))``. The gradient is then an unbiased estimate of the
    gradient of the expectation (Athalye et al., ICML 2018).

    The inner ``objective`` keeps the reference it was built with: built on the clean
    ``x`` (``AwayFromClean(target, x)``), it pushes ``G(t(x_adv))`` away from ``G(x)``;
    that is cheap (no extra pass) and is how Ruiz et al.'s spread-spectrum code scores.
    :meth:`with_references` instead builds, for each draw, the objective on the
    equally transformed clean image, pushing ``G(t(x_adv))`` away from ``G(t(x))``
    (what the manipulator would have got from the clean photo through the same
    channel), at one more no-grad forward pass per draw.

    A stateful inner objective (:class:`~disrupt.core.objectives.IterativeConditions`)
    advances once per draw, not once per attack step.

    Args:
        objective: ``(B, 3, H, W)`` in ``[0, 1]`` -> ``(B,)`` scores to maximise.
        transforms: random transforms to draw from (:data:`DEFAULT_EOT_TRANSFORMS`).
        samples: draws averaged per call, ``>= 1``.
        generator: seeds the draws; ``None`` uses (and advances) torch's global RNG.

    Shape:
        ``__call__``: ``(B, 3, H, W)`` in ``[0, 1]`` -> ``(B,)``.
    """

    def __init__(
        self,
        objective: Objective,
        transforms: Sequence[RandomTransform] = DEFAULT_EOT_TRANSFORMS,
        *,
        samples: int = 1,
        generator: torch.Generator | None = None,
    ) -> None:
        self.transforms = tuple(transforms)
        if not self.transforms:
            raise ValueError("transforms must not be empty")
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise ValueError(f"samples must be an integer >= 1, got {samples!r}")
        self.objective = objective
        self.samples = samples
        self.generator = generator
        self._make: Callable[[Tensor], Objective] | None = None
        self._x: Tensor | None = None
        self.drawn: list[str] = []  # names of the transforms drawn so far, for inspection

    @classmethod
    def with_references(
        cls,
        make_objective: Callable[[Tensor], Objective],
        x: Tensor,
        transforms: Sequence[RandomTransform] = DEFAULT_EOT_TRANSFORMS,
        *,
        samples: int = 1,
        generator: torch.Generator | None = None,
    ) -> ExpectationOverTransforms:
        """EOT whose objective for draw ``t`` is ``make_objective(t(x))``.

        Args:
            make_objective: ``make_objective(x_ref) -> objective``, e.g.
                ``lambda xr: AwayFromClean(target, xr)``.
            x: clean images ``(B, 3, H, W)`` in ``[0, 1]``.
        """
        eot = cls(make_objective(x.detach()), transforms, samples=samples, generator=generator)
        eot._make = make_objective
        eot._x = x.detach()
        return eot

    def draw(self) -> tuple[str, Transform]:
        """Draw one transform: ``(family name, deterministic transform)``."""
        family = self.transforms[draw_int(0, len(self.transforms) - 1, self.generator)]
        return family.name, family.sample(self.generator)

    def __call__(self, x_adv: Tensor) -> Tensor:
        scores = []
        for _ in range(self.samples):
            name, t = self.draw()
            self.drawn.append(name)
            if self._make is not None and self._x is not None:
                with torch.no_grad():
                    reference = t(self._x)
                objective = self._make(reference)
            else:
                objective = self.objective
            scores.append(objective(t(x_adv)))
        return torch.stack(scores).mean(dim=0)
