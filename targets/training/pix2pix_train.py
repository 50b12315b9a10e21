"""Train the bundled pix2pix U-Net (``pix2pix.celeba96``): a gender swap distilled from
the bundled StarGAN (``stargan.celeba96``).

pix2pix needs paired images, and no paired face edit ships with the project's data, so
the pairs are made here: each CelebA generator-split face ``x`` (at the face pack's size,
96x96 for the shipped model) goes through the
bundled StarGAN with its own labels and *Male* flipped (yunjey/stargan ``create_labels``),
giving ``y = G(x, c)``. A pair is kept only when the CelebA *evaluator* (trained on the
evaluator split, never on these faces) reads the flipped gender on ``y``: the student
learns the teacher's successful edits, not its failures. Horizontal flips are applied
to ``x`` and ``y`` together.

Network and loss follow Isola et al., "Image-to-Image Translation with Conditional
Adversarial Networks" (CVPR 2017) and the official code's pix2pix defaults: U-Net
generator, conditional PatchGAN discriminator on ``cat(x, y)`` (70x70 receptive field,
``n_layers=3``), vanilla GAN loss (BCE on logits) plus ``lambda_L1 = 100`` times the L1
distance to the pair's target, Adam(2e-4, 0.5, 0.999). Changes, for a small CPU model:
``num_downs`` as many halvings as the size allows down to an odd side (6 at 64 px,
a 1x1 bottleneck; 5 at 96 px, 3x3), ``ngf`` 24 / ``ndf`` 32, InstanceNorm and no dropout
(the official default is BatchNorm with dropout, run in train mode at test time; here
the output is deterministic and independent of the batch, so protection results can be
reproduced and photos batched), batch 16, a cosine learning-rate schedule.

CLI::

    python -m targets.training.pix2pix_train --pack PACK64 --out DIR --seconds 1800 \
        [--iters N] [--seed 0] [--resume] [--smoke] [--teacher WEIGHTS_DIR] \
        [--export targets/weights]

``--export`` writes the fp16 weights and model cards and measures the edit on the
test split (with ``--resume --seconds 0`` it exports a finished run without training).

Writes ``DIR/pix2pix/pairs.pt`` (the kept pairs, made once), ``ckpt.pt`` (resumable),
``final.pt`` (fp32 generator state dict) and ``train.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from targets.pix2pix import UnetGenerator
from targets.training.common import (
    Budget,
    add_run_options,
    atomic_torch_save,
    cosine_lr,
    hardware_name,
    set_lr,
    setup_device,
    write_json,
)
from targets.training.cyclegan_train import NLayerDiscriminator, init_normal_
from targets.training.data import load_faces, to_unit

MODEL = "pix2pix"
NAME = "pix2pix.celeba96"  # the bundled name its export installs
EDIT = "Male"  # the StarGAN label the student learns to flip
TEACHER = "stargan.celeba96"
NGF = 24
NDF = 32
LAMBDA_L1 = 100.0  # official pix2pix default (--lambda_L1)


def num_downs_for(size: int) -> int:
    """U-Net depth for a ``size`` x ``size`` input: halve while the side stays even, at
    most 8 times (the official ``unet_256``). 64 -> 6 (1x1 bottleneck), 96 -> 5 (3x3)."""
    downs = 0
    while size % 2 == 0 and downs < 8:
        size //= 2
        downs += 1
    if downs < 5:
        raise ValueError(f"a {size * 2 ** downs} px side halves only {downs} times; the U-Net "
                         "needs at least 5 (its channel ramp has 5 levels)")
    return downs


def generator_kwargs(ngf: int = NGF, size: int = 96) -> dict[str, Any]:
    return {"input_nc": 3, "output_nc": 3, "num_downs": num_downs_for(size), "ngf": ngf,
            "norm": "instance", "use_dropout": False}


def make_pairs(pack: Path, teacher_weights: Path | None, device: torch.device,
               limit: int | None = None, batch: int = 100) -> dict[str, Any]:
    """Teacher edits of the CelebA generator split, filtered by the evaluator.

    Returns ``{"x", "y"}`` uint8 ``(N, 3, S, S)`` (input, teacher output at the pack's
    size ``S``) for the kept pairs, plus ``names``, ``made`` (pairs tried) and ``kept``.
    """
    from targets.bundled import STARGAN_ATTRS, load_bundled, load_evaluator_for
    from targets.training.quality import stargan_targets

    faces = load_faces(pack, "celeba", "generator", device)
    if limit is not None:
        faces.images, faces.labels = faces.images[:limit], faces.labels[:limit]
        faces.names = faces.names[:limit]
    teacher = load_bundled(TEACHER, teacher_weights).to(device)
    size = faces.images.shape[-1]
    evaluator = load_evaluator_for("celeba", teacher_weights, device)
    cols = [faces.label_names.index(a) for a in STARGAN_ATTRS]
    org = faces.labels[:, cols].float()
    edit = STARGAN_ATTRS.index(EDIT)
    want = stargan_targets(org, STARGAN_ATTRS, edit)
    male_col = faces.label_names.index(EDIT)
    xs, ys, keep = [], [], []
    with torch.no_grad():
        for i in range(0, len(faces), batch):
            x = to_unit(faces.images[i:i + batch])
            y = teacher(x, want[i:i + batch])  # at the teacher's size
            if y.shape[-1] != size:
                y = F.interpolate(y, size=(size, size), mode="bilinear", antialias=True,
                                  align_corners=False).clamp(0, 1)
            pred = evaluator(y)[:, male_col] > 0
            ok = pred == (want[i:i + batch, edit] > 0.5)
            xs.append(faces.images[i:i + batch])
            ys.append((y * 255).round().clamp(0, 255).to(torch.uint8))
            keep.append(ok)
    kept = torch.cat(keep)
    return {"x": torch.cat(xs)[kept].cpu(), "y": torch.cat(ys)[kept].cpu(),
            "names": [n for n, k in zip(faces.names, kept.tolist(), strict=True) if k],
            "made": len(faces), "kept": int(kept.sum())}


def _signed(u8: Tensor) -> Tensor:
    return to_unit(u8) * 2 - 1


def train_pix2pix(
    pack: Path,
    out: Path,
    *,
    seconds: float,
    iters: int,
    seed: int = 0,
    resume: bool = False,
    device: str | None = None,
    batch_size: int = 16,
    lr: float = 2e-4,
    ngf: int = NGF,
    ndf: int = NDF,
    teacher_weights: Path | None = None,
    pair_limit: int | None = None,
    ckpt_every_s: float = 60.0,
    log: bool = True,
    stop_at: int | None = None,
) -> dict[str, Any]:
    """Train (or resume) and write ``out/pix2pix/{pairs.pt,ckpt.pt,final.pt,train.json}``.

    ``iters`` is the run's total (resumed iterations included) and sets the schedule;
    ``stop_at`` ends this session earlier, as an interruption would.
    """
    t0 = time.monotonic()
    dev = setup_device(device)
    run = Path(out) / MODEL
    run.mkdir(parents=True, exist_ok=True)
    pairs_path = run / "pairs.pt"
    if pairs_path.exists():
        pairs = torch.load(pairs_path, map_location="cpu", weights_only=True)
    else:
        pairs = make_pairs(pack, teacher_weights, dev, limit=pair_limit)
        atomic_torch_save(pairs, pairs_path)
    if pairs["kept"] == 0:
        raise RuntimeError(f"{pack}: the evaluator accepted none of the teacher's edits")
    xs, ys = pairs["x"].to(dev), pairs["y"].to(dev)
    if log:
        print(f"[pix2pix] {pairs['kept']} of {pairs['made']} teacher edits kept",
              file=sys.stderr, flush=True)

    torch.manual_seed(seed)
    init = torch.Generator().manual_seed(seed)
    g = torch.Generator(device=dev).manual_seed(seed)
    size = int(xs.shape[-1])
    net_g = UnetGenerator(**generator_kwargs(ngf, size))
    net_d = NLayerDiscriminator(input_nc=6, ndf=ndf, n_layers=3)
    init_normal_(net_g, 0.02, init)  # official init_type normal, gain 0.02
    init_normal_(net_d, 0.02, init)
    net_g.to(dev).train()
    net_d.to(dev).train()
    opt_g = torch.optim.Adam(net_g.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(net_d.parameters(), lr=lr, betas=(0.5, 0.999))
    start_iter, history, prev_seconds = 0, [], 0.0
    ckpt_path = run / "ckpt.pt"
    if resume and ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location=dev, weights_only=True)
        net_g.load_state_dict(ck["g"])
        net_d.load_state_dict(ck["d"])
        opt_g.load_state_dict(ck["opt_g"])
        opt_d.load_state_dict(ck["opt_d"])
        g.set_state(ck["rng"].cpu())
        start_iter = int(ck["iter"])
        history = [[float(a), float(b), float(c)] for a, b, c in ck["losses"].tolist()]
        prev_seconds = float(ck["seconds"])
        if log:
            print(f"[pix2pix] resumed at iteration {start_iter}", file=sys.stderr, flush=True)

    budget = Budget(seconds, iters, start_iter)

    def save_ckpt() -> None:
        atomic_torch_save({"g": net_g.state_dict(), "d": net_d.state_dict(),
                           "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
                           "rng": g.get_state(), "iter": torch.tensor(budget.iter),
                           "losses": torch.tensor(history).reshape(-1, 3),
                           "seconds": torch.tensor(prev_seconds + budget.elapsed)}, ckpt_path)

    bce = nn.BCEWithLogitsLoss()
    last_ckpt = time.monotonic()
    n = xs.shape[0]
    while not budget.done() and (stop_at is None or budget.iter < stop_at):
        progress = budget.iter / max(1, iters)
        for opt in (opt_g, opt_d):
            set_lr(opt, cosine_lr(lr, progress))
        idx = torch.randint(0, n, (batch_size,), device=dev, generator=g)
        x, y = _signed(xs[idx]), _signed(ys[idx])
        flip = torch.rand(batch_size, device=dev, generator=g) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        y = torch.where(flip[:, None, None, None], y.flip(-1), y)
        fake = net_g(x)
        # Discriminator: real pairs (x, y) against generated pairs (x, G(x)).
        d_real = net_d(torch.cat([x, y], 1))
        d_fake = net_d(torch.cat([x, fake.detach()], 1))
        loss_d = 0.5 * (bce(d_real, torch.ones_like(d_real))
                        + bce(d_fake, torch.zeros_like(d_fake)))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        # Generator: fool D, stay near the teacher's edit.
        for p in net_d.parameters():
            p.requires_grad_(False)
        d_gen = net_d(torch.cat([x, fake], 1))
        loss_gan = bce(d_gen, torch.ones_like(d_gen))
        loss_l1 = F.l1_loss(fake, y)
        loss_g = loss_gan + LAMBDA_L1 * loss_l1
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        for p in net_d.parameters():
            p.requires_grad_(True)
        budget.iter += 1
        if budget.iter % 25 == 0:
            history.append([round(loss_d.item(), 4), round(loss_gan.item(), 4),
                            round(loss_l1.item(), 5)])
        if log and budget.iter % 200 == 0:
            print(f"[pix2pix] it {budget.iter} d {loss_d.item():.3f} gan {loss_gan.item():.3f} "
                  f"l1 {loss_l1.item():.4f} t {budget.elapsed:.0f}s", file=sys.stderr, flush=True)
        if time.monotonic() - last_ckpt > ckpt_every_s:
            save_ckpt()
            last_ckpt = time.monotonic()
    save_ckpt()
    torch.save({k: v.detach().float().cpu() for k, v in net_g.state_dict().items()},
               run / "final.pt")
    info: dict[str, Any] = {
        "model": MODEL,
        "finished": budget.iter >= iters,
        "generator": {"module": "targets.pix2pix", "class": "UnetGenerator",
                      "kwargs": generator_kwargs(ngf, size), "file": "final.pt"},
        "inference_mode": "eval",
        "inference_mode_note": "InstanceNorm without running statistics and no dropout: "
                               "train and eval modes agree, and outputs do not depend on "
                               "the batch",
        "input": {"size": [size, size], "range": [-1.0, 1.0]},
        "edit": {"name": "gender_swap", "teacher": TEACHER,
                 "teacher_label": f"own labels with {EDIT} flipped (yunjey/stargan "
                                  "create_labels)"},
        "parameters": sum(p.numel() for p in net_g.parameters()),
        "iterations": budget.iter,
        "seconds_total": round(prev_seconds + budget.elapsed, 1),
        "wall_seconds_this_run": round(time.monotonic() - t0, 1),
        "device": hardware_name(dev),
        "torch": torch.__version__,
        "seed": seed,
        "data": {"dataset": "celeba", "split": "generator", "pairs_made": pairs["made"],
                 "pairs_kept": pairs["kept"],
                 "filter": "CelebA evaluator reads the flipped Male label on the teacher's "
                           "output"},
        "config": {"batch_size": batch_size, "lr": lr, "optimizer": "Adam(0.5, 0.999)",
                   "schedule": "cosine over iterations", "iters": iters,
                   "seconds_cap": seconds, "seed": seed, "lambda_l1": LAMBDA_L1,
                   "gan_loss": "vanilla (BCE on logits)", "ngf": ngf, "ndf": ndf,
                   "discriminator": "conditional PatchGAN n_layers=3, InstanceNorm",
                   "augmentation": "horizontal flip of the pair"},
        "losses": {"every_25_d_gan_l1": history[-400:]},
        "final_losses": history[-1:] if history else [],
        "resumed_from_iteration": start_iter,
    }
    write_json(info, run / "train.json")
    return info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m targets.training.pix2pix_train",
                                description="Distil the bundled StarGAN's gender swap into a "
                                            "pix2pix U-Net.")
    add_run_options(p, seconds=1800, smoke="a few iterations on 64 faces, CPU")
    p.add_argument("--teacher", type=Path, default=None,
                   help="folder with the teacher StarGAN and CelebA evaluator (default: the "
                        "package's bundled weights)")
    p.add_argument("--export", type=Path, default=None, metavar="WEIGHTS_DIR",
                   help="then export the fp16 weights and cards into WEIGHTS_DIR (e.g. "
                        "targets/weights) and measure the edit on the test split")
    a = p.parse_args(argv)
    if not a.pack.exists():
        print(f"error: face pack {a.pack} not found", file=sys.stderr)
        return 2
    if a.export is not None:  # say so before training, not after it
        from targets.training.export import name_size

        with np.load(a.pack) as pack:
            size = int(pack["image_size"])
        if size != name_size(NAME):
            print(f"error: face pack {a.pack} is {size} px; {NAME} exports only a "
                  f"{name_size(NAME)} px run", file=sys.stderr)
            return 2
    if a.smoke:
        setup_device("cpu", threads=1)
    iters = a.iters if a.iters is not None else (4 if a.smoke else 20000)
    info = train_pix2pix(a.pack, a.out, seconds=a.seconds, iters=iters, seed=a.seed,
                         resume=a.resume, device="cpu" if a.smoke else a.device,
                         batch_size=4 if a.smoke else 16, ngf=4 if a.smoke else NGF,
                         ndf=4 if a.smoke else NDF, teacher_weights=a.teacher,
                         pair_limit=64 if a.smoke else None)
    print(json.dumps({k: info[k] for k in ("model", "iterations", "seconds_total",
                                           "final_losses")}))
    if a.export is not None:
        from targets.training.export import install

        card = install(NAME, a.out, a.pack, a.export)
        print(json.dumps({"quality": card["quality"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
