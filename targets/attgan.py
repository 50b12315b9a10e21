"""AttGAN: facial attribute editing with an encoder-decoder generator.

Paper: Zhenliang He, Wangmeng Zuo, Meina Kan, Shiguang Shan, Xilin Chen, "AttGAN: Facial
Attribute Editing by Only Changing What You Want", IEEE Transactions on Image Processing
28(11), 2019 (arXiv:1711.10678).

Original code: the PyTorch port elvisyjlin/AttGAN-PyTorch at commit
be2d6c68049eeae4082365738b807aa49d214e77 (``attgan.py``, ``nn.py``, ``test.py``), which
released the checkpoints this file loads. The authors' TensorFlow code is LynnHo/AttGAN-Tensorflow.
Code licence: MIT (header of ``attgan.py``). This file is an independent reimplementation
of the generator's forward pass, checked against ``shared/fixtures/attgan/golden.pt``.

Weights licence: the released checkpoints (Google Drive link in the repository README) carry
no licence of their own; they were trained on CelebA, whose terms allow non-commercial
research use only.

Architecture (``Generator`` in ``attgan.py``): five stride-2 4x4 convolutions, each followed
by BatchNorm and LeakyReLU with PyTorch's default slope 0.01 (not TensorFlow's 0.2), keep
every encoder output ``z_1..z_5``. The decoder starts from ``cat([z_5, tile(a)])`` and runs
five stride-2 4x4 transposed convolutions (BatchNorm + ReLU, last one with bias and Tanh).
After decoder layer ``i < shortcut_layers`` the matching encoder feature is concatenated,
after layer ``i < inject_layers`` the tiled attributes again; the order is always
``[features, shortcut, attributes]``. Convolutions have a bias only when unnormalised.

Official test-time mode: ``test.py`` calls ``attgan.eval()``, so BatchNorm uses its running
statistics and every image in a batch is processed independently.

Attribute convention: the network is fed ``(att * 2 - 1) * thres_int`` with ``att`` in
``{0, 1}`` and ``thres_int = 0.5``, i.e. ``+-0.5``; :func:`attgan_condition` does this.
The registered targets take the 0/1 vectors as conditions and scale inside.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from targets._common import fill_num_batches_tracked, seeded_init_, strip_module_prefix
from targets.base import Condition, GeneratorTarget, Target, WeightsSpec
from targets.checkpoints import CheckpointError, load_state_dict_strict, read_checkpoint
from targets.registry import register_target

# CelebA attributes of the released models, in the order the network expects them.
CELEBA_ATTRS: tuple[str, ...] = (
    "Bald",
    "Bangs",
    "Black_Hair",
    "Blond_Hair",
    "Brown_Hair",
    "Bushy_Eyebrows",
    "Eyeglasses",
    "Male",
    "Mouth_Slightly_Open",
    "Mustache",
    "No_Beard",
    "Pale_Skin",
    "Young",
)
THRES_INT = 0.5  # the official training / test scale of the attribute vector
MAX_DIM = 1024  # channel cap of the official generator


def _norm(kind: str, channels: int) -> list[nn.Module]:
    if kind == "none":
        return []
    if kind == "batchnorm":
        return [nn.BatchNorm2d(channels)]
    if kind == "instancenorm":
        return [nn.InstanceNorm2d(channels, affine=True)]
    raise ValueError(
        f"unsupported normalization {kind!r}; use 'batchnorm', 'instancenorm' or 'none'"
    )


def _activation(kind: str) -> list[nn.Module]:
    table: dict[str, type[nn.Module]] = {
        "relu": nn.ReLU,
        "lrelu": nn.LeakyReLU,  # default negative slope 0.01, as in the official code
        "sigmoid": nn.Sigmoid,
        "tanh": nn.Tanh,
    }
    if kind == "none":
        return []
    if kind not in table:
        raise ValueError(f"unsupported activation {kind!r}; use one of {sorted(table)} or 'none'")
    return [table[kind]()]


class ConvBlock(nn.Module):
    """4x4 stride-2 (transposed) convolution, optional norm, optional activation.

    Holds its layers in ``self.layers`` so keys read ``layers.0.weight``,
    ``layers.1.running_mean``, ... as in the official ``Conv2dBlock`` /
    ``ConvTranspose2dBlock``. The convolution has a bias only when ``norm == 'none'``.
    """

    def __init__(self, n_in: int, n_out: int, *, transposed: bool, norm: str, acti: str) -> None:
        super().__init__()
        conv_cls = nn.ConvTranspose2d if transposed else nn.Conv2d
        conv = conv_cls(n_in, n_out, 4, stride=2, padding=1, bias=norm == "none")
        self.layers = nn.Sequential(conv, *_norm(norm, n_out), *_activation(acti))

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class AttGANGenerator(nn.Module):
    """The AttGAN generator, key-compatible with the official ``attgan.Generator``.

    Arguments carry the official constructor names. ``inject_layers`` defaults to 1 here
    (the recommended released 128 model, ``128_shortcut1_inject1_none``); the official class
    defaults to 0.

    Shape:
        - ``x``: ``(B, 3, img_size, img_size)`` in ``[-1, 1]``; the size must equal
          ``img_size`` because the attribute tile size is fixed at ``img_size / 2**enc_layers``.
        - ``a``: ``(B, n_attrs)`` in AttGAN's scaled convention (see :func:`attgan_condition`).
        - output of ``forward(x, a)``: ``(B, 3, img_size, img_size)`` in ``(-1, 1)``.
    """

    def __init__(
        self,
        enc_dim: int = 64,
        enc_layers: int = 5,
        enc_norm_fn: str = "batchnorm",
        enc_acti_fn: str = "lrelu",
        dec_dim: int = 64,
        dec_layers: int = 5,
        dec_norm_fn: str = "batchnorm",
        dec_acti_fn: str = "relu",
        n_attrs: int = 13,
        shortcut_layers: int = 1,
        inject_layers: int = 1,
        img_size: int = 128,
    ) -> None:
        super().__init__()
        if img_size % 2**enc_layers:
            raise ValueError(f"img_size {img_size} must be divisible by 2**enc_layers")
        self.shortcut_layers = min(shortcut_layers, dec_layers - 1)
        self.inject_layers = min(inject_layers, dec_layers - 1)
        self.f_size = img_size // 2**enc_layers
        self.img_size = img_size
        self.n_attrs = n_attrs

        enc: list[nn.Module] = []
        n_in = 3
        for i in range(enc_layers):
            n_out = min(enc_dim * 2**i, MAX_DIM)
            enc.append(ConvBlock(n_in, n_out, transposed=False, norm=enc_norm_fn, acti=enc_acti_fn))
            n_in = n_out
        self.enc_layers = nn.ModuleList(enc)

        dec: list[nn.Module] = []
        n_in = n_in + n_attrs
        for i in range(dec_layers):
            if i < dec_layers - 1:
                n_out = min(dec_dim * 2 ** (dec_layers - i - 1), MAX_DIM)
                dec.append(
                    ConvBlock(n_in, n_out, transposed=True, norm=dec_norm_fn, acti=dec_acti_fn)
                )
                n_in = n_out
                if self.shortcut_layers > i:
                    n_in += n_in // 2  # the official generator assumes half-width skips
                if self.inject_layers > i:
                    n_in += n_attrs
            else:
                dec.append(ConvBlock(n_in, 3, transposed=True, norm="none", acti="tanh"))
        self.dec_layers = nn.ModuleList(dec)

    def _tile(self, a: Tensor, size: int) -> Tensor:
        return a.reshape(a.shape[0], -1, 1, 1).expand(-1, -1, size, size)

    def encode(self, x: Tensor) -> list[Tensor]:
        """``(B, 3, S, S)`` in ``[-1, 1]`` -> every encoder output ``z_1 .. z_L`` (finest first)."""
        zs = []
        z = x
        for layer in self.enc_layers:
            z = layer(z)
            zs.append(z)
        return zs

    def decode(self, zs: Sequence[Tensor], a: Tensor) -> Tensor:
        """Encoder features and a scaled attribute vector ``(B, n_attrs)`` -> ``(B, 3, S, S)``
        image in ``(-1, 1)``."""
        z = torch.cat([zs[-1], self._tile(a, self.f_size)], dim=1)
        n = len(self.dec_layers)
        for i, layer in enumerate(self.dec_layers):
            z = layer(z)
            if self.shortcut_layers > i:
                z = torch.cat([z, zs[n - 2 - i]], dim=1)
            if self.inject_layers > i:
                z = torch.cat([z, self._tile(a, self.f_size * 2 ** (i + 1))], dim=1)
        return z

    def forward(
        self, x: Tensor | Sequence[Tensor], a: Tensor | None = None, mode: str = "enc-dec"
    ) -> Tensor | list[Tensor]:
        """Official calling convention: ``mode`` is ``'enc-dec'`` (image, attributes -> image),
        ``'enc'`` (image -> features) or ``'dec'`` (features, attributes -> image)."""
        if mode == "enc":
            if not isinstance(x, Tensor):
                raise TypeError("mode 'enc' takes an image tensor")
            return self.encode(x)
        if a is None:
            raise ValueError(f"mode {mode!r} needs the attribute vector a")
        if mode == "enc-dec":
            if not isinstance(x, Tensor):
                raise TypeError("mode 'enc-dec' takes an image tensor")
            if x.shape[-1] != self.img_size or x.shape[-2] != self.img_size:
                raise ValueError(
                    f"AttGAN built for {self.img_size}x{self.img_size} inputs, got "
                    f"{tuple(x.shape[-2:])}"
                )
            return self.decode(self.encode(x), a)
        if mode == "dec":
            if isinstance(x, Tensor):
                raise TypeError("mode 'dec' takes the list of encoder features")
            return self.decode(x, a)
        raise ValueError(f"unknown mode {mode!r}; use 'enc-dec', 'enc' or 'dec'")


def attgan_condition(attrs01: Tensor, thres_int: float = THRES_INT) -> Tensor:
    """0/1 attribute vector(s) ``(..., n_attrs)`` -> AttGAN's input ``(att * 2 - 1) * thres_int``.

    With the official ``thres_int = 0.5``, off is ``-0.5`` and on is ``+0.5``. Values outside
    ``[0, 1]`` extrapolate the intensity: the official ``test.py`` feeds the edited attribute at
    ``+-test_int`` (``+-1.0``), which is ``1.5`` / ``-0.5`` on the 0/1 scale.
    """
    return (attrs01 * 2 - 1) * thres_int


def attgan_call(generator: nn.Module, x: Tensor, condition: Tensor | None) -> Tensor:
    """Call adapter for :class:`~targets.base.GeneratorTarget`.

    ``x``: ``(B, 3, S, S)`` in ``[-1, 1]``; ``condition``: ``(B, n_attrs)`` attribute vector on
    the 0/1 scale (1 = attribute present), scaled here with :func:`attgan_condition`.
    Returns ``(B, 3, S, S)`` in ``(-1, 1)``.
    """
    if condition is None:
        raise ValueError(
            "AttGAN is conditional: pass an attribute vector (one of target.conditions)"
        )
    return generator(x, attgan_condition(condition), mode="enc-dec")


def remap_state_dict(state_dict: Mapping[str, object]) -> dict[str, object]:
    """Official AttGAN checkpoint -> this module's keys (identical key names).

    Unwraps the ``{'G': state_dict}`` dict written by ``AttGAN.saveG`` (and the full
    ``save`` with ``'D'``, ``'optim_G'``, ``'optim_D'``: only ``'G'`` is kept), strips the
    ``module.`` prefix of ``--multi_gpu`` runs, and fills ``num_batches_tracked`` missing
    from files saved with PyTorch 0.4.0 (the version the repository targets).
    """
    inner = state_dict.get("G")
    sd: Mapping[str, object] = inner if isinstance(inner, Mapping) else state_dict
    return fill_num_batches_tracked(strip_module_prefix(sd))


def _condition_table(attrs: Sequence[str]) -> tuple[Condition, ...]:
    eye = torch.eye(len(attrs))
    return tuple(Condition(name, eye[k].clone()) for k, name in enumerate(attrs))


CELEBA_CONDITIONS = _condition_table(CELEBA_ATTRS)

WEIGHTS_CELEBA_128 = WeightsSpec(
    file="output/128_shortcut1_inject1_none/checkpoint/weights.199.pth",
    sha256=None,
    input_size=(128, 128),
    value_range=(-1.0, 1.0),
    licence="code MIT; weights: no licence stated (CelebA: non-commercial research only)",
    provenance=(
        "elvisyjlin/AttGAN-PyTorch@be2d6c68 released models (README 'Pretrained models', "
        "https://goo.gl/mQkqNo): 128_shortcut1_inject1_none, trained on CelebA; "
        "128_shortcut1_inject0_none loads too (inject_layers read from the checkpoint)"
    ),
    extra={
        "preprocessing": "CenterCrop(170), Resize(128), Normalize(0.5, 0.5)",
        "mode": "eval (test.py calls attgan.eval())",
        "checkpoint_wrapper": "{'G': state_dict}",
        "condition": "13 CelebA attributes, 0/1 scale; fed as (att*2-1)*0.5",
    },
)


def _inject_layers_of(state_dict: Mapping[str, object], n_attrs: int) -> int:
    """The released 128 models differ only in ``inject_layers`` (0 or 1), visible in the
    input width of ``dec_layers.1``: 1536 channels without injection, 1536 + n_attrs with."""
    w = state_dict.get("dec_layers.1.layers.0.weight")
    if isinstance(w, Tensor) and w.ndim == 4 and w.shape[0] == 1536:
        return 0
    return 1  # the recommended release; a mismatch is reported by the strict loader


@register_target(
    "attgan.celeba",
    description="AttGAN (elvisyjlin/AttGAN-PyTorch), 13 CelebA attributes, 128x128, eval mode",
    weights=WEIGHTS_CELEBA_128,
    needs_weights=True,
)
def attgan_celeba(weights: Path | None) -> Target:
    """The released 128x128 CelebA AttGAN. Condition ``k``: attribute ``k`` on, the rest off."""
    if weights is None:
        raise CheckpointError("attgan.celeba needs its checkpoint: pass weights=PATH")
    sd = remap_state_dict(read_checkpoint(weights))
    with torch.device("meta"):  # every tensor comes from the checkpoint: skip the random init
        net = AttGANGenerator(inject_layers=_inject_layers_of(sd, len(CELEBA_ATTRS)))
    net.to_empty(device="cpu")
    load_state_dict_strict(net, sd, weights)
    return GeneratorTarget(
        "attgan.celeba",
        net,
        value_range=(-1.0, 1.0),
        input_size=(128, 128),
        conditions=CELEBA_CONDITIONS,
        call=attgan_call,
        mode="eval",
    )


def build_tiny() -> AttGANGenerator:
    """The ``attgan.tiny`` network: full AttGAN structure, 4 base channels, 64x64, seeded."""
    with torch.device("meta"):
        net = AttGANGenerator(enc_dim=4, dec_dim=4, img_size=64)
    net.to_empty(device="cpu")
    return seeded_init_(net, seed=0)


@register_target(
    "attgan.tiny",
    description="tiny random AttGAN (4 base channels, 64x64, seed 0) for tests",
    needs_weights=False,
)
def attgan_tiny(weights: Path | None) -> Target:
    """Random weights from ``torch.Generator`` seed 0, or ``weights`` when given."""
    net = build_tiny()
    if weights is not None:
        load_state_dict_strict(net, remap_state_dict(read_checkpoint(weights)), weights)
    return GeneratorTarget(
        "attgan.tiny",
        net,
        value_range=(-1.0, 1.0),
        input_size=(64, 64),
        conditions=CELEBA_CONDITIONS,
        call=attgan_call,
        mode="eval",
    )
