"""How far each bundled model's outputs move at every step of the default attack.

Protects one photo with ``protect()`` and records, at every call of the attack's
:class:`~disrupt.core.objectives.Ensemble` (one per step under the default's EOT on
the photo), each model's score: its mean distance from the clean outputs over its
conditions, shown on Ruiz et al.'s scale (4x the ``[0, 1]`` MSE; the highest over the
photo's batch). It is the evidence behind the ``"focused"`` objective's bar
(:data:`disrupt.core.pipeline.GIVE_UP_FRACTION`): which models have moved by the
quarter of the steps where it decides, and whether a model under the bar moves later.
The default gives up on models, so run it with ``--objective mean`` to see every
model to the end.

Run: python benchmarks/give_up_trajectory.py examples/astronaut.png --objective mean \\
         --out benchmarks/results/give_up_trajectory.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

import disrupt.core.pipeline as pipeline
from attacks import Objective
from disrupt import protect
from disrupt.core.objectives import Ensemble


class RecordingEnsemble(Ensemble):
    """An :class:`Ensemble` that also keeps every member's score at every call (the
    scores it computes anyway: nothing is evaluated twice)."""

    calls: list[list[float | None]] = []

    def __init__(self, objectives: Sequence[Objective], *args: Any, **kwargs: Any) -> None:
        self._last: dict[int, float] = {}

        def recorded(i: int, objective: Objective) -> Objective:
            def score(x_adv: Tensor) -> Tensor:
                out = objective(x_adv)
                self._last[i] = 4 * float(out.detach().max())
                return out
            return score

        super().__init__([recorded(i, o) for i, o in enumerate(objectives)], *args, **kwargs)

    def __call__(self, x_adv: Tensor) -> Tensor:
        self._last = {}
        out = super().__call__(x_adv)
        RecordingEnsemble.calls.append([self._last.get(i) for i in range(len(self.objectives))])
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photo", type=Path)
    parser.add_argument("--objective", default=None, choices=["mean", "focused"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pipeline.Ensemble = RecordingEnsemble  # type: ignore[misc]
    result = protect(args.photo, objective=args.objective)
    # The targets in the order protect() attacked (and then measured) them.
    names = list(dict.fromkeys(d.target.split("@")[0] for d in result.disruption))
    steps: list[dict[str, Any]] = [dict(zip(names, row, strict=True))
                                   for row in RecordingEnsemble.calls]
    for k, row in enumerate(steps):
        print(f"step {k + 1:2d}: " + "  ".join(
            f"{n.split('.')[0]} {'given up' if v is None else f'{v:.4f}'}"
            for n, v in row.items()))
    final: dict[str, float] = {}
    for d in result.disruption:
        name = d.target.split("@")[0]
        final[name] = max(final.get(name, 0.0), d.ruiz_mse)
    print("on the saved file, highest Ruiz MSE per model: "
          + ", ".join(f"{n} {v:.4f}" for n, v in final.items()))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({
            "command": " ".join(["python", *sys.argv]),
            "objective": result.to_dict()["attack"]["objective"],
            "scale": "Ruiz MSE (4x the [0, 1] MSE), mean over each model's conditions, "
                     "highest over the batch; null once given up",
            "steps": steps, "saved_file_max_ruiz_mse": final}, indent=2))


if __name__ == "__main__":
    main()
