"""Protect many photos, in this process or on a Dask cluster: :func:`protect_many`.

The client reads each photo's bytes and sends them to a worker; the worker runs
:func:`disrupt.protect` exactly as the in-process path does (same seed per photo,
same targets, same budget), encodes the protected copy in the output's format on its
own scratch disk, and sends the bytes back; the client writes every output file
(atomically). Workers need no shared file system, and load their models once.

A photo that fails (unreadable, truncated, too large; a worker that died on it more
times than Dask allows) fails alone: its outcome carries a one-line error and the
others go on.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import uuid4

from torch import Tensor

from disrupt.core.budget import Budget
from disrupt.distributed.worker import cache_key, cached
from disrupt.errors import DisruptError, SettingError, one_line, printable
from disrupt.files import write_atomically
from disrupt.imaging.load import check_readable

__all__ = ["PhotoOutcome", "PhotoSettings", "protect_many"]


@dataclass(frozen=True)
class PhotoSettings:
    """How every photo of a run is protected (what :func:`disrupt.protect` takes).

    ``targets``: names (``None``: the bundled set) with their ``weights`` paths, which
    must be readable on the workers (bundled weights ship inside the package).
    ``mask``: encoded image bytes of the photos' size. ``universal``: a ``(3, S, S)``
    tensor. ``device``: resolved on each worker (``"auto"``: its GPU if it has one).
    """

    budget: Budget
    targets: tuple[str, ...] | None = None
    weights: tuple[tuple[str, str], ...] = ()
    faces: bool | None = None
    mask: bytes | None = None
    universal: Tensor | None = None
    seed: int = 0
    device: str = "cpu"
    require_disruption: bool = False
    #: ``"haar"`` or ``"dlib"``; the dlib extra must be installed on the workers.
    detector: str = "haar"
    #: The quality of JPEG outputs (``None``: 95); see :func:`disrupt.protect`.
    jpeg_quality: int | None = None
    #: ``"bundled"`` for the amortized protector (``--fast``), else ``None``.
    protector: str | None = None


@dataclass
class PhotoOutcome:
    """What became of one photo: its ``summary`` (:meth:`ProtectResult.to_dict`) once
    its output is written, or a one-line ``error``. ``not_disrupted`` holds the
    message of :func:`disrupt.api.check_disrupted` when ``require_disruption`` was
    asked and some output stayed under the threshold (the copy is still written)."""

    index: int
    input: Path
    output: Path
    summary: dict[str, Any] | None = None
    unchanged: bool = False
    not_disrupted: str | None = None
    error: str | None = None
    data: bytes | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.error is None


def _targets(settings: PhotoSettings) -> list[Any]:
    from disrupt.api import resolve_targets
    from disrupt.core.seeding import move_to, resolve_device

    def load() -> list[Any]:
        chosen = resolve_targets(list(settings.targets) if settings.targets else None,
                                 dict(settings.weights))
        move_to(chosen, resolve_device(settings.device))
        return chosen

    return cached(cache_key("targets", settings.targets, settings.weights, settings.device),
                  load)


def protect_bytes(index: int, name: str, data: bytes, output: str,
                  settings: PhotoSettings) -> PhotoOutcome:
    """Protect one photo given as encoded ``data`` (``name``: its path, for messages);
    returns the encoded protected copy for ``output`` in :attr:`PhotoOutcome.data`.
    Runs on a worker; writes only to a temporary folder of its own."""
    from disrupt.api import check_disrupted, protect
    from targets import CheckpointError

    outcome = PhotoOutcome(index, Path(name), Path(output))
    stream = io.BytesIO(data)
    stream.name = name  # error messages name the photo, as loading the file would
    mask = None
    if settings.mask is not None:
        mask = io.BytesIO(settings.mask)
        mask.name = "mask"
    try:
        with tempfile.TemporaryDirectory(prefix="disrupt-") as scratch:
            local = Path(scratch) / Path(output).name
            result = protect(stream, targets=_targets(settings), budget=settings.budget,
                             faces=settings.faces, mask=mask, universal=settings.universal,
                             seed=settings.seed, device=settings.device, output=local,
                             detector=settings.detector, jpeg_quality=settings.jpeg_quality,
                             protector=settings.protector)
            outcome.data = local.read_bytes()
    except (DisruptError, CheckpointError, OSError) as exc:
        outcome.error = " ".join(str(exc).split())
        return outcome
    result.output_path = Path(output)
    summary = result.to_dict()
    summary["input"] = name
    outcome.summary = summary
    outcome.unchanged = result.unchanged
    if settings.require_disruption:
        try:
            check_disrupted(result)
        except DisruptError as exc:
            outcome.not_disrupted = " ".join(str(exc).split())
    return outcome


def _read(path: Path) -> bytes:
    """The file's bytes, or the error :func:`load_image` gives for it."""
    shown = printable(os.fspath(path))
    check_readable(path, shown)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DisruptError(f"{shown}: cannot read file ({one_line(exc)})") from None


def _write(outcome: PhotoOutcome, overwrite: bool) -> None:
    """Write the outcome's bytes to its output atomically; never over its input."""
    out, data = outcome.output, outcome.data
    assert data is not None
    outcome.data = None
    shown = printable(os.fspath(out))
    try:
        if out.exists() and out.resolve() == outcome.input.resolve():
            raise DisruptError(f"{shown}: refusing to write over the input image")
        mode = None
        if out.exists():
            if not overwrite:
                raise DisruptError(f"{shown}: output exists; pass overwrite=True "
                                   "(CLI: --overwrite)")
            mode = out.stat().st_mode & 0o7777
        write_atomically(out, lambda f: f.write(data), mode=mode)
    except DisruptError as exc:
        outcome.error, outcome.summary = str(exc), None
    except OSError as exc:
        outcome.error, outcome.summary = f"{shown}: could not write image ({one_line(exc)})", None


def plan_outputs(photos: Sequence[Path], outputs: Sequence[Path] | None) -> list[Path]:
    """Each photo's output (default ``NAME.protected.png`` beside it); two photos
    sharing an output, or an output that is its own input, is a :class:`SettingError`."""
    from disrupt.imaging import default_output_path

    outs = list(outputs) if outputs is not None else [default_output_path(p) for p in photos]
    if len(outs) != len(photos):
        raise SettingError(f"{len(photos)} photos but {len(outs)} outputs")
    claimed: dict[Path, Path] = {}
    for photo, out in zip(photos, outs, strict=True):
        key = out.resolve()
        if key == photo.resolve():
            raise SettingError(f"{out}: refusing to write a protected copy over the input")
        if key in claimed:
            raise SettingError(f"{out}: both {claimed[key]} and {photo} would be written there")
        claimed[key] = photo
    return outs


def protect_many(
    photos: Iterable[str | os.PathLike[str]],
    settings: PhotoSettings,
    *,
    outputs: Sequence[str | os.PathLike[str]] | None = None,
    overwrite: bool = False,
    client: Any | None = None,
    in_flight: int | None = None,
) -> Generator[PhotoOutcome, None, None]:
    """Protect every photo and write its protected copy; yield one outcome per photo.

    With ``client`` (a ``distributed.Client``) the photos run as tasks on its cluster
    and outcomes come in the order they finish (:attr:`PhotoOutcome.index` is the
    photo's position); without, they run here, in order. Either way each photo gets
    exactly what ``disrupt.protect(photo, seed=settings.seed, ...)`` gives it: the same
    bytes and the same figures.

    Args:
        photos: image files.
        settings: the protection (targets, budget, seed, ...), shared by all photos.
        outputs: one output path per photo; default ``NAME.protected.png`` beside it.
        overwrite: replace existing output files (never an input).
        client: a Dask client; ``None`` runs in this process (Dask not needed).
        in_flight: photos sent to the cluster at a time (their bytes are held in
            memory); default four per worker thread.

    Raises:
        SettingError: two photos with one output, or an output that is its input
            (before any work). Ctrl-C cancels the photos still queued and re-raises.
    """
    paths = [Path(p) for p in photos]
    outs = plan_outputs(paths, [Path(o) for o in outputs] if outputs is not None else None)
    jobs = list(enumerate(zip(paths, outs, strict=True)))
    if client is None:
        for index, (photo, out) in jobs:
            yield _finish(_run_here(index, photo, out, settings), overwrite)
        return
    yield from _run_on_cluster(client, jobs, settings, overwrite, in_flight)


def _run_here(index: int, photo: Path, out: Path, settings: PhotoSettings) -> PhotoOutcome:
    try:
        data = _read(photo)
    except DisruptError as exc:
        return PhotoOutcome(index, photo, out, error=str(exc))
    return protect_bytes(index, os.fspath(photo), data, os.fspath(out), settings)


def _finish(outcome: PhotoOutcome, overwrite: bool) -> PhotoOutcome:
    if outcome.error is None and outcome.data is not None:
        _write(outcome, overwrite)
    return outcome


def _run_on_cluster(client: Any, jobs: Sequence[tuple[int, tuple[Path, Path]]],
                    settings: PhotoSettings, overwrite: bool,
                    in_flight: int | None) -> Iterator[PhotoOutcome]:
    from distributed import as_completed

    limit = in_flight or max(2, 4 * sum(client.nthreads().values()))
    run = uuid4().hex[:8]  # task keys of another run (other settings) never match
    shared = client.scatter(settings, broadcast=True)
    pending = iter(jobs)
    futures: dict[Any, tuple[int, Path, Path]] = {}
    queue = as_completed()

    def submit_next() -> PhotoOutcome | None:
        """Send the next photo; a photo the client cannot read fails here, alone."""
        for index, (photo, out) in pending:
            try:
                data = _read(photo)
            except DisruptError as exc:
                return PhotoOutcome(index, photo, out, error=str(exc))
            future = client.submit(protect_bytes, index, os.fspath(photo), data, os.fspath(out),
                                   shared, key=f"protect-{run}-{index}-{photo.name}", pure=False)
            futures[future] = (index, photo, out)
            queue.add(future)
            return None
        return None

    try:
        unread: list[PhotoOutcome] = []
        while len(futures) < limit:
            before = len(futures)
            failed = submit_next()
            if failed is not None:
                unread.append(failed)
            elif len(futures) == before:
                break
        yield from unread
        for future in queue:
            index, photo, out = futures.pop(future)
            try:
                outcome: PhotoOutcome = future.result()
            except Exception as exc:  # the task itself failed (e.g. its worker kept dying)
                outcome = PhotoOutcome(index, photo, out,
                                       error=f"{printable(os.fspath(photo))}: {one_line(exc)}")
            while len(futures) < limit:
                before = len(futures)
                failed = submit_next()
                if failed is not None:
                    yield failed
                elif len(futures) == before:
                    break
            yield _finish(outcome, overwrite)
    except BaseException:
        client.cancel(list(futures))
        raise


def settings_from(budget: Budget, *, targets: Sequence[str] | None = None,
                  weights: Mapping[str, str | os.PathLike[str]] | None = None,
                  faces: bool | None = None, mask: str | os.PathLike[str] | None = None,
                  universal: str | os.PathLike[str] | Tensor | None = None, seed: int = 0,
                  device: str = "cpu", require_disruption: bool = False,
                  detector: str = "haar", jpeg_quality: int | None = None,
                  protector: str | None = None) -> PhotoSettings:
    """:class:`PhotoSettings` from paths as the CLI has them: the mask file and the
    universal perturbation are read here, once, and travel as data."""
    from disrupt.core.seeding import check_seed
    from disrupt.core.universal import load_universal

    check_seed(seed)
    return PhotoSettings(
        budget=budget,
        targets=tuple(targets) if targets else None,
        weights=tuple((k, os.fspath(v)) for k, v in (weights or {}).items()),
        faces=faces,
        mask=_read(Path(mask)) if mask is not None else None,
        universal=(None if universal is None else load_universal(
            universal if isinstance(universal, (str, Tensor)) else Path(universal))),
        seed=seed, device=device, require_disruption=require_disruption, detector=detector,
        jpeg_quality=jpeg_quality, protector=protector)
