"""Perceptibility of the strength presets on the example photo (see disrupt.core.budget).

    python benchmarks/bench_presets.py [--image PHOTO] [--target NAME ...]

Same as ``python benchmarks/measure_presets.py``: protects the photo at low/mid/high, with faces
(auto) and without, and prints PSNR, SSIM and max change of the saved 8-bit image.
"""

from disrupt.bench.preset_table import _main

if __name__ == "__main__":
    _main()
