"""Argument types and parsers the subcommands share: one message for each kind of bad value, exit 2 upstream."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from planner.errors import DimError


def parse_dims(items: Sequence[str]) -> dict[str, int]:
    """NAME=VALUE pairs; VALUE a whole number, 0 included (an empty KV cache): which dims may be 0 is the
    model's to say (planner.model.shapes.bind_dims)."""
    dims: dict[str, int] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise DimError(f"--dim '{item}': expected NAME=VALUE, e.g. --dim sequence_length=512")
        try:
            v = int(value)
        except ValueError:
            raise DimError(f"--dim '{item}': VALUE must be a whole number") from None
        if v < 0:
            raise DimError(f"--dim '{item}': VALUE must be 0 or more")
        dims[name.strip()] = v
    return dims


def parse_values(items: Sequence[str]) -> dict[str, bool | int | float]:
    """NAME=VALUE pairs binding one-element inputs (a mode switch, a sample rate): true/false, a whole number
    or a decimal; the input's own type is applied when the model is read (planner.model.analyze)."""
    values: dict[str, bool | int | float] = {}
    for item in items:
        name, sep, text = item.partition("=")
        text = text.strip()
        if not sep or not name.strip() or not text:
            raise DimError(f"--value '{item}': expected NAME=VALUE, e.g. --value sr=16000")
        if text.lower() in ("true", "false"):
            values[name.strip()] = text.lower() == "true"
            continue
        try:
            values[name.strip()] = int(text)
        except ValueError:
            try:
                values[name.strip()] = float(text)
            except ValueError:
                raise DimError(f"--value '{item}': VALUE must be true, false or a number") from None
    return values


def positive(kind: type, what: str) -> Callable[[str], float]:
    """An argparse type that accepts only positive numbers of `kind`, with a message a user can act on."""

    def parse(s: str):
        try:
            v = kind(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{s}' is not {what}") from None
        if not v > 0:
            raise argparse.ArgumentTypeError(f"'{s}' must be positive")
        return v

    return parse


positive_int = positive(int, "an integer")
positive_float = positive(float, "a number")


def tp_degrees(s: str) -> list[int]:
    try:
        out = [int(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{s}' is not a comma-separated list of 1, 2, 4, 8") from None
    if not out or any(n not in (1, 2, 4, 8) for n in out):
        raise argparse.ArgumentTypeError(f"'{s}': tensor-parallel degrees are 1, 2, 4 or 8")
    return sorted(set(out))


def threads(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{s}' is not an integer") from None
    if not 1 <= v <= 1024:
        raise argparse.ArgumentTypeError(f"'{s}' must be between 1 and 1024")
    return v
