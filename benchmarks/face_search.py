"""The face search with the profile cascade starting at 20 px (as until 2026-12-02)
against 40 px (the default since): the same faces found, in how much time.

:func:`disrupt.core.faces.detect_faces` runs three Haar cascades: frontal, profile,
and profile on the mirror image. The smallest windows cost a cascade most, so
starting the two profile runs at twice the frontal's smallest face saves most of
their time. This script checks what that changes:

- faces: on every image of the sample (LFW frames, UTKFace test frames and CelebA
  aligned images from ``../shared/data``, chosen with a fixed seed, and the astronaut
  at 512 px and upscaled to 12 MP), the boxes found each way; the run fails unless
  they are the same on every image;
- time: the search on the 256 px README example, the 512 px astronaut and the
  12 MP portrait of ``protect_wall_time.py``, each way, the median of ``--repeats``
  calls. Take the timings with nothing else running.

Run: python benchmarks/face_search.py [--per-set 100] [--repeats 5] [--out RESULTS.json]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from disrupt.bench.report import write_results_json
from disrupt.core.faces import detect_faces
from disrupt.imaging import load_image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from protect_wall_time import photos  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
#: profile_min_size per way: the frontal's 20 px (before) and the default (twice that).
WAYS: dict[str, int | None] = {"profiles from 20 px (before)": 20,
                               "profiles from 40 px (default)": None}


def sample(per_set: int, seed: int) -> list[Path]:
    """A seeded sample of ``per_set`` LFW, UTKFace and CelebA images each."""
    chooser = random.Random(seed)
    sets = [sorted((DATA / "lfw").glob("*/*.jpg")),
            sorted((DATA / "utkface" / "images").glob("*")),
            sorted((DATA / "celeba10k" / "images").glob("*.jpg"))]
    chosen: list[Path] = []
    for files in sets:
        if not files:
            raise SystemExit(f"no images under {DATA}: this benchmark needs ../shared/data")
        chosen += chooser.sample(files, min(per_set, len(files)))
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-set", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (for loading)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        timed = {label: load_image(path).rgb for label, path in photos(Path(tmp)).items()}
        images = [(str(p), load_image(p).rgb) for p in sample(args.per_set, args.seed)]
        images += [(f"astronaut {label}", x) for label, x in timed.items()]
        differ = []
        faces_found = 0
        for name, x in images:
            found = {way: detect_faces(x, profile_min_size=size) for way, size in WAYS.items()}
            before, after = found.values()
            faces_found += len(before)
            if before != after:
                differ.append({"image": name, **{w: [b.as_tuple() for b in f]
                                                 for w, f in found.items()}})
        seconds: dict[str, dict[str, Any]] = {}
        for label, x in timed.items():
            seconds[label] = {}
            for way, size in WAYS.items():
                runs = []
                for _ in range(args.repeats):
                    started = time.perf_counter()
                    detect_faces(x, profile_min_size=size)
                    runs.append(time.perf_counter() - started)
                seconds[label][way] = {"median": statistics.median(runs),
                                       "min": min(runs), "max": max(runs)}
    print(f"{len(images)} images, {faces_found} faces found the old way; "
          f"boxes differ on {len(differ)}")
    for difference in differ:
        print(difference)
    print("| photo | " + " | ".join(WAYS) + " |")
    print("|---|" + "---|" * len(WAYS))
    for label, row in seconds.items():
        cells = [f"{row[w]['median']:.3f} s ({row[w]['min']:.3f}-{row[w]['max']:.3f})"
                 for w in WAYS]
        print(f"| {label} | " + " | ".join(cells) + " |")
    write_results_json(args.out, {"per_set": args.per_set, "repeats": args.repeats,
                                  "images": len(images), "faces_found": faces_found,
                                  "differ": differ, "seconds": seconds}, seed=args.seed)
    if differ:
        raise SystemExit(f"the two ways found different faces on {len(differ)} images")


if __name__ == "__main__":
    main()
