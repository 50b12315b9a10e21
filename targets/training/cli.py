"""The command line every trainer shares (``python -m targets.training.<model>_train``):
its options, ``--set key=value`` overrides of the config, the device and the CelebA
training faces, and ``main_for`` which ties them to a trainer.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

import torch

from targets.training.common import setup_device
from targets.training.data import FaceSet, load_faces
from targets.training.gan_common import GanTrainer, subset
from targets.training.loop import RunOptions, train

#: Images the smoke mode keeps from a split.
SMOKE_IMAGES = 64


#: Default iteration count for ``--smoke`` when ``--iters`` is not given.
SMOKE_ITERS = 4


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
    lr_decay: tuple[int, int] | None = None
    fine_tune: bool = False


ConfigT = TypeVar("ConfigT")


TrainerFactory = Callable[[CliArgs, torch.device], tuple[GanTrainer, dict[str, Any]]]



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
    p.add_argument("--fine-tune", action="store_true",
                   help="continue from OUT/<model>/ckpt.pt with changed hyper-parameters "
                        "(--set); train.json records what changed and when")
    p.add_argument("--smoke", action="store_true",
                   help="tiny widths, a few iterations, CPU with one thread (a quick check)")
    p.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda', 'cuda:1', ...")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one hyper-parameter of the model's config (repeatable), "
                        "e.g. --set n_critic=5 --set batch_size=32")
    p.add_argument("--lr-decay", default=None, metavar="START:END",
                   help="learning rates fall linearly to 0 from iteration START to END "
                        "(a schedule: a resumed run may add it)")
    a = p.parse_args(argv)
    lr_decay = None
    if a.lr_decay is not None:
        start, sep, end = a.lr_decay.partition(":")
        if not (sep and start.isdigit() and end.isdigit() and int(start) < int(end)):
            p.error(f"--lr-decay takes START:END with START < END, got {a.lr_decay!r}")
        lr_decay = (int(start), int(end))
    iters = a.iters if a.iters is not None else (SMOKE_ITERS if a.smoke else 10**9)
    overrides: dict[str, str] = {}
    for item in a.overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            p.error(f"--set takes KEY=VALUE, got {item!r}")
        overrides[key.strip()] = value.strip()
    return CliArgs(a.pack, a.out, a.seconds, iters, a.seed, a.resume or a.fine_tune, a.smoke,
                   a.device, overrides, lr_decay, a.fine_tune)


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
    opts = RunOptions(out=args.out, seconds=args.seconds, iters=args.iters, resume=args.resume,
                      lr_decay=args.lr_decay, fine_tune=args.fine_tune)
    summary = train(trainer, opts, start=start, data_info=data_info)
    print(f"{model}: {summary['iterations']} iterations ({summary['it_per_s']} it/s) in "
          f"{summary['seconds_this_run']} s on {summary['device']}; "
          f"losses {summary['final_losses']}", file=sys.stderr)
    return 0
