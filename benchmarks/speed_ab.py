"""The default ``protect`` before and after the two speed changes of 2026-12-02 (late),
interleaved in one process so that this machine's drift hits both arms alike.

- before: the profile cascade from 20 px (``PROFILE_MIN_FACTOR = 1``) and the
  objective's grain low-pass exact at every size (``COARSE_LOW_PASS_SIGMA`` infinite);
- now: the profiles from 40 px and the low-pass on a grid twice coarser at 12 MP
  (:func:`disrupt.core.masking.low_pass_coarse`).

The photos of ``protect_wall_time.py`` (256 px README example, 512 px astronaut,
12 MP portrait), each protected from its file to a PNG with the defaults, after a
warm-up call; ``--rounds`` rounds, the arms' order alternating (before, now, now,
before, ...). Reported per photo and arm: the median seconds and the range, the faces
found, and the outputs disrupted on the saved file. The run fails unless both arms
disrupt the same number of outputs of every model on every photo (a time-to-protection
comparison at equal disruption). Take it with nothing else running.

Run: python benchmarks/speed_ab.py [--rounds 4] [--threads 2] [--out RESULTS.json]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from disrupt import protect
from disrupt.bench.report import write_results_json
from disrupt.core import faces, masking

sys.path.insert(0, str(Path(__file__).resolve().parent))
from protect_wall_time import EXAMPLE, photos  # noqa: E402

ARMS: dict[str, tuple[int, float]] = {
    "before": (1, math.inf),
    "now": (faces.PROFILE_MIN_FACTOR, masking.COARSE_LOW_PASS_SIGMA),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    seconds: dict[tuple[str, str], list[float]] = {}
    outcome: dict[tuple[str, str], dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        protect(EXAMPLE, steps=1)  # loads every bundled model once
        for round_ in range(args.rounds):
            order = list(ARMS) if round_ % 2 == 0 else list(reversed(ARMS))
            for label, path in photos(folder).items():
                for arm in order:
                    faces.PROFILE_MIN_FACTOR, masking.COARSE_LOW_PASS_SIGMA = ARMS[arm]
                    started = time.perf_counter()
                    r = protect(path, output=folder / "out.png", overwrite=True, seed=0)
                    seconds.setdefault((label, arm), []).append(time.perf_counter() - started)
                    per_model: dict[str, int] = {}
                    for d in r.disruption:
                        model = d.target.split("@")[0]
                        per_model[model] = per_model.get(model, 0) + int(d.disrupted)
                    outcome[(label, arm)] = {"faces": r.faces, "disrupted": per_model,
                                             "outputs": len(r.disruption)}
            print(f"round {round_ + 1} done", flush=True)
    faces.PROFILE_MIN_FACTOR, masking.COARSE_LOW_PASS_SIGMA = ARMS["now"]
    rows: list[dict[str, Any]] = []
    print("| photo | before | now | disrupted outputs (before / now) |")
    print("|---|---|---|---|")
    for label in dict.fromkeys(label for label, _ in seconds):
        cells: dict[str, dict[str, Any]] = {}
        for arm in ARMS:
            runs = seconds[(label, arm)]
            cells[arm] = {"median": statistics.median(runs), "min": min(runs),
                          "max": max(runs), "runs": runs, **outcome[(label, arm)]}
        rows.append({"photo": label, **cells})
        text = [f"{cells[a]['median']:.1f} s ({cells[a]['min']:.1f}-{cells[a]['max']:.1f})"
                for a in ARMS]
        hits = " / ".join(str(sum(cells[a]["disrupted"].values())) for a in ARMS)
        print(f"| {label} | {text[0]} | {text[1]} | {hits} of {cells['now']['outputs']} |")
    write_results_json(args.out, {"threads": args.threads, "rounds": args.rounds, "rows": rows})
    unequal = [row["photo"] for row in rows
               if row["before"]["disrupted"] != row["now"]["disrupted"]]
    if unequal:
        raise SystemExit(f"the arms disrupted different outputs on: {', '.join(unequal)}")


if __name__ == "__main__":
    main()
