"""Writing images: where the protected copy goes, and an atomic 8-bit save that keeps
alpha, ICC profile and EXIF and never writes over the input (see
:mod:`disrupt.imaging.load` for the policies).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image
from torch import Tensor

from disrupt.errors import ImageError, SettingError, one_line, printable
from disrupt.files import write_atomically
from disrupt.imaging.load import OUTPUT_FORMATS, LoadedImage, load_image
from disrupt.imaging.pixels import to_uint8

logger = logging.getLogger(__name__)

#: JPEG outputs are written at this quality with 4:4:4 chroma; :func:`disrupt.api.protect`
#: optimises through a JPEG at the same quality when the output is a JPEG.
JPEG_QUALITY = 95


def default_output_path(
    input_path: str | os.PathLike[str], out: str | os.PathLike[str] | None = None
) -> Path:
    """Where to write the protected version of ``input_path``.

    - ``out is None``: ``NAME.protected.png`` beside the input.
    - ``out`` is an existing folder, or a string ending in ``/``: that file name
      inside ``out``. (A ``pathlib.Path`` drops a trailing slash, so pass the CLI
      string as it was typed.)
    - otherwise ``out`` itself is the output file.
    """
    src = Path(input_path)
    name = f"{src.stem}.protected.png"
    if out is None:
        return src.with_name(name)
    text = os.fspath(out)
    if text.endswith(("/", os.sep)) or Path(text).is_dir():
        return Path(text) / name
    return Path(text)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def _check_output_folder(folder: Path) -> None:
    shown = printable(str(folder))
    if not folder.exists():
        raise ImageError(f"{shown}: output folder does not exist")
    if not folder.is_dir():
        raise ImageError(f"{shown}: output folder is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ImageError(f"{shown}: output folder is not writable")


def check_jpeg_quality(quality: int) -> int:
    """``quality`` if it is a JPEG quality Pillow takes (an integer, 1 to 100)."""
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise SettingError(f"JPEG quality must be an integer from 1 to 100, got {quality!r}")
    return quality


#: zlib level of PNG outputs. On a 12 MP photo (``benchmarks/results/png_levels.json``)
#: level 1 wrote in a third of the time of Pillow's default 6 for a file about a
#: quarter larger; the pixels are the same at every level.
PNG_COMPRESS_LEVEL = 1


def _save_options(fmt: str, like: LoadedImage | None, jpeg_quality: int) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if fmt == "JPEG":
        # 4:4:4 keeps the chroma of the perturbation that 4:2:0 would average away.
        options.update(quality=jpeg_quality, subsampling=0)
    elif fmt == "PNG":
        options.update(compress_level=PNG_COMPRESS_LEVEL)
    elif fmt == "WEBP":
        options.update(lossless=True)
    elif fmt == "TIFF":
        options.update(compression="tiff_adobe_deflate")
    if like is not None:
        if like.icc_profile:
            options["icc_profile"] = like.icc_profile
        if like.exif:
            options["exif"] = like.exif
    return options


def _to_pil(pixels: np.ndarray, like: LoadedImage | None, fmt: str, name: str) -> Image.Image:
    alpha = like.alpha if like is not None else None
    if alpha is None:
        return Image.fromarray(pixels)  # (H,W,3) uint8 -> "RGB"
    if alpha.shape != pixels.shape[:2]:
        raise ValueError(
            f"alpha of shape {tuple(alpha.shape)} does not match the image of size "
            f"{pixels.shape[1]}x{pixels.shape[0]}"
        )
    if fmt == "JPEG":
        logger.warning("%s: JPEG cannot store transparency; alpha dropped", name)
        return Image.fromarray(pixels)
    if alpha.dtype == np.uint16:
        alpha8 = ((alpha.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    else:
        alpha8 = alpha.astype(np.uint8)
    return Image.fromarray(np.dstack([pixels, alpha8]))


def save_image(
    image: Tensor,
    path: str | os.PathLike[str],
    *,
    like: LoadedImage | None = None,
    overwrite: bool = False,
    jpeg_quality: int = JPEG_QUALITY,
) -> Path:
    """Write an image atomically, as 8 bits, and return the path written.

    The format follows the suffix: ``.png``; ``.jpg``/``.jpeg`` (``jpeg_quality``,
    4:4:4 chroma: lossy, weakens the perturbation); ``.webp`` (lossless); ``.tif``/
    ``.tiff`` (deflate). The data go to a temporary file in the same folder, are
    fsynced, then renamed over the target, so a crash never leaves a half-written
    output and a failed write never touches an existing file.

    Args:
        image: float tensor of shape ``(1,3,H,W)`` or ``(3,H,W)`` in ``[0,1]``;
            rounded to the 8-bit grid (see :func:`to_uint8`).
        path: output file.
        like: the :class:`LoadedImage` this came from: its alpha, ICC profile and
            EXIF (orientation 1) are written too, and its ``path`` is never written.
        overwrite: replace an existing output file (never the input).
        jpeg_quality: quality of a JPEG output (1 to 100, 4:4:4 chroma); ignored for
            the lossless formats.

    Returns:
        ``Path(path)``.

    Raises:
        ImageError: unknown suffix, output equals the input, output exists without
            ``overwrite``, output folder missing or not writable, or the write failed.
        ValueError: wrong tensor shape, or ``like.alpha`` of another size.
    """
    out = Path(path)
    shown = printable(os.fspath(path))
    fmt = OUTPUT_FORMATS.get(out.suffix.lower())
    if fmt is None:
        known = ", ".join(OUTPUT_FORMATS)
        raise ImageError(
            f"{shown}: unsupported output format {out.suffix or '(no suffix)'!r} (use {known})"
        )
    if like is not None and like.path is not None and _same_file(out, like.path):
        raise ImageError(f"{shown}: refusing to write over the input image")
    check_jpeg_quality(jpeg_quality)
    pixels = to_uint8(image)
    pil = _to_pil(pixels, like, fmt, shown)
    folder = out.parent
    _check_output_folder(folder)
    if out.is_dir():
        raise ImageError(f"{shown}: is a directory")
    existing_mode: int | None = None
    if out.exists():
        if not overwrite:
            raise ImageError(f"{shown}: output exists; pass overwrite=True (CLI: --overwrite)")
        existing_mode = out.stat().st_mode & 0o7777

    def write(f: IO[bytes]) -> None:
        pil.save(f, format=fmt, **_save_options(fmt, like, jpeg_quality))

    try:
        write_atomically(out, write, mode=existing_mode)
    except PermissionError as exc:
        raise ImageError(f"{printable(str(folder))}: output folder is not writable") from exc
    except OSError as exc:
        raise ImageError(f"{shown}: could not write image ({one_line(exc)})") from exc
    return out


def reload_saved(path: str | os.PathLike[str]) -> Tensor:
    """Read back what :func:`save_image` wrote: ``(1,3,H,W)`` float32 in ``[0,1]``.

    Metrics are computed on this, i.e. on what the user actually gets.
    """
    return load_image(path).rgb
