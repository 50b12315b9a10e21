"""Where the read-only ``../shared`` material lives, and what to do when part of it is missing.

Locally a missing fixture or data folder skips the tests that need it. With the
environment variable ``CI`` set (to anything non-empty) it fails them instead, so
that CI never passes by silently running fewer cases.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FIXTURES = SHARED / "fixtures"
DATA = SHARED / "data"


def in_ci() -> bool:
    return bool(os.environ.get("CI"))


def require(path: Path, what: str | None = None) -> Path:
    """``path`` if it exists; else skip the test (locally) or fail it (under ``CI``)."""
    if not path.exists():
        message = f"{what or 'shared material'} not available: {path} is missing"
        if in_ci():
            pytest.fail(f"{message} (CI is set: missing shared material is an error)")
        pytest.skip(message)
    return path


@cache
def _load_golden(rel: str) -> dict[str, Any]:
    return torch.load(FIXTURES / rel, map_location="cpu", weights_only=True)


def golden(rel: str) -> dict[str, Any]:
    """The golden file ``FIXTURES / rel``; skipped when absent (failed under ``CI``)."""
    require(FIXTURES / rel, f"golden fixture {rel}")
    return _load_golden(rel)


def golden_files_on_disk(folders: Sequence[str]) -> set[str]:
    """``"<folder>/golden*.pt"`` names present under each fixture folder (each required)."""
    for d in folders:
        require(FIXTURES / d, f"fixture folder {d}")
    return {f"{d}/{p.name}" for d in folders for p in (FIXTURES / d).glob("golden*.pt")}


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def benchmark_module(name: str) -> ModuleType:
    """Import ``benchmarks/<name>.py`` (the scripts are not a package)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(BENCHMARKS))
        return importlib.import_module(name)
