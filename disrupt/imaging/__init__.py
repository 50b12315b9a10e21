"""Reading and writing image files: the one place pixels cross the disk boundary.

Everything else in ``disrupt`` works on float32 RGB tensors of shape ``(B,3,H,W)``
with values in ``[0,1]``. :func:`load_image` (:mod:`disrupt.imaging.load`) turns a
file, bytes, a stream, a PIL image, a numpy array or a tensor into that convention
and keeps what has to be written back (alpha, ICC profile, EXIF); :func:`save_image`
(:mod:`disrupt.imaging.save`) writes the result atomically, never over the input, on
the 8-bit grid that the metrics measure.
"""

from disrupt.imaging.load import (
    DEFAULT_MAX_PIXELS,
    IMAGE_SUFFIXES,
    OUTPUT_FORMATS,
    ImageInput,
    LoadedImage,
    load_image,
)
from disrupt.imaging.pixels import quantize, to_uint8
from disrupt.imaging.save import default_output_path, reload_saved, save_image

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_SUFFIXES",
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
