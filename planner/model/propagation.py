"""onnx's shape inference with data propagation, unless propagation would materialize a huge tensor.

Data propagation is what lets a Reshape whose target is computed by Shape -> Gather -> Concat get a shape.
It works by carrying the values of small integer tensors through the graph, one protobuf dim per element,
and it does so for any 1-D integer tensor a propagating op (Cast, Add, Mul, Concat, Slice, Unsqueeze, ...)
reads, whatever its length. A model with `Range(0, 2^56)` or `ConstantOfShape([2^26])` feeding a Cast, or a
--dim of 2^26 sliced out of a Shape, makes onnx allocate about 50 bytes per element: gigabytes, then the OOM
killer (found by the fuzzer; a 64 M-element case took 3 GB before failing).

So inference runs twice when needed: first without propagation (cheap, never materializes values), and then
with it only if no 1-D integer tensor with values could be longer than MAX_PROPAGATED and no input dim is
that long. Otherwise the first result stands and the plan's notes say why.
"""

from __future__ import annotations

import onnx

from planner.model.walk import iter_graphs

MAX_PROPAGATED = 1 << 22  # elements: about 200 MB of onnx's per-element protobuf dims at most
_INTS = {onnx.TensorProto.INT64, onnx.TensorProto.INT32, onnx.TensorProto.INT16, onnx.TensorProto.INT8,
         onnx.TensorProto.UINT64, onnx.TensorProto.UINT32, onnx.TensorProto.UINT16, onnx.TensorProto.UINT8}


def _long_1d_int(vi: onnx.ValueInfoProto) -> int | None:
    tt = vi.type.tensor_type
    if not vi.type.HasField("tensor_type") or tt.elem_type not in _INTS or not tt.HasField("shape"):
        return None
    dims = tt.shape.dim
    if len(dims) == 1 and dims[0].HasField("dim_value") and dims[0].dim_value > MAX_PROPAGATED:
        return dims[0].dim_value
    return None


def propagation_risk(bound: onnx.ModelProto, plain: onnx.ModelProto) -> str | None:
    """Why propagating values through `bound` could blow up memory, judged from inference without it."""

    for vi in bound.graph.input:
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape"):
            for d in vi.type.tensor_type.shape.dim:
                if d.HasField("dim_value") and d.dim_value > MAX_PROPAGATED:
                    return f"input '{vi.name}' has a dim of {d.dim_value} (> {MAX_PROPAGATED})"
    inputs = {vi.name for vi in bound.graph.input}
    for g in iter_graphs(plain.graph):
        for t in g.initializer:
            if t.data_type in _INTS and len(t.dims) == 1 and t.dims[0] > MAX_PROPAGATED:
                return f"initializer '{t.name}' holds {t.dims[0]} integers"
        for vi in list(g.value_info) + list(g.output):
            n = _long_1d_int(vi) if vi.name not in inputs else None
            if n is not None:
                return f"tensor '{vi.name}' would carry {n} integer values"
    return None


def infer_onnx(m: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """onnx's inference on `m`, with data propagation where that is safe; raises what onnx raises."""
    plain = onnx.shape_inference.infer_shapes(m, check_type=False, strict_mode=False, data_prop=False)
    risk = propagation_risk(m, plain)
    if risk is not None:
        return plain, [f"onnx data propagation skipped ({risk}): shapes computed from Shape ops may stay unknown"]
    return onnx.shape_inference.infer_shapes(m, check_type=False, strict_mode=False, data_prop=True), []
