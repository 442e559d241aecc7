"""Errors a user can act on. The CLI prints their message on one line and exits with `exit_code`."""

from __future__ import annotations


class PlannerError(Exception):
    """Bad input or usage: a clear one-line message, exit code 2, never a traceback."""

    exit_code = 2


class ModelLoadError(PlannerError):
    """The file is missing, not ONNX, truncated, or unsafe (external data outside its folder)."""


class UnknownTargetError(PlannerError):
    """A target name that is neither bundled nor given by --target-file; the message lists the known ones."""


class TargetFileError(PlannerError):
    """A hardware target file that does not validate."""


class DimError(PlannerError):
    """A malformed or impossible --dim / --batch binding."""


class ModelShapeError(PlannerError):
    """A declared or inferred tensor size no runtime can hold: a negative dim, bytes past 2^63, an empty batch."""


def one_line(text: str) -> str:
    """`text` with line breaks and other control characters escaped: names inside a model are the model's
    choice, and a tensor called "a\\nb" must not turn a one-line refusal into two lines."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in str(text))
