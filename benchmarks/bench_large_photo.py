"""Protect a 12-megapixel photo (4000x3000): seconds and peak memory.

The photo is the example portrait upscaled (bicubic) to 3000x3000 and placed on a
4000x3000 canvas whose sides are mirror images of it, so it has one face of about
550 pixels and realistic full-resolution smoothness. It is written as a PNG and
protected from the file, as a user would.

    python benchmarks/bench_large_photo.py                       # tiny targets, faces auto
    python benchmarks/bench_large_photo.py --no-faces            # whole photo
    python benchmarks/bench_large_photo.py --target stargan.celeba96 --target attgan.celeba96

Peak RSS (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) covers the whole process:
torch, the decoded photo, the attack and the metrics. Run one configuration per
process, since the peak only ever grows.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from disrupt.bench.photo_sets import upscaled_portrait

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "astronaut.png"
SHARED = ROOT.parent / "shared" / "data" / "photos" / "astronaut.png"


def make_photo(path: Path, width: int = 4000, height: int = 3000,
               portrait: Path | None = None) -> Path:
    """Write the synthetic ``width x height`` portrait to ``path`` (PNG), upscaled from
    ``portrait`` (default: ``../shared``'s astronaut, else the README example)."""
    if portrait is None:
        portrait = SHARED if SHARED.exists() else EXAMPLE
    with Image.open(portrait) as source:
        upscaled_portrait(source, width, height).save(path)
    return path


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (Linux reports KiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", action="append", default=None,
                        help="target name (repeatable); default stargan.tiny, attgan.tiny")
    parser.add_argument("--faces", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--strength", default="mid")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from disrupt.api import protect

    targets = args.target or ["stargan.tiny", "attgan.tiny"]
    with tempfile.TemporaryDirectory() as tmp:
        photo = make_photo(Path(tmp) / "large.png")
        before = peak_rss_mb()
        started = time.perf_counter()
        result = protect(photo, targets=targets, strength=args.strength, steps=args.steps,
                         faces=args.faces, device=args.device,
                         output=Path(tmp) / "large.protected.png")
        seconds = time.perf_counter() - started
    w, h = result.source.size
    print(f"photo: {w}x{h} ({w * h / 1e6:.1f} MP), targets {', '.join(targets)}, "
          f"strength {result.strength}, {result.attack.name} {result.attack.steps} steps, "
          f"EOT {'on' if result.eot else 'off'}, device {args.device}")
    print(f"faces: {result.face_status} {result.faces}")
    print(f"seconds: {seconds:.1f} (protect, including load, save and metrics)")
    print(f"peak RSS: {peak_rss_mb():.0f} MiB (before protect: {before:.0f} MiB)")
    print(f"visibility: PSNR {result.perceptibility['psnr']:.1f} dB, "
          f"SSIM {result.perceptibility['ssim']:.4f}, "
          f"max {result.perceptibility['linf_255']:.0f}/255; "
          f"disrupted {result.disrupted_fraction:.2f}")


if __name__ == "__main__":
    main()
