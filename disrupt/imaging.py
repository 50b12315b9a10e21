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
from typing import IO, Any, Union

import numpy as np
import torch
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from disrupt.errors import ImageError, InputTypeError
from disrupt.files import write_atomically

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "OUTPUT_FORMATS",
    "ImageInput",
    "LoadedImage",
    "default_output_path",
    "load_image",
    "quantize",
    "reload_saved",
    "save_image",
    "to_uint8",
]

logger = logging.getLogger(__name__)

#: Pillow's own default limit (``PIL.Image.MAX_IMAGE_PIXELS``): about 9459 x 9459.
DEFAULT_MAX_PIXELS = 89_478_485

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
# Tags that describe a TIFF file's own pixel layout (Pillow reports them as EXIF for
# TIFF sources); copied into another file they would describe the wrong data.
_TIFF_LAYOUT_TAGS = frozenset(
    {256, 257, 258, 259, 262, 273, 277, 278, 279, 284, 317, 320, 322, 323, 324, 325,
     338, 339, 347, 529, 530, 532, 34675}
)  # fmt: skip


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
        name = _display(str(path) if path else "<PIL image>")
        with _pillow_bomb_warning_ignored():
            return _from_pil(source, name, path, max_pixels)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        name = _display(os.fspath(source))
        _check_readable(path, name)
        return _open_and_decode(path, name, path, max_pixels)
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise ImageError("<bytes>: input is empty")
        return _open_and_decode(io.BytesIO(bytes(source)), "<bytes>", None, max_pixels)
    if hasattr(source, "read"):
        stream_name = getattr(source, "name", None)
        name = (
            _display(os.fspath(stream_name))
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


def _display(name: str) -> str:
    """``name`` with control characters escaped, so messages stay on one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in name)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _check_readable(path: Path, name: str) -> None:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ImageError(f"{name}: file not found") from None
    except NotADirectoryError:
        raise ImageError(f"{name}: file not found (a parent is not a folder)") from None
    except OSError as exc:
        raise ImageError(f"{name}: cannot read file ({_one_line(exc)})") from exc
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
            raise ImageError(f"{name}: cannot read image ({_one_line(exc)})") from exc
        with im:
            return _from_pil(im, name, path, max_pixels)


def _bomb_problem(exc: Image.DecompressionBombError) -> str:
    """Pillow's own (hard) pixel limit, worded like ours."""
    found = re.search(r"\((\d+) pixels\) exceeds limit of (\d+) pixels", str(exc))
    if found is None:
        return f"image too large ({_one_line(exc)}) (decompression bomb guard)"
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
        msg = _one_line(exc)
        if isinstance(exc, EOFError) or "truncated" in msg.lower():
            raise ImageError(f"{name}: truncated image data") from exc
        raise ImageError(f"{name}: corrupt image data ({msg})") from exc

    exif = _exif_with_orientation_reset(im, name)
    try:
        upright = ImageOps.exif_transpose(im)  # a copy
    except Exception as exc:  # a malformed EXIF block must not make the photo unreadable
        logger.warning("%s: ignoring unreadable EXIF orientation (%s)", name, _one_line(exc))
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


def _exif_with_orientation_reset(im: Image.Image, name: str) -> bytes | None:
    """A copy of ``im``'s EXIF as bytes, orientation set to 1, TIFF layout tags removed."""
    try:
        original = im.getexif()  # cached on ``im`` and used by exif_transpose: not mutated
        if len(original) == 0:
            return None
        exif = Image.Exif()
        exif.load(original.tobytes())
        for tag in _TIFF_LAYOUT_TAGS:
            exif.pop(tag, None)
        exif[ExifTags.Base.Orientation] = 1
        return exif.tobytes()
    except Exception as exc:  # keep the pixels even when the metadata is broken
        logger.warning("%s: dropping unreadable EXIF data (%s)", name, _one_line(exc))
        return None


def _icc_colour_space(icc: bytes) -> str | None:
    """The data colour space signature from an ICC header (``"RGB"``, ``"CMYK"``, ...)."""
    if len(icc) < 20:
        return None
    return icc[16:20].decode("ascii", "replace").strip()


def _cmyk_to_srgb(im: Image.Image, icc: bytes, name: str) -> tuple[np.ndarray | None, bytes | None]:
    """Colour-manage CMYK through its embedded profile; fall back to Pillow's formula."""
    try:
        from PIL import ImageCms

        srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        converted = ImageCms.profileToProfile(im, src, srgb, outputMode="RGB")
        if converted is None:
            raise RuntimeError("no image returned")
        return np.asarray(converted, dtype=np.uint8), srgb.tobytes()
    except Exception as exc:  # ImageCms missing, or a profile it cannot use
        logger.warning(
            "%s: CMYK profile not usable (%s); converting without it", name, _one_line(exc)
        )
        return None, None


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


def _as_chw(x: Tensor) -> Tensor:
    if x.ndim == 4 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 3 or x.shape[0] != 3:
        raise ValueError(
            f"expected an image tensor of shape (1,3,H,W) or (3,H,W), got {tuple(x.shape)}"
        )
    return x


def to_uint8(x: Tensor) -> np.ndarray:
    """Round an image to 8 bits.

    Args:
        x: float tensor of shape ``(1,3,H,W)`` or ``(3,H,W)``, values in ``[0,1]``
            (clamped first).

    Returns:
        ``(H,W,3)`` ``uint8`` array, ``round(255 * x)``.
    """
    chw = _as_chw(x).detach()
    if not torch.isfinite(chw).all():
        raise ValueError("image tensor contains NaN or infinity")
    levels = (chw.to(torch.float32).clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
    return np.ascontiguousarray(levels.permute(1, 2, 0).cpu().numpy())


def quantize(x: Tensor) -> Tensor:
    """Snap values to the 8-bit grid ``k/255``: what a saved PNG will contain.

    Args:
        x: float tensor of any shape, values in ``[0,1]`` (clamped first).

    Returns:
        Tensor of the same shape, dtype and device, values ``round(255 * x) / 255``.
        Not differentiable in any useful way (the gradient of ``round`` is zero).
        Rounding can move a pixel by half a level, so a perturbation at exactly
        ``eps`` may exceed it by ``0.5/255`` afterwards; projecting back is the
        caller's job.
    """
    return (x.detach().clamp(0.0, 1.0) * 255.0).round() / 255.0


# --------------------------------------------------------------------------- saving


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
    shown = _display(str(folder))
    if not folder.exists():
        raise ImageError(f"{shown}: output folder does not exist")
    if not folder.is_dir():
        raise ImageError(f"{shown}: output folder is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ImageError(f"{shown}: output folder is not writable")


def _save_options(fmt: str, like: LoadedImage | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if fmt == "JPEG":
        # 4:4:4 keeps the chroma of the perturbation that 4:2:0 would average away.
        options.update(quality=95, subsampling=0)
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
) -> Path:
    """Write an image atomically, as 8 bits, and return the path written.

    The format follows the suffix: ``.png``; ``.jpg``/``.jpeg`` (quality 95, 4:4:4
    chroma: lossy, weakens the perturbation); ``.webp`` (lossless); ``.tif``/
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

    Returns:
        ``Path(path)``.

    Raises:
        ImageError: unknown suffix, output equals the input, output exists without
            ``overwrite``, output folder missing or not writable, or the write failed.
        ValueError: wrong tensor shape, or ``like.alpha`` of another size.
    """
    out = Path(path)
    shown = _display(os.fspath(path))
    fmt = OUTPUT_FORMATS.get(out.suffix.lower())
    if fmt is None:
        known = ", ".join(OUTPUT_FORMATS)
        raise ImageError(
            f"{shown}: unsupported output format {out.suffix or '(no suffix)'!r} (use {known})"
        )
    if like is not None and like.path is not None and _same_file(out, like.path):
        raise ImageError(f"{shown}: refusing to write over the input image")
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
        pil.save(f, format=fmt, **_save_options(fmt, like))

    try:
        write_atomically(out, write, mode=existing_mode)
    except PermissionError as exc:
        raise ImageError(f"{_display(str(folder))}: output folder is not writable") from exc
    except OSError as exc:
        raise ImageError(f"{shown}: could not write image ({_one_line(exc)})") from exc
    return out


def reload_saved(path: str | os.PathLike[str]) -> Tensor:
    """Read back what :func:`save_image` wrote: ``(1,3,H,W)`` float32 in ``[0,1]``.

    Metrics are computed on this, i.e. on what the user actually gets.
    """
    return load_image(path).rgb
