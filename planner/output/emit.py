"""--emit: write the chosen plan's model, atomically, never over the input."""

from __future__ import annotations

import os
from pathlib import Path

import onnx

from planner.atomic import write_atomic
from planner.errors import PlannerError


def emit_model(model: onnx.ModelProto, path: str | os.PathLike, source: str | os.PathLike,
               pipeline: str, external: bool = False) -> Path:
    """Write `model` to `path` (the chosen pipeline's verified result). Refuses the input path itself."""
    if external:
        raise PlannerError(f"--emit: {source} keeps its weights as external data; emitting such models is not "
                           "supported (plan it with --passes none and keep the original)")
    if Path(path).suffix.lower() != ".onnx":
        raise PlannerError(f"--emit {path}: the file name must end in .onnx")
    if pipeline == "none":  # the stored model: its own bytes, not a re-serialization (or an opset upgrade)
        return write_atomic(path, Path(source).read_bytes(), refuse={Path(source)})
    try:
        data = model.SerializeToString()
    except ValueError as e:  # protobuf refuses messages over 2 GB
        raise PlannerError(f"--emit: the {pipeline} model cannot be serialized ({e})") from None
    return write_atomic(path, data, refuse={Path(source)})
