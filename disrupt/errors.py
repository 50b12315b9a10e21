"""User-facing errors.

Everything a user can cause (a bad path, a broken image, a refused write, a bad
option value, an input of a type no loader knows) is raised as a
:class:`DisruptError`, so a caller can catch one class and show ``str(exc)``: a
single line. The subclasses for bad settings and unknown input types are also
``ValueError`` and ``TypeError``, so code that catches those keeps working.
Programming errors inside the library (wrong tensor shapes between internal
functions) stay plain ``ValueError``.
"""

from __future__ import annotations

__all__ = ["DisruptError", "ImageError", "InputTypeError", "NotDisrupted", "SettingError",
           "one_line", "printable"]


class DisruptError(Exception):
    """Base class for errors caused by user input, meant to be shown as they are."""


class ImageError(DisruptError):
    """An image could not be read or written.

    The message is a single line of the form ``"<path>: <problem>"``, for example
    ``"photo.jpg: not an image"`` or ``"out/: output folder is not writable"``.
    """


class SettingError(DisruptError, ValueError):
    """A setting that cannot be used (a budget too small to survive 8-bit rounding, an
    unknown device, a seed out of range, duplicated targets): ``"<setting>: <problem>"``."""


class NotDisrupted(DisruptError):
    """``require_disruption`` was asked and some outputs stayed under the threshold.

    ``result`` is the :class:`~disrupt.api.ProtectResult` (its file, if one was asked
    for, is written: a pipeline may keep it, retry stronger, or reject the upload);
    ``undisrupted`` lists ``"<target>: <condition>"`` for each output below it."""

    def __init__(self, message: str, result: object, undisrupted: list[str]) -> None:
        super().__init__(message)
        self.result = result
        self.undisrupted = undisrupted


class InputTypeError(DisruptError, TypeError):
    """An image given as a type that no loader accepts (not a path, bytes, stream, PIL
    image, array or tensor)."""


def printable(name: str) -> str:
    """``name`` with control characters escaped, so messages naming it stay on one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in name)


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (its type name when it has none)."""
    return " ".join(str(exc).split()) or type(exc).__name__
