"""Training the amortized protector (:mod:`disrupt.core.protector`) against targets.

Each step takes a mini-batch of face crops (``(B, 3, S, S)``, the photo's own pixels),
makes their perturbations in one forward pass, shapes them exactly as ``protect``
does at the ``mid`` budget (:func:`~disrupt.core.protector.fit_to_budget`: high-pass,
texture caps, PSNR floor), and ascends the mean over targets of the default preset's
objective (:class:`~disrupt.core.objectives.AwayFromClean`; or, with
``objective="balanced"``, :class:`~disrupt.core.objectives.BalancedAway`) in
expectation over what happens to a posted photo: JPEG 50-95 or none
(:class:`~disrupt.core.transforms.RandomJPEG`, drawn with probability ``jpeg_share``)
on the whole crop, then a crop
drawn from :class:`~disrupt.core.crops.CropJitter` resized to each model's input.
Each step scores ``conditions_per_step`` conditions per target drawn at random (an
unbiased estimate of the mean over conditions at a fraction of the cost).

Validation scores the held-apart faces as saved and, with ``validation_jpeg``, after a
real (Pillow) JPEG round trip as well: as-saved disruption saturates early, so a
validation of it alone cannot tell checkpoints apart on what a posted photo meets.

Training state (network, optimizer, step, random state, best validation) is
checkpointed to a folder after every validation, so an interrupted run resumes
where it stopped; the best network so far is kept there as safetensors.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from disrupt.core.crops import CropJitter, crop_resize
from disrupt.core.faces import Box
from disrupt.core.masking import texture_caps
from disrupt.core.objectives import AwayFromClean, BalancedAway
from disrupt.core.protector import PerturbationNet, fit_to_budget, protector_raw, save_protector
from disrupt.core.transforms import RandomJPEG
from disrupt.eval.channels import jpeg
from disrupt.eval.evaluation import disrupted_share, measure_disruption
from targets.base import Target

__all__ = ["ProtectorConfig", "TrainState", "budget_for", "evaluate_protector", "protect_batch",
           "train_protector"]


@dataclass(frozen=True)
class ProtectorConfig:
    """Hyper-parameters; the budget fields are the ``mid`` preset's."""

    steps: int = 1000
    batch_size: int = 8
    lr: float = 1e-3
    width: int = 32
    #: The side of the crops the net sees (the bundled models' input).
    size: int = 64
    psnr: float = 33.0
    cap: float = 16 / 255
    perceptual: bool = True
    #: ``"mean"`` (:class:`AwayFromClean`: the default preset's objective) or
    #: ``"balanced"`` (:class:`BalancedAway`).
    objective: str = "mean"
    #: BalancedAway's margin: outputs are pushed to ``(1 + margin)`` times the threshold.
    margin: float = 1.0
    conditions_per_step: int = 1
    eot: bool = True
    #: With ``eot``, the probability that a step's draw is a JPEG (quality 50-95) rather
    #: than no transform. 0.5 is the full attack's default EOT
    #: (a uniform draw over :data:`~disrupt.core.transforms.JPEG_EOT_TRANSFORMS`).
    jpeg_share: float = 0.5
    #: Also validate after a real JPEG round trip at this quality (``None``: as saved only).
    validation_jpeg: int | None = 75
    crop_jitter: bool = True
    seed: int = 0
    #: Validate (and checkpoint) every this many steps.
    every: int = 50


@dataclass
class TrainState:
    """What a run has reached: step, the best validation so far, and the log."""

    step: int = 0
    best_score: float = -math.inf
    best_step: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def budget_for(x: Tensor, psnr: float, cap: float, perceptual: bool
               ) -> tuple[float, float | Tensor, float | None]:
    """``(radius, caps, sigma)`` of the preset's budget for crops ``x`` ``(B, 3, S, S)``
    protected whole: the L2 radius of the PSNR floor over all their values, the texture
    caps (or the flat cap) and the high-pass sigma (a 32nd of the side, 1 to 6 px), as
    :func:`disrupt.core.pipeline.perturb` sets them for a photo that is one face."""
    h, w = x.shape[-2:]
    radius = 10 ** (-psnr / 20) * math.sqrt(3 * h * w)
    if not perceptual:
        return radius, cap, None
    caps = torch.cat([texture_caps(x[i : i + 1], cap) for i in range(x.shape[0])])
    return radius, caps, min(6.0, max(1.0, min(h, w) / 32))


def protect_batch(net: PerturbationNet, x: Tensor, config: ProtectorConfig) -> Tensor:
    """``x`` ``(B, 3, S, S)`` in ``[0, 1]`` -> protected ``(B, 3, S, S)`` in ``[0, 1]`` (float,
    not rounded), each image treated as one whole face crop. Differentiable."""
    radius, caps, sigma = budget_for(x, config.psnr, config.cap, config.perceptual)
    raw = protector_raw(net, x, [Box(0, 0, x.shape[-1], x.shape[-2])])
    return (x + fit_to_budget(raw, radius, caps=caps, sigma=sigma)).clamp(0.0, 1.0)


def _step_score(net: PerturbationNet, targets: Sequence[Target], x: Tensor,
                config: ProtectorConfig, generator: torch.Generator) -> Tensor:
    """The balanced score ``(B,)`` of one draw (EOT transform, crop, conditions)."""
    x_adv = protect_batch(net, x, config)
    if config.eot and float(torch.rand((), generator=generator)) < config.jpeg_share:
        x_adv = RandomJPEG().sample(generator)(x_adv)
    whole = Box(0, 0, x.shape[-1], x.shape[-2])
    box = CropJitter().draw(whole, (x.shape[-2], x.shape[-1]), generator) \
        if config.crop_jitter else whole
    scores = []
    for target in targets:
        size = target.input_size or (net.size, net.size)
        conditions = list(target.conditions)
        k = min(config.conditions_per_step, len(conditions))
        picked = torch.randperm(len(conditions), generator=generator)[:k].tolist()
        clean, chosen = crop_resize(x, box, size), [conditions[i] for i in picked]
        objective = (BalancedAway(target, clean, chosen, margin=config.margin)
                     if config.objective == "balanced" else AwayFromClean(target, clean, chosen))
        scores.append(objective(crop_resize(x_adv, box, size)))
    return torch.stack(scores).mean(dim=0)


def evaluate_protector(net: PerturbationNet, targets: Sequence[Target], images: Tensor,
                       config: ProtectorConfig) -> dict[str, float]:
    """Per target, the fraction of (image, condition) outputs disrupted (Ruiz MSE > 0.05)
    when ``images`` ``(N, 3, S, S)`` are protected whole and rounded to 8 bits; with
    ``config.validation_jpeg`` also after that JPEG round trip of both the original and
    the protected faces (keys ``"<target>@jpeg<quality>"``); plus ``"mean"``, the mean
    over all of them."""
    with torch.no_grad():
        x_adv = torch.cat([protect_batch(net, images[i : i + 8], config)
                           for i in range(0, images.shape[0], 8)])
        x_adv = (x_adv * 255).round() / 255
        # (clean, protected) per channel; JPEG goes through both, as the benchmarks
        # compare G(channel(protected)) with G(channel(original)).
        channels = {"": (images, x_adv)}
        if config.validation_jpeg is not None:
            q = config.validation_jpeg
            channels[f"@jpeg{q}"] = (jpeg(images, q), jpeg(x_adv, q))
        out: dict[str, float] = {}
        for suffix, (clean, seen) in channels.items():
            rows = measure_disruption(targets, clean, seen)
            for name, share in disrupted_share(rows, [t.name for t in targets]).items():
                out[name + suffix] = share
    out["mean"] = sum(out.values()) / max(1, len(out))
    return out


def _save_state(folder: Path, net: PerturbationNet, optimizer: torch.optim.Optimizer,
                state: TrainState, generator: torch.Generator, config: ProtectorConfig) -> None:
    tmp = folder / "last.pt.tmp"
    torch.save({"net": net.state_dict(), "optimizer": optimizer.state_dict(),
                "generator": generator.get_state(), "state": asdict(state),
                "config": asdict(config)}, tmp)
    os.replace(tmp, folder / "last.pt")


def train_protector(
    targets: Sequence[Target],
    images: Tensor,
    validation: Tensor,
    config: ProtectorConfig,
    *,
    folder: str | Path,
    start: Tensor | None = None,
    init: PerturbationNet | None = None,
    names: Sequence[str] = (),
    max_seconds: float | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[PerturbationNet, TrainState]:
    """Train (or resume training) a protector; return the best network and the state.

    Args:
        targets: the generators it must disrupt.
        images: training crops ``(N, 3, S, S)`` in ``[0, 1]`` (uint8 ``[0, 255]`` also
            accepted, to keep a large set small in memory).
        validation: held-apart crops ``(M, 3, S, S)``, scored every ``config.every`` steps
            (:func:`evaluate_protector`); the best mean is kept (the later on a tie).
        config: hyper-parameters.
        folder: checkpoints (``last.pt``: resumable state; ``best.safetensors``); an
            existing ``last.pt`` is resumed.
        start: a ``(3, size, size)`` pattern to initialise the net's image-independent
            part with (e.g. the bundled universal perturbation over its eps).
        init: a trained protector of the same width and size to start from instead
            (fine-tuning it); ``start`` is then ignored.
        names: target names recorded in the weights' metadata.
        max_seconds: stop (after a checkpoint) once this much time has run in this call.
        progress: called with each validation's log entry.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    net = PerturbationNet(width=config.width, size=config.size)
    # A zero pattern would give the budget fit no direction to scale. At a tenth of the
    # net's output scale, Adam's steps move it (and the U-Net's share) quickly.
    if init is not None:
        if (init.width, init.size) != (config.width, config.size):
            raise ValueError(f"init protector is width {init.width}, size {init.size}; "
                             f"the config wants {config.width}, {config.size}")
        net.load_state_dict(init.state_dict(), strict=True)
    else:
        with torch.no_grad():
            pattern = start if start is not None else torch.randn(
                net.pattern.shape, generator=torch.Generator().manual_seed(config.seed))
            net.pattern.copy_(0.1 * pattern / pattern.abs().max().clamp_min(1e-12))
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    generator = torch.Generator().manual_seed(config.seed)
    state = TrainState()
    last = out / "last.pt"
    if last.exists():
        saved = torch.load(last, weights_only=True)
        net.load_state_dict(saved["net"], strict=True)
        optimizer.load_state_dict(saved["optimizer"])
        generator.set_state(saved["generator"])
        state = TrainState(**saved["state"])
    for target in targets:
        if isinstance(target, torch.nn.Module):
            target.requires_grad_(False)
    began = time.perf_counter()
    n = images.shape[0]
    while state.step < config.steps:
        # Each epoch's order follows from the seed alone, so a resumed run sees the
        # batches an uninterrupted one would.
        epoch, at = divmod(state.step * config.batch_size, n)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(config.seed + epoch))
        idx = order[at : at + config.batch_size]
        x = images[idx]
        x = x.float() / 255 if x.dtype == torch.uint8 else x
        net.train()
        score = _step_score(net, targets, x, config, generator)
        loss = -score.mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        state.step += 1
        if state.step % config.every == 0 or state.step == config.steps:
            net.eval()
            val = evaluate_protector(net, targets, validation, config)
            elapsed = time.perf_counter() - began
            entry = {"step": state.step, "loss": loss.item(), "seconds": state.seconds + elapsed,
                     "validation": val}
            state.log.append(entry)
            # A tie goes to the later checkpoint: it has trained longer in expectation
            # over JPEG qualities and crops, which the validation does not all score.
            if val["mean"] >= state.best_score:
                state.best_score, state.best_step = val["mean"], state.step
                save_protector(out / "best.safetensors", net, targets=names)
            state.seconds += elapsed
            began = time.perf_counter()
            _save_state(out, net, optimizer, state, generator, config)
            if progress is not None:
                progress(entry)
            if max_seconds is not None and state.seconds >= max_seconds:
                break
    best = out / "best.safetensors"
    if best.exists():
        from disrupt.core.protector import load_protector

        return load_protector(best), state
    return net, state
