"""Train the bundled compact AttGAN (13 CelebA attributes) at 64x64.

``python -m targets.training.attgan_train --pack .train/faces.npz --out runs --seconds 330``
writes ``runs/attgan/{ckpt.pt,final.pt,train.json}``. ``final.pt`` is the fp32 state
dict (BatchNorm running statistics included) of :class:`targets.attgan.AttGANGenerator`
built with ``train.json``'s ``generator.kwargs``; it loads with
``load_state_dict(strict=True)``.

Losses follow elvisyjlin/AttGAN-PyTorch (``attgan.py``, ``train.py``, MIT) in its
default ``wgan`` mode:

- D: ``-(mean D(x) - mean D(G(x, b))) + 10 GP + lambda_3 BCE(C(x), a)``, ``lambda_3 = 1``;
- G: ``-mean D(G(x, b)) + lambda_2 BCE(C(G(x, b)), b) + lambda_1 L1(G(x, a), x)``,
  ``lambda_2 = 10``, ``lambda_1 = 100``; ``G(x, a)`` decodes the *same* encoder
  features with the source attributes (self-reconstruction, not a cycle);
- BCE averaged over attributes and images (``F.binary_cross_entropy_with_logits``);
- attributes fed as ``(att * 2 - 1) * thres_int`` with ``thres_int = 0.5``; targets
  ``b`` are the batch's attributes in random order (``b_distribution = 'none'``);
- Adam(lr 2e-4, betas (0.5, 0.999)), batch 32, 5 D updates per G update, 200 epochs.

The discriminator is the official ``Discriminators``: ``n_layers`` x [Conv4x4 stride 2,
InstanceNorm(affine), LeakyReLU(0.01)], then two heads of
[Linear -> ReLU -> Linear] for the adversarial score and the attribute logits.

Our changes for a ~5 minute budget on a shared GPU, and why:

- The size follows the pack: 64x64 with 4 encoder / decoder layers (the bottleneck
  stays 4x4 as in the official model, ``img_size / 2**layers``), and from 96 px up the
  official 5 (the 96 px study run: bottleneck 3x3, 11 M parameters, 21.9 MB in
  fp16; 2.7 M and 5.5 MB at 64 px); widths
  ``enc_dim = dec_dim = 32``, shortcut 1 and inject
  1 as the released ``128_shortcut1_inject1_none`` model. D: ``dis_dim = 64`` (the
  official width), ``dis_fc_dim = 512`` (official 1024).
- batch 64 (official 32) and the official 5 D updates per G update (``n_critic = 5``).
  One iteration here is one D update plus a G update on every ``n_critic``-th; the
  official loop counts the D and G updates as separate iterations. Measured on one H200
  shared by 8 training processes, 300 s each (mean evaluator success of the official
  test edits over the 13 attributes, CelebA test split, one seed): batch 64 /
  n_critic 2: 12.0 it/s, 0.35; batch 64 / n_critic 5: 13.3 it/s, 0.37; batch 128:
  7.5 it/s, 0.33; batch 256: 4.2 it/s, 0.29.
- ``target_sampling = 'balanced'``: hair colour targets are a uniform one-hot (Bald
  cleared), see :func:`~targets.training.gan_common.sample_target_labels`.
- bf16 autocast on CUDA (the gradient penalty in fp32).

Inference mode: eval (BatchNorm running statistics), as the official ``test.py`` runs
(``attgan.eval()``); ``train.json`` says so in ``inference_mode``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn

from targets.attgan import CELEBA_ATTRS, AttGANGenerator, attgan_condition
from targets.training.cli import (
    CliArgs,
    apply_overrides,
    celeba_training_faces,
    config_dict,
    main_for,
)
from targets.training.data import FaceSet
from targets.training.gan_common import (
    ConditionalWGANTrainer,
    IndexSampler,
    WGANWeights,
    make_adam,
    select_attributes,
)

#: Channel cap of the official networks (``MAX_DIM`` in attgan.py).
MAX_DIM = 1024


@dataclass(frozen=True)
class AttGANConfig:
    """Every hyper-parameter of an AttGAN run (see the module docstring for the choices)."""

    attrs: tuple[str, ...] = CELEBA_ATTRS
    img_size: int = 64
    enc_dim: int = 32
    enc_layers: int = 4
    enc_norm: str = "batchnorm"
    enc_acti: str = "lrelu"
    dec_dim: int = 32
    dec_layers: int = 4
    dec_norm: str = "batchnorm"
    dec_acti: str = "relu"
    shortcut_layers: int = 1
    inject_layers: int = 1
    dis_dim: int = 64
    dis_layers: int = 4
    dis_fc_dim: int = 512
    batch_size: int = 64
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    n_critic: int = 5
    lambda_1: float = 100.0  # reconstruction
    lambda_2: float = 10.0  # G attribute classification
    lambda_3: float = 1.0  # D attribute classification
    lambda_gp: float = 10.0
    thres_int: float = 0.5
    target_sampling: str = "balanced"
    amp: bool = True

    @classmethod
    def smoke(cls) -> AttGANConfig:
        """Tiny widths for a CPU check of the whole pipeline."""
        return cls(enc_dim=4, dec_dim=4, dis_dim=4, dis_fc_dim=8, batch_size=4, n_critic=2,
                   amp=False)

    def at_size(self, img_size: int) -> AttGANConfig:
        """This config at ``img_size``: 64 px keeps its 4 layers; from 96 px up the
        official 5 encoder, decoder and discriminator layers (bottleneck 3x3 at 96,
        the official 4x4 at 128), as the 96 px study run was trained."""
        layers = 4 if img_size <= 64 else 5
        if img_size % 2**layers:
            raise ValueError(f"img_size {img_size} must be divisible by 2**{layers}")
        return replace(self, img_size=img_size, enc_layers=layers, dec_layers=layers,
                       dis_layers=layers)


class AttGANDiscriminator(nn.Module):
    """The official AttGAN ``Discriminators`` (adversarial and attribute heads).

    ``conv``: ``n_layers`` x [Conv4x4 stride 2 (no bias), InstanceNorm2d(affine=True),
    LeakyReLU(0.01)], channels ``min(dim * 2**i, 1024)``. ``fc_adv`` and ``fc_cls``:
    [Linear(C * f * f, fc_dim), ReLU, Linear(fc_dim, 1 | n_attrs)] with
    ``f = img_size / 2**n_layers``. (The official code hard-codes ``C = 1024``, right
    for its 64-wide 5-layer default; here ``C`` is the real last width.)

    Shape: ``(B, 3, S, S)`` -> ``((B, 1), (B, n_attrs))``.
    """

    def __init__(self, dim: int = 64, fc_dim: int = 1024, n_layers: int = 5,
                 img_size: int = 128, n_attrs: int = 13) -> None:
        super().__init__()
        if img_size % 2**n_layers:
            raise ValueError(f"img_size {img_size} must be divisible by 2**{n_layers}")
        layers: list[nn.Module] = []
        n_in = 3
        for i in range(n_layers):
            n_out = min(dim * 2**i, MAX_DIM)
            layers += [nn.Conv2d(n_in, n_out, 4, stride=2, padding=1, bias=False),
                       nn.InstanceNorm2d(n_out, affine=True), nn.LeakyReLU(0.01)]
            n_in = n_out
        self.conv = nn.Sequential(*layers)
        f = img_size // 2**n_layers
        self.fc_adv = nn.Sequential(nn.Linear(n_in * f * f, fc_dim), nn.ReLU(),
                                    nn.Linear(fc_dim, 1))
        self.fc_cls = nn.Sequential(nn.Linear(n_in * f * f, fc_dim), nn.ReLU(),
                                    nn.Linear(fc_dim, n_attrs))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.conv(x).flatten(1)
        return self.fc_adv(h), self.fc_cls(h)


class AttGANTrainer(ConditionalWGANTrainer):
    """AttGAN on a CelebA :class:`FaceSet` (uint8 images on the device, 40 attributes)."""

    name = "attgan"
    G: AttGANGenerator

    def __init__(self, cfg: AttGANConfig, faces: FaceSet, device: torch.device,
                 seed: int = 0) -> None:
        super().__init__(device, seed, cfg.amp)
        self.cfg = cfg
        self.attrs = tuple(cfg.attrs)
        self.faces = faces
        self.labels = select_attributes(faces, cfg.attrs).to(device)
        self.n_critic = cfg.n_critic
        self.target_sampling = cfg.target_sampling
        self.weights = WGANWeights(lambda_gp=cfg.lambda_gp, lambda_d_cls=cfg.lambda_3,
                                   lambda_g_cls=cfg.lambda_2, lambda_rec=cfg.lambda_1,
                                   cls_reduction="mean")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.G = AttGANGenerator(**self.generator_kwargs()).to(device).train()
            self.D = AttGANDiscriminator(cfg.dis_dim, cfg.dis_fc_dim, cfg.dis_layers,
                                         cfg.img_size, len(cfg.attrs)).to(device).train()
        self.nets = {"G": self.G, "D": self.D}
        betas = (cfg.beta1, cfg.beta2)
        self.optims = {"G": make_adam(self.G.parameters(), cfg.lr, betas, device),
                       "D": make_adam(self.D.parameters(), cfg.lr, betas, device)}
        pool = torch.arange(len(faces), device=device)
        self.samplers = {"faces": IndexSampler(pool, cfg.batch_size, self.generator)}

    def generator_kwargs(self) -> dict[str, Any]:
        c = self.cfg
        return {"enc_dim": c.enc_dim, "enc_layers": c.enc_layers, "enc_norm_fn": c.enc_norm,
                "enc_acti_fn": c.enc_acti, "dec_dim": c.dec_dim, "dec_layers": c.dec_layers,
                "dec_norm_fn": c.dec_norm, "dec_acti_fn": c.dec_acti,
                "n_attrs": len(c.attrs), "shortcut_layers": c.shortcut_layers,
                "inject_layers": c.inject_layers, "img_size": c.img_size}

    def translate(self, x: Tensor, c01: Tensor) -> tuple[Tensor, Any]:
        zs = self.G.encode(x)
        return self.G.decode(zs, attgan_condition(c01, self.cfg.thres_int)), zs

    def reconstruct(self, x: Tensor, fake: Tensor, c_org01: Tensor, aux: Any) -> Tensor:
        # Official trainG: img_recon = G(zs_a, att_a_, mode='dec'), same features as the edit.
        del x, fake
        return self.G.decode(aux, attgan_condition(c_org01, self.cfg.thres_int))

    def config(self) -> dict[str, Any]:
        return config_dict(self.cfg)

    def exports(self) -> dict[str, nn.Module]:
        return {"final.pt": self.G}

    def model_card(self) -> dict[str, Any]:
        return {
            "generator": {"module": "targets.attgan", "class": "AttGANGenerator",
                          "kwargs": self.generator_kwargs(), "file": "final.pt"},
            "inference_mode": "eval",
            "inference_mode_note": (
                "BatchNorm with its running statistics (module.eval()), as the official "
                "AttGAN test.py runs"),
            "input": {"size": [self.cfg.img_size, self.cfg.img_size], "range": [-1.0, 1.0]},
            "condition": {"attrs": list(self.cfg.attrs), "values": "0/1 per attribute",
                          "convention": f"fed as (att * 2 - 1) * {self.cfg.thres_int} "
                                        "(targets.attgan.attgan_condition)"},
        }


def build(args: CliArgs, device: torch.device) -> tuple[AttGANTrainer, dict[str, Any]]:
    """Load the CelebA generator split onto ``device`` and make the trainer.

    The image size and the depth follow the pack's images (:meth:`AttGANConfig.at_size`)
    unless ``--set img_size=...`` / ``--set enc_layers=...`` etc. say otherwise.
    """
    faces, info = celeba_training_faces(args, device)
    base = AttGANConfig.smoke() if args.smoke else AttGANConfig()
    size = int(faces.images.shape[-1])
    if size != base.img_size:  # a 64 px pack keeps the config exactly as before
        base = base.at_size(size)
    cfg = apply_overrides(base, args.overrides)
    return AttGANTrainer(cfg, faces, device, args.seed), info


def main(argv: list[str] | None = None) -> int:
    return main_for("attgan", build, argv)


if __name__ == "__main__":
    raise SystemExit(main())
