"""pix2pix: paired image-to-image translation with a U-Net generator.

Paper: Phillip Isola, Jun-Yan Zhu, Tinghui Zhou, Alexei A. Efros, "Image-to-Image Translation
with Conditional Adversarial Networks", CVPR 2017 (arXiv:1611.07004).

Original code: junyanz/pytorch-CycleGAN-and-pix2pix, ``models/networks.py``
(``UnetGenerator``, ``UnetSkipConnectionBlock``, ``get_norm_layer``), with ``test.py`` and
``base_model.py`` for the test-time mode and loading. The fixtures that check this file
(``shared/fixtures/pix2pix_unet``) were generated from the unmodified upstream copy vendored
in natanielruiz/disrupting-deepfakes@c5b4373a54693139ae4c408b1fcca2de745355e0 (``cyclegan/``,
late 2019); no upstream commit is pinned. Code licence: BSD 2-Clause (Copyright (c) 2017,
Jun-Yan Zhu and Taesung Park). This file is an independent reimplementation.

Weights licence: the released generators (``scripts/download_pix2pix_model.sh``:
edges2shoes, sat2map, map2sat, facades_label2photo, day2night) carry no licence of their own
beyond the repository's; the terms of each training dataset apply.

Architecture: a recursive U-Net. Each level is a block ``[LeakyReLU(0.2), Conv4x4 s2,
BatchNorm] + inner block + [ReLU, ConvTranspose4x4 s2, BatchNorm (, Dropout 0.5)]`` whose
output is ``cat([x, block(x)])``; the outermost level has no LeakyReLU/norm on the way down,
ends in a biased transposed convolution and Tanh, and does not concatenate; the innermost
level has no down norm. With BatchNorm the convolutions have no bias (InstanceNorm: bias).
Channels ``ngf, 2ngf, 4ngf, 8ngf``, then ``num_downs - 5`` levels of ``8ngf`` with dropout.

Official test-time mode: TRAIN. ``test.py`` calls ``model.eval()`` only with ``--eval``, so by
default BatchNorm normalises with the statistics of the current batch (batch size 1 in the
official script) and ``Dropout(0.5)`` is active: outputs are stochastic. Here the dropout
draws come from torch's global RNG, so a caller who wants repeatable outputs seeds it
(``torch.manual_seed``); because train-mode BatchNorm mixes images, targets built here are
not batch-independent.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from targets._common import (
    drop_running_stats,
    fill_num_batches_tracked,
    seeded_init_,
    strip_module_prefix,
)
from targets.base import UNCONDITIONAL, GeneratorTarget, Target, WeightsSpec
from targets.checkpoints import CheckpointError, load_state_dict_strict, read_checkpoint
from targets.registry import register_target

NUM_DOWNS: dict[str, int] = {"unet_128": 7, "unet_256": 8}  # official ``netG`` names


def make_norm(norm: str, channels: int) -> nn.Module:
    """The official ``get_norm_layer(norm)(channels)``.

    ``'batch'``: ``BatchNorm2d(affine=True, track_running_stats=True)``; ``'instance'``:
    ``InstanceNorm2d(affine=False, track_running_stats=False)``; ``'none'``: identity.
    """
    if norm == "batch":
        return nn.BatchNorm2d(channels, affine=True, track_running_stats=True)
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if norm == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {norm!r}; use 'batch', 'instance' or 'none'")


class UnetSkipBlock(nn.Module):
    """One U-Net level, key-compatible with the official ``UnetSkipConnectionBlock``.

    Its layers live in ``self.model`` (an ``nn.Sequential``), the inner level at index 3
    (index 1 for the outermost), so nested keys read ``model.1.model.3.model...``.

    The official down path uses ``LeakyReLU(0.2, inplace=True)``, which makes the skip
    tensor ``leaky_relu(x)`` instead of ``x``. The only consumer of the concatenation is the
    parent's ReLU and ``relu(leaky_relu(x)) == relu(x)``, so outputs (and their gradients)
    are identical; this module does not modify its input in place.
    """

    def __init__(
        self,
        outer_nc: int,
        inner_nc: int,
        input_nc: int | None = None,
        submodule: nn.Module | None = None,
        *,
        outermost: bool = False,
        innermost: bool = False,
        norm: str = "batch",
        use_dropout: bool = False,
    ) -> None:
        super().__init__()
        self.outermost = outermost
        use_bias = norm == "instance"
        if input_nc is None:
            input_nc = outer_nc
        downconv = nn.Conv2d(input_nc, inner_nc, 4, stride=2, padding=1, bias=use_bias)
        layers: list[nn.Module]
        if outermost:
            if submodule is None:
                raise ValueError("the outermost block needs a submodule")
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, stride=2, padding=1)
            layers = [downconv, submodule, nn.ReLU(), upconv, nn.Tanh()]
        elif innermost:
            upconv = nn.ConvTranspose2d(inner_nc, outer_nc, 4, stride=2, padding=1, bias=use_bias)
            layers = [nn.LeakyReLU(0.2), downconv, nn.ReLU(), upconv, make_norm(norm, outer_nc)]
        else:
            if submodule is None:
                raise ValueError("a middle block needs a submodule")
            upconv = nn.ConvTranspose2d(
                inner_nc * 2, outer_nc, 4, stride=2, padding=1, bias=use_bias
            )
            layers = [
                nn.LeakyReLU(0.2),
                downconv,
                make_norm(norm, inner_nc),
                submodule,
                nn.ReLU(),
                upconv,
                make_norm(norm, outer_nc),
            ]
            if use_dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], dim=1)


class UnetGenerator(nn.Module):
    """The pix2pix U-Net generator, key-compatible with the official ``UnetGenerator``.

    ``use_dropout`` defaults to True, as ``define_G`` is called by the pix2pix model (the
    official class itself defaults to False). ``norm`` is the official ``--norm`` string.

    Shape:
        - input: ``(B, input_nc, H, W)`` in ``[-1, 1]``, ``H`` and ``W`` divisible by
          ``2**num_downs`` (256 for ``unet_256``, 128 for ``unet_128``).
        - output: ``(B, output_nc, H, W)`` in ``(-1, 1)``.
    """

    def __init__(
        self,
        input_nc: int = 3,
        output_nc: int = 3,
        num_downs: int = 8,
        ngf: int = 64,
        norm: str = "batch",
        use_dropout: bool = True,
    ) -> None:
        super().__init__()
        if num_downs < 5:
            raise ValueError(f"num_downs must be at least 5, got {num_downs}")
        self.num_downs = num_downs
        block = UnetSkipBlock(ngf * 8, ngf * 8, innermost=True, norm=norm)
        for _ in range(num_downs - 5):
            block = UnetSkipBlock(
                ngf * 8, ngf * 8, submodule=block, norm=norm, use_dropout=use_dropout
            )
        for outer, inner in ((ngf * 4, ngf * 8), (ngf * 2, ngf * 4), (ngf, ngf * 2)):
            block = UnetSkipBlock(outer, inner, submodule=block, norm=norm)
        self.model = UnetSkipBlock(
            output_nc, ngf, input_nc, submodule=block, outermost=True, norm=norm
        )

    def forward(self, x: Tensor) -> Tensor:
        step = 2**self.num_downs
        if x.shape[-2] % step or x.shape[-1] % step:
            raise ValueError(
                f"U-Net with num_downs={self.num_downs} needs H and W divisible by {step}, "
                f"got {tuple(x.shape[-2:])}"
            )
        return self.model(x)


def remap_state_dict(state_dict: Mapping[str, object], norm: str = "batch") -> dict[str, object]:
    """Official pix2pix / CycleGAN generator checkpoint -> this module's keys (identical names).

    Strips a ``module.`` prefix (the official ``save_networks`` already saves the inner
    network, but hand-made DataParallel saves carry it). With ``norm='batch'``, fills the
    ``num_batches_tracked`` entries absent from files saved with PyTorch < 0.4.1 (the
    official loader does the same by deleting ``_metadata``). With ``norm='instance'``,
    drops the InstanceNorm ``running_mean`` / ``running_var`` / ``num_batches_tracked``
    entries that released files carry and that the official
    ``__patch_instance_norm_state_dict`` removes.
    """
    sd = strip_module_prefix(state_dict)
    if norm == "instance":
        return drop_running_stats(sd)
    return fill_num_batches_tracked(sd)


WEIGHTS_UNET_256 = WeightsSpec(
    file="checkpoints/<name>_pretrained/latest_net_G.pth",
    sha256=None,
    input_size=(256, 256),
    value_range=(-1.0, 1.0),
    licence="code BSD-2-Clause; weights: no separate licence stated (training-data terms apply)",
    provenance=(
        "junyanz/pytorch-CycleGAN-and-pix2pix scripts/download_pix2pix_model.sh <name>, "
        "name in edges2shoes, sat2map, map2sat, facades_label2photo, day2night; "
        "define_G(3, 3, 64, 'unet_256', norm='batch', use_dropout=True)"
    ),
    extra={
        "preprocessing": "Resize([256, 256], BICUBIC), Normalize(0.5, 0.5)",
        "mode": "train (test.py without --eval): batch statistics, active dropout",
        "checkpoint_wrapper": "none (plain state_dict, no module. prefix)",
    },
)


def _pix2pix_target(name: str, net: UnetGenerator, size: int) -> GeneratorTarget:
    return GeneratorTarget(
        name,
        net,
        value_range=(-1.0, 1.0),
        input_size=(size, size),
        conditions=UNCONDITIONAL,
        mode="train",
        batch_independent=False,
    )


def _load_official(name: str, weights: Path | None, num_downs: int) -> Target:
    if weights is None:
        raise CheckpointError(f"{name} needs its checkpoint: pass weights=PATH")
    sd = remap_state_dict(read_checkpoint(weights))
    with torch.device("meta"):  # every tensor comes from the checkpoint: skip the random init
        net = UnetGenerator(num_downs=num_downs)
    net.to_empty(device="cpu")
    load_state_dict_strict(net, sd, weights)
    return _pix2pix_target(name, net, 2**num_downs)


@register_target(
    "pix2pix.unet_256",
    description="pix2pix U-Net 256 (released models), train mode: batch stats + active dropout",
    weights=WEIGHTS_UNET_256,
    needs_weights=True,
)
def pix2pix_unet_256(weights: Path | None) -> Target:
    """A released pix2pix generator (``unet_256``), in the official train mode.

    Stochastic: dropout masks are drawn from torch's global RNG on every call.
    """
    return _load_official("pix2pix.unet_256", weights, NUM_DOWNS["unet_256"])


@register_target(
    "pix2pix.unet_128",
    description="pix2pix U-Net 128 (user-trained --netG unet_128), train mode",
    weights=None,
    needs_weights=True,
)
def pix2pix_unet_128(weights: Path | None) -> Target:
    """A ``--netG unet_128`` pix2pix generator (no official release), official train mode."""
    return _load_official("pix2pix.unet_128", weights, NUM_DOWNS["unet_128"])


def build_tiny() -> UnetGenerator:
    """The ``pix2pix.tiny`` network: U-Net with ``num_downs=6``, ``ngf=4`` (64x64), seeded."""
    with torch.device("meta"):
        net = UnetGenerator(num_downs=6, ngf=4)
    net.to_empty(device="cpu")
    return seeded_init_(net, seed=0)


@register_target(
    "pix2pix.tiny",
    description="tiny random pix2pix U-Net (ngf 4, 64x64, seed 0), train mode, for tests",
    needs_weights=False,
)
def pix2pix_tiny(weights: Path | None) -> Target:
    """Random weights from ``torch.Generator`` seed 0, or ``weights`` when given.

    Train mode like the official pix2pix: stochastic through torch's global RNG.
    """
    net = build_tiny()
    if weights is not None:
        load_state_dict_strict(net, remap_state_dict(read_checkpoint(weights)), weights)
    return _pix2pix_target("pix2pix.tiny", net, 64)
