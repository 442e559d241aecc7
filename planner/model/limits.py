"""Refuse tensor sizes no real model can have, before any arithmetic trusts them.

Dims come from strangers: a crafted file can declare a negative dim, a batch of zero, an initializer of
2^62 x 2^62 elements with no bytes behind it, or a rank of millions. Python's integers never overflow, so such
numbers do not crash here; they turn into nonsense plans (9e15 GB that "does not fit"), into float overflow
further on (an int past 1e308 cannot become a float), or into quadratic big-int products that hang. The rule:
every tensor's size in bytes must fit a signed 64-bit integer, as it must in every runtime, and every dim is
checked with a bounded product so that a hostile rank costs linear time.
"""

from __future__ import annotations

from collections.abc import Iterable

import onnx

from planner.errors import ModelShapeError
from planner.model.ir import DTYPE_BITS, dtype_name
from planner.model.shapes import dim_spec
from planner.model.walk import iter_graphs

MAX_TENSOR_BYTES = (1 << 63) - 1  # what an int64 byte count (every runtime's size_t/ptrdiff_t) can hold
_MAX_NUMEL = MAX_TENSOR_BYTES  # no dtype is smaller than 1 bit per element; bytes are checked with the dtype


def bounded_numel(dims: Iterable[int], limit: int = _MAX_NUMEL) -> int | None:
    """The product of `dims`, or None once it passes `limit` (zero dims give 0; negatives are the caller's)."""
    dims = list(dims)
    if any(d == 0 for d in dims):
        return 0
    n = 1
    for d in dims:
        n *= d
        if n > limit:
            return None
    return n


def _fmt(shape: Iterable[int], most: int = 6) -> str:
    s = list(shape)
    inner = ", ".join(str(d) for d in s[:most]) + (f", ... ({len(s)} dims)" if len(s) > most else "")
    return f"[{inner}]"


def check_tensor_size(name: str, shape: tuple[int, ...] | None, bits_per_element: int, what: str = "tensor") -> None:
    """Refuse a shape whose byte size passes 2^63 - 1: no runtime can allocate or even index it."""
    if shape is None:
        return
    if any(d < 0 for d in shape):
        raise ModelShapeError(f"{what} '{name}' has a negative dim {_fmt(shape)}")
    numel = bounded_numel(shape, _MAX_NUMEL)
    if numel is None or numel * bits_per_element > 8 * MAX_TENSOR_BYTES:
        raise ModelShapeError(f"{what} '{name}' of shape {_fmt(shape)} would hold more than 2^63 bytes, more than "
                              "any runtime can address: the model's dims (or the --dim values) are far too large")


def _bits(elem_type: int) -> int:

    return DTYPE_BITS.get(dtype_name(elem_type), 32)


def _check_initializer(t: onnx.TensorProto, what: str) -> None:
    shape = tuple(int(d) for d in t.dims)
    bits = _bits(t.data_type)
    check_tensor_size(t.name, shape, bits, what)
    expected = (bounded_numel(shape) * bits + 7) // 8  # type: ignore[operator]  (checked above)
    if t.data_location == onnx.TensorProto.EXTERNAL:  # its file is sized by the loader; its length must agree
        length = next((e.value for e in t.external_data if e.key == "length"), "")
        if length.strip().isdigit() and int(length) != expected and t.data_type != onnx.TensorProto.STRING:
            raise ModelShapeError(f"{what} '{t.name}' of shape {_fmt(shape)} needs {expected} bytes but its "
                                  f"external data length is {int(length)}: corrupt or hand-edited model")
        return
    if t.HasField("raw_data"):
        if len(t.raw_data) != expected:
            raise ModelShapeError(f"{what} '{t.name}' of shape {_fmt(shape)} needs {expected} bytes but stores "
                                  f"{len(t.raw_data)}: corrupt or hand-edited model")
        return
    stored = (len(t.float_data) + len(t.int32_data) + len(t.string_data) + len(t.int64_data) + len(t.double_data)
              + len(t.uint64_data))
    if expected and not stored:
        raise ModelShapeError(f"{what} '{t.name}' of shape {_fmt(shape)} declares {bounded_numel(shape)} elements "
                              "but stores no data: corrupt or hand-edited model")


def _declared_shape(vi: onnx.ValueInfoProto) -> tuple[int, ...] | None:
    if not vi.type.HasField("tensor_type") or not vi.type.tensor_type.HasField("shape"):
        return None
    return tuple(d.dim_value for d in vi.type.tensor_type.shape.dim if d.HasField("dim_value"))


def check_declared_sizes(model: onnx.ModelProto) -> None:
    """Every declared input, output, initializer and Constant in every (sub)graph has a size a runtime can hold.

    An empty tensor (a zero dim) is valid ONNX and used on purpose (an empty `axes` input), so zero dims pass,
    except a fixed batch of 0 on the model's inputs: an empty batch has nothing to serve and planning it would
    silently plan some other batch instead.
    """

    for g in iter_graphs(model.graph):
        for kind, values in (("input", g.input), ("output", g.output)):
            for vi in values:
                shape = _declared_shape(vi)
                if shape is not None:
                    check_tensor_size(vi.name, shape, _bits(vi.type.tensor_type.elem_type), kind)
        for t in g.initializer:
            _check_initializer(t, "initializer")
        for st in g.sparse_initializer:
            check_tensor_size(st.values.name, tuple(int(d) for d in st.dims), _bits(st.values.data_type),
                              "sparse initializer")
        for n in g.node:
            for a in n.attribute:
                if a.type == onnx.AttributeProto.TENSOR:
                    _check_initializer(a.t, f"constant in node '{n.name or n.op_type}'")

    spec = dim_spec(model)
    if spec.batch is None and spec.fixed_batch == 0:
        raise ModelShapeError("the model's inputs have a fixed batch of 0 (an empty batch): nothing to serve; "
                              "declare the batch symbolic or positive")
