"""Reading and writing image files: the one place pixels cross the disk boundary.

Everything else in ``disrupt`` works on float32 RGB tensors of shape ``(B,3,H,W)``
with values in ``[0,1]``. :func:`load_image` turns a file (or bytes, a stream, a
PIL image, a numpy array, a tensor) into that convention and keeps what has to be
written back: alpha, ICC profile and EXIF. :func:`save_image` writes the result
atomically, never over the input, on the 8-bit grid that the metrics measure.

Policies, in one place:

- **EXIF orientation** is applied on load (the tensor is what a viewer shows), and
  the stored EXIF gets orientation 1 so the saved file is not rotated twice.
- **Alpha** is kept untouched (``uint8``, or ``uint16`` for 16-bit arrays) and
  re-attached on save; only RGB is perturbed. JPEG cannot store alpha, so it is
  dropped there (with a logged warning).
- **Grayscale** sources (``1``, ``L``, ``LA``, ``I;16``, ...) load as three equal
  channels and are saved as RGB (or RGBA): the perturbation is per channel, so
  folding it back to one channel would destroy part of it.
- **16-bit** sources are read at full precision where Pillow allows it
  (16-bit grayscale), but saved as 8 bits: the perturbation is quantized to, and
  measured on, the 8-bit grid, so extra bits would only carry unmeasured noise.
  Pillow decodes 16-bit RGB/RGBA PNGs to 8 bits itself (keeping the high byte);
  such files still report ``bit_depth == 16``.
- **ICC profiles** are kept only when they describe RGB data, because they are
  written next to RGB pixels. CMYK images with a CMYK profile are converted to
  sRGB through that profile (and carry an sRGB profile afterwards); other
  non-RGB profiles (grayscale, Lab) are dropped.
- **Multi-frame** files (GIF, APNG, multi-page TIFF) contribute their first frame.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from disrupt.errors import ImageError, InputTypeError, one_line, printable
from disrupt.imaging.metadata import _cmyk_to_srgb, _exif_with_orientation_reset, _icc_colour_space

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_SUFFIXES",
    "OUTPUT_FORMATS",
    "ImageInput",
    "LoadedImage",
    "load_image",
]

logger = logging.getLogger(__name__)

#: Pillow's own default limit (``PIL.Image.MAX_IMAGE_PIXELS``): about 9459 x 9459.
DEFAULT_MAX_PIXELS = 89_478_485

#: File suffixes read as images when a folder is given (the first frame of a GIF).
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff",
                                   ".gif")

#: Output file suffix -> Pillow format name.
OUTPUT_FORMATS: dict[str, str] = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}

#: Anything :func:`load_image` accepts.
ImageInput = Union[
    str, "os.PathLike[str]", bytes, bytearray, IO[bytes], Image.Image, np.ndarray, Tensor
]

_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "La", "RGBa"})


@dataclass
class LoadedImage:
    """An image in the library's convention, plus what is needed to write it back.

    Attributes:
        rgb: float32 tensor of shape ``(1,3,H,W)``, values in ``[0,1]``, EXIF
            orientation already applied.
        alpha: ``(H,W)`` ``uint8`` (or ``uint16``) alpha channel kept as it was, or
            ``None`` when the source had no transparency.
        mode: the source's PIL mode (``"RGB"``, ``"P"``, ``"I;16"``, ...); for
            arrays and tensors, the PIL mode that describes them best.
        icc_profile: ICC profile bytes describing RGB data, or ``None``.
        exif: EXIF bytes with orientation reset to 1, or ``None``.
        bit_depth: 8 when the source had at most 8 bits per sample, 16 when it had
            more (16-bit integers, 32-bit integers, floating point).
        path: the file it came from, or ``None``.
        format: the decoder's format name (``"PNG"``, ``"JPEG"``, ...), or ``None``.
    """

    rgb: Tensor
    alpha: np.ndarray | None = None
    mode: str = "RGB"
    icc_profile: bytes | None = None
    exif: bytes | None = None
    bit_depth: int = 8
    path: Path | None = None
    format: str | None = None

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` in pixels, as PIL reports sizes."""
        return int(self.rgb.shape[-1]), int(self.rgb.shape[-2])


# --------------------------------------------------------------------------- loading


def load_image(source: ImageInput, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Load an image into a float32 ``(1,3,H,W)`` tensor in ``[0,1]``.

    Args:
        source: a path (``str`` or ``os.PathLike``), encoded bytes, a binary file
            object, a ``PIL.Image.Image``, a numpy array of shape ``(H,W)``,
            ``(H,W,3)`` or ``(H,W,4)`` (``uint8``, ``uint16``, ``bool`` or float in
            ``[0,1]``), or a float tensor of shape ``(3,H,W)`` or ``(1,3,H,W)`` in
            ``[0,1]`` (kept on its device).
        max_pixels: refuse images with more than ``width * height`` pixels. Checked
            from the header, before any pixel is decoded. Pillow's own guard
            (``2 * PIL.Image.MAX_IMAGE_PIXELS``) still applies to files on top.

    Returns:
        A :class:`LoadedImage`.

    Raises:
        ImageError: for a file, bytes or stream that cannot be used, with a one-line
            message ``"<name>: <problem>"`` (not found, a directory, empty, not an
            image, truncated, zero size, over the pixel limit).
        ValueError: for an array or tensor of the wrong shape or out of range.
        InputTypeError: for anything else (a :class:`DisruptError` and a ``TypeError``).
    """
    if isinstance(source, Tensor):
        return _from_tensor(source)
    if isinstance(source, np.ndarray):
        return _from_array(source)
    if isinstance(source, Image.Image):
        filename = getattr(source, "filename", "")
        path = Path(filename) if isinstance(filename, str) and filename else None
        name = printable(str(path) if path else "<PIL image>")
        with _pillow_bomb_warning_ignored():
            return _from_pil(source, name, path, max_pixels)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        name = printable(os.fspath(source))
        check_readable(path, name)
        return _open_and_decode(path, name, path, max_pixels)
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise ImageError("<bytes>: input is empty")
        return _open_and_decode(io.BytesIO(bytes(source)), "<bytes>", None, max_pixels)
    if hasattr(source, "read"):
        stream_name = getattr(source, "name", None)
        name = (
            printable(os.fspath(stream_name))
            if isinstance(stream_name, (str, os.PathLike))
            else "<stream>"
        )
        # A file object opened from a path keeps that path, so that no save can
        # write over the file the stream reads.
        origin = (Path(stream_name) if isinstance(stream_name, (str, os.PathLike))
                  and os.path.isfile(stream_name) else None)
        return _open_and_decode(source, name, origin, max_pixels)
    raise InputTypeError(f"<{type(source).__name__}>: cannot load an image from this type "
                         "(give a path, bytes, a binary stream, a PIL image, an array or a "
                         "tensor)")


def check_readable(path: Path, name: str) -> None:
    """:class:`ImageError` naming ``name`` unless ``path`` is a non-empty readable file."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ImageError(f"{name}: file not found") from None
    except NotADirectoryError:
        raise ImageError(f"{name}: file not found (a parent is not a folder)") from None
    except OSError as exc:
        raise ImageError(f"{name}: cannot read file ({one_line(exc)})") from exc
    if path.is_dir():
        raise ImageError(f"{name}: is a directory, not an image file")
    if st.st_size == 0:
        raise ImageError(f"{name}: file is empty")


@contextlib.contextmanager
def _pillow_bomb_warning_ignored() -> Iterator[None]:
    """Silence Pillow's DecompressionBombWarning inside a load only.

    :func:`_from_pil` enforces ``max_pixels`` itself, from the header and with a
    message that gives both numbers, so Pillow's softer warning adds nothing (and
    would otherwise get in the way of a caller who raises ``max_pixels``). Pillow's
    hard ``DecompressionBombError`` is still caught and reported. The previous
    warning filters are restored on exit.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        yield


def _open_and_decode(
    fp: Path | IO[bytes], name: str, path: Path | None, max_pixels: int
) -> LoadedImage:
    with _pillow_bomb_warning_ignored():
        try:
            im = Image.open(fp)
        except Image.DecompressionBombError as exc:
            raise ImageError(f"{name}: {_bomb_problem(exc)}") from exc
        except UnidentifiedImageError as exc:
            raise ImageError(f"{name}: not an image (or a format Pillow cannot read)") from exc
        except FileNotFoundError as exc:
            raise ImageError(f"{name}: file not found") from exc
        except IsADirectoryError as exc:
            raise ImageError(f"{name}: is a directory, not an image file") from exc
        except PermissionError as exc:
            raise ImageError(f"{name}: permission denied") from exc
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageError(f"{name}: cannot read image ({one_line(exc)})") from exc
        with im:
            return _from_pil(im, name, path, max_pixels)


def _bomb_problem(exc: Image.DecompressionBombError) -> str:
    """Pillow's own (hard) pixel limit, worded like ours."""
    found = re.search(r"\((\d+) pixels\) exceeds limit of (\d+) pixels", str(exc))
    if found is None:
        return f"image too large ({one_line(exc)}) (decompression bomb guard)"
    pixels, limit = found.groups()
    return f"image has {pixels} pixels, over Pillow's limit of {limit} (decompression bomb guard)"


def _source_bit_depth(im: Image.Image) -> int:
    """8 or 16, read from the mode or, before decoding, from the raw mode of the tile."""
    if im.mode in _SIXTEEN_BIT_MODES or im.mode == "F":
        return 16
    for tile in getattr(im, "tile", None) or []:
        args = tile[3] if len(tile) > 3 else None
        rawmode = (
            args if isinstance(args, str) else (args[0] if isinstance(args, tuple) and args else "")
        )
        if isinstance(rawmode, str) and (";16" in rawmode or ";32" in rawmode):
            return 16
    return 8


def _from_pil(im: Image.Image, name: str, path: Path | None, max_pixels: int) -> LoadedImage:
    width, height = im.size
    if width <= 0 or height <= 0:
        raise ImageError(f"{name}: image has zero size ({width}x{height})")
    if width * height > max_pixels:
        raise ImageError(
            f"{name}: image has {width * height} pixels, over the limit of {max_pixels} "
            "(decompression bomb guard)"
        )
    mode, fmt, bit_depth = im.mode, im.format, _source_bit_depth(im)
    try:
        im.load()
    except (OSError, SyntaxError, EOFError, ValueError) as exc:
        msg = one_line(exc)
        if isinstance(exc, EOFError) or "truncated" in msg.lower():
            raise ImageError(f"{name}: truncated image data") from exc
        raise ImageError(f"{name}: corrupt image data ({msg})") from exc

    exif = _exif_with_orientation_reset(im, name)
    try:
        upright = ImageOps.exif_transpose(im)  # a copy
    except Exception as exc:  # a malformed EXIF block must not make the photo unreadable
        logger.warning("%s: ignoring unreadable EXIF orientation (%s)", name, one_line(exc))
        upright = None
    if upright is None:
        upright = im

    icc = upright.info.get("icc_profile") or im.info.get("icc_profile") or None
    rgb8: np.ndarray | None = None
    if mode == "CMYK" and icc is not None and _icc_colour_space(icc) == "CMYK":
        rgb8, icc = _cmyk_to_srgb(upright, icc, name)
    if icc is not None and _icc_colour_space(icc) != "RGB":
        logger.info("%s: dropping a non-RGB ICC profile (output is RGB)", name)
        icc = None

    rgb, alpha = _pixels(upright, rgb8)
    tensor = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None]
    return LoadedImage(
        rgb=tensor,
        alpha=alpha,
        mode=mode,
        icc_profile=icc,
        exif=exif,
        bit_depth=bit_depth,
        path=path,
        format=fmt,
    )


def _pixels(im: Image.Image, rgb8: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """``(H,W,3)`` float32 in ``[0,1]`` and the ``(H,W)`` alpha (or ``None``)."""
    mode = im.mode
    transparency = im.info.get("transparency")
    if mode in _SIXTEEN_BIT_MODES:
        raw = np.asarray(im)
        # "I" is treated like 16-bit grayscale (what PNG and most TIFFs put there).
        gray = np.clip(raw.astype(np.float32), 0.0, 65535.0) / 65535.0
        alpha = None
        if isinstance(transparency, int):
            alpha = np.where(raw == transparency, 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2), alpha
    if mode == "F":
        values = np.nan_to_num(np.asarray(im, dtype=np.float32), nan=0.0, posinf=1.0, neginf=0.0)
        peak = float(values.max(initial=0.0))
        # Float images have no fixed range: [0,1] if it fits, else 8-bit, else 16-bit scale.
        scale = 1.0 if peak <= 1.0 else 255.0 if peak <= 255.0 else 65535.0
        gray = np.clip(values / scale, 0.0, 1.0)
        return np.repeat(gray[..., None], 3, axis=2), None
    alpha = None
    if mode in _ALPHA_MODES or transparency is not None:
        rgba = np.asarray(im.convert("RGBA"))
        alpha = rgba[..., 3].copy()
        if rgb8 is None:
            rgb8 = rgba[..., :3]
    if rgb8 is None:
        rgb8 = np.asarray(im.convert("RGB"))
    return rgb8.astype(np.float32) / 255.0, alpha


def _from_array(arr: np.ndarray) -> LoadedImage:
    shape = tuple(arr.shape)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"expected an array of shape (H,W), (H,W,3) or (H,W,4), got {shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"image array has zero size: {shape}")
    channels = arr.shape[2]
    if arr.dtype == np.uint8:
        values, bit_depth = arr.astype(np.float32) / 255.0, 8
    elif arr.dtype == np.uint16:
        values, bit_depth = arr.astype(np.float32) / 65535.0, 16
    elif arr.dtype == np.bool_:
        values, bit_depth = arr.astype(np.float32), 8
    elif np.issubdtype(arr.dtype, np.floating):
        values, bit_depth = arr.astype(np.float32), 16
        if not np.isfinite(values).all():
            raise ValueError("image array contains NaN or infinity")
        lo, hi = float(values.min()), float(values.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(f"float image array must be in [0,1], got values in [{lo:g}, {hi:g}]")
    else:
        raise ValueError(f"unsupported image array dtype {arr.dtype} (use uint8, uint16 or float)")

    alpha: np.ndarray | None = None
    if channels in (2, 4):
        raw_alpha = arr[..., -1]
        if raw_alpha.dtype in (np.uint8, np.uint16):
            alpha = raw_alpha.copy()
        else:
            alpha = np.round(values[..., -1] * 255.0).astype(np.uint8)
        values = values[..., :-1]
    if values.shape[2] == 1:
        values = np.repeat(values, 3, axis=2)

    gray_modes = {np.dtype(np.uint8): "L", np.dtype(np.uint16): "I;16", np.dtype(np.bool_): "1"}
    mode = {
        1: gray_modes.get(arr.dtype, "F"),
        2: "LA",
        3: "RGB",
        4: "RGBA",
    }[channels]
    tensor = torch.from_numpy(np.ascontiguousarray(values.transpose(2, 0, 1)))[None]
    return LoadedImage(rgb=tensor, alpha=alpha, mode=mode, bit_depth=bit_depth)


def _from_tensor(x: Tensor) -> LoadedImage:
    shape = tuple(x.shape)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[0] != 1 or x.shape[1] != 3:
        raise ValueError(f"expected a tensor of shape (3,H,W) or (1,3,H,W), got {shape}")
    if x.shape[2] == 0 or x.shape[3] == 0:
        raise ValueError(f"image tensor has zero size: {shape}")
    x = x.detach()
    if x.dtype == torch.uint8:
        return LoadedImage(rgb=x.float() / 255.0, mode="RGB", bit_depth=8)
    if not x.is_floating_point():
        raise ValueError(f"unsupported image tensor dtype {x.dtype} (use float in [0,1] or uint8)")
    if not torch.isfinite(x).all():
        raise ValueError("image tensor contains NaN or infinity")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"image tensor must be in [0,1], got values in [{lo:g}, {hi:g}]")
    return LoadedImage(rgb=x.to(torch.float32).clone(), mode="RGB", bit_depth=16)


# ------------------------------------------------------------------- 8-bit grid


# --------------------------------------------------------------------------- saving



