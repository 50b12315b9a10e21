"""How long protecting one photo takes, against the research code's way of computing it.

The research code (natanielruiz/disrupting-deepfakes) runs one forward pass per
condition and calls ``loss.backward()`` with the generator's parameters still
requiring gradients, so every step also computes gradients for weights it never
uses. :func:`naive_gradient` / :func:`naive_step` / :func:`naive_attack` reproduce
that pattern (written here once, used by ``benchmarks/bench_step.py`` too);
:func:`speed_benchmark` times :func:`disrupt.protect` with its default settings at
several photo sizes and, in the same process, the naive loop with the same attack
settings, and reports the ratio.

Images are float ``(B, 3, H, W)`` in ``[0, 1]``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from attacks import project, random_delta
from disrupt.api import protect
from disrupt.core.budget import DEFAULT_STRENGTH, resolve_budget
from disrupt.core.objectives import AwayFromClean, Ensemble
from disrupt.core.seeding import move_to
from disrupt.imaging.pixels import from_pil, to_pil
from targets.base import Target

__all__ = [
    "SPEED_SIZES",
    "SpeedRow",
    "naive_attack",
    "naive_gradient",
    "naive_step",
    "parse_size",
    "speed_benchmark",
    "speed_markdown",
    "write_speed",
]

#: ``(width, height)`` of the photos timed by default.
SPEED_SIZES: tuple[tuple[int, int], ...] = ((256, 256), (1024, 1024), (4000, 3000))


def _generator_of(target: Target) -> nn.Module:
    net = getattr(target, "generator", None)
    if not isinstance(net, nn.Module):
        raise TypeError(f"{target.name}: the naive loop needs a target with a .generator module")
    return net


def naive_gradient(target: Target, x_adv: Tensor, y_clean: Tensor) -> Tensor:
    """The research-code gradient: per-condition forward + ``.backward()`` with weight grads.

    Args:
        target: a :class:`~targets.GeneratorTarget` (its ``generator`` gets
            ``requires_grad`` for the duration, as in the research code, then is frozen
            again).
        x_adv: ``(B, 3, H, W)`` in ``[0, 1]``.
        y_clean: ``(K, B, 3, h, w)`` clean outputs, one per condition.

    Returns:
        ``(B, 3, H, W)``: gradient of the summed squared error with respect to ``x_adv``.
    """
    net = _generator_of(target)
    net.requires_grad_(True)
    try:
        x_adv = x_adv.detach().clone().requires_grad_(True)
        for k, cond in enumerate(target.conditions):
            out = target(x_adv, cond.vector)
            F.mse_loss(out, y_clean[k], reduction="sum").backward()
        assert x_adv.grad is not None
        return x_adv.grad.detach()
    finally:
        net.zero_grad(set_to_none=True)
        net.requires_grad_(False)


def naive_step(target: Target, x_adv: Tensor, y_clean: Tensor, alpha: float) -> Tensor:
    """One unprojected sign step of the research-code loop: ``x_adv + alpha * sign(g)``."""
    grad = naive_gradient(target, x_adv, y_clean)
    return (x_adv + alpha * grad.sign()).clamp(0, 1).detach()


@torch.no_grad()
def _clean_outputs(target: Target, x: Tensor) -> Tensor:
    return torch.stack([target(x, c.vector) for c in target.conditions])


def naive_attack(
    targets: Sequence[Target],
    x: Tensor,
    *,
    eps: float,
    alpha: float,
    steps: int,
    random_start: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The research-code attack loop (Linf PGD) on several targets, summing their gradients.

    Args:
        targets: the generators (each needs a ``generator`` module).
        x: ``(B, 3, H, W)`` clean images in ``[0, 1]``.
        eps, alpha, steps, random_start: as :func:`attacks.run_attack` (Linf).
        generator: source of the random start.

    Returns:
        ``(B, 3, H, W)`` in ``[0, 1]`` within ``eps`` of ``x``.
    """
    y_clean = [_clean_outputs(t, x) for t in targets]
    x_adv = x.clone()
    if random_start:
        x_adv = (x + random_delta(x, eps, "linf", generator)).clamp(0, 1)
    for _ in range(steps):
        grad = sum((naive_gradient(t, x_adv, y) for t, y in zip(targets, y_clean, strict=True)),
                   torch.zeros_like(x))
        x_adv = x_adv + alpha * grad.sign()
        x_adv = (x + project(x_adv - x, eps, "linf")).clamp(0, 1).detach()
    return x_adv


@dataclass(frozen=True)
class SpeedRow:
    """Seconds for one photo of ``width`` x ``height``.

    ``protect_s``: :func:`disrupt.protect` with its defaults, end to end (face search,
    EOT, attack, 8-bit projection, measurement; no file I/O). ``attack_s``: our attack
    loop alone on the whole photo with the default preset's steps and L-inf cap
    as its budget (no PSNR floor, no EOT, no faces). ``naive_s``: the research-code
    loop with those same settings.
    ``speedup_loop = naive_s / attack_s`` compares the loops at equal work;
    ``speedup_protect = naive_s / protect_s`` compares the research loop with what a
    user actually waits for by default.
    """

    width: int
    height: int
    targets: tuple[str, ...]
    attack: str
    eps_255: float
    steps: int
    eot: bool
    protect_s: float
    attack_s: float
    naive_s: float
    speedup_loop: float
    speedup_protect: float
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


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def speed_benchmark(
    targets: Sequence[Target],
    *,
    sizes: Sequence[tuple[int, int]] = SPEED_SIZES,
    seed: int = 0,
    device: str | torch.device = "cpu",
    photo: Tensor | None = None,
    repeats: int = 1,
    progress: Callable[[int, int, str], None] | None = None,
) -> list[SpeedRow]:
    """Time default :func:`disrupt.protect` and the research-code loop per photo size.

    Args:
        targets: loaded targets (default protect runs all of them at once).
        sizes: ``(width, height)`` pairs.
        seed: seeds the random photo and the attacks.
        device: where to run.
        photo: ``(1, 3, H, W)`` in ``[0, 1]`` to resize to each size; ``None`` for
            seeded uniform noise.
        repeats: time each run this many times and keep the fastest (shared machines
            add noise, never speed).
        progress: ``progress(done, total, what)`` before each measurement.

    Returns:
        One :class:`SpeedRow` per size, after a small warm-up; compare ratios, which
        are measured in the same process.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    dev = torch.device(device)
    move_to(targets, dev)
    # The loops compared are L-inf (the research code's); the preset's cap as budget.
    budget = resolve_budget(DEFAULT_STRENGTH, psnr=0)
    attack = budget.attack
    names = tuple(t.name for t in targets)
    warm = _photo((64, 64), seed, photo).to(dev)
    protect(warm, targets=list(targets), seed=seed, device=dev, steps=1)
    naive_attack(targets, warm, eps=attack.eps, alpha=attack.alpha, steps=1)
    rows: list[SpeedRow] = []
    for i, size in enumerate(sizes):
        if progress is not None:
            progress(i, len(sizes), f"{size[0]}x{size[1]}")
        x = _photo(size, seed, photo).to(dev)
        timings = {"protect": math.inf, "attack": math.inf, "naive": math.inf}
        for _ in range(repeats):
            for run in timings:
                _sync(dev)
                start = time.perf_counter()
                if run == "protect":
                    protect(x, targets=list(targets), seed=seed, device=dev)
                elif run == "attack":
                    objective = Ensemble([AwayFromClean(t, x) for t in targets])
                    attack(x, objective, generator=torch.Generator(device=dev).manual_seed(seed))
                else:
                    naive_attack(targets, x, eps=attack.eps, alpha=attack.alpha,
                                 steps=attack.steps,
                                 generator=torch.Generator(device=dev).manual_seed(seed))
                _sync(dev)
                timings[run] = min(timings[run], time.perf_counter() - start)
        protect_s, attack_s, naive_s = timings["protect"], timings["attack"], timings["naive"]
        rows.append(SpeedRow(
            size[0], size[1], names, attack.name, attack.eps * 255, attack.steps, budget.eot,
            protect_s, attack_s, naive_s, naive_s / attack_s if attack_s > 0 else float("nan"),
            naive_s / protect_s if protect_s > 0 else float("nan"), str(dev)))
        del x
    if progress is not None:
        progress(len(sizes), len(sizes), "done")
    return rows


def speed_markdown(rows: Sequence[SpeedRow], notes: Sequence[str] = ()) -> str:
    """The timings as a markdown table."""
    lines = ["# Speed: seconds per protected photo (default protect settings)", ""]
    if rows:
        r0 = rows[0]
        lines.append(f"- targets: {', '.join(r0.targets)}; {r0.attack} eps {r0.eps_255:.0f}/255, "
                     f"{r0.steps} steps, EOT {'on' if r0.eot else 'off'}; device {r0.device}")
    lines += [f"- note: {n}" for n in notes]
    lines += ["", "| size | protect() s | our loop s | research-code loop s "
              "| loop speed-up | vs protect() |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.width}x{r.height} | {r.protect_s:.3f} | {r.attack_s:.3f} "
                     f"| {r.naive_s:.3f} | {r.speedup_loop:.2f}x | {r.speedup_protect:.2f}x |")
    lines += ["", "protect(): the defaults end to end (faces, EOT, measurement). Our loop and the "
              "research-code loop: the same attack settings on the whole photo, without EOT; "
              "loop speed-up = research / ours; vs protect() = research / protect(). Fastest of "
              "the timed runs, all in the same process."]
    return "\n".join(lines) + "\n"


def write_speed(rows: Sequence[SpeedRow], out: Path, notes: Sequence[str] = ()) -> dict[str, Path]:
    """Write ``speed.json`` (with the environment) and ``speed.md`` into ``out``."""
    from disrupt.bench.report import environment

    device = torch.device(rows[0].device) if rows else torch.device("cpu")
    files = {"json": out / "speed.json", "markdown": out / "speed.md"}
    payload = {"environment": environment(0, device), "notes": list(notes),
               "rows": [r.to_dict() for r in rows]}
    files["json"].write_text(json.dumps(payload, indent=2))
    files["markdown"].write_text(speed_markdown(rows, notes))
    return files
