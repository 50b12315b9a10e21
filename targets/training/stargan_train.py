"""Train the bundled compact StarGAN (CelebA hair colour / gender / age), 64x64 by default.

``python -m targets.training.stargan_train --pack .train/faces.npz --out runs --seconds 330``
writes ``runs/stargan/{ckpt.pt,final.pt,train.json}``. ``final.pt`` is the fp32 state
dict of :class:`targets.stargan.StarGANGenerator` built with ``train.json``'s
``generator.kwargs``; it loads with ``load_state_dict(strict=True)``. The image size
is the pack's (``python -m targets.training.data pack --size 96``): 64 by default, 96
on a CPU, the official 128 on a GPU.

Losses and schedule follow yunjey/stargan (``solver.py`` / ``main.py``, MIT):
WGAN-GP adversarial loss, ``lambda_gp = 10``; attribute classification by the
discriminator's second head, BCE summed over the attributes and averaged over the
batch, ``lambda_cls = 1`` for D (real images) and G (edited images); cycle
reconstruction ``L1(G(G(x, c_trg), c_org), x)`` with ``lambda_rec = 10``; Adam with
``betas = (0.5, 0.999)``; target labels are the batch's own labels in random order.
The official run uses batch 16, lr 1e-4, ``n_critic = 5`` and 200k iterations with a
linear decay over the last 100k.

Our changes for a ~5 minute budget on a shared GPU, and why:

- widths: G ``conv_dim=32, repeat_num=6`` (2.1 M parameters, 4.2 MB in fp16; the
  official 64-wide G is 8.4 M). D keeps the official ``conv_dim=64``; its depth
  follows the image size (:func:`d_repeat_for`): ``repeat_num=5`` at 64x64 ends on a
  2x2 patch map, as the official 6 layers do at 128x128 (the classifier kernel is
  ``64 / 2**5 = 2``); 96x96 keeps 5 layers and ends on 3x3 (6 would give 1.5).
- batch 64 and lr 2e-4 (both sides): 4x the official batch gives steadier
  WGAN-GP critics; 2e-4 with Adam(0.5, 0.999) is the rate AttGAN-PyTorch uses for the
  same WGAN-GP losses. Constant rate by default (the run is far shorter than the
  official decay phase); ``--lr-decay START:END`` adds a linear decay to 0, as the
  official run ends, and may be given to a resumed run.
- ``n_critic = 5`` as the official code. Measured on one H200 shared by 8 training
  processes, 300 s each (mean evaluator success of the official test edits on the
  CelebA test split, one seed): batch 64 / n_critic 2: 10.5 it/s, 1520 G updates, 0.57;
  batch 64 / n_critic 5: 13.7 it/s, 798 G updates, 0.60; batch 128 / n_critic 5:
  7.9 it/s, 0.57; batch 256 / n_critic 5: 5.0 it/s, 0.55. The shared GPU is the
  bottleneck (iteration time grows almost linearly with the batch), so larger batches
  only cost updates.
- ``target_sampling = 'balanced'``: hair colour targets are a uniform one-hot, so
  blond is asked for as often as black and brown (see
  :func:`~targets.training.gan_common.sample_target_labels`).
- bf16 autocast on CUDA (the gradient penalty in fp32). On the CPU training stays
  fp32 and contiguous: on a shared 2-core AMD EPYC without AVX-512 (one thread,
  batch 16, 96x96) fp32 ran 0.11-0.12 it/s (64x64: 0.29), CPU bf16 autocast 0.010
  (no native bf16 kernels: 14 times slower) and channels_last 0.09-0.10.

Inference mode: train mode of InstanceNorm, i.e. per-image statistics, exactly like the
official test script (which never calls ``G.eval()``); the trained running statistics
are not meant to be used. ``train.json`` says so in ``inference_mode``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn

from targets.stargan import StarGANGenerator
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

#: The official CelebA label order (``--selected_attrs`` of yunjey/stargan).
STARGAN_ATTRS: tuple[str, ...] = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young")


def d_repeat_for(image_size: int) -> int:
    """Discriminator depth for ``image_size``: the most stride-2 layers that leave an
    integer patch map of at least 2x2 (64 -> 5 layers, 2x2; 96 -> 5, 3x3; 128 -> 6,
    2x2 as the official model)."""
    n = 0
    while image_size % 2 ** (n + 1) == 0 and image_size // 2 ** (n + 1) >= 2:
        n += 1
    if n == 0:
        raise ValueError(f"image_size {image_size} is too small or odd for the discriminator")
    return n


@dataclass(frozen=True)
class StarGANConfig:
    """Every hyper-parameter of a StarGAN run (see the module docstring for the choices)."""

    attrs: tuple[str, ...] = STARGAN_ATTRS
    image_size: int = 64
    g_conv_dim: int = 32
    g_repeat_num: int = 6
    d_conv_dim: int = 64
    d_repeat_num: int = 5
    batch_size: int = 64
    g_lr: float = 2e-4
    d_lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    n_critic: int = 5
    lambda_cls: float = 1.0
    lambda_rec: float = 10.0
    lambda_gp: float = 10.0
    target_sampling: str = "balanced"
    amp: bool = True

    @classmethod
    def smoke(cls) -> StarGANConfig:
        """Tiny widths for a CPU check of the whole pipeline."""
        return cls(g_conv_dim=8, g_repeat_num=1, d_conv_dim=8, batch_size=4, n_critic=2,
                   amp=False)

    def at_size(self, image_size: int) -> StarGANConfig:
        """This config at ``image_size`` with the discriminator depth that size needs."""
        return replace(self, image_size=image_size, d_repeat_num=d_repeat_for(image_size))


class StarGANDiscriminator(nn.Module):
    """The official StarGAN discriminator (yunjey/stargan ``model.Discriminator``).

    ``main``: ``repeat_num`` x [Conv4x4 stride 2 (with bias) -> LeakyReLU(0.01)], channels
    ``conv_dim, 2 conv_dim, ...``; ``conv1``: Conv3x3 to one channel, no bias (the
    PatchGAN real/fake map); ``conv2``: Conv with kernel ``image_size / 2**repeat_num``
    to ``c_dim`` logits, no bias.

    Shape: ``(B, 3, S, S)`` -> ``((B, 1, k, k), (B, c_dim))`` with
    ``k = S / 2**repeat_num``.
    """

    def __init__(self, image_size: int = 128, conv_dim: int = 64, c_dim: int = 5,
                 repeat_num: int = 6) -> None:
        super().__init__()
        if image_size % 2**repeat_num:
            raise ValueError(f"image_size {image_size} must be divisible by 2**{repeat_num}")
        layers: list[nn.Module] = [nn.Conv2d(3, conv_dim, 4, stride=2, padding=1),
                                   nn.LeakyReLU(0.01)]
        dim = conv_dim
        for _ in range(1, repeat_num):
            layers += [nn.Conv2d(dim, dim * 2, 4, stride=2, padding=1), nn.LeakyReLU(0.01)]
            dim *= 2
        self.main = nn.Sequential(*layers)
        self.conv1 = nn.Conv2d(dim, 1, 3, stride=1, padding=1, bias=False)
        self.conv2 = nn.Conv2d(dim, c_dim, image_size // 2**repeat_num, bias=False)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.main(x)
        return self.conv1(h), self.conv2(h).flatten(1)


class StarGANTrainer(ConditionalWGANTrainer):
    """StarGAN on a CelebA :class:`FaceSet` (uint8 images on the device, 40 attributes)."""

    name = "stargan"

    def __init__(self, cfg: StarGANConfig, faces: FaceSet, device: torch.device,
                 seed: int = 0) -> None:
        super().__init__(device, seed, cfg.amp)
        size = tuple(faces.images.shape[-2:])
        if size != (cfg.image_size, cfg.image_size):
            raise ValueError(f"the faces are {size[0]}x{size[1]} but image_size is "
                             f"{cfg.image_size}: pack the data at that size")
        self.cfg = cfg
        self.attrs = tuple(cfg.attrs)
        self.faces = faces
        self.labels = select_attributes(faces, cfg.attrs).to(device)
        self.n_critic = cfg.n_critic
        self.target_sampling = cfg.target_sampling
        self.weights = WGANWeights(lambda_gp=cfg.lambda_gp, lambda_d_cls=cfg.lambda_cls,
                                   lambda_g_cls=cfg.lambda_cls, lambda_rec=cfg.lambda_rec,
                                   cls_reduction="sum")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.G = StarGANGenerator(**self.generator_kwargs()).to(device).train()
            self.D = StarGANDiscriminator(cfg.image_size, cfg.d_conv_dim, len(cfg.attrs),
                                          cfg.d_repeat_num).to(device).train()
        self.nets = {"G": self.G, "D": self.D}
        betas = (cfg.beta1, cfg.beta2)
        self.optims = {"G": make_adam(self.G.parameters(), cfg.g_lr, betas, device),
                       "D": make_adam(self.D.parameters(), cfg.d_lr, betas, device)}
        pool = torch.arange(len(faces), device=device)
        self.samplers = {"faces": IndexSampler(pool, cfg.batch_size, self.generator)}

    def generator_kwargs(self) -> dict[str, int]:
        return {"conv_dim": self.cfg.g_conv_dim, "c_dim": len(self.cfg.attrs),
                "repeat_num": self.cfg.g_repeat_num}

    def translate(self, x: Tensor, c01: Tensor) -> tuple[Tensor, Any]:
        return self.G(x, c01), None

    def reconstruct(self, x: Tensor, fake: Tensor, c_org01: Tensor, aux: Any) -> Tensor:
        # Official: x_reconst = G(x_fake, c_org), the fake keeping its graph.
        del x, aux
        out: Tensor = self.G(fake, c_org01)
        return out

    def config(self) -> dict[str, Any]:
        return config_dict(self.cfg)

    def exports(self) -> dict[str, nn.Module]:
        return {"final.pt": self.G}

    def model_card(self) -> dict[str, Any]:
        return {
            "generator": {"module": "targets.stargan", "class": "StarGANGenerator",
                          "kwargs": self.generator_kwargs(), "file": "final.pt"},
            "inference_mode": "train",
            "inference_mode_note": (
                "InstanceNorm with per-image statistics (module.train()), as the official "
                "StarGAN test script runs; the stored running statistics are unused"),
            "input": {"size": [self.cfg.image_size, self.cfg.image_size],
                      "range": [-1.0, 1.0]},
            "condition": {"attrs": list(self.cfg.attrs), "values": "0/1 per attribute",
                          "convention": "hair colour one-hot; Male, Young 0/1"},
        }


def build(args: CliArgs, device: torch.device) -> tuple[StarGANTrainer, dict[str, Any]]:
    """Load the CelebA generator split onto ``device`` and make the trainer.

    The image size and the discriminator depth follow the pack's images unless
    ``--set image_size=...`` / ``--set d_repeat_num=...`` say otherwise.
    """
    faces, info = celeba_training_faces(args, device)
    base = StarGANConfig.smoke() if args.smoke else StarGANConfig()
    size = int(faces.images.shape[-1])
    if size != base.image_size:  # a 64 px pack keeps the config exactly as before
        base = base.at_size(size)
    cfg = apply_overrides(base, args.overrides)
    if "image_size" in args.overrides and "d_repeat_num" not in args.overrides:
        cfg = replace(cfg, d_repeat_num=d_repeat_for(cfg.image_size))
    return StarGANTrainer(cfg, faces, device, args.seed), info


def main(argv: list[str] | None = None) -> int:
    return main_for("stargan", build, argv)


if __name__ == "__main__":
    raise SystemExit(main())
