"""Perceptibility of the strength presets on the example photo (see disrupt.presets).

    python benchmarks/bench_presets.py [--image PHOTO] [--target NAME ...]

Same as ``python -m disrupt.presets``: protects the photo at low/mid/high, with faces
(auto) and without, and prints PSNR, SSIM and max change of the saved 8-bit image.
"""

from disrupt.presets import _main

if __name__ == "__main__":
    _main()
