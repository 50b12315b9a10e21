"""Protect many photos at once: same-size photos share one attack batch.

:func:`protect_batch` returns what :func:`disrupt.protect` returns for each photo
with the same options, but photos that can share an attack are stacked into one
batch, so every generator pass serves several photos: fewer, larger passes, meant
for GPUs (on a 2-core CPU it measured no faster: ``benchmarks/bench_batch.py``).
Every seeded choice is the photo's own, so the only difference from one-by-one
runs is float rounding: a batched convolution may round differently from a
single-image one, and the attack's steps amplify it (on the tiny test models the
images are byte-identical; with the bundled models at ``mid``, 4% of the 8-bit values
differed, by up to 18 levels: equally valid protections, not the same bytes).

Which photos share a batch. Photos of the same size whose plan is the whole photo
(no face used, no mask: e.g. a pipeline of aligned face crops, or small images).
Their plans are then identical, so their L2 radius, step, EOT draws and crop
jitter are too (every photo is seeded alike); each keeps its own random start
(one generator per image, :func:`attacks.random_delta`) and its own texture caps.
A photo whose faces decide the crops, with a mask or a universal start, goes alone.
Targets whose outputs depend on the batch (BatchNorm in train mode:
``batch_independent`` is ``False``) or that draw random numbers while running (active
dropout) are never batched across photos: then every photo goes alone.

Images are float ``(1, 3, H, W)`` in ``[0, 1]``, as everywhere in :mod:`disrupt`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor, nn

from attacks import Attack
from disrupt.api import ImageInput, ProtectResult, finish_protection, protect, resolve_targets
from disrupt.core import pipeline
from disrupt.core.budget import DEFAULT_STRENGTH, Budget, resolve_budget
from disrupt.core.faces import crop_family
from disrupt.core.masking import texture_caps
from disrupt.core.pipeline import (
    ATTACK_JITTER,
    Plan,
    blotch_sigma,
    grain_sigma,
    plan_protection,
    run_protection,
)
from disrupt.core.rounding import quantize_within
from disrupt.core.seeding import check_seed, move_to, resolve_device, seeded
from disrupt.core.transforms import JPEG_EOT_TRANSFORMS, RandomTransform, Transform
from disrupt.imaging import LoadedImage, load_image
from targets import Target

__all__ = ["DEFAULT_BATCH", "batchable_targets", "protect_batch", "protect_shared"]

#: Photos per attack batch by default.
DEFAULT_BATCH = 8


def batchable_targets(targets: Sequence[Target]) -> bool:
    """Whether photos may share a batch through ``targets``: every target's outputs are
    independent of the batch and it draws no random numbers (no active dropout)."""
    for t in targets:
        if not getattr(t, "batch_independent", False):
            return False
        net = getattr(t, "generator", None)
        if isinstance(net, nn.Module) and any(
                isinstance(m, nn.modules.dropout._DropoutNd) and m.training and m.p > 0
                for m in net.modules()):
            return False
    return True


@dataclass(frozen=True)
class _OnePhotoAtATime:
    """A random transform applied to each photo of a batch on its own (the same draw for
    all): a batched matrix product may sum in another order than one image's, and the
    differentiable JPEG's rounding can then fall the other way."""

    inner: RandomTransform

    @property
    def name(self) -> str:
        return self.inner.name

    def sample(self, generator: torch.Generator | None = None) -> Transform:
        apply = self.inner.sample(generator)
        return lambda x: torch.cat([apply(x[i : i + 1]) for i in range(x.shape[0])])


def _shareable(plan: Plan) -> bool:
    return plan.face_status != "used" and plan.mask is None and len(plan.boxes) == 1


def _perturb_together(x: Tensor, targets: Sequence[Target], budget: Budget, plan: Plan,
                      seed: int) -> tuple[Tensor, Attack]:
    """:func:`disrupt.core.pipeline.perturb` for ``x`` ``(N, 3, H, W)``: N same-size photos
    under one whole-photo ``plan``; each row equals that photo perturbed alone."""
    attack = budget.attack_for(3 * plan.protected_pixels)
    running = attack
    caps: Tensor | None = None
    if budget.perceptual and attack.norm == "l2" and isinstance(attack.linf_cap, float):
        cap = attack.linf_cap
        caps = torch.cat([texture_caps(x[i : i + 1], cap) for i in range(x.shape[0])])
        running = replace(attack, linf_cap=caps)
    with seeded(seed, x.device):
        x_adv = run_protection(
            x, targets, running, plan, eot=budget.eot, eot_samples=budget.eot_samples,
            transforms=[_OnePhotoAtATime(t) for t in JPEG_EOT_TRANSFORMS],
            generator=[torch.Generator(device=x.device).manual_seed(seed)
                       for _ in range(x.shape[0])],
            eot_generator=torch.Generator().manual_seed(seed + 1),
            balanced=budget.objective == "balanced",
            jitter=ATTACK_JITTER if budget.crop_jitter else None,
            jitter_generator=torch.Generator().manual_seed(seed + 2),
            high_pass_sigma=blotch_sigma(plan) if budget.perceptual else None,
            low_pass_sigma=grain_sigma(plan) if budget.perceptual else None,
            chroma=pipeline.CHROMA_SHARE if budget.perceptual else 1.0,
            give_up=budget.objective == "focused",
        )
    rows = [quantize_within(x_adv[i : i + 1], x[i : i + 1], running.eps, norm=running.norm,
                            linf_cap=caps[i : i + 1] if caps is not None else running.linf_cap,
                            region=plan.region)
            for i in range(x.shape[0])]
    return torch.cat(rows), attack


def protect_batch(
    images: Sequence[ImageInput],
    *,
    targets: Sequence[str | Target] | None = None,
    weights: dict[str, str | Path] | None = None,
    budget: Budget | None = None,
    strength: str | None = None,
    faces: bool | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    outputs: Sequence[str | Path] | None = None,
    overwrite: bool = False,
    batch_size: int = DEFAULT_BATCH,
    progress: Callable[[int, int], None] | None = None,
) -> list[ProtectResult]:
    """:func:`disrupt.protect` for many photos, sharing attack batches where that changes
    nothing (see the module docstring).

    Args:
        images: photos, each anything :func:`disrupt.protect` accepts.
        targets, weights, budget, strength, faces, seed, device, overwrite: as
            :func:`disrupt.protect`, the same for every photo.
        outputs: one output path per photo, or ``None`` to write nothing.
        batch_size: at most this many photos per attack batch (``>= 1``).
        progress: ``progress(done, total)`` after each photo or batch of photos.

    Returns:
        One :class:`~disrupt.api.ProtectResult` per photo, in order; ``seconds`` of a
        photo that shared a batch is the batch's time divided among its photos.

    Raises:
        SettingError: as :func:`disrupt.protect`; a ``batch_size`` under 1, or a number
            of outputs other than the number of photos.
        DisruptError: an unreadable photo (nothing has been written for any photo).
    """
    from disrupt.errors import SettingError

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise SettingError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if outputs is not None and len(outputs) != len(images):
        raise SettingError(f"got {len(outputs)} outputs for {len(images)} photos")
    check_seed(seed)
    dev = resolve_device(device)
    if budget is None:
        budget = resolve_budget(strength or DEFAULT_STRENGTH)
    elif strength is not None:
        raise SettingError("budget= already settles strength: pass one or the other")
    chosen = resolve_targets(targets, weights)
    move_to(chosen, dev)
    sources = [load_image(im) for im in images]
    family = crop_family(budget.crops)
    plans = [plan_protection(s.rgb.to(dev), chosen, faces=faces, family=family)
             for s in sources]
    groups = _groups(sources, plans, batchable_targets(chosen), batch_size)
    results: list[ProtectResult | None] = [None] * len(sources)
    done = 0
    for group in groups:
        started = time.perf_counter()
        if len(group) == 1:
            i = group[0]
            # A path is passed again (not its pixels) so that protect() knows the input
            # file and never writes over it; other inputs were read once already.
            again = images[i] if isinstance(images[i], (str, Path)) else sources[i].rgb
            results[i] = protect(again, targets=chosen, budget=budget, faces=faces,
                                 seed=seed, device=dev, output=_out(outputs, i),
                                 overwrite=overwrite)
        else:
            x = torch.cat([sources[i].rgb for i in group]).to(dev)
            protected, atk = _perturb_together(x, chosen, budget, plans[group[0]], seed)
            share = (time.perf_counter() - started) / len(group)
            for row, i in enumerate(group):
                results[i] = finish_protection(
                    sources[i], x[row : row + 1], protected[row : row + 1], atk,
                    chosen, budget, plans[i], seed=seed, faces=faces, masked=False,
                    universal=False, output=_out(outputs, i), overwrite=overwrite,
                    require_disruption=False, started=time.perf_counter() - share)
        done += len(group)
        if progress is not None:
            progress(done, len(sources))
    return [r for r in results if r is not None]


def protect_shared(
    paths: Sequence[Path],
    outputs: Sequence[Path],
    *,
    targets: Sequence[Target],
    budget: Budget,
    faces: bool | None,
    seed: int,
    device: torch.device,
    overwrite: bool,
    batch_size: int = DEFAULT_BATCH,
) -> dict[int, ProtectResult]:
    """The photos among ``paths`` that can share attack batches, protected together and
    written to their ``outputs``: ``{index: result}``. Photos left out (unreadable, or
    with no partner of their size and plan) are for the caller to protect one by one,
    with :func:`disrupt.protect`, which also reports their errors. The CLI's path."""
    from disrupt.errors import DisruptError

    if batch_size < 2 or len(paths) < 2 or not batchable_targets(targets):
        return {}
    move_to(targets, device)
    readable: dict[int, LoadedImage] = {}
    for i, path in enumerate(paths):
        try:
            readable[i] = load_image(path)
        except (DisruptError, OSError):
            continue  # reported when protected alone
    index = list(readable)
    sources = [readable[i] for i in index]
    family = crop_family(budget.crops)
    plans = [plan_protection(s.rgb.to(device), targets, faces=faces, family=family)
             for s in sources]
    shared = [g for g in _groups(sources, plans, True, batch_size) if len(g) > 1]
    picked = [index[i] for g in shared for i in g]
    if not picked:
        return {}
    results = protect_batch([paths[i] for i in picked], targets=targets, budget=budget,
                            faces=faces, seed=seed, device=device,
                            outputs=[outputs[i] for i in picked], overwrite=overwrite,
                            batch_size=batch_size)
    return dict(zip(picked, results, strict=True))


def _out(outputs: Sequence[str | Path] | None, i: int) -> str | Path | None:
    return None if outputs is None else outputs[i]


def _groups(sources: Sequence[LoadedImage], plans: Sequence[Plan], batchable: bool,
            batch_size: int) -> list[list[int]]:
    """Indices of photos that attack together, in input order of their first photo."""
    if not batchable or batch_size == 1:
        return [[i] for i in range(len(sources))]
    groups: list[list[int]] = []
    open_group: dict[tuple[int, int], list[int]] = {}
    for i, (source, plan) in enumerate(zip(sources, plans, strict=True)):
        if not _shareable(plan):
            groups.append([i])
            continue
        key = (int(source.rgb.shape[-2]), int(source.rgb.shape[-1]))
        group = open_group.get(key)
        if group is None or len(group) >= batch_size:
            group = open_group[key] = []
            groups.append(group)
        group.append(i)
    return groups
