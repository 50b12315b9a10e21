"""Why the default protection fails on whole photos: the manipulator finds the face again.

On a whole photo, ``protect`` detects the face, attacks the crops around that box, and
(like ``disrupt verify`` and any real manipulator) *measures* through the face detected
again on the protected photo. That box lands a few pixels away from the first one.
This benchmark measures each bundled model's Ruiz MSE both ways, so the loss can be
seen and blamed:

- ``own box``: through the canonical crop of the face found on the *input* (the
  box the attack aimed at);
- ``re-detected``: through the canonical crop of the face found on the *protected*
  photo (what ``protect`` reports and a manipulator gets).

A third figure, ``held-out crops``, is StarGAN through 3 crops per photo drawn around
the re-detected face's canonical crop from the distribution a manipulator's own
alignment might cut (:data:`~disrupt.core.crops.HELD_OUT_JITTER`: scale +-10%, shift
+-5%, turned up to 3 degrees), with a seed the attack never used. A fourth,
``other crops``, is StarGAN through the six other crops of the
:data:`~disrupt.core.faces.CROP_FAMILY` around the re-detected face (tighter, wider,
shifted): crops a manipulator with another alignment might take.

Variants (all with the default budget unless named): the default (the canonical crop
alone), with ``--crop-jitter`` (attack through crops drawn around each box at every
step), StarGAN alone, and at other PSNR floors (its trade-off curve);
``crops="family"`` (the seven-box family, the default before 2026-12-02); then, with
family and jitter, without the perceptual shaping, without EOT, and StarGAN alone.
Photos: LFW deep-funneled frames (250x250, every k-th of the sorted Bush/Powell files)
and the README's astronaut.

Run: python benchmarks/redetection.py [--data ../shared/data] [--lfw 4]
         [--variant NAME ...] [--attack-jitter SCALE SHIFT]
         [--out benchmarks/results/redetection.json]
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

from disrupt import protect
from disrupt.bench.report import environment
from disrupt.core import pipeline
from disrupt.core.crops import HELD_OUT_JITTER, CropJitter, CropTarget, crop_resize
from disrupt.core.faces import CANONICAL_CROP, CROP_FAMILY, Box, crop_boxes
from disrupt.eval.evaluation import measure_disruption
from disrupt.imaging.load import load_image
from targets import Target, load_target
from targets.training.data import LFW_IDENTITIES

HERE = Path(__file__).resolve().parents[1]
FAMILY: dict[str, Any] = {"crops": "family"}
VARIANTS: dict[str, dict[str, Any]] = {
    "default (canonical crop)": {},
    "canonical crop, plain mean (the default before 2026-12-02)": {"objective": "mean"},
    "canonical crop, jitter": {"crop_jitter": True},
    "canonical crop, StarGAN alone": {"targets": ["stargan.celeba96"]},
    "canonical crop, PSNR >= 30 dB": {"psnr": 30.0},
    "canonical crop, PSNR >= 36 dB": {"psnr": 36.0},
    "canonical crop, PSNR >= 40 dB": {"psnr": 40.0},
    "family": FAMILY,
    "family, jitter": {**FAMILY, "crop_jitter": True},
    "family, jitter, no perceptual": {**FAMILY, "crop_jitter": True, "perceptual": False},
    "family, jitter, no EOT": {**FAMILY, "crop_jitter": True, "eot": False},
    "family, jitter, no perceptual, no EOT": {**FAMILY, "crop_jitter": True,
                                              "perceptual": False, "eot": False},
    "family, jitter, no perceptual, no EOT, StarGAN alone": {
        **FAMILY, "crop_jitter": True, "perceptual": False, "eot": False,
        "targets": ["stargan.celeba96"]},
}


def canonical(face: tuple[int, int, int, int], size: tuple[int, int]) -> Box:
    return crop_boxes(Box(*face), size, [CANONICAL_CROP])[0]


def measure(models: list[Target], x: torch.Tensor, protected: torch.Tensor, box: Box,
            seed: int) -> dict[str, list[float]]:
    """Ruiz MSE per model and condition through ``box``'s 64x64 crop."""
    rows = measure_disruption(models, crop_resize(x, box, (64, 64)),
                              crop_resize(protected, box, (64, 64)), seed=seed)[0]
    out: dict[str, list[float]] = {}
    for d in rows:
        out.setdefault(d.target, []).append(d.ruiz_mse)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=HERE.parent / "shared" / "data")
    parser.add_argument("--lfw", type=int, default=4, help="LFW frames")
    parser.add_argument("--variant", action="append", choices=list(VARIANTS), default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--attack-jitter", type=float, nargs=2, default=None,
                        metavar=("SCALE", "SHIFT"),
                        help="the crops the jitter variants attack through "
                        "(disrupt.core.pipeline.ATTACK_JITTER; default 0.10 0.05)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.attack_jitter is not None:
        pipeline.ATTACK_JITTER = CropJitter(*args.attack_jitter)
    torch.set_num_threads(1)
    files = sorted(p for ident in LFW_IDENTITIES for p in (args.data / "lfw" / ident).glob("*.jpg"))
    step = max(1, len(files) // max(1, args.lfw))
    photos = files[::step][:args.lfw] + [HERE / "examples" / "astronaut.png"]
    names = ["stargan.celeba96", "attgan.celeba96", "cyclegan.utkface64", "faceswap.lfw64"]
    models = [load_target(n) for n in names]  # loaded once, for every measurement
    stargan = models[0]
    results: dict[str, Any] = {"photos": [p.name for p in photos], "variants": {},
                               "command": " ".join(["python", *sys.argv]),
                               "attack_jitter": [pipeline.ATTACK_JITTER.scale,
                                                 pipeline.ATTACK_JITTER.shift],
                               "environment": environment(args.seed, torch.device("cpu")),
                               "threshold": "Ruiz MSE > 0.05 on [-1, 1]"}
    for variant in args.variant or list(VARIANTS):
        per: dict[str, dict[str, list[float]]] = {"own box": {}, "re-detected": {},
                                                  "held-out crops": {}, "other crops": {}}
        held_out = torch.Generator().manual_seed(args.seed + 1000)
        seconds, psnr = [], []
        for path in photos:
            x = load_image(path).rgb
            start = time.perf_counter()
            r = protect(x, seed=args.seed, **VARIANTS[variant])
            seconds.append(time.perf_counter() - start)
            psnr.append(r.region_perceptibility["psnr"])
            if not r.faces or not r.measured_faces:
                print(f"{path.name}: no face ({r.face_status}); skipped", flush=True)
                continue
            size = (x.shape[-2], x.shape[-1])
            for where, face in (("own box", r.faces[0]), ("re-detected", r.measured_faces[0])):
                for n, v in measure(models, x, r.image, canonical(face, size), args.seed).items():
                    per[where].setdefault(n, []).extend(v)
            alternatives = [b for b in crop_boxes(Box(*r.measured_faces[0]), size, CROP_FAMILY)
                      if b != canonical(r.measured_faces[0], size)]
            draws = [HELD_OUT_JITTER.draw_tilted(canonical(r.measured_faces[0], size), size,
                                                 held_out) for _ in range(3)]
            views = [CropTarget(stargan, b, name=stargan.name, angle=a) for b, a in draws]
            per["held-out crops"].setdefault(stargan.name, []).extend(
                d.ruiz_mse for d in measure_disruption(views, x, r.image, seed=args.seed)[0])
            for b in alternatives:
                v = measure([stargan], x, r.image, b, args.seed)["stargan.celeba96"]
                per["other crops"].setdefault("stargan.celeba96", []).extend(v)
            print(f"{variant} | {path.name}: faces {r.faces} -> {r.measured_faces}, "
                  f"{seconds[-1]:.0f}s", flush=True)
        row = {where: {n: {"mean_ruiz_mse": float(np.mean(v)),
                           "disrupted": float(np.mean([m > 0.05 for m in v])), "n": len(v)}
                       for n, v in models.items()}
               for where, models in per.items()}
        results["variants"][variant] = {**row, "region_psnr": float(np.mean(psnr)),
                                        "seconds_per_photo": float(np.mean(seconds))}
    print("\n| variant | StarGAN own box | StarGAN re-detected | StarGAN held-out crops "
          "| StarGAN other crops | other models re-detected (max mean MSE) | region PSNR "
          "| s/photo |")
    print("|---|---|---|---|---|---|---|---|")
    for variant, row in results["variants"].items():
        own, seen = row["own box"]["stargan.celeba96"], row["re-detected"]["stargan.celeba96"]
        far = row["other crops"]["stargan.celeba96"]
        near = row["held-out crops"]["stargan.celeba96"]
        others = max((v["mean_ruiz_mse"] for n, v in row["re-detected"].items()
                      if n != "stargan.celeba96"), default=float("nan"))
        print(f"| {variant} | {own['disrupted'] * 100:.0f}% ({own['mean_ruiz_mse']:.3f}) | "
              f"{seen['disrupted'] * 100:.0f}% ({seen['mean_ruiz_mse']:.3f}) | "
              f"{near['disrupted'] * 100:.0f}% ({near['mean_ruiz_mse']:.3f}) | "
              f"{far['disrupted'] * 100:.0f}% ({far['mean_ruiz_mse']:.3f}) | {others:.4f} | "
              f"{row['region_psnr']:.1f} dB | {row['seconds_per_photo']:.0f} |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
