"""Run benchmark grids and folder protection on a Dask cluster.

- :func:`open_client`: a ``LocalCluster`` of N worker processes, or an existing
  scheduler (``tcp://HOST:8786``): the same code either way.
- :func:`bench_executor`: runs a :func:`disrupt.bench.grid.run_benchmark` grid's chunks
  (one batch of one cell each) as tasks.
- :func:`protect_many`: protects many photos, here or on a cluster, yielding an
  outcome per photo.

Image bytes travel to the workers and the client writes every file, so workers need
no shared file system (custom ``--weights`` paths excepted: they must be readable on
the workers). Dask is an optional extra, imported only when a cluster is used.
"""

from disrupt.distributed.bench import bench_executor
from disrupt.distributed.cluster import (
    INSTALL_HINT,
    DaskMissing,
    dashboard_link,
    open_client,
    require_dask,
)
from disrupt.distributed.protect import PhotoOutcome, PhotoSettings, protect_many, settings_from

__all__ = [
    "INSTALL_HINT",
    "DaskMissing",
    "PhotoOutcome",
    "PhotoSettings",
    "bench_executor",
    "dashboard_link",
    "open_client",
    "protect_many",
    "require_dask",
    "settings_from",
]
