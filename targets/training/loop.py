"""The training loop every GAN trainer shares: timed, checkpointed about once a minute,
resumable, logging losses, and writing ``final.pt`` (fp32) and ``train.json`` at the end.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from targets.training.common import atomic_torch_save, hardware_name, write_json
from targets.training.gan_common import GanTrainer

#: Seconds between two periodic checkpoints.
SAVE_INTERVAL_S = 60.0


#: Seconds between two loss records in ``train.json``'s history.
LOG_INTERVAL_S = 10.0


#: Seconds kept free at the end of ``--seconds`` for writing the final files.
FINAL_RESERVE_S = 3.0


@dataclass(frozen=True)
class RunOptions:
    """Where and how long to train (the command line, minus the model's own settings)."""

    out: Path
    seconds: float
    iters: int
    resume: bool = False
    save_interval_s: float = SAVE_INTERVAL_S
    log_interval_s: float = LOG_INTERVAL_S
    #: ``(start, end)``: every learning rate falls linearly from its value at ``start``
    #: to 0 at ``end`` iterations, as the official StarGAN and AttGAN end their runs.
    #: A schedule, not a hyper-parameter: a resumed run may add one.
    lr_decay: tuple[int, int] | None = None
    #: With ``resume``: continue although this run's hyper-parameters differ from the
    #: checkpoint's (a loss weight, say; the networks' and optimizers' shapes must
    #: match). What changed, and at which iteration, goes into ``config_changes``.
    #: Optimizer settings (learning rates, betas) come back with the optimizers' saved
    #: state, so changing them this way has no effect: use ``lr_decay`` for the rate.
    fine_tune: bool = False


def lr_factor(iteration: int, decay: tuple[int, int] | None) -> float:
    """The share of the base learning rate at ``iteration`` under ``decay`` (1 before it)."""
    if decay is None or iteration < decay[0]:
        return 1.0
    start, end = decay
    return max(0.0, (end - iteration) / (end - start))


def _apply_lr(optims: Mapping[str, torch.optim.Optimizer], factor: float) -> None:
    # The base rate is kept in the param group, so it survives a checkpoint round trip.
    for opt in optims.values():
        for group in opt.param_groups:
            group["lr"] = group.setdefault("base_lr", group["lr"]) * factor


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


def _config_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, list[Any]]:
    """``{key: [old value, new value]}`` for every hyper-parameter that differs."""
    return {k: [old.get(k), new.get(k)] for k in sorted({*old, *new}) if old.get(k) != new.get(k)}


def train(trainer: GanTrainer, opts: RunOptions, *, start: float | None = None,
          data_info: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Train until ``opts.iters`` iterations in total or ``opts.seconds`` of wall clock.

    ``start`` is the ``time.monotonic()`` from which ``opts.seconds`` counts (default:
    now); the loop stops :data:`FINAL_RESERVE_S` early to leave time for the final
    files. Writes ``opts.out/<name>/ckpt.pt`` every ``opts.save_interval_s`` and at
    the end, then ``final.pt`` (and any other :meth:`GanTrainer.exports`) and
    ``train.json``. With ``opts.resume`` and an existing ``ckpt.pt``, continues from it
    (its hyper-parameters must equal the trainer's unless ``opts.fine_tune``). Returns
    the ``train.json`` dict.
    """
    t0 = time.monotonic() if start is None else start
    run_dir = opts.out / trainer.name
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = run_dir / "ckpt.pt"
    history: list[dict[str, Any]] = []
    config_changes: list[dict[str, Any]] = []
    seconds_before = 0.0
    resumed_from = 0
    if opts.resume and ckpt_path.exists():
        saved = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        changed = _config_diff(saved["config"], trainer.config())
        if changed and not opts.fine_tune:
            raise SystemExit(
                f"{ckpt_path}: saved hyper-parameters differ from this run's "
                f"({', '.join(sorted(changed))}); start without --resume, use the same "
                "settings, or --fine-tune to continue with the new ones"
            )
        trainer.load_state_dict(saved["trainer"])
        history = list(saved["history"])
        seconds_before = float(saved["seconds_total"])
        resumed_from = trainer.iteration
        config_changes = list(saved.get("config_changes", []))
        if changed:
            config_changes.append({"iteration": resumed_from, "changed": changed})

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
            "lr_decay": list(opts.lr_decay) if opts.lr_decay else None,
            "config_changes": config_changes,
            "data": dict(data_info or {}),
            "final_losses": last_losses,
            "history": history,
        }
        atomic_torch_save({"config": trainer.config(), "trainer": trainer.state_dict(),
                           "history": history, "seconds_total": summary["seconds_total"],
                           "config_changes": config_changes}, ckpt_path)
        write_json(summary, run_dir / "train.json")
        return summary

    if opts.lr_decay is not None and not 0 <= opts.lr_decay[0] < opts.lr_decay[1]:
        raise ValueError(f"lr_decay {opts.lr_decay}: need 0 <= start < end")
    while trainer.iteration < opts.iters and time.monotonic() < deadline:
        if opts.lr_decay is not None:
            _apply_lr(trainer.optims, lr_factor(trainer.iteration, opts.lr_decay))
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
