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

import argparse
import contextlib
import math
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from targets.training.common import atomic_torch_save, hardware_name, setup_device, write_json
from targets.training.data import FaceSet, load_faces, random_flip, to_unit

#: Seconds between two periodic checkpoints.
SAVE_INTERVAL_S = 60.0
#: Seconds between two loss records in ``train.json``'s history.
LOG_INTERVAL_S = 10.0
#: Seconds kept free at the end of ``--seconds`` for writing the final files.
FINAL_RESERVE_S = 3.0
#: Images the smoke mode keeps from a split.
SMOKE_IMAGES = 64
#: Default iteration count for ``--smoke`` when ``--iters`` is not given.
SMOKE_ITERS = 4


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


@dataclass(frozen=True)
class RunOptions:
    """Where and how long to train (the command line, minus the model's own settings)."""

    out: Path
    seconds: float
    iters: int
    resume: bool = False
    save_interval_s: float = SAVE_INTERVAL_S
    log_interval_s: float = LOG_INTERVAL_S


class _LossMeter:
    """Running sums of loss tensors on the device; read (one host sync) when logging."""

    def __init__(self) -> None:
        self.sums: dict[str, Tensor] = {}
        self.counts: dict[str, int] = {}

    def add(self, losses: Mapping[str, Tensor]) -> None:
        for k, v in losses.items():
            self.sums[k] = self.sums[k] + v if k in self.sums else v.clone()
            self.counts[k] = self.counts.get(k, 0) + 1

    def read_and_reset(self) -> dict[str, float | None]:
        if not self.sums:
            return {}
        keys = sorted(self.sums)
        values = torch.stack([self.sums[k].float() / self.counts[k] for k in keys]).tolist()
        self.sums, self.counts = {}, {}
        # Non-finite losses become None: train.json stays strict JSON.
        return {k: (float(v) if math.isfinite(v) else None)
                for k, v in zip(keys, values, strict=True)}


def _fp32_state(module: nn.Module) -> dict[str, Tensor]:
    """CPU, contiguous state dict with floating tensors in float32 (buffers included)."""
    out: dict[str, Tensor] = {}
    for k, v in module.state_dict().items():
        v = v.detach().cpu()
        out[k] = (v.float() if v.is_floating_point() else v).contiguous().clone()
    return out


def train(trainer: GanTrainer, opts: RunOptions, *, start: float | None = None,
          data_info: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Train until ``opts.iters`` iterations in total or ``opts.seconds`` of wall clock.

    ``start`` is the ``time.monotonic()`` from which ``opts.seconds`` counts (default:
    now); the loop stops :data:`FINAL_RESERVE_S` early to leave time for the final
    files. Writes ``opts.out/<name>/ckpt.pt`` every ``opts.save_interval_s`` and at
    the end, then ``final.pt`` (and any other :meth:`GanTrainer.exports`) and
    ``train.json``. With ``opts.resume`` and an existing ``ckpt.pt``, continues from it
    (its hyper-parameters must equal the trainer's). Returns the ``train.json`` dict.
    """
    t0 = time.monotonic() if start is None else start
    run_dir = opts.out / trainer.name
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = run_dir / "ckpt.pt"
    history: list[dict[str, Any]] = []
    seconds_before = 0.0
    resumed_from = 0
    if opts.resume and ckpt_path.exists():
        saved = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        if saved["config"] != trainer.config():
            raise SystemExit(
                f"{ckpt_path}: saved hyper-parameters differ from this run's; "
                "start without --resume or use the same settings"
            )
        trainer.load_state_dict(saved["trainer"])
        history = list(saved["history"])
        seconds_before = float(saved["seconds_total"])
        resumed_from = trainer.iteration

    meter = _LossMeter()
    last_losses: dict[str, float | None] = {}
    loop_start = time.monotonic()
    last_save = last_log = loop_start
    start_iter = trainer.iteration
    deadline = t0 + opts.seconds - FINAL_RESERVE_S

    def record(now: float) -> dict[str, float | None]:
        losses = meter.read_and_reset()
        done = trainer.iteration - start_iter
        entry = {"iteration": trainer.iteration,
                 "seconds": round(seconds_before + now - loop_start, 2),
                 "it_per_s": round(done / max(now - loop_start, 1e-9), 3), **losses}
        history.append(entry)
        return losses

    def snapshot(now: float, finished: bool) -> dict[str, Any]:
        summary = {
            "model": trainer.name,
            "finished": finished,
            "config": trainer.config(),
            **trainer.model_card(),
            "seed": trainer.seed,
            "iterations": trainer.iteration,
            "g_updates": trainer.g_updates,
            "d_updates": trainer.d_updates,
            "iterations_this_run": trainer.iteration - start_iter,
            "resumed_from_iteration": resumed_from,
            "seconds_this_run": round(now - t0, 2),
            "seconds_training_this_run": round(now - loop_start, 2),
            "seconds_total": round(seconds_before + now - loop_start, 2),
            "it_per_s": round((trainer.iteration - start_iter) / max(now - loop_start, 1e-9), 3),
            "device": hardware_name(trainer.device),
            "torch": torch.__version__,
            "bf16_autocast": trainer.amp,
            "data": dict(data_info or {}),
            "final_losses": last_losses,
            "history": history,
        }
        atomic_torch_save({"config": trainer.config(), "trainer": trainer.state_dict(),
                           "history": history, "seconds_total": summary["seconds_total"]},
                          ckpt_path)
        write_json(summary, run_dir / "train.json")
        return summary

    while trainer.iteration < opts.iters and time.monotonic() < deadline:
        meter.add(trainer.step())
        now = time.monotonic()
        if now - last_log >= opts.log_interval_s:
            last_losses = record(now) or last_losses
            last_log = now
        if now - last_save >= opts.save_interval_s:
            snapshot(now, finished=False)
            last_save = time.monotonic()

    if trainer.device.type == "cuda":
        torch.cuda.synchronize(trainer.device)
    now = time.monotonic()
    if meter.sums:
        last_losses = record(now) or last_losses
    for file_name, module in trainer.exports().items():
        atomic_torch_save(_fp32_state(module), run_dir / file_name)
    return snapshot(now, finished=True)


# ----------------------------------------------------------------------------- the CLI


@dataclass(frozen=True)
class CliArgs:
    """The parsed command line shared by every trainer."""

    pack: Path
    out: Path
    seconds: float
    iters: int
    seed: int
    resume: bool
    smoke: bool
    device: str
    overrides: Mapping[str, str] = field(default_factory=dict)


def celeba_training_faces(args: CliArgs, device: torch.device) -> tuple[FaceSet, dict[str, Any]]:
    """The CelebA generator split on ``device`` (its first images under ``--smoke``),
    with the data description that goes into ``train.json``."""
    faces = load_faces(args.pack, "celeba", "generator", device)
    if args.smoke:
        faces = subset(faces, SMOKE_IMAGES)
    info = {"dataset": "celeba", "split": "generator", "images": len(faces),
            "pack": str(args.pack)}
    return faces, info


def parse_cli(argv: Sequence[str] | None, model: str) -> CliArgs:
    """Parse ``--pack --out --seconds --iters --seed [--resume] [--smoke] [--device]``."""
    p = argparse.ArgumentParser(
        prog=f"python -m targets.training.{model}_train",
        description=f"Train the bundled compact {model} on the face pack's generator split.",
    )
    p.add_argument("--pack", type=Path, required=True,
                   help="face pack .npz (python -m targets.training.data pack)")
    p.add_argument("--out", type=Path, required=True, help=f"output root; files go to OUT/{model}/")
    p.add_argument("--seconds", type=float, default=300.0,
                   help="wall-clock budget of this process, from the start of main()")
    p.add_argument("--iters", type=int, default=None,
                   help=f"total iterations (resumed ones included); default unlimited, "
                        f"{SMOKE_ITERS} with --smoke")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from OUT/<model>/ckpt.pt")
    p.add_argument("--smoke", action="store_true",
                   help="tiny widths, a few iterations, CPU with one thread (a quick check)")
    p.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda', 'cuda:1', ...")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one hyper-parameter of the model's config (repeatable), "
                        "e.g. --set n_critic=5 --set batch_size=32")
    a = p.parse_args(argv)
    iters = a.iters if a.iters is not None else (SMOKE_ITERS if a.smoke else 10**9)
    overrides: dict[str, str] = {}
    for item in a.overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            p.error(f"--set takes KEY=VALUE, got {item!r}")
        overrides[key.strip()] = value.strip()
    return CliArgs(a.pack, a.out, a.seconds, iters, a.seed, a.resume, a.smoke, a.device,
                   overrides)


def resolve_device(args: CliArgs) -> torch.device:
    """``--device``: 'auto' is CUDA when available, except that ``--smoke`` means CPU."""
    if args.smoke:
        torch.set_num_threads(1)
    name = None if args.device == "auto" else args.device
    if name is None and args.smoke:
        name = "cpu"
    device = setup_device(name)
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")
    return device


def config_dict(cfg: Any) -> dict[str, Any]:
    """A frozen config dataclass as a JSON-ready dict (tuples become lists)."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()}


ConfigT = TypeVar("ConfigT")


def apply_overrides(cfg: ConfigT, overrides: Mapping[str, str]) -> ConfigT:
    """``cfg`` (a frozen dataclass) with ``--set KEY=VALUE`` strings parsed by field type.

    Booleans accept ``true/false/1/0``; tuples take comma-separated strings. Unknown
    keys raise ``SystemExit`` naming the valid ones.
    """
    if not overrides:
        return cfg
    types = {f.name: type(getattr(cfg, f.name)) for f in fields(cfg)}  # type: ignore[arg-type]
    changes: dict[str, Any] = {}
    for key, text in overrides.items():
        if key not in types:
            raise SystemExit(f"--set: unknown key {key!r}; valid: {', '.join(sorted(types))}")
        kind = types[key]
        try:
            if kind is bool:
                if text.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(text)
                changes[key] = text.lower() in ("true", "1")
            elif kind is tuple:
                changes[key] = tuple(t.strip() for t in text.split(",") if t.strip())
            else:
                changes[key] = kind(text)
        except ValueError as exc:
            raise SystemExit(f"--set {key}: cannot read {text!r} as {kind.__name__}") from exc
    return replace(cfg, **changes)  # type: ignore[type-var]


TrainerFactory = Callable[[CliArgs, torch.device], tuple[GanTrainer, dict[str, Any]]]


def main_for(model: str, build: TrainerFactory, argv: Sequence[str] | None = None) -> int:
    """Run a trainer from the command line; ``build`` loads the data and makes the trainer.

    Returns the process exit code (0 when the output files were written).
    """
    start = time.monotonic()
    args = parse_cli(argv, model)
    if not args.pack.exists():
        print(f"error: face pack {args.pack} not found", file=sys.stderr)
        return 2
    device = resolve_device(args)
    torch.manual_seed(args.seed)
    trainer, data_info = build(args, device)
    opts = RunOptions(out=args.out, seconds=args.seconds, iters=args.iters, resume=args.resume)
    summary = train(trainer, opts, start=start, data_info=data_info)
    print(f"{model}: {summary['iterations']} iterations ({summary['it_per_s']} it/s) in "
          f"{summary['seconds_this_run']} s on {summary['device']}; "
          f"losses {summary['final_losses']}", file=sys.stderr)
    return 0
