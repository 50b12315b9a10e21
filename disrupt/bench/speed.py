"""How long protecting one photo takes, against the research code's algorithm, at equal work.

The research code (natanielruiz/disrupting-deepfakes, ``LinfPGDAttack.perturb_joint_class``)
attacks a generator on images already cropped and resized to its input: each step
sets the gradients to zero, runs **one forward pass per class**, adds the per-class
losses, and calls ``.backward()`` with the generator's weights still requiring
gradients (so every step also computes gradients for weights it never uses), in the
generator's test-time mode (train mode for StarGAN), then takes a sign step and
projects onto the L-inf ball. :class:`ResearchLoop` and :func:`naive_attack` are that
algorithm, written here once; our side (:func:`batched_attack`) runs every class in
one batched pass and asks autograd for the input gradient only.

Equal work: both sides get the same pre-cropped images (resized once, never per
class or per step), the same objective (:class:`~disrupt.core.objectives.AwayFromClean`,
each class against its own clean output, with the same tie-break; or
:class:`~disrupt.core.objectives.BalancedAway`), the same random start, steps and
step size. :func:`compare_loops` times them in the same process and raises unless
their results agree. :func:`speed_benchmark` adds the wall time of default
:func:`disrupt.protect` per photo size.

Images are float ``(B, 3, H, W)`` in ``[0, 1]``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from attacks import Attack, Objective, project, random_delta
from disrupt.api import protect
from disrupt.core.budget import DEFAULT_STRENGTH, resolve_budget
from disrupt.core.objectives import TIE_BREAK, AwayFromClean, BalancedAway, Ensemble
from disrupt.core.seeding import move_to
from disrupt.imaging.pixels import from_pil, to_pil
from targets.base import Target

__all__ = [
    "SPEED_SIZES",
    "LoopComparison",
    "ResearchLoop",
    "SpeedRow",
    "batched_attack",
    "batched_objective",
    "compare_loops",
    "naive_attack",
    "parse_size",
    "pre_crop",
    "research_joint_class",
    "speed_benchmark",
    "speed_markdown",
    "write_speed",
]

#: ``(width, height)`` of the photos timed by default.
SPEED_SIZES: tuple[tuple[int, int], ...] = ((256, 256), (1024, 1024), (4000, 3000))
#: :func:`compare_loops` fails unless at least this share of pixels is identical.
SAME_PIXELS = 0.99
#: ... and the two final objective values agree within this relative difference.
SAME_SCORE = 1e-3


def _generator_of(target: Target) -> nn.Module:
    net = getattr(target, "generator", None)
    if not isinstance(net, nn.Module):
        raise TypeError(f"{target.name}: the research loop needs a target with a .generator module")
    return net


def batched_objective(targets: Sequence[Target], x: Tensor, *, balanced: bool = False,
                      tie_break: float = TIE_BREAK) -> Ensemble:
    """Our objective: per target, every class in one batched pass; a mean over targets.

    ``x`` ``(B, 3, H, W)`` in ``[0, 1]`` (already at the targets' input size)."""
    away = BalancedAway if balanced else AwayFromClean
    return Ensemble([away(t, x, tie_break=tie_break) for t in targets])


class ResearchLoop:
    """The research code's step structure with our objective, for equal-work timing.

    One :class:`~disrupt.core.objectives.AwayFromClean` (or ``BalancedAway``) per
    (target, class), each called on its own: one forward pass per class. The score
    is the mean over targets of the mean over classes, exactly what
    :func:`batched_objective` computes in one pass per target.

    Args:
        targets: generators with a ``.generator`` module.
        x: clean images ``(B, 3, H, W)`` in ``[0, 1]``, pre-cropped.
        balanced, tie_break: as :func:`batched_objective`.
    """

    def __init__(self, targets: Sequence[Target], x: Tensor, *, balanced: bool = False,
                 tie_break: float = TIE_BREAK) -> None:
        away = BalancedAway if balanced else AwayFromClean
        self.targets = tuple(targets)
        self.nets = [_generator_of(t) for t in self.targets]
        self.parts = [[away(t, x, [c], tie_break=tie_break) for c in t.conditions]
                      for t in self.targets]

    def scores(self, x_adv: Tensor) -> Tensor:
        """``(B, 3, H, W)`` -> ``(B,)``: the mean over targets of the mean over classes."""
        total = torch.zeros(x_adv.shape[0], device=x_adv.device)
        for parts in self.parts:
            per_target = sum((p(x_adv) for p in parts), torch.zeros_like(total))
            total = total + per_target / len(parts)
        return total / len(self.parts)

    def gradient(self, x_adv: Tensor) -> Tensor:
        """``(B, 3, H, W)`` gradient of ``scores(x_adv).sum()``, the research code's way:
        weights require gradients for the pass and ``.backward()`` fills them too (they
        are cleared and frozen again afterwards)."""
        for net in self.nets:
            net.requires_grad_(True)
            net.zero_grad(set_to_none=True)
        try:
            point = x_adv.detach().clone().requires_grad_(True)
            self.scores(point).sum().backward()
            if point.grad is None:
                raise RuntimeError("the objective does not depend on the image")
            return point.grad.detach()
        finally:
            for net in self.nets:
                net.zero_grad(set_to_none=True)
                net.requires_grad_(False)


def _start(x: Tensor, eps: float, random_start: bool, generator: torch.Generator | None) -> Tensor:
    if not random_start:
        return x.clone()
    return (x + random_delta(x, eps, "linf", generator)).clamp(0, 1)


def naive_attack(
    targets: Sequence[Target],
    x: Tensor,
    *,
    eps: float,
    alpha: float,
    steps: int,
    random_start: bool = True,
    generator: torch.Generator | None = None,
    balanced: bool = False,
    tie_break: float = TIE_BREAK,
) -> Tensor:
    """The research code's L-inf PGD loop (:class:`ResearchLoop` gradients) on several targets.

    Args:
        targets: the generators (each needs a ``generator`` module).
        x: ``(B, 3, H, W)`` clean images in ``[0, 1]``, pre-cropped to the input size.
        eps, alpha, steps, random_start: as :func:`attacks.run_attack` (L-inf); the
            random start is drawn exactly as there.
        generator: source of the random start.
        balanced, tie_break: the objective (see :func:`batched_objective`).

    Returns:
        ``(B, 3, H, W)`` in ``[0, 1]`` within ``eps`` of ``x``.
    """
    loop = ResearchLoop(targets, x, balanced=balanced, tie_break=tie_break)
    x_adv = _start(x, eps, random_start, generator)
    for _ in range(steps):
        x_adv = x_adv + alpha * loop.gradient(x_adv).sign()
        x_adv = (x + project(x_adv - x, eps, "linf")).clamp(0, 1).detach()
    return x_adv


def research_joint_class(
    target: Target,
    x: Tensor,
    *,
    eps: float,
    alpha: float,
    steps: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``perturb_joint_class`` as published (Ruiz et al. 2020), with its own loss.

    The clean output ``y`` is the generator's output for the **first** class only;
    every step zeroes the gradients, runs one forward per class, adds the MSEs of
    each output to that same ``y``, calls ``.backward()`` with the weights requiring
    gradients, takes a sign step and projects (L-inf ``eps``, random start). The
    target runs in its own test-time mode (StarGAN: train). Unlike
    :class:`ResearchLoop`, this is not our objective: it is what the published code
    computes, for the time-to-the-same-disruption comparison.

    Args:
        target: a generator target with a ``.generator`` module and conditions.
        x: ``(B, 3, H, W)`` in ``[0, 1]``, pre-cropped to the input size.
        eps, alpha, steps: on the ``[0, 1]`` scale (their ``0.05, 0.01`` on ``[-1, 1]``
            are ``0.025, 0.005`` here).
        generator: source of the random start.

    Returns:
        ``(B, 3, H, W)`` in ``[0, 1]`` within ``eps`` of ``x``.
    """
    net = _generator_of(target)
    conditions = [c.vector for c in target.conditions]
    rows = [None if v is None else v.to(x.device).unsqueeze(0).expand(x.shape[0], *v.shape)
            for v in conditions]
    with torch.no_grad():
        y = target(x, rows[0])
    x_adv = _start(x, eps, True, generator)
    net.requires_grad_(True)
    try:
        for _ in range(steps):
            point = x_adv.detach().clone().requires_grad_(True)
            net.zero_grad(set_to_none=True)
            loss = sum((F.mse_loss(target(point, c), y) for c in rows), x.new_zeros(()))
            loss.backward()
            if point.grad is None:
                raise RuntimeError(f"{target.name}: the loss does not depend on the image")
            x_adv = point.detach() + alpha * point.grad.sign()
            x_adv = (x + project(x_adv - x, eps, "linf")).clamp(0, 1)
    finally:
        net.zero_grad(set_to_none=True)
        net.requires_grad_(False)
    return x_adv.detach()


def batched_attack(
    targets: Sequence[Target],
    x: Tensor,
    *,
    eps: float,
    alpha: float,
    steps: int,
    random_start: bool = True,
    generator: torch.Generator | None = None,
    balanced: bool = False,
    tie_break: float = TIE_BREAK,
    stop_at: float | None = None,
    halvings: int = 0,
) -> Tensor:
    """Our side of the comparison: :func:`attacks.run_attack` on :func:`batched_objective`.

    Same arguments and result as :func:`naive_attack`; ``stop_at`` (early stopping) and
    ``halvings`` (step-size schedule) as :func:`attacks.run_attack`."""
    attack = Attack(eps=eps, alpha=alpha, steps=steps, random_start=random_start,
                    name="pgd", stop_at=stop_at, halvings=halvings)
    objective: Objective = batched_objective(targets, x, balanced=balanced, tie_break=tie_break)
    return attack(x, objective, generator=generator)


def pre_crop(photo: Tensor, size: tuple[int, int]) -> Tensor:
    """Resize ``photo`` ``(B, 3, H, W)`` in ``[0, 1]`` to ``size`` ``(h, w)`` once, as the
    research code's data loader did before any attack (bilinear, antialiased)."""
    if tuple(photo.shape[-2:]) == tuple(size):
        return photo.clone()
    return F.interpolate(photo, size=tuple(size), mode="bilinear", align_corners=False,
                         antialias=True).clamp(0, 1)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class LoopComparison:
    """Seconds for the same attack on the same pre-cropped images, both ways.

    ``same_pixels``: share of pixels identical in both results; ``score_naive`` and
    ``score_ours``: the objective at each result (mean over images). ``speedup =
    naive_s / ours_s``.
    """

    targets: tuple[str, ...]
    batch: int
    size: tuple[int, int]
    conditions: int
    eps_255: float
    alpha_255: float
    steps: int
    objective: str
    naive_s: float
    ours_s: float
    speedup: float
    same_pixels: float
    score_naive: float
    score_ours: float

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["targets"], d["size"] = list(self.targets), list(self.size)
        return d


def compare_loops(
    targets: Sequence[Target],
    x: Tensor,
    *,
    eps: float,
    alpha: float,
    steps: int,
    seed: int = 0,
    repeats: int = 1,
    balanced: bool = False,
) -> LoopComparison:
    """Time :func:`naive_attack` and :func:`batched_attack` on ``x``, interleaved, fastest
    of ``repeats``; raise ``RuntimeError`` unless their results agree (at least
    :data:`SAME_PIXELS` of the pixels identical and objectives within
    :data:`SAME_SCORE`), so the ratio is one of equal work.

    ``x``: ``(B, 3, H, W)`` in ``[0, 1]`` at the targets' input size (:func:`pre_crop`).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    dev = x.device

    def run(side: str, n: int) -> Tensor:
        gen = torch.Generator(device=dev).manual_seed(seed)
        if side == "naive":
            return naive_attack(targets, x, eps=eps, alpha=alpha, steps=n, generator=gen,
                                balanced=balanced)
        return batched_attack(targets, x, eps=eps, alpha=alpha, steps=n, generator=gen,
                              balanced=balanced)

    run("naive", 1), run("ours", 1)  # warm-up
    best = {"naive": math.inf, "ours": math.inf}
    results: dict[str, Tensor] = {}
    for _ in range(repeats):
        for side in ("naive", "ours"):
            _sync(dev)
            start = time.perf_counter()
            results[side] = run(side, steps)
            _sync(dev)
            best[side] = min(best[side], time.perf_counter() - start)
    same = (results["naive"] - results["ours"]).abs().le(1e-6).float().mean().item()
    with torch.no_grad():
        objective = batched_objective(targets, x, balanced=balanced)
        s_naive = objective(results["naive"]).mean().item()
        s_ours = objective(results["ours"]).mean().item()
    gap = abs(s_naive - s_ours) / max(abs(s_naive), abs(s_ours), 1e-12)
    if same < SAME_PIXELS or gap > SAME_SCORE:
        raise RuntimeError(f"the two loops disagree: {same:.2%} of pixels identical, objective "
                           f"{s_naive:.6g} (research loop) vs {s_ours:.6g} (ours)")
    conds = sum(len(t.conditions) for t in targets)
    return LoopComparison(
        tuple(t.name for t in targets), x.shape[0], (x.shape[-1], x.shape[-2]), conds,
        eps * 255, alpha * 255, steps, "balanced" if balanced else "mean", best["naive"],
        best["ours"], best["naive"] / best["ours"], same, s_naive, s_ours)


@dataclass(frozen=True)
class SpeedRow:
    """Seconds of default :func:`disrupt.protect` for one photo of ``width`` x ``height``:
    end to end (face search, EOT, attack, 8-bit projection, measurement; no file I/O)."""

    width: int
    height: int
    targets: tuple[str, ...]
    strength: str
    protect_s: float
    device: str

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["targets"] = list(self.targets)
        return d


def parse_size(text: str) -> tuple[int, int]:
    """``"4000x3000"`` -> ``(4000, 3000)`` (width, height); ``"256"`` -> ``(256, 256)``."""
    parts = text.lower().replace(" ", "").split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"size {text!r}: use WIDTHxHEIGHT, e.g. 1024x768") from None
    if len(values) == 1:
        values *= 2
    if len(values) != 2 or min(values) < 8 or values[0] * values[1] > 50_000_000:
        raise ValueError(f"size {text!r}: use WIDTHxHEIGHT, 8 to about 7000x7000 pixels")
    return values[0], values[1]


def _photo(size: tuple[int, int], seed: int, photo: Tensor | None) -> Tensor:
    w, h = size
    if photo is None:
        return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))
    return from_pil(to_pil(photo).resize((w, h), Image.Resampling.BICUBIC))


def _input_size(targets: Sequence[Target]) -> tuple[int, int]:
    sizes = [t.input_size for t in targets if t.input_size is not None]
    return max(sizes, key=lambda s: s[0] * s[1]) if sizes else (64, 64)


def speed_benchmark(
    targets: Sequence[Target],
    *,
    sizes: Sequence[tuple[int, int]] = SPEED_SIZES,
    seed: int = 0,
    device: str | torch.device = "cpu",
    photo: Tensor | None = None,
    repeats: int = 1,
    progress: Callable[[int, int, str], None] | None = None,
) -> tuple[list[SpeedRow], LoopComparison]:
    """Time default :func:`disrupt.protect` per photo size, and the two loops at equal work.

    Args:
        targets: loaded targets (default protect runs all of them at once).
        sizes: ``(width, height)`` pairs for :func:`disrupt.protect`.
        seed: seeds the random photo and the attacks.
        device: where to run.
        photo: ``(1, 3, H, W)`` in ``[0, 1]`` to resize to each size; ``None`` for
            seeded uniform noise.
        repeats: time each run this many times and keep the fastest (shared machines
            add noise, never speed).
        progress: ``progress(done, total, what)`` before each measurement.

    Returns:
        One :class:`SpeedRow` per size, and the :class:`LoopComparison` of the research
        loop and ours on the photo pre-cropped to the targets' input size, with the
        default preset's L-inf cap, its steps and its step for that cap (L-inf: the
        research code's norm).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    dev = torch.device(device)
    move_to(targets, dev)
    attack = resolve_budget(DEFAULT_STRENGTH, psnr=0).attack
    names = tuple(t.name for t in targets)
    protect(_photo((64, 64), seed, photo).to(dev), targets=list(targets), seed=seed, device=dev,
            steps=1)  # warm-up
    total = len(sizes) + 1
    rows: list[SpeedRow] = []
    for i, size in enumerate(sizes):
        if progress is not None:
            progress(i, total, f"protect {size[0]}x{size[1]}")
        x = _photo(size, seed, photo).to(dev)
        best = math.inf
        for _ in range(repeats):
            _sync(dev)
            start = time.perf_counter()
            protect(x, targets=list(targets), seed=seed, device=dev)
            _sync(dev)
            best = min(best, time.perf_counter() - start)
        rows.append(SpeedRow(size[0], size[1], names, DEFAULT_STRENGTH, best, str(dev)))
        del x
    if progress is not None:
        progress(len(sizes), total, "loops")
    crop = pre_crop(_photo(sizes[0] if sizes else (256, 256), seed, photo), _input_size(targets))
    loops = compare_loops(targets, crop.to(dev), eps=attack.eps, alpha=attack.alpha,
                          steps=attack.steps, seed=seed, repeats=repeats)
    if progress is not None:
        progress(total, total, "done")
    return rows, loops


def speed_markdown(rows: Sequence[SpeedRow], loops: LoopComparison,
                   notes: Sequence[str] = ()) -> str:
    """The timings as markdown."""
    lines = ["# Speed", ""]
    lines += [f"- note: {n}" for n in notes]
    if rows:
        lines += ["", f"## Default protect() ({rows[0].strength}; {', '.join(rows[0].targets)}; "
                  f"device {rows[0].device})", "", "| photo | protect() s |", "|---|---|"]
        lines += [f"| {r.width}x{r.height} | {r.protect_s:.3f} |" for r in rows]
    lp = loops
    lines += ["", "## Attack loops at equal work", "",
              f"{', '.join(lp.targets)}; {lp.batch} image(s) pre-cropped to "
              f"{lp.size[0]}x{lp.size[1]} (resized once); {lp.conditions} conditions in all; "
              f"L-inf PGD eps {lp.eps_255:.1f}/255, step {lp.alpha_255:.2f}/255, {lp.steps} steps; "
              f"objective {lp.objective} (the same on both sides)", "",
              "| loop | seconds | speed-up |", "|---|---|---|",
              f"| research code's (one pass per class, weight gradients) | {lp.naive_s:.3f} "
              "| 1.00x |",
              f"| ours (classes batched, input gradient only) | {lp.ours_s:.3f} "
              f"| {lp.speedup:.2f}x |", "",
              f"Equal results (checked): {lp.same_pixels:.2%} of pixels identical; objective "
              f"{lp.score_naive:.6g} (research loop) vs {lp.score_ours:.6g} (ours). Fastest of "
              "the timed runs, in the same process."]
    return "\n".join(lines) + "\n"


def write_speed(rows: Sequence[SpeedRow], loops: LoopComparison, out: Path,
                notes: Sequence[str] = (), env: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write ``speed.json`` (with the environment: threads, commit, machine) and
    ``speed.md`` into ``out``, atomically. ``env``: :func:`disrupt.bench.report.environment`
    taken when the run started (default: now)."""
    from disrupt.bench.report import environment
    from disrupt.files import write_atomically

    device = torch.device(rows[0].device) if rows else torch.device("cpu")
    env = env if env is not None else environment(0, device)
    files = {"json": out / "speed.json", "markdown": out / "speed.md"}
    payload = {"environment": env, "notes": list(notes), "rows": [r.to_dict() for r in rows],
               "loops": loops.to_dict()}
    machine = (f"threads {env['torch_threads']}, commit {str(env['git_commit'])[:12]}"
               f"{' (dirty)' if env['git_dirty'] else ''}, {env['device_name']} "
               f"({env['cpu_count']} CPUs), torch {torch.__version__}")
    text = json.dumps(payload, indent=2).encode()
    write_atomically(files["json"], lambda f: f.write(text))
    markdown = speed_markdown(rows, loops, [*notes, machine]).encode()
    write_atomically(files["markdown"], lambda f: f.write(markdown))
    return files
