"""StarGAN generators: the official one and the disrupting-deepfakes port.

Paper: Y. Choi, M. Choi, M. Kim, J.-W. Ha, S. Kim, J. Choo, "StarGAN: Unified Generative
Adversarial Networks for Multi-Domain Image-to-Image Translation", CVPR 2018
(arXiv:1711.09020).

Official code: https://github.com/yunjey/stargan at commit
94dd002e93a2863d9b987a937b85925b80f7a19f (``model.Generator``; test behaviour from
``solver.test``). Code licence: MIT (yunjey/stargan). Released weights: the generators
``200000-G.ckpt`` in ``celeba-128x128-5attrs.zip`` / ``celeba-256x256-5attrs.zip``
(``bash download.sh pretrained-celeba-128x128``); no separate weights licence is stated,
they are trained on CelebA, whose agreement allows non-commercial research use only.
No RaFD or CelebA+RaFD ("Both") weights were released: those targets load checkpoints
users train themselves with the official code.

The disrupting-deepfakes port (N. Ruiz, S. A. Bargal, S. Sclaroff, "Disrupting
Deepfakes", arXiv:2003.01279; https://github.com/natanielruiz/disrupting-deepfakes at
commit c5b4373a54693139ae4c408b1fcca2de745355e0, ``stargan/model.py``) has the same
layers and key names and loads the same checkpoints, but ``forward`` returns
``(out, feature_maps)``. Its paper uses the released 256x256 CelebA checkpoint. No
licence file for that repository could be checked here.

Facts reproduced (from the official code and ``shared/fixtures/stargan*/notes.md``):
the label ``c`` (B, c_dim) is tiled to (B, c_dim, H, W) and concatenated *after* the RGB
channels; every convolution is bias-free with zero padding; every InstanceNorm is
``InstanceNorm2d(affine=True, track_running_stats=True)``; residual blocks have no ReLU
after the addition; the output is a tanh image in (-1, 1). The official test script never
calls ``G.eval()``, so **official inference runs in train mode** (per-image InstanceNorm
statistics); eval mode (stored running statistics) gives a different image.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal, cast

import torch
from torch import Tensor, nn

from targets._common import (
    fill_num_batches_tracked,
    load_checkpoint_into,
    one_hot_conditions,
    require_weights,
    seeded_init_,
    strip_module_prefix,
)
from targets.base import Condition, GeneratorTarget, Mode, WeightsSpec
from targets.registry import register_target

STARGAN_REPO = "yunjey/stargan"
STARGAN_COMMIT = "94dd002e93a2863d9b987a937b85925b80f7a19f"
DD_REPO = "natanielruiz/disrupting-deepfakes"
DD_COMMIT = "c5b4373a54693139ae4c408b1fcca2de745355e0"

#: CelebA label order of the released model (``--selected_attrs``).
CELEBA_ATTRIBUTES: tuple[str, ...] = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young")
#: RaFD label order: ``ImageFolder`` sorts the expression folder names, and the eight RaFD
#: expression names sort alphabetically as below.
RAFD_EXPRESSIONS: tuple[str, ...] = (
    "angry",
    "contemptuous",
    "disgusted",
    "fearful",
    "happy",
    "neutral",
    "sad",
    "surprised",
)

#: Which code a generator reproduces: the official repository or the disrupting-deepfakes port.
Port = Literal["official", "dd"]


# --------------------------------------------------------------------------- network


class ResidualBlock(nn.Module):
    """``x + [Conv3x3 -> IN -> ReLU -> Conv3x3 -> IN](x)``; keys ``main.{0,1,3,4}``.

    Shape: ``(B, dim, H, W) -> (B, dim, H, W)``. No ReLU after the addition.
    """

    def __init__(self, dim: int, track_running_stats: bool = True) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(dim, dim, kernel_size=3, stride=1, padding=1, bias=False),
            nn.InstanceNorm2d(dim, affine=True, track_running_stats=track_running_stats),
            nn.ReLU(),
            nn.Conv2d(dim, dim, kernel_size=3, stride=1, padding=1, bias=False),
            nn.InstanceNorm2d(dim, affine=True, track_running_stats=track_running_stats),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.main(x)


def trunk_layers(
    in_channels: int, conv_dim: int, repeat_num: int, track_running_stats: bool
) -> tuple[list[nn.Module], int]:
    """The StarGAN encoder / bottleneck / decoder trunk (also GANimation's), in key order.

    Conv7x7 -> IN -> ReLU, 2 x [Conv4x4 s2 -> IN -> ReLU], ``repeat_num`` residual
    blocks, 2 x [ConvTranspose4x4 s2 -> IN -> ReLU]. Returns the layers (indices
    ``0 .. 20`` at ``repeat_num=6``) and the number of output channels (``conv_dim``).
    ReLUs are out of place here; the official in-place ReLUs compute the same values.
    """

    def norm(dim: int) -> nn.Module:
        return nn.InstanceNorm2d(dim, affine=True, track_running_stats=track_running_stats)

    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, conv_dim, kernel_size=7, stride=1, padding=3, bias=False),
        norm(conv_dim),
        nn.ReLU(),
    ]
    dim = conv_dim
    for _ in range(2):
        layers += [
            nn.Conv2d(dim, dim * 2, kernel_size=4, stride=2, padding=1, bias=False),
            norm(dim * 2),
            nn.ReLU(),
        ]
        dim *= 2
    layers += [ResidualBlock(dim, track_running_stats) for _ in range(repeat_num)]
    for _ in range(2):
        layers += [
            nn.ConvTranspose2d(dim, dim // 2, kernel_size=4, stride=2, padding=1, bias=False),
            norm(dim // 2),
            nn.ReLU(),
        ]
        dim //= 2
    return layers, dim


def tile_condition(x: Tensor, c: Tensor, c_dim: int) -> Tensor:
    """Concatenate the label maps after the image: ``(B,3,H,W), (B,c) -> (B,3+c,H,W)``."""
    if c.ndim != 2 or c.shape[0] != x.shape[0] or c.shape[1] != c_dim:
        raise ValueError(
            f"condition must have shape ({x.shape[0]}, {c_dim}), got {tuple(c.shape)}"
        )
    maps = c.to(dtype=x.dtype)[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
    return torch.cat([x, maps], dim=1)


class _StarGANLayers(nn.Module):
    """The official ``Generator`` layers in one ``nn.Sequential`` called ``main``."""

    def __init__(self, conv_dim: int = 64, c_dim: int = 5, repeat_num: int = 6) -> None:
        super().__init__()
        self.c_dim = c_dim
        layers, dim = trunk_layers(3 + c_dim, conv_dim, repeat_num, track_running_stats=True)
        layers += [nn.Conv2d(dim, 3, kernel_size=7, stride=1, padding=3, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)


class StarGANGenerator(_StarGANLayers):
    """Official StarGAN generator (yunjey/stargan ``model.Generator``), same state_dict keys.

    ``forward(x, c)``: ``x`` is ``(B, 3, H, W)`` in ``[-1, 1]`` with ``H, W`` divisible
    by 4; ``c`` is ``(B, c_dim)`` (0/1 labels). Returns ``(B, 3, H, W)`` in ``(-1, 1)``.
    Put it in train mode to reproduce the official test script.
    """

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        return self.main(tile_condition(x, c, self.c_dim))


class StarGANGeneratorDD(_StarGANLayers):
    """StarGAN as ported in natanielruiz/disrupting-deepfakes: same weights, extra return.

    ``forward(x, c)`` -> ``(out, feature_maps)``: ``out`` as :class:`StarGANGenerator`;
    ``feature_maps`` lists the output of every module of ``main`` in order
    (``3 + 6 + repeat_num + 6 + 2`` entries), ``feature_maps[-1] is out``. The port
    follows each InstanceNorm with ``ReLU(inplace=True)``, so its InstanceNorm entry *is*
    the post-ReLU tensor; this class stores the same object at both positions.
    """

    def forward(self, x: Tensor, c: Tensor) -> tuple[Tensor, list[Tensor]]:
        h = tile_condition(x, c, self.c_dim)
        feature_maps: list[Tensor] = []
        previous: nn.Module | None = None
        for layer in self.main:
            h = layer(h)
            if isinstance(layer, nn.ReLU) and isinstance(previous, nn.InstanceNorm2d):
                feature_maps[-1] = h  # the in-place ReLU overwrote the IN output
            feature_maps.append(h)
            previous = layer
        return h, feature_maps


# ------------------------------------------------------------------- checkpoint remapping

_WRAPPER_KEYS = ("state_dict", "G", "generator", "model")


def unwrap_and_strip(state_dict: Mapping[str, object]) -> dict[str, object]:
    """Unwrap ``{'state_dict'|'G'|'generator'|'model': sd}`` and drop a ``module.`` prefix."""
    sd: Mapping[str, object] = state_dict
    if not any(isinstance(v, Tensor) for v in sd.values()):
        inner = [sd[k] for k in _WRAPPER_KEYS if isinstance(sd.get(k), Mapping)]
        if len(inner) == 1:
            sd = cast("Mapping[str, object]", inner[0])
    return strip_module_prefix(sd)


def remap_state_dict(state_dict: Mapping[str, object]) -> dict[str, object]:
    """Official (or disrupting-deepfakes) StarGAN checkpoint -> this module's keys.

    Accepts plain state dicts (the released format), ``module.`` prefixes, a single
    wrapper dict, and files without ``num_batches_tracked``. Key names are unchanged.
    """
    return fill_num_batches_tracked(unwrap_and_strip(state_dict))


# ------------------------------------------------------------------------ shared helpers


def celeba_conditions() -> tuple[Condition, ...]:
    """The 5 CelebA labels; condition ``k`` is the one-hot vector of attribute ``k``.

    The official test script instead sets the hair colour one-hot and *flips* Male and
    Young relative to the source image's labels, which needs labels of the input. A
    one-hot per attribute is a fixed, input-independent choice that still asks for each
    attribute; attack several conditions to cover the official edits.
    """
    return one_hot_conditions(CELEBA_ATTRIBUTES)


def rafd_conditions() -> tuple[Condition, ...]:
    """The 8 RaFD expressions, one-hot, in ``RAFD_EXPRESSIONS`` order."""
    return one_hot_conditions(RAFD_EXPRESSIONS)


def both_conditions() -> tuple[Condition, ...]:
    """The joint CelebA+RaFD layout ``[celeba(5), rafd(8), mask(2)]`` (15 values).

    CelebA labels carry mask ``[1, 0]`` with the RaFD part zero; RaFD labels carry
    ``[0, 1]`` with the CelebA part zero (``solver.test_multi``).
    """
    n_celeba, n_rafd = len(CELEBA_ATTRIBUTES), len(RAFD_EXPRESSIONS)
    total = n_celeba + n_rafd
    return one_hot_conditions(
        CELEBA_ATTRIBUTES, total=total, suffix=(1.0, 0.0)
    ) + one_hot_conditions(RAFD_EXPRESSIONS, offset=n_celeba, total=total, suffix=(0.0, 1.0))


def stargan_call(generator: nn.Module, x: Tensor, condition: Tensor | None) -> Tensor:
    """Call adapter: ``(B,3,H,W)`` in ``[-1,1]`` and ``(B,c)`` -> ``(B,3,H,W)`` in ``(-1,1)``.

    Takes the image of the disrupting-deepfakes port's ``(out, feature_maps)``.
    """
    if condition is None:
        raise ValueError("StarGAN is conditional: pass one of target.conditions[k].vector")
    out = generator(x, condition)
    if isinstance(out, tuple):
        out = out[0]
    return cast(Tensor, out)


# ---------------------------------------------------------------------- factories


def stargan_target(
    weights: Path | None,
    *,
    name: str,
    conv_dim: int = 64,
    c_dim: int = 5,
    repeat_num: int = 6,
    input_size: tuple[int, int] = (128, 128),
    conditions: Sequence[Condition] | None = None,
    port: Port = "official",
    mode: Mode = "train",
    seed: int = 0,
) -> GeneratorTarget:
    """Build a StarGAN :class:`GeneratorTarget` (inputs ``[0,1]``, outputs ``[0,1]``).

    ``weights`` is loaded through :func:`remap_state_dict` and the strict loader; with
    ``None`` the network gets :func:`targets._common.seeded_init_` weights (tiny test models only).
    ``port`` is ``"official"`` (:class:`StarGANGenerator`) or ``"dd"``
    (:class:`StarGANGeneratorDD`). ``conditions`` default to one-hot vectors of size
    ``c_dim`` named ``label<k>``.
    """
    if port not in ("official", "dd"):
        raise ValueError(f"port must be 'official' or 'dd', got {port!r}")
    cls = StarGANGenerator if port == "official" else StarGANGeneratorDD
    net: nn.Module = cls(conv_dim=conv_dim, c_dim=c_dim, repeat_num=repeat_num)
    if weights is None:
        seeded_init_(net, seed)
    else:
        load_checkpoint_into(net, weights, remap_state_dict)
    if conditions is None:
        conditions = one_hot_conditions([f"label{k}" for k in range(c_dim)])
    for cond in conditions:
        if cond.vector is None or cond.vector.shape != (c_dim,):
            raise ValueError(f"{name}: condition {cond.name!r} is not a ({c_dim},) vector")
    return GeneratorTarget(
        name,
        net,
        value_range=(-1.0, 1.0),
        input_size=input_size,
        conditions=conditions,
        call=stargan_call,
        mode=mode,
    )


_PROVENANCE_CELEBA = (
    "yunjey/stargan@94dd002 README: `bash download.sh pretrained-celeba-{size}x{size}` -> "
    "celeba-{size}x{size}-5attrs.zip -> stargan_celeba_{size}/models/200000-G.ckpt, a plain "
    "state_dict of model.Generator(64, 5, 6). Labels: Black_Hair, Blond_Hair, Brown_Hair, "
    "Male, Young. Test preprocessing: CenterCrop(178), Resize({size}), Normalize(0.5, 0.5)."
)
_LICENCE_CELEBA = (
    "code MIT (yunjey/stargan); weights released with the code without a separate licence, "
    "trained on CelebA (non-commercial research use only)"
)

STARGAN_CELEBA_128 = WeightsSpec(
    file="200000-G.ckpt",
    sha256=None,
    input_size=(128, 128),
    value_range=(-1.0, 1.0),
    licence=_LICENCE_CELEBA,
    provenance=_PROVENANCE_CELEBA.format(size=128),
    extra={"repo": STARGAN_REPO, "commit": STARGAN_COMMIT, "archive": "celeba-128x128-5attrs.zip"},
)

STARGAN_CELEBA_256_DD = WeightsSpec(
    file="200000-G.ckpt",
    sha256=None,
    input_size=(256, 256),
    value_range=(-1.0, 1.0),
    licence=_LICENCE_CELEBA,
    provenance=_PROVENANCE_CELEBA.format(size=256)
    + " Used unchanged by natanielruiz/disrupting-deepfakes@c5b4373 (README test command: "
    "--image_size 256 --c_dim 5 --test_iters 200000).",
    extra={"repo": DD_REPO, "commit": DD_COMMIT, "archive": "celeba-256x256-5attrs.zip"},
)

STARGAN_RAFD_128 = WeightsSpec(
    file="200000-G.ckpt",
    sha256=None,
    input_size=(128, 128),
    value_range=(-1.0, 1.0),
    licence="code MIT (yunjey/stargan); no weights released: your own training on RaFD, "
    "whose licence restricts use to research by request",
    provenance="Not released by the authors. Train with yunjey/stargan@94dd002: main.py "
    "--dataset RaFD --image_size 128 --c_dim 8 (rafd_crop_size 256); model.Generator(64, 8, 6). "
    "Labels: the expression folders in sorted order (angry ... surprised).",
    extra={"repo": STARGAN_REPO, "commit": STARGAN_COMMIT},
)

STARGAN_BOTH_256 = WeightsSpec(
    file="200000-G.ckpt",
    sha256=None,
    input_size=(256, 256),
    value_range=(-1.0, 1.0),
    licence="code MIT (yunjey/stargan); no weights released: your own training on CelebA "
    "and RaFD (both research-only)",
    provenance="Not released by the authors. Train with yunjey/stargan@94dd002: main.py "
    "--dataset Both --image_size 256 --c_dim 5 --c2_dim 8; model.Generator(64, 15, 6). "
    "Label vector [celeba(5), rafd(8), mask(2)].",
    extra={"repo": STARGAN_REPO, "commit": STARGAN_COMMIT},
)


@register_target(
    "stargan.celeba",
    description="StarGAN (yunjey, official) CelebA 128x128, 5 attributes; train-mode inference",
    weights=STARGAN_CELEBA_128,
    needs_weights=True,
)
def stargan_celeba(weights: Path | None) -> GeneratorTarget:
    """Official CelebA model; conditions = one-hot Black_Hair ... Young."""
    name = "stargan.celeba"
    return stargan_target(
        require_weights(name, weights), name=name, c_dim=5, input_size=(128, 128),
        conditions=celeba_conditions(),
    )


@register_target(
    "stargan.rafd",
    description="StarGAN (yunjey) RaFD 128x128, 8 expressions (user-trained weights)",
    weights=STARGAN_RAFD_128,
    needs_weights=True,
)
def stargan_rafd(weights: Path | None) -> GeneratorTarget:
    """RaFD model; conditions = one-hot expressions in sorted folder order."""
    name = "stargan.rafd"
    return stargan_target(
        require_weights(name, weights), name=name, c_dim=8, input_size=(128, 128),
        conditions=rafd_conditions(),
    )


@register_target(
    "stargan.both",
    description="StarGAN (yunjey) joint CelebA+RaFD 256x256, 15-dim labels with mask",
    weights=STARGAN_BOTH_256,
    needs_weights=True,
)
def stargan_both(weights: Path | None) -> GeneratorTarget:
    """Joint model; 5 CelebA conditions (mask [1,0]) then 8 RaFD ones (mask [0,1])."""
    name = "stargan.both"
    return stargan_target(
        require_weights(name, weights), name=name, c_dim=15, input_size=(256, 256),
        conditions=both_conditions(),
    )


@register_target(
    "stargan.celeba.dd",
    description="StarGAN CelebA 256x256 as run by disrupting-deepfakes (Ruiz et al.)",
    weights=STARGAN_CELEBA_256_DD,
    needs_weights=True,
)
def stargan_celeba_dd(weights: Path | None) -> GeneratorTarget:
    """The disrupting-deepfakes port (returns feature maps too) at its paper's 256x256."""
    name = "stargan.celeba.dd"
    return stargan_target(
        require_weights(name, weights), name=name, c_dim=5, input_size=(256, 256),
        conditions=celeba_conditions(), port="dd",
    )


@register_target(
    "stargan.tiny",
    description="Tiny seeded random StarGAN (conv_dim 8, 1 block, 32x32) for fast tests",
)
def stargan_tiny(weights: Path | None) -> GeneratorTarget:
    """Seeded random weights (seed 0) unless ``weights`` is given; 5 CelebA conditions."""
    return stargan_target(
        weights, name="stargan.tiny", conv_dim=8, c_dim=5, repeat_num=1, input_size=(32, 32),
        conditions=celeba_conditions(), seed=0,
    )

