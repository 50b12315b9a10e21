"""Probe: what the seven-box crop family and the crop jitter cost on whole photos.

Through ``protect(crops="canonical" | "family")`` (this probe first patched
``disrupt.core.pipeline.crop_boxes``, before the option existed; it gives the same
table). StarGAN alone, without EOT or perceptual shaping,
on the photos of ``benchmarks/redetection.py`` (4 LFW frames and the README's
astronaut); Ruiz MSE through the canonical crop of the box attacked and of the face
re-detected on the protected photo. Prints one markdown row per setting: disrupted
rate (mean Ruiz MSE).

Run: python benchmarks/crop_family_probe.py | tee benchmarks/results/crop_family_probe.md
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from disrupt import protect
from disrupt.core.crops import crop_resize
from disrupt.core.faces import CANONICAL_CROP, Box, crop_boxes
from disrupt.eval.evaluation import measure_disruption
from disrupt.imaging.load import load_image
from targets import load_target
from targets.training.data import LFW_IDENTITIES

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    torch.set_num_threads(1)
    stargan = [load_target("stargan.celeba96")]
    lfw = ROOT.parent / "shared" / "data" / "lfw"
    files = sorted(p for ident in LFW_IDENTITIES for p in (lfw / ident).glob("*.jpg"))
    photos = files[::max(1, len(files) // 4)][:4] + [ROOT / "examples" / "astronaut.png"]
    print("| StarGAN alone, no perceptual, no EOT | box attacked | box re-detected |")
    print("|---|---|---|")
    for boxes, crops in (("canonical box", "canonical"), ("family boxes", "family")):
        for jitter in (False, True):
            own: list[float] = []
            seen: list[float] = []
            for path in photos:
                x = load_image(path).rgb
                r = protect(x, seed=0, targets=stargan, eot=False, perceptual=False,
                            crop_jitter=jitter, crops=crops)
                size = (x.shape[-2], x.shape[-1])
                for face, acc in ((r.faces[0], own), (r.measured_faces[0], seen)):
                    b = crop_boxes(Box(*face), size, [CANONICAL_CROP])[0]
                    rows = measure_disruption(stargan, crop_resize(x, b, (64, 64)),
                                              crop_resize(r.image, b, (64, 64)), seed=0)[0]
                    acc.extend(d.ruiz_mse for d in rows)

            def cell(v: list[float]) -> str:
                return f"{np.mean([m > 0.05 for m in v]) * 100:.0f}% ({np.mean(v):.3f})"

            print(f"| {boxes}, jitter {'on' if jitter else 'off'} | {cell(own)} | "
                  f"{cell(seen)} |", flush=True)


if __name__ == "__main__":
    main()
