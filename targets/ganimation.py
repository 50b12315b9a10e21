"""GANimation generators: the official one and the disrupting-deepfakes port.

Paper: A. Pumarola, A. Agudo, A. M. Martinez, A. Sanfeliu, F. Moreno-Noguer, "GANimation:
Anatomically-aware Facial Animation from a Single Image", ECCV 2018 (arXiv:1807.09251).

Official code: https://github.com/albertpumarola/GANimation at commit
40da9ae1a88e6a3c38cd6548be08a61cbd6695ba (``networks/generator_wasserstein_gan.py``,
test behaviour from ``test.py`` / ``models/ganimation.py``). Code licence: not confirmed
here (the README asks that the code not be used "for immoral purposes"); check the
repository before redistributing. Weights: **none released** (``models/models.py``
asserts "We are not providing one"); this target loads checkpoints users train
(``checkpoints/<name>/net_epoch_<N>_id_G.pth``) or third-party ones of the same class.

The disrupting-deepfakes port (N. Ruiz et al., "Disrupting Deepfakes", arXiv:2003.01279;
https://github.com/natanielruiz/disrupting-deepfakes at commit
c5b4373a54693139ae4c408b1fcca2de745355e0, ``ganimation/model.py``, itself derived from
vipermu/ganimation) is a StarGAN-style re-implementation: heads ``im_reg`` / ``im_att``,
InstanceNorm with running statistics, ``forward`` returning ``(attention, color)``, and
``debug1..4`` aliases of the trunk that duplicate checkpoint keys. Its pretrained weights
are on Dropbox (README); no licence file for that repository could be checked here.

Facts reproduced (from the official code and ``shared/fixtures/ganimation*/notes.md``):
the trunk is StarGAN's generator without its last conv and tanh (see
:func:`targets.stargan.trunk_layers`); the AU vector ``(B, 17)`` is tiled and
concatenated after the RGB channels; the colour head is Conv7x7 -> tanh, the attention
head Conv7x7 -> sigmoid (key ``attetion_reg``, sic); the final image is
``A * x + (1 - A) * C`` (``A = 1`` keeps the input pixel). The official test runs
``G.eval()``, but its InstanceNorm keeps no statistics so train and eval agree; the
port never calls ``eval()`` and its InstanceNorm does keep statistics, so it runs in
train mode. Conditions are the 17 OpenFace AU intensities divided by 5 (range [0, 1]).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from targets._common import (
    drop_running_stats,
    fill_num_batches_tracked,
    load_checkpoint_into,
    one_hot_conditions,
    require_weights,
    seeded_init_,
)
from targets.base import Condition, GeneratorTarget, Mode, WeightsSpec
from targets.checkpoints import CheckpointError
from targets.registry import register_target
from targets.stargan import Port, tile_condition, trunk_layers, unwrap_and_strip

GANIMATION_REPO = "albertpumarola/GANimation"
GANIMATION_COMMIT = "40da9ae1a88e6a3c38cd6548be08a61cbd6695ba"
DD_REPO = "natanielruiz/disrupting-deepfakes"
DD_COMMIT = "c5b4373a54693139ae4c408b1fcca2de745355e0"

#: The 17 OpenFace ``AU_r`` intensity columns, in the order GANimation feeds them.
ACTION_UNITS: tuple[str, ...] = (
    "AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU12",
    "AU14", "AU15", "AU17", "AU20", "AU23", "AU25", "AU26", "AU45",
)  # fmt: skip


# --------------------------------------------------------------------------- network


class GANimationGenerator(nn.Module):
    """Official GANimation generator (albertpumarola ``Generator``), same state_dict keys.

    ``forward(x, c)``: ``x`` is ``(B, 3, H, W)`` in ``[-1, 1]`` (``H, W`` divisible by 4),
    ``c`` is ``(B, c_dim)`` AU intensities / 5 in ``[0, 1]``. Returns ``(color, attention)``:
    ``(B, 3, H, W)`` in ``(-1, 1)`` and ``(B, 1, H, W)`` in ``(0, 1)``. Compose with
    :func:`compose`. InstanceNorm keeps no running statistics: train == eval.
    """

    def __init__(self, conv_dim: int = 64, c_dim: int = 17, repeat_num: int = 6) -> None:
        super().__init__()
        self.c_dim = c_dim
        layers, dim = trunk_layers(3 + c_dim, conv_dim, repeat_num, track_running_stats=False)
        self.main = nn.Sequential(*layers)
        self.img_reg = nn.Sequential(
            nn.Conv2d(dim, 3, kernel_size=7, stride=1, padding=3, bias=False), nn.Tanh()
        )
        # "attetion" (sic) is the official key name.
        self.attetion_reg = nn.Sequential(
            nn.Conv2d(dim, 1, kernel_size=7, stride=1, padding=3, bias=False), nn.Sigmoid()
        )

    def forward(self, x: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        features = self.main(tile_condition(x, c, self.c_dim))
        return self.img_reg(features), self.attetion_reg(features)


class GANimationGeneratorDD(nn.Module):
    """GANimation as ported in natanielruiz/disrupting-deepfakes (``ganimation/model.py``).

    Same trunk with ``InstanceNorm2d(affine=True, track_running_stats=True)``, heads
    ``im_reg`` (colour, tanh) and ``im_att`` (attention, sigmoid). ``forward(x, c)`` with
    ``x`` ``(B,3,H,W)`` in ``[-1,1]``, ``c`` ``(B,c_dim)`` returns **(attention, color)**,
    attention first. The port's ``debug1..4`` aliases hold no weights of their own and are
    not built here; :func:`remap_state_dict_dd` checks and drops them.
    """

    def __init__(self, conv_dim: int = 64, c_dim: int = 17, repeat_num: int = 6) -> None:
        super().__init__()
        self.c_dim = c_dim
        layers, dim = trunk_layers(3 + c_dim, conv_dim, repeat_num, track_running_stats=True)
        self.main = nn.Sequential(*layers)
        self.im_reg = nn.Sequential(
            nn.Conv2d(dim, 3, kernel_size=7, stride=1, padding=3, bias=False), nn.Tanh()
        )
        self.im_att = nn.Sequential(
            nn.Conv2d(dim, 1, kernel_size=7, stride=1, padding=3, bias=False), nn.Sigmoid()
        )

    def forward(self, x: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        features = self.main(tile_condition(x, c, self.c_dim))
        return self.im_att(features), self.im_reg(features)


def compose(x: Tensor, color: Tensor, attention: Tensor) -> Tensor:
    """GANimation's output image ``A * x + (1 - A) * C``; all in ``[-1, 1]`` except ``A``.

    Shapes: ``x``, ``color`` ``(B, 3, H, W)``; ``attention`` ``(B, 1, H, W)`` in ``[0, 1]``.
    """
    return attention * x + (1 - attention) * color


def ganimation_call(generator: nn.Module, x: Tensor, condition: Tensor | None) -> Tensor:
    """Call adapter for :class:`GANimationGenerator`: composed image in ``[-1, 1]``."""
    if condition is None:
        raise ValueError("GANimation is conditional: pass one of target.conditions[k].vector")
    color, attention = generator(x, condition)
    return compose(x, color, attention)


def ganimation_dd_call(generator: nn.Module, x: Tensor, condition: Tensor | None) -> Tensor:
    """Call adapter for :class:`GANimationGeneratorDD` (``(attention, color)`` order)."""
    if condition is None:
        raise ValueError("GANimation is conditional: pass one of target.conditions[k].vector")
    attention, color = generator(x, condition)
    return compose(x, color, attention)


# ------------------------------------------------------------------- checkpoint remapping

_DEBUG_ALIAS = re.compile(r"^debug[0-9]+\.")


def remap_state_dict(state_dict: Mapping[str, object]) -> dict[str, object]:
    """Official GANimation checkpoint -> :class:`GANimationGenerator` keys.

    Drops a ``module.`` prefix (multi-GPU training) and unwraps a single wrapper dict.
    Drops the ``running_mean`` / ``running_var`` entries PyTorch 0.3 wrote for every
    InstanceNorm, and any ``num_batches_tracked`` (the network has no buffers; they
    were never used at inference).
    """
    return drop_running_stats(unwrap_and_strip(state_dict))


def remap_state_dict_dd(state_dict: Mapping[str, object]) -> dict[str, object]:
    """disrupting-deepfakes GANimation checkpoint -> :class:`GANimationGeneratorDD` keys.

    The port's checkpoints list every trunk tensor again under ``debug1..4`` (aliases of
    ``main``). Each ``debugN.<rest>`` entry must equal ``main.<rest>``, otherwise a
    :class:`CheckpointError` names it; then the aliases are dropped. Also handles
    ``module.`` prefixes, a wrapper dict and missing ``num_batches_tracked``.
    """
    sd = unwrap_and_strip(state_dict)
    kept = {k: v for k, v in sd.items() if not _DEBUG_ALIAS.match(k)}
    for key, value in sd.items():
        if not _DEBUG_ALIAS.match(key):
            continue
        twin = "main." + key.split(".", 1)[1]
        original = kept.get(twin)
        if (
            isinstance(value, Tensor)
            and isinstance(original, Tensor)
            and (value.shape != original.shape or not torch.equal(value, original))
        ):
            raise CheckpointError(f"aliased entry {key} differs from {twin}")
    return fill_num_batches_tracked(kept)


# ---------------------------------------------------------------------- factories


def au_conditions(c_dim: int = 17) -> tuple[Condition, ...]:
    """Condition ``k`` = AU ``k`` at normalised intensity 1.0 (raw 5), all others 0.

    Names come from :data:`ACTION_UNITS` when ``c_dim == 17``, else ``AU<k>``.
    """
    names = ACTION_UNITS if c_dim == len(ACTION_UNITS) else [f"AU{k}" for k in range(c_dim)]
    return one_hot_conditions(names)


def ganimation_target(
    weights: Path | None,
    *,
    name: str,
    conv_dim: int = 64,
    c_dim: int = 17,
    repeat_num: int = 6,
    input_size: tuple[int, int] = (128, 128),
    conditions: Sequence[Condition] | None = None,
    port: Port = "official",
    mode: Mode | None = None,
    seed: int = 0,
) -> GeneratorTarget:
    """Build a GANimation :class:`GeneratorTarget` (inputs ``[0,1]``, outputs ``[0,1]``).

    ``port`` ``"official"`` (:class:`GANimationGenerator`, eval mode by default) or
    ``"dd"`` (:class:`GANimationGeneratorDD`, train mode by default): each port's
    official test mode. ``weights`` go through the port's remap and the strict loader;
    ``None`` gives :func:`targets._common.seeded_init_` weights (tiny test models only).
    The target returns the composed image ``A * x + (1 - A) * C``.
    """
    net: nn.Module
    default_mode: Mode
    if port == "official":
        net = GANimationGenerator(conv_dim=conv_dim, c_dim=c_dim, repeat_num=repeat_num)
        remap, call, default_mode = remap_state_dict, ganimation_call, "eval"
    elif port == "dd":
        net = GANimationGeneratorDD(conv_dim=conv_dim, c_dim=c_dim, repeat_num=repeat_num)
        remap, call, default_mode = remap_state_dict_dd, ganimation_dd_call, "train"
    else:
        raise ValueError(f"port must be 'official' or 'dd', got {port!r}")
    if weights is None:
        seeded_init_(net, seed)
    else:
        load_checkpoint_into(net, weights, remap)
    if conditions is None:
        conditions = au_conditions(c_dim)
    for cond in conditions:
        if cond.vector is None or cond.vector.shape != (c_dim,):
            raise ValueError(f"{name}: condition {cond.name!r} is not a ({c_dim},) vector")
    return GeneratorTarget(
        name,
        net,
        value_range=(-1.0, 1.0),
        input_size=input_size,
        conditions=conditions,
        call=call,
        mode=mode or default_mode,
    )


GANIMATION_128 = WeightsSpec(
    file="net_epoch_<N>_id_G.pth",
    sha256=None,
    input_size=(128, 128),
    value_range=(-1.0, 1.0),
    licence="code: see albertpumarola/GANimation (not confirmed here); weights: none "
    "released by the authors, yours or a third party's",
    provenance="albertpumarola/GANimation@40da9ae saves checkpoints/<name>/"
    "net_epoch_<N>_id_G.pth: a plain state_dict of Generator(64, 17, 6) ('module.' when "
    "trained on several GPUs; PyTorch 0.3 files add unused InstanceNorm running stats). "
    "Input: 128x128 face crops, Normalize(0.5, 0.5); condition: 17 OpenFace AU_r / 5.",
    extra={"repo": GANIMATION_REPO, "commit": GANIMATION_COMMIT},
)

GANIMATION_DD_128 = WeightsSpec(
    file="<iteration>-<epoch>-G.ckpt",
    sha256=None,
    input_size=(128, 128),
    value_range=(-1.0, 1.0),
    licence="no licence found for natanielruiz/disrupting-deepfakes or its weights "
    "(not confirmed here); trained on CelebA crops (research use only)",
    provenance="natanielruiz/disrupting-deepfakes@c5b4373 README: pretrained models on "
    "Dropbox, placed in ganimation/models; solver.animation() loads the first models/*G.ckpt "
    "in natural order. Plain state_dict of ganimation/model.py Generator(64, 17, 6) with "
    "debug1..4 alias keys (320 keys). Condition: 17 AU values / 5.",
    extra={"repo": DD_REPO, "commit": DD_COMMIT},
)


@register_target(
    "ganimation",
    description="GANimation (albertpumarola, official) 128x128, 17 AUs (user weights)",
    weights=GANIMATION_128,
    needs_weights=True,
)
def ganimation_official(weights: Path | None) -> GeneratorTarget:
    """Official GANimation; conditions = each of the 17 AUs alone at intensity 1."""
    name = "ganimation"
    return ganimation_target(
        require_weights(name, weights), name=name, input_size=(128, 128),
        conditions=au_conditions(17),
    )


@register_target(
    "ganimation.dd",
    description="GANimation as ported by disrupting-deepfakes (Ruiz et al.), train mode",
    weights=GANIMATION_DD_128,
    needs_weights=True,
)
def ganimation_dd(weights: Path | None) -> GeneratorTarget:
    """disrupting-deepfakes GANimation port; conditions = each AU alone at intensity 1."""
    name = "ganimation.dd"
    return ganimation_target(
        require_weights(name, weights), name=name, input_size=(128, 128),
        conditions=au_conditions(17), port="dd",
    )


@register_target(
    "ganimation.tiny",
    description="Tiny seeded random GANimation (conv_dim 8, 1 block, 32x32) for fast tests",
)
def ganimation_tiny(weights: Path | None) -> GeneratorTarget:
    """Seeded random weights (seed 0) unless ``weights`` is given; 17 AU conditions."""
    return ganimation_target(
        weights, name="ganimation.tiny", conv_dim=8, c_dim=17, repeat_num=1,
        input_size=(32, 32), conditions=au_conditions(17), seed=0,
    )
