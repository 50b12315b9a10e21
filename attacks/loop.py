"""The one attack loop. FGSM, I-FGSM, PGD and MI-FGSM are settings of it.

Image convention: ``x`` is a float tensor ``(B, C, H, W)`` with values in ``[0, 1]``
(``C = 3`` for photos; the loop itself does not care). An *objective* maps an
adversarial batch to ``(B,)`` scores that the attack **maximises**; a targeted
attack is just an objective whose score is minus a distance.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import Tensor

Norm = Literal["linf", "l2"]
Objective = Callable[[Tensor], Tensor]
"""``objective(x_adv) -> scores``: ``(B, C, H, W)`` in ``[0, 1]`` -> ``(B,)`` to maximise."""
Callback = Callable[[int, Tensor], None]
"""``callback(step, scores)``: 0-based step index and the detached ``(B,)`` scores."""

_TINY = 1e-12  # guards divisions by a zero gradient norm


def check_params(
    eps: float, alpha: float, steps: int, norm: str, decay: float,
    linf_cap: float | Tensor | None = None,
) -> None:
    """Raise ``ValueError`` for settings no attack can run with.

    ``eps`` is in ``(0, 1]`` for ``norm="linf"`` (pixel units on the ``[0, 1]`` scale);
    for ``norm="l2"`` it is the radius of the per-image L2 ball and only has to be
    positive (a useful L2 budget on a whole photo is often larger than 1).
    """
    if norm not in get_args(Norm):
        raise ValueError(f"norm must be one of {get_args(Norm)}, got {norm!r}")
    if not math.isfinite(eps) or eps <= 0 or (norm == "linf" and eps > 1):
        if norm == "linf":
            raise ValueError(f"eps must be in (0, 1], got {eps}")
        raise ValueError(f"eps must be > 0 for norm='l2', got {eps}")
    if not math.isfinite(alpha) or alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if not math.isfinite(decay) or decay < 0:
        raise ValueError(f"decay must be >= 0, got {decay}")
    if linf_cap is not None:
        if norm != "l2":
            raise ValueError("linf_cap only applies to norm='l2' (Linf has eps itself)")
        if isinstance(linf_cap, Tensor):
            if not (bool(torch.isfinite(linf_cap).all()) and float(linf_cap.min()) >= 0
                    and 0 < float(linf_cap.max()) <= 1):
                raise ValueError("a per-pixel linf_cap must be finite, in [0, 1], not all 0")
        elif not math.isfinite(linf_cap) or not 0 < linf_cap <= 1:
            raise ValueError(f"linf_cap must be in (0, 1], got {linf_cap}")


def check_image(x: Tensor, name: str = "x") -> None:
    """Raise ``ValueError`` unless ``x`` is a 4-D float tensor with values in ``[0, 1]``."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{name} must be 4-D (B, C, H, W), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a float tensor with values in [0, 1], got {x.dtype}")
    if torch.isnan(x).any():
        raise ValueError(f"{name} contains NaN")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        lo, hi = x.min().item(), x.max().item()
        raise ValueError(f"{name} must have values in [0, 1], got range [{lo:.4g}, {hi:.4g}]")


def _per_sample_l2(t: Tensor) -> Tensor:
    """``(B, ...)`` -> ``(B, 1, 1, 1)`` L2 norms, floored at a tiny value."""
    return t.flatten(1).norm(p=2, dim=1).clamp_min(_TINY).view(-1, 1, 1, 1)


def project(delta: Tensor, eps: float, norm: Norm,
            linf_cap: float | Tensor | None = None) -> Tensor:
    """Project ``delta`` ``(B, C, H, W)`` onto the ``eps`` ball of ``norm``, per sample.

    With ``linf_cap`` (L2 only) ``delta`` is first clamped to ``[-cap, cap]`` per pixel
    (a number, or a tensor broadcastable to ``delta``: a cap per pixel), then scaled
    into the L2 ball; scaling toward 0 keeps it inside the box, so the
    result satisfies both bounds (a feasible point of the intersection, not always
    the nearest one).
    """
    if norm == "linf":
        return delta.clamp(-eps, eps)
    if isinstance(linf_cap, Tensor):
        delta = torch.minimum(torch.maximum(delta, -linf_cap), linf_cap)
    elif linf_cap is not None:
        delta = delta.clamp(-linf_cap, linf_cap)
    return delta * (eps / _per_sample_l2(delta)).clamp(max=1.0)


def random_delta(
    x: Tensor, eps: float, norm: Norm,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
) -> Tensor:
    """A random ``delta`` shaped like ``x`` inside the ``eps`` ball.

    Linf: uniform in ``[-eps, eps]`` per pixel. L2: a uniformly random direction per
    sample, scaled to a radius drawn uniformly from ``[0, eps]``. The noise is drawn on
    ``generator``'s device (``x``'s without one) and moved to ``x``, so a CPU generator
    gives the same start for CPU and GPU inputs. ``generator`` may also be one
    generator per image: each image then gets exactly the start it would get alone
    with its generator (a batch of photos equals the photos attacked one by one).
    """
    if isinstance(generator, Sequence):
        if len(generator) != x.shape[0]:
            raise ValueError(f"got {len(generator)} generators for a batch of {x.shape[0]}")
        return torch.cat([random_delta(x[i : i + 1], eps, norm, g)
                          for i, g in enumerate(generator)])
    device = generator.device if generator is not None else x.device
    if norm == "linf":
        u = torch.rand(x.shape, generator=generator, device=device, dtype=torch.float32)
        return ((2 * u - 1) * eps).to(x)
    # One image at a time (its direction, then its radius), so that a batch gets the
    # same starts as its images attacked one by one on the same generator.
    starts = []
    for _ in range(x.shape[0]):
        direction = torch.randn((1, *x.shape[1:]), generator=generator, device=device,
                                dtype=torch.float32)
        radius = torch.rand((1, 1, 1, 1), generator=generator, device=device) * eps
        starts.append(direction / _per_sample_l2(direction) * radius)
    return torch.cat(starts).to(x)


def run_attack(
    x: Tensor,
    objective: Objective,
    *,
    eps: float,
    alpha: float,
    steps: int,
    norm: Norm = "linf",
    random_start: bool = False,
    decay: float = 0.0,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
    callback: Callback | None = None,
    start: Tensor | None = None,
    linf_cap: float | Tensor | None = None,
    stop_at: float | None = None,
    halvings: int = 0,
) -> Tensor:
    """Maximise ``objective`` within an ``eps`` ball around ``x``: the shared attack loop.

    Each step takes one gradient of ``objective(x_adv).sum()`` with respect to
    ``x_adv`` only (``torch.autograd.grad``; no parameter ever gets a ``.grad``), then

    - ``norm="linf"``: ``x_adv += alpha * sign(g)``, projected to the Linf ball;
    - ``norm="l2"``: ``x_adv += alpha * g / ||g||_2`` per sample, projected to the L2 ball;

    and clamps to ``[0, 1]``. ``g`` is the gradient, or with ``decay > 0`` the
    MI-FGSM momentum ``g = decay * g + grad / mean(|grad|)`` (per sample).

    An objective whose gradient at ``x`` is exactly zero (a plain distance from the
    clean output has its minimum there) leaves a start at ``x`` stuck: use
    ``random_start`` or an objective that breaks the tie (as
    ``disrupt.core.objectives.AwayFromClean`` does by default).

    Args:
        x: clean images ``(B, C, H, W)``, float, values in ``[0, 1]``. Not modified.
        objective: ``(B, C, H, W)`` in ``[0, 1]`` -> ``(B,)`` scores to maximise.
            Called exactly once per step.
        eps: budget: Linf in ``(0, 1]`` (``8/255`` is eight 8-bit levels), or L2 radius.
        alpha: step size (same units as ``eps``).
        steps: number of gradient steps, ``>= 1``.
        norm: ``"linf"`` or ``"l2"``.
        random_start: start from a random point of the ball (PGD) instead of ``x``.
        decay: MI-FGSM momentum factor; ``0`` disables momentum.
        generator: source of the random start, for reproducible runs; or one generator
            per image (see :func:`random_delta`).
        callback: ``callback(step, scores)`` after each step, with the 0-based step
            index and the detached ``(B,)`` scores at the point the gradient was taken.
        start: where to start instead of ``x`` (or the random start), shape of ``x``,
            values in ``[0, 1]``: e.g. ``x`` plus a universal perturbation to refine.
            It is projected into the ``eps`` ball first; ``random_start`` is then
            ignored.
        linf_cap: ``norm="l2"`` only: also keep every pixel within ``linf_cap`` of
            ``x`` (a number, or a tensor broadcastable to ``x``: one cap per pixel).
            An L2 budget lets the attack spend its energy where it matters
            (which survives JPEG far better than a uniform L-inf pattern); the cap
            stops it from making a visible spot.
        stop_at: early stopping. An image whose score is ``>= stop_at`` at a step is
            frozen there (kept at the point where that score was measured, never moved
            again), and the loop ends once every image is frozen. Meant for objectives
            that saturate once their goal is met (e.g.
            ``disrupt.core.objectives.BalancedAway``, whose score stops rising once every
            output is disrupted with margin): the remaining steps would buy nothing.
            ``None``: always run ``steps`` steps.
        halvings: a step-size schedule: the step halves this many times at evenly
            spaced points, step ``t`` (from 0) using ``alpha * 2 ** -floor(t *
            (halvings + 1) / steps)``. Big steps first reach the goal's neighbourhood
            fast, small ones then settle (a fixed version of APGD's step halving at
            checkpoints, Croce & Hein 2020). ``0``: a constant ``alpha``.

    Returns:
        ``x_adv``: detached, same shape and dtype as ``x``, values in ``[0, 1]``,
        ``||x_adv - x|| <= eps`` per sample (up to float rounding, ~1e-7).

    Raises:
        ValueError: bad ``eps``/``alpha``/``steps``/``norm``/``decay``, ``x`` not a 4-D
            float tensor in ``[0, 1]``, or an objective not returning ``(B,)`` scores.
    """
    check_params(eps, alpha, steps, norm, decay, linf_cap)
    check_image(x)
    x0 = x.detach()
    with torch.no_grad():
        delta: Tensor | None
        if start is not None:
            if start.shape != x0.shape:
                raise ValueError(
                    f"start must have x's shape {tuple(x0.shape)}, got {tuple(start.shape)}"
                )
            delta = project(start.detach().to(x0) - x0, eps, norm, linf_cap)
        else:
            delta = random_delta(x0, eps, norm, generator) if random_start else None
            if delta is not None and linf_cap is not None:  # the ball's draw may exceed the cap
                delta = project(delta, eps, norm, linf_cap)
        x_adv = x0.clone() if delta is None else (x0 + delta).clamp(0.0, 1.0)
    momentum = torch.zeros_like(x0) if decay > 0 else None
    if stop_at is not None and not math.isfinite(stop_at):
        raise ValueError(f"stop_at must be a finite number or None, got {stop_at}")
    if isinstance(halvings, bool) or not isinstance(halvings, int) or halvings < 0:
        raise ValueError(f"halvings must be an integer >= 0, got {halvings!r}")
    active: Tensor | None = None  # (B, 1, 1, 1): 1 where the image may still move

    for step in range(steps):
        x_adv.requires_grad_(True)
        with torch.enable_grad():
            scores = objective(x_adv)
            if scores.shape != (x0.shape[0],):
                raise ValueError(
                    f"objective must return (B,) = ({x0.shape[0]},) scores, "
                    f"got shape {tuple(scores.shape)}"
                )
            (grad,) = torch.autograd.grad(scores.sum(), x_adv)
        if stop_at is not None:
            reached = (scores.detach() >= stop_at).view(-1, 1, 1, 1)
            active = ~reached if active is None else active & ~reached
            if not bool(active.any()):
                if callback is not None:
                    callback(step, scores.detach())
                break
        with torch.no_grad():
            if momentum is not None:
                scale = grad.abs().mean(dim=(1, 2, 3), keepdim=True).clamp_min(_TINY)
                momentum = decay * momentum + grad / scale
                grad = momentum
            direction = grad.sign() if norm == "linf" else grad / _per_sample_l2(grad)
            size = alpha * 0.5 ** (step * (halvings + 1) // steps)
            moved = x_adv.detach() + size * direction
            moved = (x0 + project(moved - x0, eps, norm, linf_cap)).clamp(0.0, 1.0)
            x_adv = moved if active is None else torch.where(active, moved, x_adv.detach())
        if callback is not None:
            callback(step, scores.detach())
    return x_adv.detach()


@dataclass(frozen=True)
class Attack:
    """The loop's settings, frozen: a thin, callable wrapper around :func:`run_attack`.

    Build one with a preset (:func:`attacks.fgsm`, ...) or :func:`attacks.create_attack`.
    Field meanings and units are those of :func:`run_attack`; they are validated here,
    so a bad setting fails when the attack is made, not when it runs.
    """

    eps: float
    alpha: float
    steps: int
    norm: Norm = "linf"
    random_start: bool = False
    decay: float = 0.0
    name: str = "attack"
    linf_cap: float | Tensor | None = None
    stop_at: float | None = None
    halvings: int = 0

    def __post_init__(self) -> None:
        check_params(self.eps, self.alpha, self.steps, self.norm, self.decay, self.linf_cap)

    def __call__(
        self,
        x: Tensor,
        objective: Objective,
        *,
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
        callback: Callback | None = None,
        start: Tensor | None = None,
    ) -> Tensor:
        """``x`` ``(B, C, H, W)`` in ``[0, 1]`` -> detached ``x_adv`` within ``eps`` of it.

        ``start``: see :func:`run_attack` (a point to start from instead of ``x``).
        """
        return run_attack(
            x,
            objective,
            eps=self.eps,
            alpha=self.alpha,
            steps=self.steps,
            norm=self.norm,
            random_start=self.random_start,
            decay=self.decay,
            generator=generator,
            callback=callback,
            start=start,
            linf_cap=self.linf_cap,
            stop_at=self.stop_at,
            halvings=self.halvings,
        )
