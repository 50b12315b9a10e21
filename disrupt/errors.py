"""User-facing errors.

Everything a user can cause (a bad path, a broken image, a refused write) is raised
as a :class:`DisruptError`, so a CLI can catch one class, print ``str(exc)`` and
exit with status 1. Programming errors (wrong tensor shapes passed by code) stay
``ValueError``/``TypeError``.
"""

from __future__ import annotations

__all__ = ["DisruptError", "ImageError"]


class DisruptError(Exception):
    """Base class for errors caused by user input, meant to be shown as they are."""


class ImageError(DisruptError):
    """An image could not be read or written.

    The message is a single line of the form ``"<path>: <problem>"``, for example
    ``"photo.jpg: not an image"`` or ``"out/: output folder is not writable"``.
    """
