"""Face detectors against the crops the bundled models were trained on.

A protection is attacked through the crop a manipulator would cut around the face;
the closer our predicted crop is to that one, the less the budget is spread. The
bundled models' own crops are known exactly, so each detector can be scored on how
well it predicts them (``disrupt.core.faces`` for the Haar cascades,
``disrupt.core.landmarks`` for dlib's landmarks, which needs the ``landmarks`` extra):

- ``celeba``: the 89x109 aligned image; StarGAN/AttGAN crop its central 89x89 box
  (:data:`~disrupt.core.faces.CANONICAL_CROP`);
- ``utkface``: the 200x200 frame (age >= 15), which the CycleGAN takes whole
  (``CropSpec(1.25, 0, 0.09)``);
- ``lfw``: the 250x250 frame, whose central 116 px box the face swap takes
  (``CropSpec(1.05)``).

Each image is centred on a mid-grey canvas twice its size, so no predicted crop is
clipped by the frame. Reported per detector and set: faces found (as given and after
JPEG 75), the intersection over union (IoU) of the predicted crop with the true one,
its centre error and scale error (in true-crop sides), and seconds per image.

``--fit`` instead fits :data:`disrupt.core.landmarks.EYES_TO_HAAR_BOX` on the
*generator* split: for each face, the eye-frame box that makes the set's crop spec
reproduce the true crop exactly; the medians are printed.

Run: python benchmarks/face_detectors.py [--per-set 60] [--fit] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import io
import json
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor

from disrupt.core.faces import CANONICAL_CROP, Box, CropSpec, crop_boxes, detect_faces
from disrupt.core.landmarks import (
    EYES_TO_HAAR_BOX,
    FaceLandmarks,
    detect_landmarks,
    landmark_box,
    landmarks_available,
)
from disrupt.imaging.pixels import from_pil
from targets.training.data import LFW_CROP, LFW_IDENTITIES, MIN_AGE, split_of

SPECS = {"celeba": CANONICAL_CROP, "utkface": CropSpec(1.25, 0.0, 0.09),
         "lfw": CropSpec(1.05, 0.0, 0.0)}


@dataclass(frozen=True)
class Sample:
    set: str
    name: str
    image: Tensor  # (1, 3, H, W) on its canvas
    truth: Box  # the model's crop, in canvas pixels


def _spread(items: Sequence[str], n: int) -> list[str]:
    if n >= len(items):
        return list(items)
    return [items[(2 * i + 1) * len(items) // (2 * n)] for i in range(n)]


def _on_canvas(path: Path, crop: tuple[int, int, int, int]) -> tuple[Tensor, Box]:
    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        canvas = Image.new("RGB", (2 * w, 2 * h), (128, 128, 128))
        canvas.paste(im, (w // 2, h // 2))
    left, top, right, bottom = crop
    return from_pil(canvas), Box(left + w // 2, top + h // 2, right + w // 2, bottom + h // 2)


def samples(data: Path, split: str, per_set: int) -> list[Sample]:
    out: list[Sample] = []
    celeba = sorted(p.name for p in (data / "celeba10k" / "images").glob("*.jpg")
                    if split_of("celeba", p.name) == split)
    for name in _spread(celeba, per_set):
        image, truth = _on_canvas(data / "celeba10k" / "images" / name, (0, 10, 89, 99))
        out.append(Sample("celeba", name, image, truth))
    ages = {}
    for line in (data / "utkface" / "labels.csv").read_text().splitlines()[1:]:
        fields = line.split(",")
        ages[fields[0]] = int(fields[1])
    utk = sorted(n for n, a in ages.items() if a >= MIN_AGE and split_of("utkface", n) == split
                 and (data / "utkface" / "images" / n).exists())
    for name in _spread(utk, per_set):
        image, truth = _on_canvas(data / "utkface" / "images" / name, (0, 0, 200, 200))
        out.append(Sample("utkface", name, image, truth))
    lfw = sorted(str(p.relative_to(data / "lfw")) for ident in LFW_IDENTITIES
                 for p in (data / "lfw" / ident).glob("*.jpg") if split_of("lfw", p.name) == split)
    lo = (250 - LFW_CROP) // 2
    for name in _spread(lfw, per_set):
        image, truth = _on_canvas(data / "lfw" / name, (lo, lo, lo + LFW_CROP, lo + LFW_CROP))
        out.append(Sample("lfw", name, image, truth))
    return out


def jpeg(x: Tensor, quality: int) -> Tensor:
    buf = io.BytesIO()
    Image.fromarray((x[0].permute(1, 2, 0).numpy() * 255).round().astype("uint8")).save(
        buf, "JPEG", quality=quality)
    with Image.open(buf) as im:
        return from_pil(im)


def iou(a: Box, b: Box) -> float:
    iw = min(a.right, b.right) - max(a.left, b.left)
    ih = min(a.bottom, b.bottom) - max(a.top, b.top)
    if iw <= 0 or ih <= 0:
        return 0.0
    return iw * ih / (a.width * a.height + b.width * b.height - iw * ih)


def haar_face(x: Tensor) -> Box | None:
    found = detect_faces(x)
    return found[0] if found else None


def dlib_face(x: Tensor) -> Box | None:
    found = detect_landmarks(x)
    return landmark_box(found[0], (x.shape[-2], x.shape[-1])) if found else None


def score(detector: Callable[[Tensor], Box | None], items: list[Sample]) -> dict[str, dict]:
    table: dict[str, dict] = {}
    for set_name in SPECS:
        rows = [s for s in items if s.set == set_name]
        ious, centre, scale, found_jpeg = [], [], [], 0
        start = time.perf_counter()
        for s in rows:
            face = detector(s.image)
            if face is None:
                continue
            crop = crop_boxes(face, (s.image.shape[-2], s.image.shape[-1]), [SPECS[set_name]])[0]
            t = s.truth
            ious.append(iou(crop, t))
            centre.append(math.dist(((crop.left + crop.right) / 2, (crop.top + crop.bottom) / 2),
                                    ((t.left + t.right) / 2, (t.top + t.bottom) / 2)) / t.width)
            scale.append(abs(crop.width / t.width - 1))
        seconds = (time.perf_counter() - start) / max(1, len(rows))
        for s in rows:
            found_jpeg += detector(jpeg(s.image, 75)) is not None
        n = len(rows)
        table[set_name] = {
            "images": n, "found": len(ious) / n, "found_after_jpeg75": found_jpeg / n,
            "iou_mean": statistics.fmean(ious) if ious else 0.0,
            "iou_p10": sorted(ious)[len(ious) // 10] if ious else 0.0,
            "iou_at_least_0.8": sum(v >= 0.8 for v in ious) / n,
            "centre_error_median": statistics.median(centre) if centre else math.nan,
            "scale_error_median": statistics.median(scale) if scale else math.nan,
            "seconds_per_image": seconds,
        }
    return table


def fit(items: list[Sample]) -> dict[str, float]:
    """Medians of the eye-frame box that reproduces each true crop through its spec."""
    sides, alongs, downs = [], [], []
    for s in items:
        found = detect_landmarks(s.image)
        if not found:
            continue
        f: FaceLandmarks = found[0]
        spec, t = SPECS[s.set], s.truth
        b = t.width / spec.scale  # the face box side that spec turns into the true crop
        cx = (t.left + t.right) / 2 - spec.dx * b
        cy = (t.top + t.bottom) / 2 - spec.dy * b
        (x0, y0), (x1, y1) = f.right_eye, f.left_eye
        d = f.eye_distance
        ux, uy = (x1 - x0) / d, (y1 - y0) / d
        mx, my = (x0 + x1) / 2, (y0 + y1) / 2
        sides.append(b / d)
        alongs.append(((cx - mx) * ux + (cy - my) * uy) / d)
        downs.append(((cx - mx) * -uy + (cy - my) * ux) / d)
    return {"faces": len(sides), "side": statistics.median(sides),
            "along": statistics.median(alongs), "down": statistics.median(downs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--per-set", type=int, default=60)
    parser.add_argument("--fit", action="store_true", help="fit EYES_TO_HAAR_BOX instead")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if not landmarks_available():
        raise SystemExit("needs the landmarks extra: pip install -e '.[landmarks]'")
    if args.fit:
        result: dict = fit(samples(args.data, "generator", args.per_set))
        print(json.dumps(result, indent=2))
    else:
        items = samples(args.data, "test", args.per_set)
        result = {"split": "test", "per_set": args.per_set, "eyes_to_box": vars(EYES_TO_HAAR_BOX),
                  "haar": score(haar_face, items), "dlib": score(dlib_face, items)}
        print("| detector | set | found | after JPEG 75 | IoU mean | IoU p10 | IoU >= 0.8 "
              "| centre err | scale err | s/image |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for det in ("haar", "dlib"):
            for set_name, r in result[det].items():
                print(f"| {det} | {set_name} | {r['found']:.0%} | {r['found_after_jpeg75']:.0%} "
                      f"| {r['iou_mean']:.3f} | {r['iou_p10']:.3f} | {r['iou_at_least_0.8']:.0%} "
                      f"| {r['centre_error_median']:.3f} | {r['scale_error_median']:.3f} "
                      f"| {r['seconds_per_image']:.3f} |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
