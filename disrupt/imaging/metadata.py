"""What a file carries beside its pixels and must get back on saving: EXIF with the
orientation reset, ICC profiles that describe RGB, CMYK converted through its profile.
"""

from __future__ import annotations

import io
import logging

import numpy as np
from PIL import ExifTags, Image

from disrupt.errors import one_line

logger = logging.getLogger(__name__)


# Tags that describe a TIFF file's own pixel layout (Pillow reports them as EXIF for
# TIFF sources); copied into another file they would describe the wrong data.
_TIFF_LAYOUT_TAGS = frozenset(
    {256, 257, 258, 259, 262, 273, 277, 278, 279, 284, 317, 320, 322, 323, 324, 325,
     338, 339, 347, 529, 530, 532, 34675}
)  # fmt: skip


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
        logger.warning("%s: dropping unreadable EXIF data (%s)", name, one_line(exc))
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
            "%s: CMYK profile not usable (%s); converting without it", name, one_line(exc)
        )
        return None, None
