"""--emit: write the chosen plan's model, atomically, never over the input (a rewrite with external data: the
model and its data file, the data renamed into place first)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import onnx

from passes.base import copy_model
from planner.atomic import write_atomic
from planner.errors import PlannerError
from planner.model.loader import LoadedModel


def emit_model(model: onnx.ModelProto, path: str | os.PathLike, source: str | os.PathLike,
               pipeline: str, external: bool = False) -> Path:
    """Write `model` to `path` (the chosen pipeline's verified result). Refuses the input path itself."""
    if external and pipeline == "none":
        raise PlannerError(f"--emit: the chosen plan is the model as stored, and {source} keeps its weights as "
                           "external data: nothing to write, use the original files (the passes table says why no "
                           "rewrite was chosen)")
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


def emit_external(loaded: LoadedModel, path: str | os.PathLike, source: LoadedModel) -> Path:
    """Write a rewrite whose weights are external data (`loaded`: its model, descriptors only, and its file in
    a scratch folder) as OUT and OUT.data beside it. The data file is hard-linked (copied in chunks across file
    systems) under a temporary name and renamed into place first, then the model, its descriptors pointing at
    OUT.data, is written atomically: a reader never sees OUT without its data, and the input's files are
    refused as targets."""
    out = Path(path)
    if out.suffix.lower() != ".onnx":
        raise PlannerError(f"--emit {path}: the file name must end in .onnx")
    if not (out.parent if str(out.parent) else Path(".")).is_dir():
        raise PlannerError(f"{out}: folder {out.parent} does not exist")
    (src_location,) = loaded.external_files  # passes.external writes one data file
    location = out.name + ".data"
    data = out.parent / location
    inputs = {source.path} | {source.path.parent / loc for loc in source.external_files}
    if any(data.resolve() == p.resolve() or out.resolve() == p.resolve() for p in inputs):
        raise PlannerError(f"--emit {path}: refusing to overwrite the input model or its external data")
    model = copy_model(loaded.model)
    for t in model.graph.initializer:
        for e in t.external_data:
            if e.key == "location" and e.value == src_location:
                e.value = location
    fd, tmp = tempfile.mkstemp(prefix=f".{location}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        os.unlink(tmp)
        try:
            os.link(loaded.path.parent / src_location, tmp)
        except OSError:  # another file system: copy, in chunks
            shutil.copyfile(loaded.path.parent / src_location, tmp)
        os.replace(tmp, data)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return write_atomic(out, model.SerializeToString(), refuse=inputs)
