"""How easily is each generator disrupted, and why? Ruiz et al.'s protocol plus two gains.

For each model (a bundled one, or a training snapshot), on the first ``--faces`` test
faces of its dataset in the face pack (at the model's own input size, as Ruiz et al.
attacked StarGAN at its 128 px input), seed 0:

- **Ruiz protocol, class-specific** (their main table): for each condition, I-FGSM
  with eps 0.05 and step 0.01 on the ``[-1, 1]`` scale (0.025 and 0.005 here), 10
  iterations, against that condition alone
  (:class:`~disrupt.core.objectives.AwayFromClean`), rounded to 8 bits within the
  budget and judged on that condition: disrupted when the Ruiz MSE exceeds 0.05.
- **Noise gain**: RMS of ``G(x + n, c) - G(x, c)`` over RMS of ``n``, for ``n`` a
  random +-eps sign pattern (same eps), averaged over conditions. How much a
  perturbation with no intent is amplified.
- **Adversarial gain**: the same ratio for the attack's own (rounded) perturbation.
  A model that merely passes its input through has a gain near 1; Ruiz's threshold
  needs an RMS output change of 0.112 on ``[0, 1]``, about 7.5x the RMS of a
  6.4/255 sign pattern (0.025).
- **Output detail**: mean absolute Laplacian of ``G(x, c)`` over that of ``x``: below
  1, the output is smoother than the photo it came from.

Snapshots come from a training run (``benchmarks/attgan_arms.sh`` keeps the
generator at milestones as ``g_<iterations>.pt`` beside ``train_<iterations>.json``);
with ``--quality`` each snapshot's edit success is measured too, by the bundled
evaluator on the whole test split (:mod:`targets.training.quality`).

Run::

    python benchmarks/generator_robustness.py --pack PACK96 --bundled attgan.celeba96 \\
        [--bundled stargan.celeba96 ...] [--snapshot attgan.celeba96=RUN/snapshots/g_10500.pt] \\
        [--quality] --faces 50 --out benchmarks/results/generator_robustness.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor

from attacks import create_attack
from disrupt.core.objectives import AwayFromClean
from disrupt.core.rounding import quantize_within
from disrupt.eval.evaluation import target_outputs
from disrupt.eval.metrics import ruiz_mse
from targets.base import Target
from targets.bundled import load_bundled
from targets.training.data import Dataset, load_faces, to_unit
from targets.training.export import MODELS

EPS = 0.025  # Ruiz et al.'s 0.05 on [-1, 1]
ALPHA = 0.005  # their step 0.01 on [-1, 1]
STEPS = 10
THRESHOLD = 0.05
DATASET = {name: info["dataset"] for name, info in MODELS.items()}
WEIGHTS = Path(__file__).resolve().parents[1] / "targets" / "weights"


def _rms(t: Tensor) -> Tensor:
    """Per-image RMS over ``(C, H, W)``: ``(B,)``."""
    return t.flatten(1).pow(2).mean(1).sqrt()


def _laplacian_energy(x: Tensor) -> Tensor:
    """Mean absolute 3x3 Laplacian per image: ``(B, 3, H, W)`` -> ``(B,)``."""
    k = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
    k = k.expand(x.shape[1], 1, 3, 3).to(x)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k, groups=x.shape[1]).abs() \
        .flatten(1).mean(1)


def robustness(target: Target, x: Tensor, seed: int = 0) -> dict[str, Any]:
    """The module docstring's measurements of ``target`` on faces ``x`` ``(B, 3, h, w)``."""
    clean = target_outputs(target, x)  # (K, B, 3, h, w)
    g = torch.Generator().manual_seed(seed)
    noise = (torch.randint(0, 2, x.shape, generator=g).to(x) * 2 - 1) * EPS
    noisy = target_outputs(target, (x + noise).clamp(0, 1))
    attack = create_attack("ifgsm", eps=EPS, alpha=ALPHA, steps=STEPS)
    per_condition: list[dict[str, Any]] = []
    for k, cond in enumerate(target.conditions):
        objective = AwayFromClean(target, x, conditions=[cond])
        adv = attack(x, objective, generator=torch.Generator().manual_seed(seed))
        adv = quantize_within(adv, x, EPS, "linf")
        with torch.no_grad():
            y_adv = objective.outputs(adv)[0]
        mse = ruiz_mse(y_adv, clean[k])
        per_condition.append({
            "condition": cond.name,
            "disrupted": float((mse > THRESHOLD).float().mean()),
            "mean_ruiz_mse": float(mse.mean()),
            "adversarial_gain": float((_rms(y_adv - clean[k]) / _rms(adv - x)).mean()),
            "noise_gain": float((_rms(noisy[k] - clean[k]) / _rms(noise)).mean()),
            "output_detail": float((_laplacian_energy(clean[k]) / _laplacian_energy(x)).mean()),
        })
    n = len(per_condition)
    mean = {key: sum(float(c[key]) for c in per_condition) / n
            for key in ("disrupted", "mean_ruiz_mse", "adversarial_gain", "noise_gain",
                        "output_detail")}
    return {**mean, "conditions": per_condition}


def snapshot_weights(name: str, g_path: Path, workdir: Path) -> Path:
    """Export training snapshot ``g_<N>.pt`` (+ ``train_<N>.json``) as a bundled-style
    weights folder (fp16 safetensors, card, the dataset's evaluator) under ``workdir``."""
    from targets.training.export import MODELS, export_generator

    suffix = g_path.stem.removeprefix("g_")
    run = workdir / "run"
    model_dir = run / MODELS[name]["run"]
    model_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(g_path, model_dir / "final.pt")
    shutil.copy(g_path.with_name(f"train_{suffix}.json"), model_dir / "train.json")
    weights = workdir / "weights"
    weights.mkdir(exist_ok=True)
    # A study may follow a run at another size (a 96 or 128 px AttGAN) under the
    # 64 px model's name: the folder is scratch, so the name's size is not enforced.
    export_generator(name, run, weights, check_size=False)
    evaluator = f"evaluator_{DATASET[name]}"
    for ext in (".json", ".safetensors", ".md"):
        if (WEIGHTS / f"{evaluator}{ext}").exists():
            shutil.copy(WEIGHTS / f"{evaluator}{ext}", weights / f"{evaluator}{ext}")
    return weights


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pack", type=Path, required=True, help="face pack .npz (64 px)")
    parser.add_argument("--bundled", action="append", default=[], help="bundled model name")
    parser.add_argument("--snapshot", action="append", default=[],
                        help="NAME=PATH/g_<N>.pt, a training snapshot of bundled model NAME")
    parser.add_argument("--faces", type=int, default=50)
    parser.add_argument("--quality", action="store_true",
                        help="also measure each snapshot's edit success (whole test split)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--keep-weights", type=Path, default=None, metavar="DIR",
                        help="keep each snapshot's exported weights folder (fp16 safetensors "
                        "and card) as DIR/<run>_<snapshot>, loadable as weights=PATH")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="JSON results (appended to)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    jobs: list[tuple[str, str, Path | None]] = [(n, n, None) for n in args.bundled]
    for item in args.snapshot:
        name, _, path = item.partition("=")
        jobs.append((name, f"{name}@{Path(path).parent.parent.name}/{Path(path).stem}",
                     Path(path)))
    faces: dict[str, Tensor] = {}
    rows = []
    for name, label, g_path in jobs:
        dataset = DATASET[name]
        if dataset not in faces:
            faces[dataset] = to_unit(load_faces(args.pack, cast(Dataset, dataset), "test")
                                     .images[:args.faces])
        with tempfile.TemporaryDirectory() as tmp:
            weights = None if g_path is None else snapshot_weights(name, g_path, Path(tmp))
            if weights is not None and args.keep_weights is not None:
                assert g_path is not None
                kept = args.keep_weights / f"{g_path.parent.parent.name}_{g_path.stem}"
                shutil.rmtree(kept, ignore_errors=True)
                weights = Path(shutil.copytree(weights, kept))
            target = load_bundled(name, weights)
            start = time.perf_counter()
            row: dict[str, Any] = {"model": label, **robustness(target, faces[dataset], args.seed)}
            row["seconds"] = round(time.perf_counter() - start, 1)
            if weights is not None:
                card = json.loads((weights / f"{name.replace('.', '_')}.json").read_text())
                row["iterations"] = card["training"]["iterations"]
                row["hyper_parameters"] = card["training"]["hyper_parameters"]
                if args.quality:
                    from targets.training.quality import measure
                    q = measure(name, weights, args.pack)
                    row["quality"] = {k: v for k, v in q.items() if not isinstance(v, dict)}
        rows.append(row)
        quality = row.get("quality", {}).get("mean_success")
        print(f"{label}: Ruiz protocol {row['disrupted'] * 100:.1f}% disrupted "
              f"(mean Ruiz MSE {row['mean_ruiz_mse']:.4f}), adversarial gain "
              f"{row['adversarial_gain']:.2f}, noise gain {row['noise_gain']:.2f}, "
              f"output detail {row['output_detail']:.2f}"
              + (f", edit success {quality:.3f}" if quality is not None else "")
              + f" ({row['seconds']:.0f} s)", flush=True)
    if args.out:
        old = json.loads(args.out.read_text()) if args.out.exists() else {"runs": []}
        old["runs"].append({"command": " ".join(["python", *sys.argv]),
                            "commit": _commit(), "threads": args.threads, "faces": args.faces,
                            "protocol": {"attack": "ifgsm", "eps": EPS, "alpha": ALPHA,
                                         "steps": STEPS, "objective": "specific",
                                         "threshold": THRESHOLD},
                            "rows": rows})
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(old, indent=2))


if __name__ == "__main__":
    main()
