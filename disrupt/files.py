"""Writing files safely: one atomic writer for images, pictures, tables and caches.

Data go to a hidden temporary file in the target's folder, are flushed and fsynced,
then renamed over the target. A crash, a full disk, Ctrl-C or SIGTERM (the CLI turns
it into ``SystemExit``) leaves either the old file or the new one, never a partial
one, and never a stray temporary file.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

__all__ = ["json_ready", "umask", "write_atomically", "write_text_atomically"]


def umask() -> int:
    """The process umask, read without changing it where the platform allows."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # no read-only API elsewhere: set, then restore at once
    os.umask(mask)
    return mask


def write_atomically(path: Path, write: Callable[[IO[bytes]], object], *,
                     mode: int | None = None) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it to ``path``.

    ``mode``: the permissions of the result; default, what a plain ``open()`` would
    give (``0o666`` less the umask). ``OSError`` propagates (creating the temporary
    file, writing, renaming); the temporary file is removed on any failure or
    interruption.
    """
    folder = path.parent
    tmp = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed below; removed on failure)
        dir=folder, prefix=f".{path.name}.", suffix=".tmp", delete=False
    )
    tmp_path = Path(tmp.name)
    try:
        with tmp:
            write(tmp)
            tmp.flush()
            os.fsync(tmp.fileno())
        # NamedTemporaryFile creates 0600; give the output the usual permissions.
        os.chmod(tmp_path, mode if mode is not None else 0o666 & ~umask())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    _fsync_folder(folder)
    return path


def write_text_atomically(path: Path, text: str) -> Path:
    """:func:`write_atomically` for UTF-8 text (newlines kept as given)."""
    return write_atomically(path, lambda f: f.write(text.encode("utf-8")))


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable where the platform allows it (POSIX)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def json_ready(value: Any) -> Any:
    """``value`` with non-finite floats as ``None`` and paths as strings, so that
    ``json.dumps(..., allow_nan=False)`` writes standard JSON (no ``Infinity``)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
