"""Read an ONNX file without reading its external weight bytes, and refuse files that are unsafe or not ONNX.

External data is described by (location, offset, length) entries: sizes come from those entries and the data
files' lengths, so a 7B-parameter model loads in milliseconds. A location that escapes the model's folder
(absolute, `..`, or a symlink pointing outside) is refused before anything is opened: that is a known attack on
ONNX loaders that resolve locations naively.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from planner.errors import ModelLoadError
from planner.model.limits import check_declared_sizes
from planner.model.shapes import mark_dynamic
from planner.model.walk import iter_graphs
from planner.model.wellformed import check_well_formed

MIN_OPSET = 7


@dataclass
class LoadedModel:
    model: onnx.ModelProto  # as read: external weights stay external (never loaded)
    path: Path
    sha256: str
    external_files: dict[str, int] = field(default_factory=dict)  # relative location -> file size
    converted_from_opset: int | None = None  # set when an old opset was upgraded for planning
    dynamic_dims: int = 0  # dims declared -1 ("any size"), planned as symbolic dims (shapes.mark_dynamic)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _external_tensors(model: onnx.ModelProto):
    for g in iter_graphs(model.graph):
        for t in g.initializer:
            if t.data_location == onnx.TensorProto.EXTERNAL:
                yield t
        for n in g.node:
            for a in n.attribute:
                if a.type == onnx.AttributeProto.TENSOR and a.t.data_location == onnx.TensorProto.EXTERNAL:
                    yield a.t


def safe_external_path(base: Path, location: str, tensor: str) -> Path:
    """Resolve an external-data location inside `base`, or refuse it."""
    if not location:
        raise ModelLoadError(f"tensor '{tensor}' has external data with no location")
    if "\x00" in location:
        raise ModelLoadError(f"tensor '{tensor}': external data location contains a NUL byte")
    p = Path(location)
    if p.is_absolute() or location.startswith(("/", "\\")) or (len(location) > 1 and location[1] == ":"):
        raise ModelLoadError(f"tensor '{tensor}': absolute external data location '{location}' refused")
    if ".." in Path(location.replace("\\", "/")).parts:
        raise ModelLoadError(f"tensor '{tensor}': external data location '{location}' contains '..' (refused)")
    try:
        base_real = base.resolve()
        full = (base / p).resolve()
    except (OSError, RuntimeError) as e:  # a name too long, a symlink loop
        why = e.strerror if isinstance(e, OSError) else str(e)
        raise ModelLoadError(f"tensor '{tensor}': external data location cannot be resolved ({why})") from None
    if base_real != full and base_real not in full.parents:
        raise ModelLoadError(
            f"tensor '{tensor}': external data location '{location}' resolves outside the model's folder (refused)"
        )
    return full


def _check_external(model: onnx.ModelProto, base: Path) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for t in _external_tensors(model):
        info = {e.key: e.value for e in t.external_data}
        location = info.get("location", "")
        full = safe_external_path(base, location, t.name)
        if location not in sizes:
            try:
                if not full.is_file():
                    raise ModelLoadError(f"tensor '{t.name}': external data file '{location}' not found beside "
                                         "the model")
                sizes[location] = full.stat().st_size
            except OSError as e:  # ENAMETOOLONG and friends, which is_file() does not swallow
                raise ModelLoadError(f"tensor '{t.name}': external data file '{location[:80]}' cannot be "
                                     f"examined ({e.strerror})") from None
        try:
            offset = int(info.get("offset", "0") or 0)
            length = int(info["length"]) if info.get("length") else None
        except ValueError as e:
            raise ModelLoadError(f"tensor '{t.name}': malformed external data offset/length ({e})") from None
        if offset < 0 or (length is not None and length < 0):
            raise ModelLoadError(f"tensor '{t.name}': negative external data offset or length")
        if length is not None and offset + length > sizes[location]:
            raise ModelLoadError(
                f"tensor '{t.name}': external data [{offset}, {offset + length}) lies past the end of "
                f"'{location}' ({sizes[location]} bytes): truncated data file?"
            )
    return sizes


def _looks_like(data: bytes) -> str:
    """What a file that failed to parse seems to be, so the refusal says what to do instead (only a hint)."""
    head = data[:64].lstrip()
    if data[:4] == b"PK\x03\x04":
        return ": it is a zip archive; unpack it and plan the .onnx inside"
    if head[:1] in (b"{", b"["):
        return ": it looks like JSON text, not a binary ONNX protobuf"
    if head[:1] == b"<" and b"ir_version" in data[:4096]:
        return ": it looks like ONNX text format; convert it with onnx.parser.parse_model and onnx.save"
    if data[4:8] == b"ORTM":
        return ": it is an onnxruntime .ort file, not ONNX"
    return ""


def default_opset(model: onnx.ModelProto) -> int:
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            return o.version
    return 0


def load_model(path: str | os.PathLike) -> LoadedModel:
    """Parse the model file, checking everything a planner needs before it trusts the graph."""
    p = Path(path)
    if not p.exists():
        raise ModelLoadError(f"{p}: no such file")
    if p.is_dir():
        raise ModelLoadError(f"{p}: is a directory, not an ONNX file")
    try:
        data = p.read_bytes()
    except OSError as e:
        raise ModelLoadError(f"{p}: cannot read ({e.strerror})") from None
    if not data:
        raise ModelLoadError(f"{p}: empty file, not an ONNX model")
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as e:
        raise ModelLoadError(f"{p}: not an ONNX model or truncated ({type(e).__name__}){_looks_like(data)}") from None
    if model.ir_version <= 0 or not model.HasField("graph") or not model.opset_import:
        raise ModelLoadError(f"{p}: not an ONNX model (no IR version, graph or opset import){_looks_like(data)}")
    opset = default_opset(model)
    latest = onnx.defs.onnx_opset_version()
    if opset > latest:
        raise ModelLoadError(f"{p}: opset {opset} is newer than this onnx ({onnx.__version__}) knows (max {latest})")
    check_well_formed(model)  # names are text, attributes have their schema's types
    sizes = _check_external(model, p.parent)
    dynamic = mark_dynamic(model)  # before the size checks: -1 is "any size" there, not a negative dim
    check_declared_sizes(model)
    converted = None
    if 0 < opset < MIN_OPSET:
        try:
            model = onnx.version_converter.convert_version(model, MIN_OPSET)
            converted = opset
        except Exception as e:  # the converter raises bare RuntimeErrors from C++
            raise ModelLoadError(
                f"{p}: opset {opset} is older than {MIN_OPSET} and could not be upgraded ({e})"
            ) from None
    return LoadedModel(model=model, path=p, sha256=hashlib.sha256(data).hexdigest(),
                       external_files=sizes, converted_from_opset=converted, dynamic_dims=dynamic)
