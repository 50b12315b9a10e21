"""What runs on a Dask worker: a per-process cache of loaded models, and the tasks.

A worker process loads the targets (and judges) a run needs once, on its first task,
and keeps them for the tasks that follow. Tasks receive everything else as data
(images, settings) and return data (rows, encoded files): they never touch the
client's file system.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_CACHE: dict[str, Any] = {}
_LOCK = threading.Lock()
_KEEP = 4  # settings kept loaded at once; an older one is dropped first


def cached(key: str, load: Callable[[], T]) -> T:
    """``load()`` once per process and ``key``; later calls return the same object."""
    with _LOCK:
        if key not in _CACHE:
            while len(_CACHE) >= _KEEP:
                _CACHE.pop(next(iter(_CACHE)))
            _CACHE[key] = load()
        return _CACHE[key]  # type: ignore[no-any-return]


def cache_key(*parts: object) -> str:
    return json.dumps(parts, sort_keys=True, default=str)
