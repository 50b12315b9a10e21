"""The benchmark grid on a 2-process Dask LocalCluster against one in-process thread.

Runs one grid twice, back to back, from an empty output folder each time: in this
process with one torch thread, then on ``--workers`` worker processes of one thread
each (``disrupt bench --workers N``'s path). Checks that both runs measured the same
numbers and saved the same bytes (the comparison is at equal work), and reports the
wall-clock speed-up and where the rest went: cluster start, and per-chunk overhead.

From the serial run's per-cell seconds (attack + measurement, per image) it estimates
the paper's grid (``benchmarks/ruiz2020.toml``: fgsm, ifgsm, pgd x specific,
iterative, joint, spread, 6 channels) over the 500 CelebA test faces on 1, 8 and 64
workers, by placing its chunks (``batch_size`` faces each) on the workers longest
first. The measured grid is the pgd row of that grid; ifgsm is costed as pgd (same
steps), fgsm as pgd with a tenth of the attack time (1 step instead of 10).

Run: python benchmarks/dask_speedup.py --images ../shared/data/celeba10k/images
         [--limit 20] [--workers 2] [--objective O ...] [--cost specific=S]
         [--out runs/dask_speedup]
Writes: benchmarks/results/dask_speedup.json and .md (with --results DIR elsewhere).
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import platform
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import torch

from disrupt.bench.config import load_config
from disrupt.bench.grid import run_benchmark
from disrupt.distributed import bench_executor, open_client
from disrupt.distributed.cluster import describe

REPO = Path(__file__).resolve().parent.parent
PAPER_CELLS = 12  # 3 attacks x 4 objectives
TEST_FACES = 500  # CelebA 009001-009500: the faces the bundled StarGAN never saw


def _numbers(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def _pngs(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes()
            for p in sorted((out / "cells").rglob("*.png"))}


def makespan(costs: list[float], workers: int) -> float:
    """Longest-first list scheduling of independent chunks on ``workers`` workers."""
    loads = [0.0] * workers
    heapq.heapify(loads)
    for c in sorted(costs, reverse=True):
        heapq.heappush(loads, heapq.heappop(loads) + c)
    return max(loads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--objective", action="append", default=None,
                        help="objectives of the measured grid (default: the paper's four)")
    parser.add_argument("--cost", action="append", default=[],
                        help="OBJECTIVE=SECONDS per face for an objective not measured here "
                             "(e.g. from an earlier run's cell.json), used in the estimate")
    parser.add_argument("--out", type=Path, default=Path("runs/dask_speedup"))
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()

    torch.set_num_threads(1)
    from disrupt.bench.config import config_from_mapping

    paper = load_config(REPO / "benchmarks" / "ruiz2020.toml")
    cfg = config_from_mapping({"images": str(args.images), "limit": args.limit,
                               "attacks": ["pgd"], "threads": 1, "batch_size": args.batch_size,
                               "objectives": args.objective or list(paper.objectives)}, paper)
    given = {k: float(v) for k, _, v in (c.partition("=") for c in args.cost)}
    for sub in ("serial", "dask"):
        shutil.rmtree(args.out / sub, ignore_errors=True)
    load_before = os.getloadavg()

    t0 = time.perf_counter()
    serial = run_benchmark(cfg, args.out / "serial")
    serial_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    with open_client(workers=args.workers, dashboard=False) as client:
        started_s = time.perf_counter() - t0
        where = describe(client)
        t1 = time.perf_counter()
        spread = run_benchmark(cfg, args.out / "dask", executor=bench_executor(client, cfg),
                               environment_extra=where)
        grid_s = time.perf_counter() - t1
    dask_s = time.perf_counter() - t0
    load_after = os.getloadavg()

    same_numbers = (_numbers(serial.rows) == _numbers(spread.rows)
                    and _numbers(serial.images) == _numbers(spread.images))
    same_bytes = _pngs(args.out / "serial") == _pngs(args.out / "dask")
    if not (same_numbers and same_bytes):
        raise SystemExit("the two runs differ: not an equal-work comparison")

    n = args.limit
    work_s = sum(c.seconds for c in serial.cells)  # chunk seconds: attack + measurement
    cells = []
    for c in serial.cells:
        # every record of an image carries the image's whole attack time (all variants)
        attack_per_image = sum(r["seconds"] for r in c.images) / len(c.images)
        cells.append({"objective": c.cell.objective, "seconds": c.seconds,
                      "per_image": c.seconds / n, "attack_per_image": attack_per_image})
    # The paper grid per image: pgd and ifgsm as measured, fgsm with a tenth of the attack
    # (objectives not measured here: the given cost, whole, for all three attacks).
    measured = {c["objective"] for c in cells}
    missing = [o for o in paper.objectives if o not in measured and o not in given]
    if missing:
        raise SystemExit(f"no cost for {missing}: measure them or pass --cost OBJECTIVE=S")
    per_image = ([c["per_image"] for c in cells] * 2
                 + [c["per_image"] - 0.9 * c["attack_per_image"] for c in cells]
                 + [given[o] for o in paper.objectives if o not in measured] * 3)
    batch = paper.batch_size
    chunks = [p * batch for p in per_image for _ in range(TEST_FACES // batch)]
    overhead_per_chunk = max(0.0, grid_s - makespan(
        [c["seconds"] * args.batch_size / n for c in cells for _ in range(n // args.batch_size)],
        args.workers)) / (len(cells) * (n // args.batch_size))
    estimate = {}
    for w in (1, 8, 64):
        if w == 1:
            hours = sum(chunks) / 3600
        else:
            hours = (makespan([c + overhead_per_chunk for c in chunks], w) + started_s) / 3600
        estimate[str(w)] = round(hours, 3)

    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                            text=True, check=False).stdout.strip()
    record = {
        "command": f"python benchmarks/dask_speedup.py --images {args.images} --limit {n} "
                   f"--workers {args.workers} --batch-size {args.batch_size}"
                   + "".join(f" --objective {o}" for o in args.objective or [])
                   + "".join(f" --cost {c}" for c in args.cost),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "processor": platform.processor() or platform.machine(),
                    "load_average_before": load_before, "load_average_after": load_after},
        "git_commit": commit, "torch_threads_serial": 1, "threads_per_worker": 1,
        "grid": {"faces": n, "cells": len(cells), "chunks": len(cells) * (n // args.batch_size),
                 "batch_size": args.batch_size, "channels": list(cfg.channels),
                 "attack": "pgd", "objectives": list(cfg.objectives)},
        "cluster": where,
        "serial_s": round(serial_s, 1), "dask_total_s": round(dask_s, 1),
        "dask_start_s": round(started_s, 1), "dask_grid_s": round(grid_s, 1),
        "speedup_total": round(serial_s / dask_s, 3), "speedup_grid": round(serial_s / grid_s, 3),
        "serial_chunk_work_s": round(work_s, 1),
        "overhead_per_chunk_s": round(overhead_per_chunk, 2),
        "same_numbers": same_numbers, "same_png_bytes": same_bytes,
        "cells": cells,
        "given_costs_per_face_s": given,
        "paper_grid_estimate_hours": estimate,
        "paper_grid": {"cells": PAPER_CELLS, "faces": TEST_FACES, "batch_size": batch,
                       "chunks": len(chunks), "serial_work_hours": round(sum(chunks) / 3600, 3)},
    }
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "dask_speedup.json").write_text(json.dumps(record, indent=1) + "\n")
    lines = [
        "# Benchmark grid: Dask LocalCluster against one in-process thread",
        "",
        f"`{record['command']}` at git {commit[:12]}, {os.cpu_count()} CPU cores shared with "
        f"other jobs (load average {load_before[0]:.1f} before, {load_after[0]:.1f} after).",
        "",
        f"- grid: pgd x {', '.join(cfg.objectives)} on stargan.celeba96, {n} CelebA test "
        f"faces, {len(cfg.channels)} channels, batch {args.batch_size} "
        f"({record['grid']['chunks']} chunks)",
        f"- in process, 1 torch thread: {serial_s:.0f} s",
        f"- {args.workers} workers x 1 thread: {dask_s:.0f} s ({started_s:.0f} s cluster start, "
        f"{grid_s:.0f} s grid); speed-up {serial_s / dask_s:.2f}x "
        f"({serial_s / grid_s:.2f}x without the start)",
        f"- overhead beyond an ideal split of the measured chunk times: "
        f"{overhead_per_chunk:.1f} s per chunk",
        "- both runs: the same numbers and the same PNG bytes",
        "",
        "| cell | s per face (attack + measurement) | attack s per face |",
        "|---|---|---|",
    ]
    lines += [f"| pgd {c['objective']} | {c['per_image']:.2f} | {c['attack_per_image']:.2f} |"
              for c in cells]
    lines += [f"| pgd {o} (given, not measured in this run) | {v:.2f} | - |"
              for o, v in given.items()]
    lines += [
        "",
        f"Paper grid ({PAPER_CELLS} cells x {TEST_FACES} faces, batch {batch}, "
        f"{len(chunks)} chunks), estimated from these per-face costs:",
        "",
        "| workers | hours |",
        "|---|---|",
    ]
    lines += [f"| {w} | {h:.2f} |" for w, h in estimate.items()]
    (args.results / "dask_speedup.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
