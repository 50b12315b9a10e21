"""Evaluators: small face classifiers that measure whether an edit worked.

Each is trained on the ``evaluator`` split only (never on a generator's training
images), selected on a fixed 10% of that split, and scored on the ``test`` split:

- ``celeba``: 40 CelebA attributes (multi-label); per-attribute test accuracy.
- ``utkface``: age group young (15-29) / middle (30-49) / old (50+); balanced accuracy.
- ``lfw``: George_W_Bush vs Colin_Powell; balanced accuracy.

CLI: ``python -m targets.training.evaluators --kind celeba --pack .train/faces.npz
--out DIR --seconds 120``. Writes ``DIR/evaluator_<kind>.safetensors`` (fp16, the
architecture in the file's metadata) and ``DIR/evaluator_<kind>.json``.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from targets.evaluator import build_classifier, load_evaluator
from targets.training.common import (
    Budget,
    cosine_lr,
    fp16_state_dict,
    hardware_name,
    random_affine,
    save_fp16_safetensors,
    set_lr,
    setup_device,
    write_json,
)
from targets.training.data import load_faces, stable_hash, to_unit

Kind = Literal["celeba", "utkface", "lfw"]
KINDS: tuple[str, ...] = ("celeba", "utkface", "lfw")


@torch.no_grad()
def predict(model: nn.Module, images: Tensor, batch: int = 256) -> Tensor:
    """Logits for ``images`` (uint8 ``(N,3,H,W)`` or float in ``[0,1]``), float32 on CPU."""
    outs = []
    dev = next(model.parameters()).device
    for i in range(0, images.shape[0], batch):
        x = images[i:i + batch].to(dev)
        x = to_unit(x) if x.dtype == torch.uint8 else x.float()
        outs.append(model(x).float().cpu())
    return torch.cat(outs) if outs else torch.zeros(0)


def balanced_accuracy(pred: Tensor, target: Tensor, n_classes: int) -> float:
    recalls = [(pred[target == k] == k).float().mean().item()
               for k in range(n_classes) if (target == k).any()]
    return float(sum(recalls) / max(1, len(recalls)))


def confusion(pred: Tensor, target: Tensor, n_classes: int) -> list[list[int]]:
    m = torch.zeros(n_classes, n_classes, dtype=torch.long)
    for t, p in zip(target.tolist(), pred.tolist(), strict=True):
        m[t, p] += 1
    return m.tolist()  # rows: true class, columns: predicted


def score(kind: str, logits: Tensor, labels: Tensor, label_names: list[str]) -> dict[str, object]:
    """Test metrics: per-attribute accuracy (celeba) or balanced accuracy (utkface, lfw)."""
    labels = labels.cpu()
    if kind == "celeba":
        acc = ((logits > 0).float() == labels).float().mean(0)
        per = {n: round(float(a), 4) for n, a in zip(label_names, acc, strict=True)}
        return {"n": int(labels.shape[0]), "mean_accuracy": round(float(acc.mean()), 4),
                "accuracy": per}
    pred = logits.argmax(1)
    out: dict[str, object] = {
        "n": int(labels.shape[0]),
        "balanced_accuracy": round(balanced_accuracy(pred, labels, len(label_names)), 4),
        "accuracy": round(float((pred == labels).float().mean()), 4),
        "confusion_rows_true_cols_pred": confusion(pred, labels, len(label_names)),
    }
    if kind == "utkface":  # young vs old only, deciding between those two logits
        keep = labels != 1
        yo = (logits[keep][:, 2] > logits[keep][:, 0]).long() * 2
        out["young_vs_old_balanced_accuracy"] = round(
            balanced_accuracy(yo, labels[keep], 3), 4)
    return out


def _val_mask(names: list[str]) -> Tensor:
    return torch.tensor([stable_hash("val:" + n) % 10 == 0 for n in names])


def _val_metric(kind: str, logits: Tensor, labels: Tensor) -> float:
    if kind == "celeba":
        return float(((logits > 0).float() == labels.cpu()).float().mean())
    return balanced_accuracy(logits.argmax(1), labels.cpu(), logits.shape[1])


def _jitter(x: Tensor, g: torch.Generator | None) -> Tensor:
    """Per-image brightness/contrast jitter, +-10%."""
    b = x.shape[0]
    r = torch.rand(b, 2, 1, 1, 1, device=x.device, generator=g) * 0.2 - 0.1
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x - mean) * (1 + r[:, 0]) + mean + r[:, 1]).clamp(0, 1)


DEFAULT_ITERS = {"celeba": 6000, "utkface": 4000, "lfw": 1500}


def train_evaluator(
    kind: str,
    pack: Path,
    out_dir: Path,
    *,
    seconds: float,
    max_iters: int,
    seed: int = 0,
    device: str | None = None,
    batch_size: int = 128,
    lr: float = 2e-3,
    width: int = 32,
    eval_every: int = 250,
    log: bool = True,
) -> dict[str, object]:
    """Train the ``kind`` evaluator; write weights + card into ``out_dir``; return the card."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    t0 = time.monotonic()
    dev = setup_device(device)
    torch.manual_seed(seed)
    g = torch.Generator(device=dev).manual_seed(seed)
    data = load_faces(pack, kind, "evaluator", dev)  # type: ignore[arg-type]
    test = load_faces(pack, kind, "test", dev)  # type: ignore[arg-type]
    vmask = _val_mask(data.names).to(dev)
    train_x, train_y = data.images[~vmask], data.labels[~vmask]
    val_x, val_y = data.images[vmask], data.labels[vmask]
    if train_x.shape[0] == 0:
        raise RuntimeError(f"no {kind} evaluator training images in {pack}")

    model, n_out = build_classifier(kind, width)
    model.to(dev).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    if kind == "celeba":
        loss_fn: nn.Module = nn.BCEWithLogitsLoss()
    else:  # inverse-frequency class weights, for balanced accuracy
        counts = torch.bincount(train_y, minlength=n_out).float().clamp(min=1)
        loss_fn = nn.CrossEntropyLoss(weight=(counts.sum() / counts / n_out), label_smoothing=0.05)
    use_amp = dev.type == "cuda"
    budget = Budget(seconds, max_iters)
    best: tuple[float, int, dict[str, Tensor]] | None = None
    losses: list[float] = []
    n = train_x.shape[0]
    while not budget.done():
        model.train()
        set_lr(opt, cosine_lr(lr, budget.progress()))
        idx = torch.randint(0, n, (min(batch_size, n),), device=dev, generator=g)
        x = _jitter(random_affine(to_unit(train_x[idx]), g, max_zoom=0.08, max_shift=0.06), g)
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_amp):
            logits = model(x)
        loss = loss_fn(logits.float(), train_y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        budget.iter += 1
        if budget.iter % 50 == 0:
            losses.append(round(loss.item(), 5))
        if budget.iter % eval_every == 0 or budget.done():
            model.eval()
            vx = val_x if val_x.shape[0] else train_x[:256]
            vy = val_y if val_x.shape[0] else train_y[:256]
            metric = _val_metric(kind, predict(model, vx), vy)
            if best is None or metric >= best[0]:
                best = (metric, budget.iter, copy.deepcopy(model.state_dict()))
            if log:
                print(f"[evaluator {kind}] it {budget.iter} loss {loss.item():.4f} "
                      f"val {metric:.4f} t {budget.elapsed:.0f}s", file=sys.stderr, flush=True)
    assert best is not None
    model.load_state_dict(best[2])
    model.eval()
    test_scores = score(kind, predict(model, test.images), test.labels, test.label_names)
    # The numbers that matter: what the shipped fp16 weights score.
    out_dir = Path(out_dir)
    weights = out_dir / f"evaluator_{kind}.safetensors"
    meta = {"config": json.dumps(model.config()), "label_names": json.dumps(test.label_names),
            "kind": kind}
    save_fp16_safetensors(fp16_state_dict(model), weights, meta)
    reloaded = load_evaluator(weights, dev)
    test_fp16 = score(kind, predict(reloaded, test.images), test.labels, test.label_names)
    card: dict[str, object] = {
        "kind": kind,
        "architecture": {"class": "targets.training.evaluators.FaceClassifier",
                         **model.config()},
        "parameters": sum(p.numel() for p in model.parameters()),
        "label_names": test.label_names,
        "data": {"dataset": kind, "train": "split 'evaluator' minus 10% validation",
                 "n_train": int(train_x.shape[0]), "n_val": int(val_x.shape[0]),
                 "n_test": len(test)},
        "iterations": budget.iter,
        "best_iteration": best[1],
        "val_metric": round(best[0], 4),
        "seconds": round(time.monotonic() - t0, 1),
        "train_seconds": round(budget.elapsed, 1),
        "hardware": hardware_name(dev),
        "hyper_parameters": {"batch_size": batch_size, "lr": lr, "optimizer": "AdamW wd 0.05",
                             "schedule": "cosine over max(iter/max_iters, time/seconds)",
                             "max_iters": max_iters, "seconds_cap": seconds, "seed": seed,
                             "augmentation": "flip, rotate 10deg, zoom 8%, shift 6%, "
                                             "brightness/contrast 10%"},
        "losses_every_50": losses[-200:],
        "test": test_scores,
        "test_fp16_weights": test_fp16,
    }
    write_json(card, out_dir / f"evaluator_{kind}.json")
    return card


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m targets.training.evaluators")
    p.add_argument("--kind", choices=KINDS, required=True)
    p.add_argument("--pack", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seconds", type=float, default=120)
    p.add_argument("--iters", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--smoke", action="store_true", help="a few iterations on CPU")
    a = p.parse_args(argv)
    if a.smoke:
        setup_device("cpu", threads=1)
    elif a.threads:
        torch.set_num_threads(a.threads)
    iters = a.iters if a.iters is not None else (4 if a.smoke else DEFAULT_ITERS[a.kind])
    card = train_evaluator(a.kind, a.pack, a.out, seconds=a.seconds, max_iters=iters, seed=a.seed,
                           device="cpu" if a.smoke else a.device,
                           batch_size=16 if a.smoke else 128, eval_every=2 if a.smoke else 250)
    print(json.dumps({"kind": a.kind, "test": card["test"]})[:2000])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
