"""Perceptibility of the strength presets on the example photo (see disrupt.core.budget).

    python benchmarks/bench_presets.py [--image PHOTO] [--target NAME ...]

Protects the photo at low/mid/high, with faces (auto) and without, and prints PSNR,
SSIM and max change of the saved 8-bit image and the disrupted fraction.
"""

from __future__ import annotations

from collections.abc import Sequence

from disrupt.bench.preset_table import format_rows, measure_presets


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Measure the strength presets' visibility.")
    parser.add_argument("--image", default="examples/astronaut.png")
    parser.add_argument("--target", action="append", default=None,
                        help="target name (repeatable); default stargan.tiny, attgan.tiny")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    targets = args.target or ["stargan.tiny", "attgan.tiny"]
    print(f"# image {args.image}, targets {', '.join(targets)}, seed {args.seed}")
    print(format_rows(measure_presets(args.image, targets, seed=args.seed)))


if __name__ == "__main__":
    main()
