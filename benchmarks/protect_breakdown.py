"""Where the default ``protect`` spends its time, phase by phase, on the three photo sizes.

The photos of ``protect_wall_time.py`` (256 px README example, 512 px astronaut,
12 MP portrait), each protected once to a PNG after a warm-up call, under
``cProfile``. Each phase is the cumulative time of the function that does it:

- face search: :func:`disrupt.core.pipeline.plan_protection` on the original;
- attack: :func:`disrupt.core.pipeline.run_protection` (all steps, with shaping);
- rounding: :func:`disrupt.core.rounding.quantize_within`;
- save: :meth:`disrupt.api.ProtectResult.save` (8-bit PNG, atomic);
- visibility: :func:`disrupt.eval.perceptual.region_perceptibility` and
  :func:`disrupt.eval.metrics.perceptibility`;
- measurement: the face found again on the saved photo (a second
  ``plan_protection``) and :func:`disrupt.eval.evaluation.measure_disruption` of
  every model and condition.

The profiler adds a little to every Python call; the total beside the phases says
how much the run took under it. Take the figures with nothing else running.

Run: python benchmarks/protect_breakdown.py [--threads 2] [--out RESULTS.json]
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from disrupt import protect
from disrupt.bench.report import timing_parser, write_results_json

sys.path.insert(0, str(Path(__file__).resolve().parent))
from protect_wall_time import photos  # noqa: E402

#: phase -> (file suffix, function name) whose cumulative time is the phase's.
PHASES: dict[str, list[tuple[str, str]]] = {
    "face search (both)": [("disrupt/core/pipeline.py", "plan_protection")],
    "attack": [("disrupt/core/pipeline.py", "run_protection")],
    "rounding": [("disrupt/core/rounding.py", "quantize_within")],
    "save": [("disrupt/api.py", "save")],
    "visibility": [("disrupt/eval/perceptual.py", "region_perceptibility"),
                   ("disrupt/eval/metrics.py", "perceptibility")],
    "measurement": [("disrupt/eval/evaluation.py", "measure_disruption")],
}


def phase_seconds(stats: pstats.Stats) -> dict[str, float]:
    """Cumulative seconds per phase from a profile (functions matched by file and name)."""
    table: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    out = {}
    for phase, functions in PHASES.items():
        total = 0.0
        for (path, _line, name), (_cc, _nc, _tt, cumulative, _callers) in table.items():
            if any(path.endswith(suffix) and name == fn for suffix, fn in functions):
                total += cumulative
        out[phase] = round(total, 2)
    return out


def main() -> None:
    args = timing_parser(__doc__).parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        chosen = photos(folder)
        protect(next(iter(chosen.values())), output=folder / "warm.png")  # loads the models
        for label, path in chosen.items():
            profile = cProfile.Profile()
            start = time.perf_counter()
            profile.enable()
            protect(path, output=folder / f"{path.stem}.protected.png")
            profile.disable()
            total = time.perf_counter() - start
            phases = phase_seconds(pstats.Stats(profile))
            rows.append({"photo": label, "seconds_under_profiler": round(total, 2), **phases})
            print(f"{label}: {total:.1f} s | "
                  + " | ".join(f"{k} {v:.1f} s" for k, v in phases.items()), flush=True)
    write_results_json(args.out, {"threads": args.threads, "rows": rows})


if __name__ == "__main__":
    main()
