"""CycleGAN: unpaired image-to-image translation with a ResNet generator.

Paper: Jun-Yan Zhu, Taesung Park, Phillip Isola, Alexei A. Efros, "Unpaired Image-to-Image
Translation using Cycle-Consistent Adversarial Networks", ICCV 2017 (arXiv:1703.10593).

Original code: junyanz/pytorch-CycleGAN-and-pix2pix, ``models/networks.py``
(``ResnetGenerator``, ``ResnetBlock``) and ``models/base_model.py`` (``load_networks`` and its
InstanceNorm patch). The fixtures that check this file (``shared/fixtures/cyclegan_resnet``)
were generated from the unmodified upstream copy vendored in
natanielruiz/disrupting-deepfakes@c5b4373a54693139ae4c408b1fcca2de745355e0 (``cyclegan/``,
late 2019); no upstream commit is pinned. Code licence: BSD 2-Clause (Copyright (c) 2017,
Jun-Yan Zhu and Taesung Park). This file is an independent reimplementation.

Weights licence: the released generators (``scripts/download_cyclegan_model.sh``: horse2zebra,
monet2photo, style_vangogh, ... 18 names) carry no licence of their own beyond the
repository's; the terms of each training dataset apply.

Architecture (one ``nn.Sequential`` named ``model``): ReflectionPad(3), Conv7x7, norm, ReLU;
two Conv3x3 stride 2 (zero padding 1), norm, ReLU; ``n_blocks`` residual blocks
``x + [pad, Conv3x3, norm, ReLU, pad, Conv3x3, norm](x)`` with no activation after the sum;
two ConvTranspose3x3 stride 2, padding 1, ``output_padding=1`` (exactly doubles H and W),
norm, ReLU; ReflectionPad(3), Conv7x7 (bias), Tanh. ``norm='instance'`` is
``InstanceNorm2d(affine=False, track_running_stats=False)`` and then every convolution has a
bias. With ``use_dropout`` a ``Dropout(0.5)`` sits after the first ReLU of each block, which
shifts the block's keys (released files are the no-dropout layout, ``--no_dropout``).

Official test-time mode: ``test.py`` calls ``model.eval()`` only with ``--eval``, so the
official mode is train; with InstanceNorm without running statistics and no dropout,
train and eval give identical outputs (checked by the fixtures), and each image is processed
independently.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from targets._common import drop_running_stats, seeded_init_
from targets.base import UNCONDITIONAL, GeneratorTarget, Target, WeightsSpec
from targets.checkpoints import CheckpointError, load_state_dict_strict, read_checkpoint
from targets.pix2pix import make_norm
from targets.pix2pix import remap_state_dict as _remap_pix2pix
from targets.registry import register_target

N_BLOCKS: dict[str, int] = {"resnet_6blocks": 6, "resnet_9blocks": 9}  # official ``netG`` names


def _pad(padding_type: str) -> tuple[list[nn.Module], int]:
    """Explicit padding layers and the conv's own zero padding for a 3x3 convolution."""
    if padding_type == "reflect":
        return [nn.ReflectionPad2d(1)], 0
    if padding_type == "replicate":
        return [nn.ReplicationPad2d(1)], 0
    if padding_type == "zero":
        return [], 1
    raise ValueError(f"unknown padding_type {padding_type!r}; use 'reflect', 'replicate' or 'zero'")


class ResnetBlock(nn.Module):
    """``x + conv_block(x)``; key-compatible with the official ``ResnetBlock``.

    ``conv_block`` is ``[pad, Conv3x3, norm, ReLU, (Dropout,) pad, Conv3x3, norm]``.
    """

    def __init__(
        self, dim: int, *, padding_type: str, norm: str, use_dropout: bool, use_bias: bool
    ) -> None:
        super().__init__()
        pad, p = _pad(padding_type)
        layers: list[nn.Module] = [
            *pad,
            nn.Conv2d(dim, dim, 3, padding=p, bias=use_bias),
            make_norm(norm, dim),
            nn.ReLU(),
        ]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        pad, p = _pad(padding_type)
        layers += [*pad, nn.Conv2d(dim, dim, 3, padding=p, bias=use_bias), make_norm(norm, dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """The CycleGAN ResNet generator, key-compatible with the official ``ResnetGenerator``.

    ``norm`` is the official ``--norm`` string (``'instance'``, ``'batch'`` or ``'none'``).

    Shape:
        - input: ``(B, input_nc, H, W)`` in ``[-1, 1]``, ``H`` and ``W`` divisible by 4.
        - output: ``(B, output_nc, H, W)`` in ``(-1, 1)``.
    """

    def __init__(
        self,
        input_nc: int = 3,
        output_nc: int = 3,
        ngf: int = 64,
        norm: str = "instance",
        use_dropout: bool = False,
        n_blocks: int = 9,
        padding_type: str = "reflect",
    ) -> None:
        super().__init__()
        if n_blocks < 0:
            raise ValueError(f"n_blocks must be >= 0, got {n_blocks}")
        use_bias = norm == "instance"
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(input_nc, ngf, 7, padding=0, bias=use_bias),
            make_norm(norm, ngf),
            nn.ReLU(),
        ]
        for i in range(2):
            ch = ngf * 2**i
            layers += [
                nn.Conv2d(ch, ch * 2, 3, stride=2, padding=1, bias=use_bias),
                make_norm(norm, ch * 2),
                nn.ReLU(),
            ]
        for _ in range(n_blocks):
            layers.append(
                ResnetBlock(
                    ngf * 4,
                    padding_type=padding_type,
                    norm=norm,
                    use_dropout=use_dropout,
                    use_bias=use_bias,
                )
            )
        for i in range(2):
            ch = ngf * 2 ** (2 - i)
            layers += [
                nn.ConvTranspose2d(
                    ch, ch // 2, 3, stride=2, padding=1, output_padding=1, bias=use_bias
                ),
                make_norm(norm, ch // 2),
                nn.ReLU(),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-2] % 4 or x.shape[-1] % 4:
            raise ValueError(
                f"ResnetGenerator needs H and W divisible by 4, got {tuple(x.shape[-2:])}"
            )
        return self.model(x)


def remap_state_dict(state_dict: Mapping[str, object], norm: str = "instance") -> dict[str, object]:
    """Official CycleGAN generator checkpoint -> this module's keys (identical names).

    Strips a ``module.`` prefix and, for the default ``norm='instance'``, drops the
    InstanceNorm ``running_mean`` / ``running_var`` / ``num_batches_tracked`` entries that
    released files carry (the official ``__patch_instance_norm_state_dict`` does the same;
    those statistics are never used). ``norm='batch'`` fills missing ``num_batches_tracked``
    instead, as for pix2pix.
    """
    if norm not in ("instance", "batch", "none"):
        raise ValueError(f"unknown norm {norm!r}")
    if norm == "none":
        return drop_running_stats(_remap_pix2pix(state_dict, norm="batch"))
    return _remap_pix2pix(state_dict, norm=norm)


def _weights(n_blocks: int) -> WeightsSpec:
    released = (
        "released: horse2zebra, zebra2horse, monet2photo, style_monet, style_cezanne, "
        "style_ukiyoe, style_vangogh, apple2orange, orange2apple, summer2winter_yosemite, "
        "winter2summer_yosemite, sat2map, map2sat, cityscapes_photo2label, "
        "cityscapes_label2photo, facades_photo2label, facades_label2photo, iphone2dslr_flower"
        if n_blocks == 9
        else "no official release uses resnet_6blocks; for checkpoints trained with "
        "--netG resnet_6blocks"
    )
    return WeightsSpec(
        file="checkpoints/<name>_pretrained/latest_net_G.pth",
        sha256=None,
        input_size=(256, 256),
        value_range=(-1.0, 1.0),
        licence=(
            "code BSD-2-Clause; weights: no separate licence stated (training-data terms apply)"
        ),
        provenance=(
            "junyanz/pytorch-CycleGAN-and-pix2pix scripts/download_cyclegan_model.sh <name>; "
            f"define_G(3, 3, 64, 'resnet_{n_blocks}blocks', norm='instance', use_dropout=False); "
            + released
        ),
        extra={
            "preprocessing": "Resize([256, 256], BICUBIC), Normalize(0.5, 0.5)",
            "mode": "train (test.py without --eval); identical to eval for this network",
            "checkpoint_wrapper": "none (plain state_dict; legacy InstanceNorm stats dropped)",
        },
    )


WEIGHTS_RESNET_9BLOCKS = _weights(9)
WEIGHTS_RESNET_6BLOCKS = _weights(6)


def _cyclegan_target(name: str, net: ResnetGenerator, size: int) -> GeneratorTarget:
    return GeneratorTarget(
        name,
        net,
        value_range=(-1.0, 1.0),
        input_size=(size, size),
        conditions=UNCONDITIONAL,
        mode="train",  # the official test script's mode; equal to eval here
    )


def _load_official(name: str, weights: Path | None, n_blocks: int) -> Target:
    if weights is None:
        raise CheckpointError(f"{name} needs its checkpoint: pass weights=PATH")
    sd = remap_state_dict(read_checkpoint(weights))
    with torch.device("meta"):  # every tensor comes from the checkpoint: skip the random init
        net = ResnetGenerator(n_blocks=n_blocks)
    net.to_empty(device="cpu")
    load_state_dict_strict(net, sd, weights)
    return _cyclegan_target(name, net, 256)


@register_target(
    "cyclegan.resnet_9blocks",
    description="CycleGAN ResNet-9 generator (released models, e.g. horse2zebra), 256x256",
    weights=WEIGHTS_RESNET_9BLOCKS,
    needs_weights=True,
)
def cyclegan_resnet_9blocks(weights: Path | None) -> Target:
    """A released CycleGAN generator (one translation direction per file)."""
    return _load_official("cyclegan.resnet_9blocks", weights, N_BLOCKS["resnet_9blocks"])


@register_target(
    "cyclegan.resnet_6blocks",
    description="CycleGAN ResNet-6 generator (user-trained --netG resnet_6blocks), 256x256",
    weights=WEIGHTS_RESNET_6BLOCKS,
    needs_weights=True,
)
def cyclegan_resnet_6blocks(weights: Path | None) -> Target:
    """A ``--netG resnet_6blocks`` CycleGAN generator."""
    return _load_official("cyclegan.resnet_6blocks", weights, N_BLOCKS["resnet_6blocks"])


def build_tiny() -> ResnetGenerator:
    """The ``cyclegan.tiny`` network: ``ngf=4``, two residual blocks, seeded."""
    with torch.device("meta"):
        net = ResnetGenerator(ngf=4, n_blocks=2)
    net.to_empty(device="cpu")
    return seeded_init_(net, seed=0)


@register_target(
    "cyclegan.tiny",
    description="tiny random CycleGAN ResNet generator (ngf 4, 2 blocks, 32x32, seed 0), tests",
    needs_weights=False,
)
def cyclegan_tiny(weights: Path | None) -> Target:
    """Random weights from ``torch.Generator`` seed 0, or ``weights`` when given."""
    net = build_tiny()
    if weights is not None:
        load_state_dict_strict(net, remap_state_dict(read_checkpoint(weights)), weights)
    return _cyclegan_target("cyclegan.tiny", net, 32)
