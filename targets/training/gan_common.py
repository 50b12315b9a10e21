"""Shared machinery of the three GAN trainers (StarGAN, AttGAN, CycleGAN).

What lives here, once:

- the command line every trainer takes (``--pack --out --seconds --iters --seed
  [--resume] [--smoke] [--device auto]``) and :func:`main_for`, which runs it;
- :class:`GanTrainer`, the base class holding the device, the seeded
  ``torch.Generator`` that drives every random choice of a run (batch order, flips,
  target labels, gradient-penalty mixing, image pool), the networks and optimizers,
  and their checkpoint state;
- :class:`IndexSampler`: epoch-wise random permutations of dataset indices, on the
  device, with no ``DataLoader``;
- :func:`gradient_penalty` (WGAN-GP, always computed in float32);
- :class:`ConditionalWGANTrainer`: the training step StarGAN and AttGAN share (WGAN-GP
  adversarial loss, an auxiliary attribute classifier on the discriminator, a
  reconstruction term). Each subclass supplies only its networks, its
  reconstruction path and its loss weights;
- :func:`train`: the wall-clock-bounded loop with periodic checkpoints (about every
  60 s and at the end), ``--resume``, and the three output files
  ``ckpt.pt``, ``final.pt`` and ``train.json``.

Every tensor stays on the training device; on CUDA the steps run under bf16 autocast
(the gradient penalty excepted) with cuDNN autotuning and TF32.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from targets.training.data import FaceSet, random_flip, to_unit

# ----------------------------------------------------------------------------- helpers


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on CUDA when ``enabled``; a no-op context elsewhere."""
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def fp32_region(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """Switch autocast off inside (for the gradient penalty)."""
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", enabled=False)
    return contextlib.nullcontext()


def make_adam(params: Iterator[nn.Parameter], lr: float, betas: tuple[float, float],
              device: torch.device) -> torch.optim.Adam:
    """Adam with the fused CUDA kernel where available (same maths, fewer launches)."""
    fused = device.type == "cuda"
    return torch.optim.Adam(params, lr=lr, betas=betas, fused=fused)


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Temporarily stop gradients into ``module``'s parameters (the D during a G step)."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags, strict=True):
            p.requires_grad_(flag)


def to_signed(images: Tensor) -> Tensor:
    """uint8 ``(B,3,H,W)`` in ``[0,255]`` -> float32 in ``[-1,1]`` (the GANs' native range)."""
    return to_unit(images).mul_(2.0).sub_(1.0)


def gradient_penalty(
    critic: Callable[[Tensor], Tensor],
    real: Tensor,
    fake: Tensor,
    generator: torch.Generator,
) -> Tensor:
    """WGAN-GP penalty ``E[(||d critic(x_hat) / d x_hat||_2 - 1)^2]``, in float32.

    ``x_hat = alpha * real + (1 - alpha) * fake`` with one ``alpha ~ U[0, 1]`` per image
    (Gulrajani et al. 2017, as in yunjey/stargan ``solver.gradient_penalty`` and
    elvisyjlin/AttGAN-PyTorch ``trainD``). ``critic`` returns the adversarial output
    (any shape; summed, which equals the official ``grad_outputs=ones``). Autocast is
    switched off so the double backward runs in float32. Shapes: ``real``, ``fake``
    ``(B,3,H,W)``; returns a scalar with a graph into the critic's parameters.
    """
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device, generator=generator)
    with fp32_region(real.device):
        x_hat = (alpha * real.float() + (1.0 - alpha) * fake.float()).detach()
        x_hat.requires_grad_(True)
        out = critic(x_hat).float()
        (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
        norm = grad.flatten(1).pow(2).sum(1).add(1e-12).sqrt()
        return (norm - 1.0).pow(2).mean()


class IndexSampler:
    """Batches of indices into ``pool``: one random permutation per epoch, on its device.

    Draws every permutation from ``generator`` (which must live on ``pool``'s device),
    so a run is reproducible and resumable through :meth:`state_dict`. When ``pool``
    holds fewer indices than a batch, indices are drawn with replacement.
    """

    def __init__(self, pool: Tensor, batch_size: int, generator: torch.Generator) -> None:
        if pool.ndim != 1 or pool.numel() == 0:
            raise ValueError("IndexSampler needs a non-empty 1-D tensor of indices")
        self.pool = pool
        self.batch_size = int(batch_size)
        self.generator = generator
        self.perm: Tensor | None = None
        self.pos = 0

    def next(self) -> Tensor:
        """The next ``(batch_size,)`` long tensor of indices."""
        n = self.pool.numel()
        if n < self.batch_size:
            pick = torch.randint(n, (self.batch_size,), device=self.pool.device,
                                 generator=self.generator)
            return self.pool[pick]
        if self.perm is None or self.pos + self.batch_size > n:
            order = torch.randperm(n, device=self.pool.device, generator=self.generator)
            self.perm = self.pool[order]
            self.pos = 0
        out = self.perm[self.pos:self.pos + self.batch_size]
        self.pos += self.batch_size
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"perm": None if self.perm is None else self.perm.cpu(), "pos": self.pos}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        perm = state["perm"]
        self.perm = None if perm is None else perm.to(self.pool.device)
        self.pos = int(state["pos"])


def sample_target_labels(
    labels: Tensor,
    attrs: Sequence[str],
    mode: str,
    generator: torch.Generator,
    exclusive: Sequence[str] = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair"),
) -> Tensor:
    """Target attribute vectors ``(B, n)`` (0/1) for a batch with source labels ``labels``.

    ``mode='permute'``: the labels of the batch in random order, as both official
    trainers do (yunjey/stargan ``label_trg = label_org[rand_idx]``; AttGAN-PyTorch
    ``att_b = att_a[idx]``). ``mode='balanced'``: the same, then for a random half of
    the images the mutually exclusive hair colours among ``attrs`` are replaced by a
    uniformly drawn one-hot, with ``Bald`` (if present) cleared, as AttGAN's
    ``check_attribute_conflict`` does when a hair colour is set. CelebA has about 1.7
    times fewer blond than black heads and 40 % of its images carry no hair colour
    label, so permuted labels rarely ask for a clean blond edit; the balanced half asks
    for every colour equally often, which is what the edits are measured on. The other
    half keeps the official targets (no colour, two colours, Bald). Our change for the
    short training budget.
    """
    b = labels.shape[0]
    perm = torch.randperm(b, device=labels.device, generator=generator)
    target = labels[perm].clone()
    if mode == "permute":
        return target
    if mode != "balanced":
        raise ValueError(f"target sampling must be 'permute' or 'balanced', got {mode!r}")
    hair = [i for i, a in enumerate(attrs) if a in exclusive]
    if hair:
        dev = labels.device
        pick = torch.randint(len(hair), (b,), device=dev, generator=generator)
        chosen = torch.rand(b, device=dev, generator=generator) < 0.5
        hair_idx = torch.tensor(hair, device=dev)
        one_hot = F.one_hot(pick, len(hair)).to(target.dtype)
        target[:, hair_idx] = torch.where(chosen[:, None], one_hot, target[:, hair_idx])
        if "Bald" in attrs:
            bald = list(attrs).index("Bald")
            target[:, bald] = torch.where(chosen, torch.zeros_like(target[:, bald]),
                                          target[:, bald])
    return target


def select_attributes(faces: FaceSet, attrs: Sequence[str]) -> Tensor:
    """Columns ``attrs`` of a CelebA :class:`FaceSet`'s ``(N, 40)`` labels, as float 0/1."""
    missing = [a for a in attrs if a not in faces.label_names]
    if missing:
        raise ValueError(f"attributes {missing} are not in the face set's labels")
    cols = [faces.label_names.index(a) for a in attrs]
    return faces.labels[:, cols].float()


def subset(faces: FaceSet, n: int) -> FaceSet:
    """The first ``n`` images of ``faces`` (smoke runs)."""
    return FaceSet(faces.images[:n], faces.labels[:n], faces.label_names, faces.names[:n])


# ----------------------------------------------------------------------------- trainers


class GanTrainer:
    """Base of the three trainers: device, seeded generator, networks, optimizers, state.

    Subclasses register networks in ``self.nets`` and optimizers in ``self.optims``,
    implement :meth:`step`, and say which generators are exported
    (:meth:`exports`) and how to run them (:meth:`model_card`).
    """

    name = "gan"

    def __init__(self, device: torch.device, seed: int, amp: bool) -> None:
        self.device = device
        self.seed = seed
        self.amp = bool(amp) and device.type == "cuda"
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(seed)
        self.nets: dict[str, nn.Module] = {}
        self.optims: dict[str, torch.optim.Optimizer] = {}
        self.samplers: dict[str, IndexSampler] = {}
        self.iteration = 0
        self.g_updates = 0
        self.d_updates = 0

    # -- to implement
    def step(self) -> dict[str, Tensor]:
        """One training iteration; returns detached scalar losses (no host sync)."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """Every hyper-parameter, JSON-ready (compared on ``--resume``)."""
        raise NotImplementedError

    def exports(self) -> dict[str, nn.Module]:
        """File name -> generator written as an fp32 state dict at the end."""
        raise NotImplementedError

    def model_card(self) -> dict[str, Any]:
        """How to build and run the exported generators (class, kwargs, mode, conditions)."""
        raise NotImplementedError

    # -- shared
    def batch(self, faces: FaceSet, sampler: str) -> tuple[Tensor, Tensor]:
        """A random batch ``(x in [-1,1] (B,3,H,W), row indices)`` with random flips."""
        idx = self.samplers[sampler].next()
        x = random_flip(to_signed(faces.images[idx]), self.generator)
        return x, idx

    def extra_state(self) -> dict[str, Any]:
        """Subclass state beyond networks, optimizers and samplers (e.g. an image pool)."""
        return {}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        del state

    def state_dict(self) -> dict[str, Any]:
        rng: dict[str, Any] = {"generator": self.generator.get_state(),
                               "torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {
            "nets": {k: m.state_dict() for k, m in self.nets.items()},
            "optims": {k: o.state_dict() for k, o in self.optims.items()},
            "samplers": {k: s.state_dict() for k, s in self.samplers.items()},
            "rng": rng,
            "counters": {"iteration": self.iteration, "g_updates": self.g_updates,
                         "d_updates": self.d_updates},
            "extra": self.extra_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for k, m in self.nets.items():
            m.load_state_dict(state["nets"][k])
        for k, o in self.optims.items():
            o.load_state_dict(state["optims"][k])
        for k, s in self.samplers.items():
            s.load_state_dict(state["samplers"][k])
        self.generator.set_state(state["rng"]["generator"])
        torch.set_rng_state(state["rng"]["torch"])
        if self.device.type == "cuda" and "cuda" in state["rng"]:
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)
        counters = state["counters"]
        self.iteration = int(counters["iteration"])
        self.g_updates = int(counters["g_updates"])
        self.d_updates = int(counters["d_updates"])
        self.load_extra_state(state["extra"])


@dataclass(frozen=True)
class WGANWeights:
    """Loss weights of a conditional WGAN-GP (names from the papers' code)."""

    lambda_gp: float
    lambda_d_cls: float  # attribute classification of real images, in the D loss
    lambda_g_cls: float  # attribute classification of edited images, in the G loss
    lambda_rec: float
    cls_reduction: str  # 'sum' (StarGAN: summed over attributes, mean over images) or 'mean'


class ConditionalWGANTrainer(GanTrainer):
    """The step StarGAN and AttGAN share: WGAN-GP + attribute classifier + reconstruction.

    Per iteration (yunjey/stargan ``Solver.train``; elvisyjlin/AttGAN-PyTorch
    ``trainD`` / ``trainG``):

    - D: ``-mean D(x) + mean D(G(x, c_trg)) + lambda_gp GP + lambda_d_cls BCE(D_cls(x), c_org)``.
    - every ``n_critic``-th iteration, G: ``-mean D(G(x, c_trg)) + lambda_g_cls
      BCE(D_cls(G(x, c_trg)), c_trg) + lambda_rec L1(reconstruction, x)``; the
      reconstruction comes from :meth:`reconstruct`.

    On an iteration that also updates G, the edited batch is computed once with a graph
    and reused (detached) for the D update: G's weights do not change between the two
    updates of one iteration, so the maths is the official one with one G forward fewer.
    Subclasses set ``self.G``, ``self.D`` (returning ``(adv, cls_logits)``), the labels
    ``self.labels`` (N, n) 0/1, ``self.faces`` and ``self.weights``.
    """

    G: nn.Module
    D: nn.Module
    faces: FaceSet
    labels: Tensor
    weights: WGANWeights
    n_critic: int
    target_sampling: str
    attrs: tuple[str, ...]

    def translate(self, x: Tensor, c01: Tensor) -> tuple[Tensor, Any]:
        """``G(x, c)`` for 0/1 labels ``c``; returns the image and anything
        :meth:`reconstruct` can reuse (e.g. encoder features)."""
        raise NotImplementedError

    def reconstruct(self, x: Tensor, fake: Tensor, c_org01: Tensor, aux: Any) -> Tensor:
        """The image compared with ``x`` by the reconstruction loss."""
        raise NotImplementedError

    def cls_loss(self, logits: Tensor, target: Tensor) -> Tensor:
        """Attribute BCE of ``(B, n)`` logits against 0/1 targets, in fp32: summed over
        attributes and averaged over images (StarGAN) or averaged over both (AttGAN)."""
        bce = F.binary_cross_entropy_with_logits(logits.float(), target, reduction="sum")
        if self.weights.cls_reduction == "sum":
            return bce / logits.shape[0]
        return bce / logits.numel()

    def step(self) -> dict[str, Tensor]:
        w = self.weights
        x, idx = self.batch(self.faces, "faces")
        c_org = self.labels[idx]
        c_trg = sample_target_labels(c_org, self.attrs, self.target_sampling, self.generator)
        g_turn = (self.iteration + 1) % self.n_critic == 0
        losses: dict[str, Tensor] = {}

        with autocast(self.device, self.amp):
            if g_turn:
                fake, aux = self.translate(x, c_trg)
            else:
                with torch.no_grad():
                    fake, aux = self.translate(x, c_trg)
            # ---- D update: real and edited images in one pass (D has no batch statistics)
            adv, cls = self.D(torch.cat([x, fake.detach()], 0))
            adv = adv.float().flatten(1).mean(1)
            b = x.shape[0]
            d_real, d_fake = adv[:b].mean(), adv[b:].mean()
            d_cls = self.cls_loss(cls[:b], c_org)
        gp = gradient_penalty(lambda t: self.D(t)[0], x, fake.detach(), self.generator)
        d_loss = -d_real + d_fake + w.lambda_gp * gp + w.lambda_d_cls * d_cls
        self.optims["D"].zero_grad(set_to_none=True)
        d_loss.backward()
        self.optims["D"].step()
        self.d_updates += 1
        losses.update({"D/real": d_real.detach(), "D/fake": d_fake.detach(),
                       "D/cls": d_cls.detach(), "D/gp": gp.detach()})

        # ---- G update
        if g_turn:
            with autocast(self.device, self.amp), frozen(self.D):
                g_adv, g_cls_logits = self.D(fake)
                g_fake = -g_adv.float().mean()
                g_cls = self.cls_loss(g_cls_logits, c_trg)
                rec = self.reconstruct(x, fake, c_org, aux)
                g_rec = (rec.float() - x).abs().mean()
            g_loss = g_fake + w.lambda_g_cls * g_cls + w.lambda_rec * g_rec
            self.optims["G"].zero_grad(set_to_none=True)
            g_loss.backward()
            self.optims["G"].step()
            self.g_updates += 1
            losses.update({"G/fake": g_fake.detach(), "G/cls": g_cls.detach(),
                           "G/rec": g_rec.detach()})
        self.iteration += 1
        return losses


# ----------------------------------------------------------------------------- the loop


# ----------------------------------------------------------------------------- the CLI
