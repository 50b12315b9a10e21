"""The attack's high-pass (or low-pass) on a coarse grid against the exact one, on the 12 MP photo.

At 12 MP the face region is about 990 px and the high-pass sigma 31 px: the exact
filter (an FFT pair over the region, forward and backward at every step) was a
large share of each step. :func:`disrupt.core.masking.high_pass_coarse` blurs on a
grid ``floor(sigma / 4)`` times coarser instead. This protects the 12 MP portrait
of ``protect_wall_time.py`` twice with the defaults, once with the objective's
filter exact (``COARSE_BLUR_SIGMA`` set to infinity) and once coarse (as shipped),
both from their files to PNGs after a warm-up call, and reports the seconds, the
per-edit Ruiz MSE of every model on the saved file, and the visibility over the
face. The final change keeps the exact filter in both. Take it with nothing else
running.

``--filter low`` compares the grain low-pass instead (sigma 4.6 px there):
:func:`disrupt.core.masking.low_pass_coarse` on a grid twice coarser against the exact
:func:`~disrupt.core.masking.low_pass` (``COARSE_LOW_PASS_SIGMA`` set to infinity);
the high-pass is coarse in both arms. It also records how far the coarse low-pass
is from the exact one (relative L2) on a change a 64 px model input can hold (seeded
noise of 40x40 upsampled bicubic to 600x600) and on white noise, at the 12 MP
photo's grain sigma (990 * 0.3 / 64 px).

Run: python benchmarks/coarse_high_pass.py [--filter high|low] [--threads 2] [--out RESULTS.json]
"""

from __future__ import annotations

import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from disrupt import protect
from disrupt.bench.report import timing_parser, write_results_json
from disrupt.core import masking

sys.path.insert(0, str(Path(__file__).resolve().parent))
from protect_wall_time import EXAMPLE, photos  # noqa: E402


def low_pass_agreement(seed: int = 6) -> dict[str, float]:
    """Relative L2 distance of :func:`~disrupt.core.masking.low_pass_coarse` from
    :func:`~disrupt.core.masking.low_pass` on model-scale detail and on white noise."""
    g = torch.Generator().manual_seed(seed)
    seen = torch.nn.functional.interpolate(torch.randn(1, 3, 40, 40, generator=g),
                                           size=(600, 600), mode="bicubic",
                                           align_corners=False) * 4 / 255
    noise = (torch.rand(1, 3, 301, 257, generator=g) * 2 - 1) * 8 / 255
    sigma = 990 * 0.3 / 64
    out = {}
    for name, delta in (("model_scale_detail", seen), ("white_noise", noise)):
        exact = masking.low_pass(delta, sigma)
        out[name] = float((masking.low_pass_coarse(delta, sigma) - exact).norm() / exact.norm())
    return out


def main() -> None:
    parser = timing_parser(__doc__)
    parser.add_argument("--filter", choices=["high", "low"], default="high",
                        help="which of the objective's filters to compare")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    switch_name = "COARSE_BLUR_SIGMA" if args.filter == "high" else "COARSE_LOW_PASS_SIGMA"
    shipped = getattr(masking, switch_name)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = photos(folder)["4000x3000 (12 MP)"]
        protect(EXAMPLE, steps=1)  # loads the models
        for arm, switch in (("exact", math.inf), ("coarse", shipped)):
            setattr(masking, switch_name, switch)
            started = time.perf_counter()
            r = protect(path, output=folder / f"{arm}.png")
            seconds = time.perf_counter() - started
            mse = {f"{d.target} {d.condition}": round(d.ruiz_mse, 4) for d in r.disruption}
            rows.append({"objective_filter": arm, "seconds": round(seconds, 1),
                         "disrupted": sum(d.disrupted for d in r.disruption),
                         "outputs": len(r.disruption), "ruiz_mse": mse,
                         "region_psnr": round(r.region_perceptibility["psnr"], 2),
                         "region_ciede2000": round(r.region_perceptibility["ciede2000_mean"], 2)})
            stargan = {k.split()[-1]: v for k, v in mse.items() if k.startswith("stargan")}
            print(f"{arm}: {seconds:.1f} s, {rows[-1]['disrupted']}/{len(r.disruption)} "
                  f"disrupted, face PSNR {rows[-1]['region_psnr']} dB, StarGAN {stargan}",
                  flush=True)
        setattr(masking, switch_name, shipped)
    payload: dict[str, Any] = {"threads": args.threads, "filter": args.filter, "rows": rows}
    if args.filter == "low":
        payload["low_pass_agreement"] = low_pass_agreement()
        print(f"coarse vs exact low-pass, relative L2: {payload['low_pass_agreement']}")
    write_results_json(args.out, payload)


if __name__ == "__main__":
    main()
