"""How long writing a protected 12 MP photo as PNG takes at each zlib level, and how big.

The 12 MP portrait of ``protect_wall_time.py`` is protected once with the defaults
(not saved), then written to memory as PNG at zlib levels 0-9, each timed alone.
Every level stores the same pixels; only the time and the size differ. The figures
chose :data:`disrupt.imaging.save.PNG_COMPRESS_LEVEL`. Take them with nothing else
running.

Run: python benchmarks/png_levels.py [--out RESULTS.json]
"""

from __future__ import annotations

import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from disrupt import protect
from disrupt.bench.report import timing_parser, write_results_json
from disrupt.imaging.pixels import to_uint8

sys.path.insert(0, str(Path(__file__).resolve().parent))
from protect_wall_time import photos  # noqa: E402


def main() -> None:
    args = timing_parser(__doc__).parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        path = photos(Path(tmp))["4000x3000 (12 MP)"]
        pixels = to_uint8(protect(path).image)
    picture = Image.fromarray(pixels)
    rows = []
    for level in range(10):
        buffer = io.BytesIO()
        started = time.perf_counter()
        picture.save(buffer, format="PNG", compress_level=level)
        seconds = time.perf_counter() - started
        same = np.array_equal(np.asarray(Image.open(io.BytesIO(buffer.getvalue()))), pixels)
        rows.append({"level": level, "seconds": round(seconds, 2),
                     "megabytes": round(buffer.tell() / 1e6, 2), "same_pixels": same})
        print(f"level {level}: {seconds:.2f} s, {buffer.tell() / 1e6:.1f} MB, "
              f"same pixels: {same}", flush=True)
    write_results_json(args.out, {"photo": "4000x3000 (12 MP), protected with the defaults",
                                  "rows": rows})


if __name__ == "__main__":
    main()
