"""kornia's differentiable JPEG against our faster computation of it, alone and in ``protect``.

The EOT mix's random JPEG is kornia's ``jpeg_codec_differentiable``; since
2026-12-02 it is computed by :func:`disrupt.core.jpeg.jpeg420_differentiable`, which
gives the same values and gradients (``tests/test_jpeg_eot.py``). This script shows
both halves of that claim on this machine:

1. the codec alone: forward and backward seconds at four sizes (the best of 5), and
   the largest difference from kornia's in values and gradients (float64, asserted
   under 1e-9, and float32);
2. the default ``protect`` of the three photos of ``protect_wall_time.py`` and of the
   10 lever faces (CelebA 009401-009410, CenterCrop(89)), once with each codec, same
   seed: seconds, the outputs disrupted per model, and the largest difference
   between the two protected files in 8-bit levels. The two attacks are not
   step-for-step equal: float32 sums in another order change a gradient's last bits,
   PGD's sign steps carry that on, and the files end a few levels apart. The
   disruption on the aligned faces is asserted equal; on the whole photos it hangs
   on the face box found again on the protected file (README, "Re-detection
   decides"), so it is reported, not asserted.

Take the figures with nothing else running.

Run: python benchmarks/jpeg_codec.py [--threads 2] [--out RESULTS.json]
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kornia
import numpy as np
import torch
from PIL import Image

import disrupt.core.transforms as transforms
from disrupt import protect
from disrupt.bench.report import timing_parser, write_results_json
from disrupt.core.jpeg import jpeg420_differentiable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from protect_wall_time import EXAMPLE, photos  # noqa: E402

FACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "celeba10k" / "images"
Codec = Callable[[torch.Tensor, float], torch.Tensor]


def kornia_codec(x: torch.Tensor, quality: float) -> torch.Tensor:
    """kornia's own codec, as ``transforms.jpeg_differentiable`` called it before."""
    q = torch.full((x.shape[0],), max(1.0, min(100.0, quality)), dtype=x.dtype)
    return kornia.enhance.jpeg_codec_differentiable(x, q).clamp(0.0, 1.0)


def fast_codec(x: torch.Tensor, quality: float) -> torch.Tensor:
    return jpeg420_differentiable(x, max(1.0, min(100.0, quality)))


CODECS: dict[str, Codec] = {"kornia": kornia_codec, "ours": fast_codec}


def value_and_grad(codec: Codec, x: torch.Tensor, quality: float
                   ) -> tuple[torch.Tensor, torch.Tensor, float, float]:
    leaf = x.clone().requires_grad_(True)
    started = time.perf_counter()
    out = codec(leaf, quality)
    forward = time.perf_counter() - started
    started = time.perf_counter()
    out.sum().backward()
    backward = time.perf_counter() - started
    assert leaf.grad is not None
    return out.detach(), leaf.grad, forward, backward


def codec_rows(sides: tuple[int, ...], quality: float = 75.0) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for side in sides:
        x = torch.rand((1, 3, side, side), generator=torch.Generator().manual_seed(side))
        row: dict[str, Any] = {"side": side, "quality": quality}
        results = {}
        for name, codec in CODECS.items():
            runs = [value_and_grad(codec, x, quality) for _ in range(5)]
            row[f"{name}_forward_s"] = min(r[2] for r in runs)
            row[f"{name}_backward_s"] = min(r[3] for r in runs)
            results[name] = runs[0][:2]
        (kv, kg), (ov, og) = results["kornia"], results["ours"]
        row["float32_max_value_diff"] = float((kv - ov).abs().max())
        row["float32_max_grad_diff"] = float((kg - og).abs().max())
        x64 = x.double()
        (v1, g1, _, _), (v2, g2, _, _) = (value_and_grad(c, x64, quality) for c in CODECS.values())
        row["float64_max_value_diff"] = float((v1 - v2).abs().max())
        row["float64_max_grad_diff"] = float((g1 - g2).abs().max())
        assert row["float64_max_value_diff"] < 1e-9 and row["float64_max_grad_diff"] < 1e-9, row
        rows.append(row)
        print(f"{side} px: kornia {row['kornia_forward_s'] + row['kornia_backward_s']:.3f} s, "
              f"ours {row['ours_forward_s'] + row['ours_backward_s']:.3f} s", flush=True)
    return rows


def protect_rows(items: dict[str, Path], folder: Path, seed: int) -> list[dict[str, Any]]:
    protect(EXAMPLE, steps=1)  # loads every bundled model once
    rows: list[dict[str, Any]] = []
    original = transforms.jpeg_differentiable
    try:
        for label, path in items.items():
            row: dict[str, Any] = {"photo": label}
            pixels = {}
            for name, codec in CODECS.items():
                transforms.jpeg_differentiable = codec  # type: ignore[assignment]  # RandomJPEG's
                out = folder / f"{name}_{len(rows)}.png"
                started = time.perf_counter()
                r = protect(path, output=out, seed=seed)
                row[f"{name}_seconds"] = time.perf_counter() - started
                counts: dict[str, int] = {}
                for d in r.disruption:
                    model = d.target.split("@")[0]
                    counts[model] = counts.get(model, 0) + int(d.disrupted)
                row[f"{name}_disrupted"] = counts
                pixels[name] = np.asarray(Image.open(out).convert("RGB"), dtype=np.int16)
            row["max_level_diff"] = int(np.abs(pixels["kornia"] - pixels["ours"]).max())
            row["pixels_differing"] = int((pixels["kornia"] != pixels["ours"]).any(axis=2).sum())
            rows.append(row)
            print(f"{label}: kornia {row['kornia_seconds']:.1f} s, "
                  f"ours {row['ours_seconds']:.1f} s, disrupted {row['ours_disrupted']}, "
                  f"files differ by up to {row['max_level_diff']} levels", flush=True)
    finally:
        transforms.jpeg_differentiable = original
    return rows


def main() -> None:
    parser = timing_parser(__doc__ or "")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-protect", action="store_true", help="time the codec alone")
    parser.add_argument("--faces", type=Path, default=FACES,
                        help="CelebA images: 009401-009410 are protected too, if there")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    codec = codec_rows((128, 512, 990, 1300))
    print("\n| side | kornia fwd+bwd | ours fwd+bwd | speed-up | max diff float32 (value / grad) |")
    print("|---|---|---|---|---|")
    for row in codec:
        k = row["kornia_forward_s"] + row["kornia_backward_s"]
        o = row["ours_forward_s"] + row["ours_backward_s"]
        print(f"| {row['side']} px | {k:.3f} s | {o:.3f} s | {k / o:.1f}x | "
              f"{row['float32_max_value_diff']:.1e} / {row['float32_max_grad_diff']:.1e} |")
    whole: list[dict[str, Any]] = []
    if not args.no_protect:
        with tempfile.TemporaryDirectory() as tmp:
            items = dict(photos(Path(tmp)))
            if args.faces.is_dir():
                for i in range(9401, 9411):  # CenterCrop(89), as default_protection.py
                    face = Image.open(args.faces / f"{i:06d}.jpg").convert("RGB")
                    top = (face.height - 89) // 2
                    left = (face.width - 89) // 2
                    items[f"CelebA {i:06d}"] = Path(tmp) / f"celeba_{i}.png"
                    face.crop((left, top, left + 89, top + 89)).save(items[f"CelebA {i:06d}"])
            whole = protect_rows(items, Path(tmp), args.seed)
        print("\n| photo | kornia | ours | outputs disrupted (ours) | files differ by |")
        print("|---|---|---|---|---|")
        for row in whole:
            print(f"| {row['photo']} | {row['kornia_seconds']:.1f} s | "
                  f"{row['ours_seconds']:.1f} s | {row['ours_disrupted']} | "
                  f"{row['max_level_diff']} levels, {row['pixels_differing']} pixels |")
    faces = [row for row in whole if row["photo"].startswith("CelebA")]
    for name in CODECS:
        totals: dict[str, int] = {}
        for row in faces:
            for model, n in row[f"{name}_disrupted"].items():
                totals[model] = totals.get(model, 0) + n
        print(f"aligned faces, {name}: {totals}")
    write_results_json(args.out, {"codec": codec, "protect": whole}, seed=args.seed)
    for row in faces:
        assert row["kornia_disrupted"] == row["ours_disrupted"], row


if __name__ == "__main__":
    main()
