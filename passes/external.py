"""Weight-only quantization of a model whose weights are external data, one weight in memory at a time.

onnxruntime's MatMulNBitsQuantizer reads the whole model with its data (onnx.load) and hands it back in
memory: a 7B decoder would be one 13 GB protobuf, past protobuf's 2 GB limit, and all of it resident. Its
per-node step, DefaultWeightOnlyQuantizer.quantize(node, graph_stack), needs only the node and its weight,
so `quantize_external` drives that step itself, one MatMul at a time:

    the graph is read without its data (planner.model.loader already did);
    for each MatMul whose weight B is a constant 2-D float tensor, B alone is put in a scratch graph as a
    descriptor of its file (`mapped_weight`: the step maps it read-only, so its bytes are never copied into
    the heap), quantized by onnxruntime's step, and the packed blocks, scales (and zero points) are appended
    to the output's data file at once, then dropped;
    every other external tensor is copied to the output's data file byte for byte, in chunks (never parsed);
    the model written holds descriptors only, so neither the write nor a later onnx.checker / onnxruntime
    load meets protobuf's limit.

Peak memory: one float weight's mapped pages, its quantized form and a copy buffer. The result equals what
MatMulNBitsQuantizer.process writes for the same model and options, tensor for tensor (the same step runs;
tests/test_external_quantize.py compares them).

Outputs are written to temporary names in the output's folder and renamed into place, the data file first:
a reader never sees a model whose data is missing, and the input files are never opened for writing.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import onnx
from onnx import TensorProto
from onnx.external_data_helper import load_external_data_for_tensor

from passes.base import copy_model
from passes.quantize import lm_head_nodes
from planner.atomic import write_atomic
from planner.errors import PlannerError

ALIGNMENT = 4096  # data offsets are page multiples: onnxruntime can map them
COPY_CHUNK = 1 << 24  # bytes per read when copying a tensor through
# External tensors under this many bytes come back inline (onnx.save's own threshold): onnxruntime's shape
# inference cannot read a Reshape's shape from external data, and such tensors cost nothing to hold.
EMBED_BELOW = 1024
_FLOATS = (TensorProto.FLOAT, TensorProto.FLOAT16)
MS_DOMAIN = "com.microsoft"


@dataclass
class Written:
    """What `quantize_external` wrote: the model (descriptors only) and what it did."""

    model: onnx.ModelProto
    path: Path
    data_path: Path
    quantized: list[str] = field(default_factory=list)  # weight names read and quantized, in order
    copied: int = 0  # external tensors copied through unread
    bytes_before: int = 0  # weight bytes of the input (external and embedded)
    bytes_after: int = 0


def _external_info(t: TensorProto) -> dict[str, str]:
    return {e.key: e.value for e in t.external_data}


def tensor_bytes(t: TensorProto) -> int:
    """Bytes of a weight, external or embedded, without reading external data."""
    if t.data_location == TensorProto.EXTERNAL:
        return int(_external_info(t).get("length", "0") or 0)
    return t.ByteSize()


def mapped_weight(t: TensorProto, base: Path, out: TensorProto) -> TensorProto:
    """`t` as the quantizer's step is given it, in `out` (a slot of the scratch graph): an external tensor as a
    descriptor of its data file's absolute path, which the step (onnx_ir's ExternalTensor) maps read-only, so
    the weight's bytes are not copied into the process (the pages are the file's); an embedded one copied. The
    location was checked to stay inside the model's folder when the model was loaded."""
    out.CopyFrom(t)
    if t.data_location == TensorProto.EXTERNAL:
        for e in out.external_data:
            if e.key == "location":
                e.value = str((Path(base) / e.value).resolve())
    return out


def read_tensor(t: TensorProto, base: Path) -> TensorProto:
    """A copy of `t` with its bytes in memory: an external tensor read from its data file alone (onnx's own
    reader, offset and length), an embedded one copied. Used for tensors under EMBED_BELOW bytes, which the
    written model holds inline."""
    out = TensorProto()
    out.CopyFrom(t)
    if out.data_location == TensorProto.EXTERNAL:
        load_external_data_for_tensor(out, str(base))
        out.data_location = TensorProto.DEFAULT
        del out.external_data[:]
    return out


class DataFile:
    """The output's data file, appended tensor by tensor at aligned offsets."""

    def __init__(self, path: Path, location: str) -> None:
        self.path, self.location = path, location
        self._f = open(path, "wb")  # noqa: SIM115 - closed by close(), after the last tensor
        self.size = 0

    def _start(self) -> int:
        pad = -self.size % ALIGNMENT
        if pad:
            self._f.write(b"\0" * pad)
            self.size += pad
        return self.size

    def _describe(self, t: TensorProto, offset: int, length: int) -> None:
        t.ClearField("raw_data")
        for f in ("float_data", "int32_data", "int64_data", "double_data", "uint64_data", "string_data"):
            t.ClearField(f)
        del t.external_data[:]
        t.data_location = TensorProto.EXTERNAL
        for key, value in (("location", self.location), ("offset", str(offset)), ("length", str(length))):
            e = t.external_data.add()
            e.key, e.value = key, value

    def append(self, t: TensorProto) -> None:
        """Write an in-memory tensor's bytes and turn `t` into their descriptor."""
        data = onnx.numpy_helper.to_array(t).tobytes() if not t.HasField("raw_data") else t.raw_data
        offset = self._start()
        self._f.write(data)
        self.size += len(data)
        self._describe(t, offset, len(data))

    def copy(self, t: TensorProto, base: Path) -> None:
        """Copy an external tensor's bytes from its data file in chunks (never whole in memory); re-describe `t`."""
        info = _external_info(t)
        src, start, length = base / info["location"], int(info.get("offset", "0") or 0), info.get("length")
        total = int(length) if length else (src.stat().st_size - start)
        offset = self._start()
        with open(src, "rb") as f:
            f.seek(start)
            left = total
            while left:
                chunk = f.read(min(COPY_CHUNK, left))
                if not chunk:
                    raise PlannerError(f"tensor '{t.name}': external data file '{info['location']}' ends early")
                self._f.write(chunk)
                left -= len(chunk)
        self.size += total
        self._describe(t, offset, total)

    def close(self) -> None:
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()


@contextlib.contextmanager
def _quiet():
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


def _eligible(node: onnx.NodeProto, inits: dict[str, TensorProto], exclude: set[str]) -> bool:
    """What the quantizer's step rewrites: a MatMul whose B is a constant 2-D float tensor."""
    if node.op_type != "MatMul" or node.domain not in ("", "ai.onnx") or node.name in exclude:
        return False
    w = inits.get(node.input[1]) if len(node.input) > 1 else None
    return w is not None and w.data_type in _FLOATS and len(w.dims) == 2


def _graph_for_rank(graph: onnx.GraphProto, name: str) -> list[onnx.ValueInfoProto]:
    """The declared type of the MatMul's A, which the quantizer's step reads for N-D weights only."""
    return [vi for vi in list(graph.input) + list(graph.value_info) if vi.name == name][:1]


def quantize_external(model: onnx.ModelProto, base: Path, out: Path, bits: int = 4, block_size: int = 32,
                      symmetric: bool = True, accuracy_level: int | None = 4, lm_head: bool = True) -> Written:
    """Write `model` (read without its data; its external data under `base`) with every eligible MatMul as
    MatMulNBits to `out` and `out`.data, one weight in memory at a time (see the module docstring).

    `lm_head` False: a decoder's lm_head (the MatMul writing logits) stays float, as in passes.quantize."""
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        DefaultWeightOnlyQuantizer,
    )

    if model.graph.node and any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
                                for n in model.graph.node for a in n.attribute):
        raise PlannerError("external-data quantization: models with If/Loop/Scan bodies are not supported")
    if block_size < 16 or block_size & (block_size - 1):
        raise PlannerError(f"block size {block_size}: must be a power of two >= 16")
    out = Path(out)
    location = out.name + ".data"
    sources = {(Path(base) / _external_info(t).get("location", "")).resolve() for t in model.graph.initializer
               if t.data_location == TensorProto.EXTERNAL}
    if (out.parent / location).resolve() in sources:
        raise PlannerError(f"{out}: its data file {location} would overwrite the input's external data (refused)")
    m = copy_model(model)  # descriptors and small embedded tensors only: cheap
    g = m.graph
    skip = set() if lm_head else set(lm_head_nodes(m))  # names any unnamed lm_head on this copy
    inits = {t.name: t for t in g.initializer}
    readers: dict[str, int] = {}
    for n in g.node:
        for i in n.input:
            readers[i] = readers.get(i, 0) + 1
    config = DefaultWeightOnlyQuantConfig(block_size=block_size, is_symmetric=symmetric,
                                          accuracy_level=accuracy_level, bits=bits)
    step = DefaultWeightOnlyQuantizer(config)
    fd, tmp = tempfile.mkstemp(prefix=f".{location}.", suffix=".tmp", dir=out.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600 files; an output gets the mode any new file gets
    os.close(fd)
    data = DataFile(Path(tmp), location)
    written = Written(m, out, out.parent / location,
                      bytes_before=sum(tensor_bytes(t) for t in g.initializer))
    try:
        new_nodes, added, done = [], [], {}
        for node in g.node:
            if not _eligible(node, inits, skip):
                new_nodes.append(node)
                continue
            name = node.input[1]
            scratch = onnx.GraphProto()
            scratch.input.extend(_graph_for_rank(g, node.input[0]))
            mapped_weight(inits[name], base, scratch.initializer.add())
            with _quiet():
                nodes = step.quantize(node, [scratch])
            if len(nodes) == 1 and nodes[0] is node:  # the step declined (its own rules): keep the MatMul
                new_nodes.append(node)
                continue
            if name not in done:  # a weight two MatMuls share is written once; both nodes read the same names
                fresh = []
                for t in scratch.initializer:
                    if t.name != name:
                        data.append(t)
                        fresh.append(TensorProto())
                        fresh[-1].CopyFrom(t)  # its own message: a reference into scratch would keep all of it
                done[name] = fresh
                added += fresh
                written.quantized.append(name)
            new_nodes.extend(nodes)
            readers[name] -= 1  # scratch, the float weight and its blocks, goes when the next one is read
        del g.node[:]
        g.node.extend(new_nodes)
        kept = [t for t in g.initializer if t.name not in done or readers.get(t.name, 0) > 0]
        for i, t in enumerate(kept):
            if t.data_location == TensorProto.EXTERNAL and tensor_bytes(t) < EMBED_BELOW:
                kept[i] = read_tensor(t, base)
            elif t.data_location == TensorProto.EXTERNAL:
                data.copy(t, base)
                written.copied += 1
        del g.initializer[:]
        g.initializer.extend(kept + added)
        dropped = set(done) - {t.name for t in kept}
        inputs = [i for i in g.input if i.name not in dropped]
        del g.input[:]
        g.input.extend(inputs)
        if not any(o.domain == MS_DOMAIN for o in m.opset_import):
            m.opset_import.add(domain=MS_DOMAIN, version=1)
        data.close()
        written.bytes_after = sum(tensor_bytes(t) for t in g.initializer)
        os.replace(data.path, written.data_path)  # the data first: the model never points at missing bytes
        write_atomic(out, m.SerializeToString())
    except BaseException:
        with contextlib.suppress(OSError):
            data.close()
        with contextlib.suppress(OSError):
            os.unlink(data.path)
        raise
    return written
