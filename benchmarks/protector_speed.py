"""The amortized protector against the full attack on one photo: seconds, disruption and
visibility, side by side in one process.

    python benchmarks/protector_speed.py [--image examples/astronaut.png] [--center-crop]
        [--refine 5] [--repeats 10] [--threads 1] [--no-full] [--out RESULTS.json]

Modes: the default ``protect`` (the full iterative attack), ``protect(protector=
"bundled")`` (``disrupt protect --fast``: one forward pass), and the forward pass
plus ``--refine`` attack steps. For each: the wall time of the ``protect()`` call
(face detection, the perturbation, 8-bit rounding and the measurement of every model
on the result), the time of the perturbation alone (the full attack's
:func:`~disrupt.core.pipeline.perturb`; the protector's forward pass and budget fit,
best of ``--repeats``), the disrupted fraction per model as saved and after JPEG 75,
and the visibility over the changed region.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from disrupt import protect
from disrupt.api import ProtectResult, default_targets
from disrupt.bench.report import environment
from disrupt.core.budget import Budget, resolve_budget
from disrupt.core.masking import texture_caps
from disrupt.core.pipeline import (
    Plan,
    amortized_protection,
    evaluation_targets,
    perturb,
    plan_protection,
)
from disrupt.core.protector import PerturbationNet, load_protector
from disrupt.eval.channels import parse_channel
from disrupt.eval.evaluation import measure_disruption
from disrupt.imaging import load_image
from disrupt.imaging.pixels import center_box
from targets import Target, load_target

ROOT = Path(__file__).resolve().parents[1]


def _rates(targets: list[Target], x: Tensor, result: ProtectResult) -> dict[str, dict[str, float]]:
    """Disrupted fraction per model through the faces' canonical crops, as saved and
    after JPEG 75 (applied to both images)."""
    plan = plan_protection(x, targets)
    views = evaluation_targets(targets, plan)
    out: dict[str, dict[str, float]] = {}
    for name in ("none", "jpeg:75"):
        channel = parse_channel(name)
        rows = measure_disruption(views, channel(x), channel(result.image), seed=0)[0]
        per: dict[str, list[float]] = {}
        for d in rows:
            per.setdefault(d.target.split("@")[0], []).append(float(d.disrupted))
        out[name] = {k: sum(v) / len(v) for k, v in per.items()}
    return out


def _forward_seconds(x: Tensor, net: PerturbationNet, plan: Plan, budget: Budget) -> float:
    """One forward pass with its budget: texture caps, network, high-pass and fit."""
    t0 = time.perf_counter()
    attack = budget.attack_for(3 * plan.protected_pixels)
    r = plan.region
    cap = attack.linf_cap if isinstance(attack.linf_cap, float) else attack.eps
    running = replace(attack, linf_cap=texture_caps(x[..., r.top : r.bottom, r.left : r.right],
                                                    cap))
    amortized_protection(x, net, plan, running, perceptual=True)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, default=ROOT / "examples" / "astronaut.png")
    parser.add_argument("--refine", type=int, default=5, help="refinement steps of the third mode")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--center-crop", action="store_true",
                        help="use the central square (CelebA's CenterCrop, as the face benchmarks)")
    parser.add_argument("--full", default=True, action=argparse.BooleanOptionalAction,
                        help="also run the full attack (minutes on a large photo)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = default_targets()
    targets = [load_target(n) for n in names]
    x = load_image(args.image).rgb
    if args.center_crop:
        h, w = x.shape[-2:]
        left, top, right, bottom = center_box(w, h, min(w, h))
        x = x[..., top:bottom, left:right].contiguous()
    net = load_protector("bundled")
    modes: dict[str, dict[str, Any]] = {"full attack (default)": {}} if args.full else {}
    modes |= {"protector, forward pass (--fast)": {"protector": net},
             f"protector + {args.refine} steps (--fast --steps {args.refine})":
                 {"protector": net, "steps": args.refine}}
    results: dict[str, dict[str, Any]] = {}
    plan = plan_protection(x, targets)
    for label, options in modes.items():
        start = time.perf_counter()
        result = protect(x, targets=targets, seed=0, **options)
        wall = time.perf_counter() - start
        steps = options.get("steps")
        budget = resolve_budget("mid", protector="protector" in options,
                                steps=steps if isinstance(steps, int) else None)
        if "protector" in options and not steps:
            perturb_seconds = min(_forward_seconds(x, net, plan, budget)
                                  for _ in range(args.repeats))
        else:
            t0 = time.perf_counter()
            perturb(x, targets, budget, plan, seed=0,
                    protector=net if "protector" in options else None,
                    refine_steps=steps if isinstance(steps, int) else 0)
            perturb_seconds = time.perf_counter() - t0
        results[label] = {
            "protect_seconds": wall, "perturbation_seconds": perturb_seconds,
            "disrupted": _rates(targets, x, result),
            "region_perceptibility": result.region_perceptibility,
            "faces": result.faces, "face_status": result.face_status,
        }
        print(f"{label}: protect() {wall:.2f} s, perturbation {perturb_seconds:.3f} s, "
              f"{json.dumps(results[label]['disrupted'])}", flush=True)
    fast = results["protector, forward pass (--fast)"]["perturbation_seconds"]
    full = results["full attack (default)"]["perturbation_seconds"] if args.full else math.nan
    summary = {"image": str(args.image.relative_to(ROOT) if args.image.is_relative_to(ROOT)
                            else args.image),
               "size": list(x.shape[-2:]), "center_crop": args.center_crop,
               "targets": names, "strength": "mid",
               "threshold": "Ruiz MSE > 0.05 on [-1,1]", "modes": results,
               "speedup_forward_vs_full_attack": float(full) / float(fast),
               "environment": environment(0, torch.device("cpu")),
               "note": "2-core machine shared with other jobs while measuring"}
    if args.full:
        print(f"forward pass {summary['speedup_forward_vs_full_attack']:.0f}x faster than the "
              "full attack's perturbation")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
