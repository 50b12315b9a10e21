"""Objectives: what an attack maximises, built from targets and the clean image.

An objective is a callable ``objective(x_adv) -> scores``: ``x_adv`` is ``(B, 3, H, W)``
with values in ``[0, 1]``, the same shape as the clean batch ``x`` it was built from;
``scores`` is ``(B,)``, one number per image, to **maximise**. Target outputs are
``(B, 3, h, w)`` in ``[0, 1]``, so distances here are on the ``[0, 1]`` scale (Ruiz et
al.'s "L2 error" on ``[-1, 1]`` is four times the MSE here).

- :class:`AwayFromClean` (and its named twin :class:`JointConditions`): push ``G(x_adv, c)`` away
  from ``G(x, c)`` for all conditions at once (Ruiz et al. 2020, and their joint
  class-transferable attack).
- :class:`BalancedAway`: the same distances, each measured against Ruiz et al.'s
  disruption threshold on a log scale and frozen once past it, so that every
  target and condition gets effort (the default of the strength presets).
- :class:`IterativeConditions`: the same, one condition per call, cycling
  (their iterative class-transferable attack).
- :class:`TowardOutput`: targeted, pull ``G(x_adv, c)`` toward a chosen image.
- :class:`Ensemble`: a weighted mean of objectives, e.g. over several targets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, get_args

import torch
from torch import Tensor

from attacks import Objective, check_image
from targets.base import Condition, Target

Loss = Literal["mse", "l1"]
TIE_BREAK = 1e-4  # see AwayFromClean: moves attacks off the zero gradient at x_adv = x
#: Ruiz et al.'s success threshold: MSE > 0.05 between outputs on the [-1, 1] scale
#: (:data:`disrupt.eval.metrics.RUIZ_THRESHOLD` is this constant).
RUIZ_THRESHOLD = 0.05


def _check_batch(x: Tensor, name: str = "x") -> None:
    check_image(x, name)
    if x.shape[1] != 3:
        raise ValueError(f"{name} must be RGB (B, 3, H, W), got shape {tuple(x.shape)}")


def _distance(a: Tensor, b: Tensor, loss: Loss) -> Tensor:
    """Per-image distance over all but the first two dims: ``(K, B, ...) -> (K, B)``."""
    diff = a - b
    per_pixel = diff.square() if loss == "mse" else diff.abs()
    return per_pixel.flatten(2).mean(dim=2)


class OverConditions:
    """Runs one target on a batch for several conditions: outputs ``(K, B, 3, h, w)``.

    When the target is batch-independent (``target.batch_independent`` is
    ``True``), all ``K`` conditions go through **one** call: ``x`` repeated ``K`` times
    along the batch, condition rows stacked to match (``K * B`` rows, condition-major),
    so a step costs one forward and one backward. Otherwise (BatchNorm in train mode,
    where a batch's images change each other's outputs) each condition gets its own
    call on the ``B`` images, which is what the generator's own test script computes.
    Unconditional targets (every condition vector ``None``) have ``K = 1``.
    """

    def __init__(self, target: Target, x: Tensor, conditions: Sequence[Condition] | None) -> None:
        _check_batch(x)
        conds = tuple(target.conditions if conditions is None else conditions)
        if not conds:
            raise ValueError("conditions must not be empty")
        vectors = [c.vector for c in conds]
        if all(v is None for v in vectors):
            self.vectors: Tensor | None = None
        elif any(v is None for v in vectors):
            raise ValueError("conditions mix vectors and None (unconditional)")
        else:
            self.vectors = torch.stack([v.to(x.device) for v in vectors if v is not None])
        self.target = target
        self.conditions = conds
        self.batched = bool(target.batch_independent)
        self.shape = tuple(x.shape)

    @property
    def num_passes(self) -> int:
        """``K``: outputs per image, ``1`` for an unconditional target."""
        return 1 if self.vectors is None else self.vectors.shape[0]

    def outputs(self, x_adv: Tensor, which: Tensor | None = None) -> Tensor:
        """``(B, 3, H, W)`` in ``[0, 1]`` -> ``(K, B, 3, h, w)`` target outputs in ``[0, 1]``;
        with ``which`` (condition indices, ``(k,)``), those conditions only: ``(k, B, ...)``."""
        if tuple(x_adv.shape) != self.shape:
            raise ValueError(
                f"x_adv must have the clean batch's shape {self.shape}, got {tuple(x_adv.shape)}"
            )
        if self.vectors is None:
            return self.target(x_adv, None).unsqueeze(0)
        vectors = self.vectors if which is None else self.vectors[which.to(self.vectors.device)]
        k, b = vectors.shape[0], x_adv.shape[0]
        if self.batched:
            # Shrink once, then repeat: K copies of a full-size photo would cost K resizes.
            resize = getattr(self.target, "resize_input", None)
            small = resize(x_adv) if callable(resize) else x_adv
            y = self.target(small.repeat(k, 1, 1, 1), vectors.repeat_interleave(b, dim=0))
            return y.reshape(k, b, *y.shape[1:])
        rows = [v.unsqueeze(0).expand(b, *v.shape) for v in vectors]
        return torch.stack([self.target(x_adv, c) for c in rows])


class AwayFromClean(OverConditions):
    """Ruiz et al.: maximise the distance between ``G(x_adv, c)`` and ``G(x, c)``.

    ``score = mean over conditions c of mean over pixels of (G(x_adv, c) - G(x, c))**2``
    (``loss="l1"``: absolute difference), up to the tie-break below. The mean over
    conditions is the paper's sum divided by ``K``: the same ascent direction. All
    conditions run batched in one target call per step (see :class:`OverConditions`).

    Tie-break. A distance from the clean output is at its minimum at ``x_adv = x``,
    so its gradient there is exactly zero and an attack that starts at ``x`` (FGSM,
    I-FGSM, MI-FGSM) would never move. Ruiz et al.'s code moved only because GPU
    floating-point noise made the no-grad clean pass and the attack's pass differ
    slightly. We make that explicit and reproducible: distances are measured to
    ``G(x, c) - tie_break * n``, with ``n`` a fixed standard-normal image (seed 0,
    shape ``(3, h, w)``, shared by every image and condition), minus that
    reference's own distance at ``x``, so ``score(x) = 0`` exactly and the first
    gradient is ``J^T n``: the noise seen through the generator's Jacobian. For MSE
    the score is ``MSE + (2 * tie_break / N) * <G(x_adv) - G(x), n>``; the extra term
    is below 0.2% of the score once outputs differ by Ruiz's threshold. Pass
    ``tie_break=0`` for the plain distance (and a random start).

    Args:
        target: the generator to disrupt.
        x: clean images ``(B, 3, H, W)`` in ``[0, 1]``; ``G(x, c)`` is computed here,
            once, under ``torch.no_grad`` and kept as ``clean`` ``(K, B, 3, h, w)``.
        conditions: the conditions to disrupt; ``None`` means all of ``target.conditions``.
        loss: ``"mse"`` or ``"l1"``.
        tie_break: size of the reference offset on the ``[0, 1]`` output scale, ``>= 0``.
        sample: score a random ``sample`` of the ``K`` conditions per call (drawn
            without replacement from ``generator``; an unbiased estimate of the mean
            over all, as EOT is of its transforms), at ``sample / K`` of the cost.
            ``None`` (or ``>= K``): every condition, every call.
        generator: seeds the draws of ``sample``.

    Shape:
        ``__call__``: ``(B, 3, H, W)`` in ``[0, 1]`` -> ``(B,)``, ``0`` at ``x``.
    """

    def __init__(
        self,
        target: Target,
        x: Tensor,
        conditions: Sequence[Condition] | None = None,
        loss: Loss = "mse",
        tie_break: float = TIE_BREAK,
        *,
        sample: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        if loss not in get_args(Loss):
            raise ValueError(f"loss must be one of {get_args(Loss)}, got {loss!r}")
        if not math.isfinite(tie_break) or tie_break < 0:
            raise ValueError(f"tie_break must be >= 0, got {tie_break}")
        if sample is not None and (isinstance(sample, bool) or not isinstance(sample, int)
                                   or sample < 1):
            raise ValueError(f"sample must be an integer >= 1 or None, got {sample!r}")
        super().__init__(target, x, conditions)
        self.sample = sample if sample is not None and sample < self.num_passes else None
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        self.loss: Loss = loss
        with torch.no_grad():
            self.clean = self.outputs(x.detach())
            noise = torch.randn(self.clean.shape[2:], generator=torch.Generator().manual_seed(0))
            self.reference = self.clean - tie_break * noise.to(self.clean)
            self._offset = _distance(self.clean, self.reference, loss)  # (K, B)

    def __call__(self, x_adv: Tensor) -> Tensor:
        reference, offset, which = self.reference, self._offset, None
        if self.sample is not None:
            which = torch.randperm(self.num_passes, generator=self.generator)[: self.sample]
            which = which.sort()[0].to(reference.device)
            reference, offset = reference[which], offset[which]
        distance = _distance(self.outputs(x_adv, which), reference, self.loss) - offset
        return distance.mean(dim=0)


class BalancedAway(AwayFromClean):
    """:class:`AwayFromClean` that spreads the effort over targets and conditions.

    A plain mean of distances lets the most sensitive generator take the whole budget:
    against the bundled models the mean rose by disrupting StarGAN further while
    AttGAN and the face swap stayed untouched. Here each (condition, image) distance
    ``d`` is measured relative to the disruption threshold ``t`` (Ruiz et al.'s 0.05
    on ``[-1, 1]``, so ``t = 0.05 / 4`` on the ``[0, 1]`` scale used here) and scored
    on a log scale, frozen past the threshold with a margin::

        r = clamp(d / t, 0, 1 + margin)
        score = mean over conditions of log(floor + r) - log(floor)

    The log makes every output count by its *relative* progress, so a generator that
    moves a hundred times less still gets its share (the gradient of ``log r`` is
    ``grad r / r``); the clamp freezes an output once it is disrupted with margin, so
    the remaining budget goes to the outputs still below. ``floor`` keeps the score
    finite at ``x`` (where ``d = 0``). An :class:`Ensemble` of these (one per target)
    balances the targets the same way. Same arguments as :class:`AwayFromClean`, plus:

    Args:
        threshold: the disruption threshold on the ``[-1, 1]`` scale (Ruiz MSE).
        margin: how far past the threshold an output is still pushed (0.25: to 1.25x).
        floor: the log's offset, as a fraction of the threshold.

    Shape:
        ``__call__``: ``(B, 3, H, W)`` in ``[0, 1]`` -> ``(B,)``, ``0`` at ``x``, at most
        ``log((floor + 1 + margin) / floor)``.
    """

    def __init__(
        self,
        target: Target,
        x: Tensor,
        conditions: Sequence[Condition] | None = None,
        loss: Loss = "mse",
        tie_break: float = TIE_BREAK,
        *,
        threshold: float = RUIZ_THRESHOLD,
        margin: float = 0.25,
        floor: float = 0.01,
    ) -> None:
        if not (math.isfinite(threshold) and threshold > 0):
            raise ValueError(f"threshold must be > 0, got {threshold}")
        if not (math.isfinite(margin) and margin >= 0):
            raise ValueError(f"margin must be >= 0, got {margin}")
        if not (math.isfinite(floor) and floor > 0):
            raise ValueError(f"floor must be > 0, got {floor}")
        if loss != "mse":
            raise ValueError("BalancedAway measures against the Ruiz MSE threshold: loss='mse'")
        super().__init__(target, x, conditions, loss, tie_break)
        self.threshold = threshold / 4  # Ruiz MSE is 4x the [0, 1]-scale MSE measured here
        self.margin = margin
        self.floor = floor

    def __call__(self, x_adv: Tensor) -> Tensor:
        distance = _distance(self.outputs(x_adv), self.reference, self.loss) - self._offset
        ratio = (distance / self.threshold).clamp(0.0, 1.0 + self.margin)
        return (torch.log(self.floor + ratio) - math.log(self.floor)).mean(dim=0)

    @property
    def ceiling(self) -> float:
        """The highest score: every output at ``1 + margin`` times the threshold.

        An attack can stop an image whose score is within float rounding of it
        (:func:`balanced_stop_at`): nothing is left to gain there."""
        return math.log(self.floor + 1.0 + self.margin) - math.log(self.floor)

    def ratios(self, x_adv: Tensor) -> Tensor:
        """``(K, B)`` distances over the threshold, unclamped (1: at the threshold)."""
        with torch.no_grad():
            d = _distance(self.outputs(x_adv), self.reference, self.loss) - self._offset
        return d / self.threshold


def balanced_stop_at(objective: BalancedAway | Ensemble) -> float:
    """The ``stop_at`` of :func:`attacks.run_attack` for ``objective``: just under its
    ceiling, so an image stops once every target and condition is disrupted with margin.

    ``objective`` is a :class:`BalancedAway` or an :class:`Ensemble` of them (whose
    ceiling is the weighted mean of theirs). A tolerance of ``1e-4`` of the ceiling
    absorbs float32 rounding of the mean.
    """
    if isinstance(objective, BalancedAway):
        ceiling = objective.ceiling
    elif isinstance(objective, Ensemble) and all(
            isinstance(o, BalancedAway) for o in objective.objectives):
        ceiling = sum(w * o.ceiling for w, o in zip(objective.weights, objective.objectives,
                                                     strict=True) if isinstance(o, BalancedAway))
    else:
        raise TypeError("balanced_stop_at needs a BalancedAway or an Ensemble of them, got "
                        f"{type(objective).__name__}")
    return ceiling * (1 - 1e-4)


class JointConditions(AwayFromClean):
    """Ruiz et al.'s *joint* class-transferable attack: :class:`AwayFromClean` over all
    conditions at once. Same signature and scores; only the name differs."""


class IterativeConditions:
    """Ruiz et al.'s *iterative* class-transferable attack: one condition per call.

    Stateful: the ``t``-th call (counting from 0, or from the last :meth:`reset`)
    scores :class:`AwayFromClean` for condition ``t mod K`` only. The attack loop calls
    its objective exactly once per step, so step ``t`` attacks condition ``t mod K``.
    Build a fresh objective (or ``reset()``) for each attack run.

    Args:
        target, x, conditions, loss, tie_break: as for :class:`AwayFromClean`.

    Shape:
        ``__call__``: ``(B, 3, H, W)`` in ``[0, 1]`` -> ``(B,)``, ``>= 0``.
    """

    def __init__(
        self,
        target: Target,
        x: Tensor,
        conditions: Sequence[Condition] | None = None,
        loss: Loss = "mse",
        tie_break: float = TIE_BREAK,
    ) -> None:
        conds = tuple(target.conditions if conditions is None else conditions)
        if not conds:
            raise ValueError("conditions must not be empty")
        self.parts = [AwayFromClean(target, x, [c], loss, tie_break) for c in conds]
        self.calls = 0

    def reset(self) -> None:
        """Start the cycle again at the first condition."""
        self.calls = 0

    def __call__(self, x_adv: Tensor) -> Tensor:
        part = self.parts[self.calls % len(self.parts)]
        self.calls += 1
        return part(x_adv)


class TowardOutput(OverConditions):
    """Targeted: pull ``G(x_adv, c)`` toward ``y_target``; ``score = -MSE``.

    Args:
        target: the generator.
        x: clean images ``(B, 3, H, W)`` in ``[0, 1]`` (fixes the batch shape).
        y_target: the wanted output, ``(B, 3, h, w)`` or ``(1, 3, h, w)`` in ``[0, 1]``
            at the target's output resolution; the same for every condition.
        conditions: ``None`` means all of ``target.conditions`` (scores are averaged).

    Shape:
        ``__call__``: ``(B, 3, H, W)`` in ``[0, 1]`` -> ``(B,)``, ``<= 0``.
    """

    def __init__(
        self,
        target: Target,
        x: Tensor,
        y_target: Tensor,
        conditions: Sequence[Condition] | None = None,
    ) -> None:
        super().__init__(target, x, conditions)
        _check_batch(y_target, "y_target")
        if y_target.shape[0] not in (1, x.shape[0]):
            raise ValueError(
                f"y_target batch must be 1 or {x.shape[0]}, got shape {tuple(y_target.shape)}"
            )
        self.y_target = y_target.detach().to(x.device)

    def __call__(self, x_adv: Tensor) -> Tensor:
        y = self.outputs(x_adv)
        if y.shape[-2:] != self.y_target.shape[-2:]:
            raise ValueError(
                f"y_target is {tuple(self.y_target.shape[-2:])} but {self.target.name} "
                f"outputs {tuple(y.shape[-2:])}"
            )
        return -_distance(y, self.y_target.unsqueeze(0), "mse").mean(dim=0)


class Ensemble:
    """Weighted mean of objectives: ``sum(w_i * o_i(x_adv)) / sum(w_i)``.

    Use it to attack several targets (or objectives) at once. The objectives' scales
    add up as they are; pass ``weights`` to balance targets whose distances differ.

    Giving up. With ``give_up_after = k``, after the ``k``-th call each objective
    whose best score so far on an image (the highest over those calls) is still below
    ``give_up_below`` stops counting for that image, and the mean runs over the
    others; an objective given up on every image of the batch is no longer evaluated.
    Under a plain mean of distances such an objective gets almost none of the gradient
    anyway (next to StarGAN, the bundled AttGAN, CycleGAN and face swap stayed under
    2% of Ruiz's threshold in 20 steps), so dropping it saves its forward and
    backward passes without changing where the attack goes. Decided per image, so a
    batch of photos is attacked as each photo alone would be; never every objective
    of an image: when all are below, all are kept. :attr:`given_up` lists the indices
    of the objectives given up on every image.

    Args:
        objectives: one or more objectives built on the same clean batch.
        weights: one non-negative weight per objective (not all zero); ``None``
            weighs them equally.
        give_up_after: the call after which to give up, ``>= 1``; ``None``: never.
        give_up_below: the score an objective must have reached by then, on its own
            scale (:class:`AwayFromClean`: the MSE on ``[0, 1]``).

    Shape:
        ``__call__``: ``(B, 3, H, W)`` in ``[0, 1]`` -> ``(B,)``.
    """

    def __init__(self, objectives: Sequence[Objective], weights: Sequence[float] | None = None,
                 *, give_up_after: int | None = None, give_up_below: float = 0.0):
        self.objectives = tuple(objectives)
        if not self.objectives:
            raise ValueError("Ensemble needs at least one objective")
        w = [1.0] * len(self.objectives) if weights is None else [float(v) for v in weights]
        if len(w) != len(self.objectives):
            raise ValueError(f"got {len(w)} weights for {len(self.objectives)} objectives")
        if any(not math.isfinite(v) or v < 0 for v in w) or sum(w) <= 0:
            raise ValueError(f"weights must be finite, >= 0 and not all 0, got {w}")
        if give_up_after is not None and (isinstance(give_up_after, bool)
                                          or not isinstance(give_up_after, int)
                                          or give_up_after < 1):
            raise ValueError(f"give_up_after must be an integer >= 1 or None, "
                             f"got {give_up_after!r}")
        if not math.isfinite(give_up_below):
            raise ValueError(f"give_up_below must be finite, got {give_up_below}")
        total = sum(w)
        self.weights = tuple(v / total for v in w)
        self.give_up_after = give_up_after
        self.give_up_below = float(give_up_below)
        self._calls = 0
        self._best: Tensor | None = None  # (objectives, B): the best score so far
        self._alive: Tensor | None = None  # (objectives, B): still counted, once decided
        self._counted = torch.tensor([v > 0 for v in self.weights]).unsqueeze(1)

    @property
    def given_up(self) -> list[int]:
        """Indices of the objectives given up on every image (none before the decision)."""
        if self._alive is None:
            return []
        return [i for i, w in enumerate(self.weights)
                if w > 0 and not bool(self._alive[i].any())]

    def __call__(self, x_adv: Tensor) -> Tensor:
        dropped = set(self.given_up)
        live = [i for i, w in enumerate(self.weights) if w > 0 and i not in dropped]
        scores = {i: self.objectives[i](x_adv) for i in live}
        if self._alive is None or bool(self._alive.eq(self._counted).all()):  # the plain mean
            result = torch.stack([self.weights[i] * scores[i] for i in live]).sum(dim=0)
        else:
            weights = torch.tensor(self.weights).unsqueeze(1) * self._alive  # (objectives, B)
            weights = (weights / weights.sum(dim=0, keepdim=True)).to(x_adv.device)
            result = torch.stack([weights[i].to(scores[i].dtype) * scores[i]
                                  for i in live]).sum(dim=0)
        if self.give_up_after is not None and self._calls < self.give_up_after:
            self._decide(scores)  # from the next call on: this one's scores are all paid for
        return result

    def _decide(self, scores: dict[int, Tensor]) -> None:
        """Track the best scores; at the ``give_up_after``-th call, decide what stays."""
        with torch.no_grad():
            now = torch.full((len(self.objectives), next(iter(scores.values())).shape[0]),
                             -math.inf)
            for i, score in scores.items():
                now[i] = score.detach().float().cpu()
            self._best = now if self._best is None else torch.maximum(self._best, now)
        self._calls += 1
        if self._calls == self.give_up_after:
            alive = (self._best >= self.give_up_below) & self._counted
            nothing_left = ~alive.any(dim=0)  # an image where every objective is below
            self._alive = torch.where(nothing_left, self._counted, alive)
