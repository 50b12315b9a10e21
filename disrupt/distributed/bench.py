"""Benchmark grids on a Dask cluster: each chunk (one batch of one cell) is a task.

The client plans the grid, sends each batch of images once (``scatter``), and writes
every file as chunks come back (see :func:`disrupt.bench.grid.run_benchmark`). Workers
load their targets and judges from the config, once per process. A chunk is seeded by
its cell's seed and its batch number only, so a cluster run gives the numbers and the
bytes of the in-process run (apart from the seconds).

Faults: a worker that dies mid-task has its task run again elsewhere by the Dask
scheduler; Ctrl-C (any exception in the client) cancels what is still queued. Chunks
written before stay on disk and are not run again.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any
from uuid import uuid4

from disrupt.bench.config import BenchConfig
from disrupt.bench.grid import ChunkResult, ChunkTask, Executor, load_runner
from disrupt.bench.images import BenchImage
from disrupt.distributed.worker import cache_key, cached

__all__ = ["bench_executor", "run_chunk"]


def run_chunk(cfg: BenchConfig, task: ChunkTask) -> ChunkResult:
    """Run one chunk in this process with the targets of ``cfg`` (loaded once)."""
    runner = cached(cache_key("bench", cfg.to_dict()), lambda: load_runner(cfg)[0])
    return runner.run_chunk(task)


def _run_chunk_task(cfg: BenchConfig, cell: Any, key: str, index: int,
                    images: list[BenchImage]) -> ChunkResult:
    return run_chunk(cfg, ChunkTask(cell, key, index, images))


def _hold(images: list[BenchImage]) -> list[BenchImage]:
    return images


def bench_executor(client: Any, cfg: BenchConfig) -> Executor:
    """An executor for :func:`~disrupt.bench.grid.run_benchmark` that runs every chunk
    as a task on ``client``'s cluster and yields results as they finish."""

    def execute(tasks: Sequence[ChunkTask]) -> Iterator[tuple[ChunkTask, ChunkResult]]:
        if not tasks:
            return
        from distributed import as_completed

        # Each batch travels once, as the argument of a task that returns it: the scheduler
        # keeps that task, so a batch lost with a dead worker is sent again (data given
        # to ``scatter`` would be lost for good).
        shipped = {t.index: client.submit(_hold, t.images, key=f"images-{t.index}-{uuid4().hex}")
                   for t in tasks}
        # A key of this run only: after Ctrl-C the scheduler forgets cancelled keys
        # asynchronously, and a rerun reusing them could be cancelled with them.
        run = uuid4().hex[:8]
        futures = {}
        for t in tasks:
            future = client.submit(_run_chunk_task, cfg, t.cell, t.key, t.index,
                                   shipped[t.index], key=f"bench-{t.key}-{t.index}-{run}",
                                   pure=False)
            futures[future] = t
        try:
            for future in as_completed(futures):
                yield futures[future], future.result()
        except BaseException:
            client.cancel(list(futures))
            raise

    return execute
