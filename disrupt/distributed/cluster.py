"""Connecting to a Dask cluster: a local one of N worker processes, or an existing one.

Dask is an optional extra (``pip install 'disrupt-deepfakes[dask]'``); it is imported
here, inside the functions, so ``import disrupt`` and the core install never need it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from disrupt.errors import DisruptError, SettingError

__all__ = ["INSTALL_HINT", "DaskMissing", "dashboard_link", "open_client", "require_dask"]

INSTALL_HINT = "pip install 'disrupt-deepfakes[dask]'"


class DaskMissing(DisruptError):
    """Dask distributed is not installed: the one-line message says how to install it."""


def require_dask() -> None:
    """Raise :class:`DaskMissing` unless ``dask.distributed`` can be imported."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise DaskMissing(f"running on a cluster (--workers, --scheduler) needs Dask: "
                          f"{INSTALL_HINT} installs it") from None


def check_cluster_options(workers: int | None, scheduler: str | None) -> None:
    """:class:`~disrupt.errors.SettingError` for ``workers < 1`` or both options given."""
    if workers is not None and scheduler is not None:
        raise SettingError("--workers starts a local cluster and --scheduler uses an existing "
                           "one: give one of them")
    if workers is not None and workers < 1:
        raise SettingError(f"--workers must be at least 1, got {workers}")
    if scheduler is not None and not scheduler.strip():
        raise SettingError("--scheduler: give an address such as tcp://HOST:8786")


@contextmanager
def open_client(workers: int | None = None, scheduler: str | None = None, *,
                dashboard: bool = True, timeout_s: float = 30.0) -> Iterator[Any]:
    """A ``distributed.Client``: on ``scheduler`` (``tcp://HOST:PORT``) when given, else on
    a ``LocalCluster`` of ``workers`` processes with one thread each (Dask sets
    ``OMP_NUM_THREADS=1`` in them). Closes the client, and the local cluster, on exit,
    also on Ctrl-C.

    Raises:
        DaskMissing: Dask is not installed. SettingError: bad options.
        DisruptError: the scheduler cannot be reached.
    """
    check_cluster_options(workers, scheduler)
    require_dask()
    from distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout=timeout_s)
        except (OSError, TimeoutError) as exc:
            raise DisruptError(f"{scheduler}: cannot reach the Dask scheduler "
                               f"({' '.join(str(exc).split())})") from None
        try:
            yield client
        finally:
            client.close()
        return
    cluster = LocalCluster(n_workers=workers or 1, threads_per_worker=1, processes=True,
                           dashboard_address=":0",  # a free port: 8787 may be taken
                           scheduler_kwargs={"dashboard": dashboard},
                           silence_logs=logging.ERROR)
    try:
        client = Client(cluster)
        try:
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


def dashboard_link(client: Any, *, local: bool = False) -> str | None:
    """The address of the Dask dashboard, or ``None`` when the scheduler has none (or,
    for a ``local`` cluster, when bokeh, which draws it, is not installed)."""
    import importlib.util

    try:
        services = client.scheduler_info().get("services", {})
    except Exception:  # a scheduler that went away: no link, nothing else to say
        return None
    if "dashboard" not in services:
        return None
    if local and importlib.util.find_spec("bokeh") is None:
        return None
    link = client.dashboard_link
    return str(link) if link else None


def describe(client: Any) -> dict[str, Any]:
    """Where the work ran, for the report's environment: scheduler, workers, threads."""
    info = client.scheduler_info()
    workers = info.get("workers", {})
    return {"dask": {
        "scheduler": info.get("address"),
        "workers": len(workers),
        "threads": sum(int(w.get("nthreads", 0)) for w in workers.values()),
    }}
