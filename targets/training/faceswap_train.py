"""Train the bundled face-swap autoencoder (``faceswap.lfw64``) on LFW.

The classic deepfake recipe (deepfakes/faceswap "Original" model): one shared
encoder, one decoder per identity; each identity learns to reconstruct *its own*
faces from randomly warped copies of them (L1 loss). At use time a face of person A
decoded by B's decoder comes out as B with A's pose and expression.

Data: LFW deep-funneled, George_W_Bush and Colin_Powell, split ``generator`` only,
64x64 central face crops (see :mod:`targets.training.data`). Augmentation, all on the
device with ``affine_grid``/``grid_sample``: random rotation (+-10 deg), zoom (+-5%),
shift (+-5%), flip, giving the target; then a smooth random warp (a 5x5 grid of
random offsets, upsampled) of the target gives the input.

CLI::

    python -m targets.training.faceswap_train --pack .train/faces.npz --out DIR \
        --seconds 300 --iters 40000 --seed 0 [--resume] [--smoke]

Writes ``DIR/faceswap/ckpt.pt`` (resumable), ``DIR/faceswap/final.pt`` (fp32 state
dict) and ``DIR/faceswap/train.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from targets.faceswap import FaceSwapAutoencoder
from targets.training.common import (
    Budget,
    add_run_options,
    atomic_torch_save,
    cosine_lr,
    hardware_name,
    random_affine,
    set_lr,
    setup_device,
    write_json,
)
from targets.training.data import LFW_IDENTITIES, load_faces, to_unit

MODEL = "faceswap"
WIDTH = 24
BOTTLENECK = 128


def random_warp(x: Tensor, generator: torch.Generator | None, strength: float = 0.045) -> Tensor:
    """Smooth random warp of ``(B,C,H,W)``: a 5x5 grid of offsets (std ``strength`` in
    normalised coordinates, about 2 px at 64x64) upsampled bicubically to a flow field."""
    b, _, h, w = x.shape
    noise = torch.randn(b, 2, 5, 5, device=x.device, generator=generator) * strength
    noise[:, :, [0, -1], :] = 0  # keep the border fixed, as the original warp does
    noise[:, :, :, [0, -1]] = 0
    flow = F.interpolate(noise, size=(h, w), mode="bicubic", align_corners=True)
    theta = torch.eye(2, 3, device=x.device, dtype=x.dtype).expand(b, 2, 3)
    grid = F.affine_grid(theta, [b, 3, h, w], align_corners=False)
    grid = grid + flow.permute(0, 2, 3, 1).to(x.dtype)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def make_batch(
    per_identity: list[Tensor], half: int, g: torch.Generator | None
) -> tuple[Tensor, Tensor, Tensor]:
    """Warped inputs, targets and one-hot conditions: ``half`` faces of each identity."""
    xs, cs = [], []
    n_id = len(per_identity)
    for k, imgs in enumerate(per_identity):
        idx = torch.randint(0, imgs.shape[0], (half,), device=imgs.device, generator=g)
        xs.append(to_unit(imgs[idx]))
        cs.append(F.one_hot(torch.full((half,), k, device=imgs.device), n_id).float())
    target = random_affine(torch.cat(xs), g, max_rotate_deg=10, max_zoom=0.05, max_shift=0.05)
    return random_warp(target, g), target, torch.cat(cs)


def train_faceswap(
    pack: Path,
    out: Path,
    *,
    seconds: float,
    iters: int,
    seed: int = 0,
    resume: bool = False,
    device: str | None = None,
    batch_size: int = 64,
    lr: float = 5e-4,
    width: int = WIDTH,
    bottleneck: int = BOTTLENECK,
    ckpt_every_s: float = 60.0,
    log: bool = True,
    stop_at: int | None = None,
) -> dict[str, object]:
    """Train (or resume) and write ``out/faceswap/{ckpt.pt,final.pt,train.json}``.

    ``iters`` is the run's total (resumed iterations included) and sets the learning-rate
    schedule; ``stop_at`` ends this session earlier, as an interruption would.
    """
    t0 = time.monotonic()
    dev = setup_device(device)
    run = Path(out) / MODEL
    run.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    g = torch.Generator(device=dev).manual_seed(seed)
    gen_set = load_faces(pack, "lfw", "generator", dev)
    per_id = [gen_set.images[gen_set.labels == k] for k in range(len(LFW_IDENTITIES))]
    if any(t.shape[0] == 0 for t in per_id):
        raise RuntimeError(f"{pack}: an identity has no generator-split faces")

    model = FaceSwapAutoencoder(LFW_IDENTITIES, width=width, bottleneck=bottleneck).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.5, 0.999))
    start_iter, history, prev_seconds = 0, [], 0.0
    ckpt_path = run / "ckpt.pt"
    if resume and ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location=dev, weights_only=True)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        g.set_state(ck["rng"].cpu())
        start_iter = int(ck["iter"])
        history = [float(v) for v in ck["losses"].tolist()]
        prev_seconds = float(ck["seconds"])
        if log:
            print(f"[faceswap] resumed at iteration {start_iter}", file=sys.stderr, flush=True)

    def save_ckpt() -> None:
        atomic_torch_save({"model": model.state_dict(), "opt": opt.state_dict(),
                           "rng": g.get_state(), "iter": torch.tensor(budget.iter),
                           "losses": torch.tensor(history),
                           "seconds": torch.tensor(prev_seconds + budget.elapsed)}, ckpt_path)

    budget = Budget(seconds, iters, start_iter)
    use_amp = dev.type == "cuda"
    last_ckpt = time.monotonic()
    half = max(1, batch_size // 2)
    while not budget.done() and (stop_at is None or budget.iter < stop_at):
        # The schedule follows iterations so a resumed run continues the same curve.
        set_lr(opt, cosine_lr(lr, budget.iter / max(1, iters)))
        x_in, target, c = make_batch(per_id, half, g)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_amp):
            y = model(x_in, c)
        loss = F.l1_loss(y.float(), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        budget.iter += 1
        if budget.iter % 25 == 0:
            history.append(round(loss.item(), 5))
        if log and budget.iter % 1000 == 0:
            print(f"[faceswap] it {budget.iter} l1 {loss.item():.4f} t {budget.elapsed:.0f}s",
                  file=sys.stderr, flush=True)
        if time.monotonic() - last_ckpt > ckpt_every_s:
            save_ckpt()
            last_ckpt = time.monotonic()
    save_ckpt()
    torch.save({k: v.detach().float().cpu() for k, v in model.state_dict().items()},
               run / "final.pt")

    # Reconstruction L1 with the own decoder on unseen (test) faces, no augmentation.
    model.eval()
    test = load_faces(pack, "lfw", "test", dev)
    with torch.no_grad():
        x = to_unit(test.images)
        c = F.one_hot(test.labels, len(LFW_IDENTITIES)).float()
        test_l1 = float(F.l1_loss(model(x, c), x)) if len(test) else float("nan")
    info: dict[str, object] = {
        "model": MODEL,
        "finished": True,
        "generator": {"module": "targets.faceswap", "class": "FaceSwapAutoencoder",
                      "kwargs": model.config(), "file": "final.pt"},
        "inference_mode": "eval",
        "inference_mode_note": "no normalisation layers: train and eval modes are identical",
        "input": {"size": [64, 64], "range": [0.0, 1.0]},
        "condition": {"identities": list(LFW_IDENTITIES), "values": "one-hot: whose decoder"},
        "parameters": sum(p.numel() for p in model.parameters()),
        "iterations": budget.iter,
        "seconds_total": round(prev_seconds + budget.elapsed, 1),
        "wall_seconds_this_run": round(time.monotonic() - t0, 1),
        "device": hardware_name(dev),
        "data": {"dataset": "lfw", "split": "generator",
                 "n_per_identity": {n: int(t.shape[0]) for n, t in zip(LFW_IDENTITIES, per_id,
                                                                      strict=True)}},
        "config": {"batch_size": 2 * half, "lr": lr, "optimizer": "Adam(0.5, 0.999)",
                             "schedule": "cosine over iterations", "iters": iters,
                             "seconds_cap": seconds, "seed": seed, "loss": "L1",
                             "value_range": [0.0, 1.0],
                             "augmentation": "rotate 10deg, zoom 5%, shift 5%, flip; input: "
                                             "5x5 random warp (std 0.045)"},
        "losses": {"l1_every_25": history[-400:]},
        "test_reconstruction_l1": round(test_l1, 5),
        "resumed_from_iteration": start_iter,
    }
    write_json(info, run / "train.json")
    return info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m targets.training.faceswap_train")
    add_run_options(p, seconds=300, smoke="a few iterations on CPU")
    a = p.parse_args(argv)
    if a.smoke:
        setup_device("cpu", threads=1)
    iters = a.iters if a.iters is not None else (5 if a.smoke else 40000)
    info = train_faceswap(a.pack, a.out, seconds=a.seconds, iters=iters, seed=a.seed,
                          resume=a.resume, device="cpu" if a.smoke else a.device,
                          batch_size=8 if a.smoke else 64)
    print(json.dumps({k: info[k] for k in ("model", "iterations", "seconds_total",
                                           "test_reconstruction_l1")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
