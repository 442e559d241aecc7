"""The graph onnxruntime really executes on the CPU, as a planner `Analysis`.

onnxruntime rewrites a model when it builds a session (ORT_ENABLE_ALL): Conv+BatchNormalization+Relu becomes
one `com.microsoft.nchwc::Conv` (or `com.microsoft::FusedConv`), MatMul+Div becomes `FusedMatMul`, GELU
chains become `BiasGelu` / `QuickGelu`, and layout changes (`ReorderInput` / `ReorderOutput`) appear around
blocked-layout convolutions. Guessing these rewrites would be a second implementation of onnxruntime's
optimizer, so instead we ask it: a session built with `optimized_model_filepath` saves the optimized graph
without running the model. Nothing here feeds an input to the model; shapes come from inference.

The saved graph carries no shapes, and onnx's shape inference knows neither the com.microsoft.nchwc ops nor
most com.microsoft ones. So shapes are seeded from the original model's inferred tensors (onnxruntime keeps
the names of the tensors it does not change: a fused node writes the name the last fused node wrote), then
onnx's inference and the small shape rules below fill the rest, alternating until nothing changes:

    nchwc::ReorderInput   X [N, C, *sp] (channels_last: [N, *sp, C]) -> [N, roundup(C, block), *sp]
    nchwc::ReorderOutput  X [N, Cb, *sp] -> [N, channels, *sp] (channels_last: [N, *sp, channels])
    nchwc::Conv, FusedConv, NhwcConv-less Conv rule: [N, W[0], conv_out_spatial(...)]
    nchwc::MaxPool / AveragePool: [N, C, pooled]; Global*Pool: [N, C, 1, ...]; Upsample: sp · scales
    FusedGemm: Gemm rule; FusedMatMul / TransposeMatMul: MatMul on the transposed operands
    activations and normalisations (QuickGelu, BiasGelu, SkipLayerNormalization, ...): output 0 = input 0

`block` is MLAS's NCHWc block: 16 floats with AVX-512, 8 otherwise (MlasNchwcGetBlockSize).
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import tempfile
from collections.abc import Callable
from pathlib import Path

import onnx
from onnx import helper

from planner.costs.contrib import transposed
from planner.costs.conv import conv_out_spatial
from planner.costs.linalg import broadcast_shapes
from planner.errors import DimError
from planner.model.analyze import Analysis, Analyzer
from planner.model.build import build_graph
from planner.model.controlflow import resolve_control_flow
from planner.model.ir import NodeInfo, dtype_name
from planner.model.loader import LoadedModel
from planner.model.ort_symbolic import symbolic_infer
from planner.model.shapes import anonymous_dim_name
from planner.model.value_folding import fold_values, with_inferred_types
from planner.ort.session import make_session, session_options
from planner.targets.host import nchwc_block_size

NCHWC = "com.microsoft.nchwc"
MS = "com.microsoft"

Shape = tuple[int, ...]
_ELEM_OF = {dtype_name(v): v for v in onnx.TensorProto.DataType.values() if v}


@functools.lru_cache(maxsize=16)
def _optimized_cached(path: str, sha256: str, mtime_ns: int) -> bytes:
    return _optimize(path)


_IN_MEMORY: dict[str, bytes] = {}  # sha256 of an in-memory model (a pass pipeline's output) -> its optimized graph
_IN_MEMORY_MAX = 16


def _optimize(source: str | bytes) -> bytes:
    with tempfile.TemporaryDirectory(prefix="planner-ortopt-") as tmp:
        out = Path(tmp) / "optimized.onnx"
        so = session_options(1, optimized_path=str(out), external_file="optimized.onnx.data")
        make_session(source, so)
        model = onnx.load(str(out), load_external_data=False)
    for t in model.graph.initializer:  # the data file is gone with the folder: keep metadata only
        if t.data_location == onnx.TensorProto.EXTERNAL:
            del t.external_data[:]
    return model.SerializeToString()


def optimized_model(loaded: LoadedModel) -> onnx.ModelProto:
    """The model as onnxruntime's CPU provider will run it at ORT_ENABLE_ALL (weights as metadata only).

    Building the session reads the weights but runs nothing. The result is cached per model content (a pass
    pipeline's output has a sha256 of its own, planner.search.variants).
    """
    if loaded.external_files:  # weights on disk: onnxruntime reads them from beside the file
        path = Path(loaded.path)
        data = _optimized_cached(str(path.resolve()), loaded.sha256, path.stat().st_mtime_ns)
    else:  # the model in memory, which a pass pipeline may have rewritten (its path is still the original's)
        data = _IN_MEMORY.get(loaded.sha256)
        if data is None:
            data = _optimize(loaded.model.SerializeToString())
            if len(_IN_MEMORY) >= _IN_MEMORY_MAX:
                _IN_MEMORY.pop(next(iter(_IN_MEMORY)))
            _IN_MEMORY[loaded.sha256] = data
    m = onnx.ModelProto()
    m.ParseFromString(data)
    return m


# ---- shape rules for the ops onnx's inference does not know --------------------------------------------


def _roundup(x: int, b: int) -> int:
    return -(-x // b) * b


def _conv_like(node: NodeInfo, shapes: list[Shape | None], block: int) -> Shape | None:
    return _conv_out(node, shapes[0], shapes[1] if len(shapes) > 1 else None)


def _conv_out(node: NodeInfo, x: Shape | None, w: Shape | None) -> Shape | None:
    """An NCHW convolution's output from its input and its weight ([M, C/group, *k])."""
    if x is None or w is None or len(x) < 3:
        return None
    k = node.attr("kernel_shape", None)
    kernel = [int(v) for v in k] if isinstance(k, (list, tuple)) and k else list(w[2:])
    return (x[0], w[0], *conv_out_spatial(node, x[2:], kernel))


def _pool(node: NodeInfo, shapes: list[Shape | None], block: int) -> Shape | None:
    x = shapes[0]
    k = node.attr("kernel_shape", None)
    if x is None or not isinstance(k, (list, tuple)) or len(k) != len(x) - 2:
        return None
    kernel = [int(v) for v in k]
    if node.attr("ceil_mode", 0):
        d = len(kernel)
        strides = list(node.attr("strides", [1] * d) or [1] * d)
        dil = list(node.attr("dilations", [1] * d) or [1] * d)
        pads = list(node.attr("pads", [0] * 2 * d) or [0] * 2 * d)
        sp = []
        for i in range(d):
            eff = dil[i] * (kernel[i] - 1) + 1
            sp.append(math.ceil((x[2 + i] + pads[i] + pads[i + d] - eff) / strides[i]) + 1)
        return (x[0], x[1], *sp)
    return (x[0], x[1], *conv_out_spatial(node, x[2:], kernel))


def _global_pool(node: NodeInfo, shapes: list[Shape | None], block: int) -> Shape | None:
    x = shapes[0]
    return None if x is None else (x[0], x[1], *([1] * (len(x) - 2)))


def _upsample(node: NodeInfo, shapes: list[Shape | None], block: int) -> Shape | None:
    x, scales = shapes[0], node.attr("scales", None)
    if x is None or not isinstance(scales, (list, tuple)):
        return None
    s = [int(v) for v in scales]
    if len(s) == len(x):  # one scale per dim, batch and channels included (1, 1): what the nchwc kernel takes
        return tuple(d * k for d, k in zip(x, s, strict=True))
    if len(s) == len(x) - 2:  # spatial dims only
        return (x[0], x[1], *(d * k for d, k in zip(x[2:], s, strict=True)))
    return None


def _reorder_input(node: NodeInfo, shapes: list[Shape | None], block: int) -> Shape | None:
    x = shapes[0]
    if x is None or len(x) < 3:
        return None
    if node.attr("channels_last", 0):
        return (x[0], _roundup(x[-1], block), *x[1:-1])
    return (x[0], _roundup(x[1], block), *x[2:])


def _reorder_output(node: NodeInfo, shapes: list[Shape | None], block: int) -> Shape | None:
    x, c = shapes[0], node.attr("channels", None)
    if x is None or len(x) < 3 or not isinstance(c, int):
        return None
    if node.attr("channels_last", 0):
        return (x[0], *x[2:], c)
    return (x[0], c, *x[2:])


def _same_as_input(node: NodeInfo, shapes: list[Shape | None], block: int) -> Shape | None:
    return shapes[0]


def _fused_gemm(node: NodeInfo, shapes: list[Shape | None], block: int) -> Shape | None:
    a, b = shapes[0], shapes[1] if len(shapes) > 1 else None
    if a is None or b is None or len(a) != 2 or len(b) != 2:
        return None
    m = a[1] if node.attr("transA", 0) else a[0]
    n = b[0] if node.attr("transB", 0) else b[1]
    return (m, n)


def _fused_matmul(node: NodeInfo, shapes: list[Shape | None], block: int) -> Shape | None:

    a, b = shapes[0], shapes[1] if len(shapes) > 1 else None
    if a is None or b is None or len(a) < 2 or len(b) < 2:
        return None
    a = transposed(a, bool(node.attr("transA", 0)), bool(node.attr("transBatchA", 0)))
    b = transposed(b, bool(node.attr("transB", 0)), bool(node.attr("transBatchB", 0)))
    return (*broadcast_shapes(a[:-2], b[:-2]), a[-2], b[-1])


def _channels_last(node: NodeInfo) -> bool:
    return bool(node.attr("channels_last", 0))


def _on_nchw_view(rule: Callable[[Shape], Shape | None], x: Shape) -> Shape | None:
    """An NCHW shape rule applied to a channels-last shape: [N, *spatial, C] in, the same layout out."""
    y = rule((x[0], x[-1], *x[1:-1]))
    return None if y is None else (y[0], *y[2:], y[1])


def _qlinear_conv(node: NodeInfo, shapes: list[Shape | None], block: int) -> Shape | None:
    """com.microsoft QLinearConv: X at 0, W (always [M, C/group, *k]) at 3; NHWC when channels_last."""
    x, w = shapes[0], shapes[3] if len(shapes) > 3 else None
    if x is not None and len(x) >= 3 and _channels_last(node):  # the NCHW rule on the NCHW view
        return _on_nchw_view(lambda v: _conv_out(node, v, w), x)
    return _conv_out(node, x, w)


def _nhwc_pool(node: NodeInfo, shapes: list[Shape | None], block: int) -> Shape | None:
    """NhwcMaxPool, and QLinearAveragePool with channels_last: the pool rule on the NCHW view."""
    x = shapes[0]
    if x is None or len(x) < 3:
        return None
    if node.op_type == "NhwcMaxPool" or _channels_last(node):
        return _on_nchw_view(lambda v: _pool(node, [v], block), x)
    return _pool(node, shapes, block)


def _qlinear_global_pool(node: NodeInfo, shapes: list[Shape | None], block: int) -> Shape | None:
    x = shapes[0]
    if x is None or len(x) < 3:
        return None
    if _channels_last(node):
        return (x[0], *([1] * (len(x) - 2)), x[-1])
    return (x[0], x[1], *([1] * (len(x) - 2)))


def _qlinear_binary(node: NodeInfo, shapes: list[Shape | None], block: int) -> Shape | None:
    """QLinearAdd / QLinearMul: A at 0, B at 3, broadcast."""
    a, b = shapes[0], shapes[3] if len(shapes) > 3 else None
    return None if a is None or b is None else broadcast_shapes(a, b)


def _qlinear_concat(node: NodeInfo, shapes: list[Shape | None], block: int) -> Shape | None:
    """QLinearConcat(Y_scale, Y_zp, (X, scale, zp)...) along `axis`."""
    xs = shapes[2::3]
    if not xs or any(x is None for x in xs) or len({len(x) for x in xs}) != 1:
        return None
    axis = int(node.attr("axis", 0))
    axis = axis + len(xs[0]) if axis < 0 else axis
    if not 0 <= axis < len(xs[0]):
        return None
    return (*xs[0][:axis], sum(x[axis] for x in xs), *xs[0][axis + 1:])


def _qgemm(node: NodeInfo, shapes: list[Shape | None], block: int) -> Shape | None:
    """QGemm(A, a_scale, a_zp, B, ...): the Gemm rule on A and B."""
    return _fused_gemm(node, [shapes[0], shapes[3] if len(shapes) > 3 else None], block)


Rule = Callable[[NodeInfo, list, int], "Shape | None"]

_RULES: dict[tuple[str, str], Rule] = {
    (NCHWC, "ReorderInput"): _reorder_input,
    (NCHWC, "ReorderOutput"): _reorder_output,
    (NCHWC, "Conv"): _conv_like,
    (NCHWC, "MaxPool"): _pool,
    (NCHWC, "AveragePool"): _pool,
    (NCHWC, "GlobalAveragePool"): _global_pool,
    (NCHWC, "GlobalMaxPool"): _global_pool,
    (NCHWC, "Upsample"): _upsample,
    (MS, "FusedConv"): _conv_like,
    (MS, "FusedGemm"): _fused_gemm,
    (MS, "FusedMatMul"): _fused_matmul,
    (MS, "TransposeMatMul"): _fused_matmul,
    (MS, "QLinearConv"): _qlinear_conv,
    (MS, "NhwcMaxPool"): _nhwc_pool,
    (MS, "QLinearAveragePool"): _nhwc_pool,
    (MS, "QLinearGlobalAveragePool"): _qlinear_global_pool,
    (MS, "QLinearAdd"): _qlinear_binary,
    (MS, "QLinearMul"): _qlinear_binary,
    (MS, "QLinearConcat"): _qlinear_concat,
    (MS, "QGemm"): _qgemm,
}
# the element type of the output: that of this input (QLinearConcat's input 0 is its float scale)
_ELEM_FROM: dict[tuple[str, str], int] = {(MS, "QLinearConcat"): 2}
for _op in ("QuickGelu", "BiasGelu", "FastGelu", "Gelu", "BiasAdd", "SkipLayerNormalization",
            "SkipSimplifiedLayerNormalization", "BiasDropout", "BiasSoftmax", "QLinearSigmoid", "QLinearLeakyRelu",
            "QLinearSoftmax"):
    _RULES[(MS, _op)] = _same_as_input
_RULES[("", "SimplifiedLayerNormalization")] = _same_as_input  # onnxruntime's, registered in the onnx domain


def _vi_shape(vi: onnx.ValueInfoProto) -> Shape | None:
    tt = vi.type.tensor_type
    if not vi.type.HasField("tensor_type") or not tt.HasField("shape"):
        return None
    if not all(d.HasField("dim_value") and d.dim_value >= 0 for d in tt.shape.dim):
        return None
    return tuple(d.dim_value for d in tt.shape.dim)


def _known(m: onnx.ModelProto) -> dict[str, tuple[Shape, int]]:
    out: dict[str, tuple[Shape, int]] = {}
    for vi in list(m.graph.input) + list(m.graph.value_info) + list(m.graph.output):
        s = _vi_shape(vi)
        if s is not None:
            out[vi.name] = (s, vi.type.tensor_type.elem_type)
    for t in m.graph.initializer:
        out[t.name] = (tuple(int(d) for d in t.dims), t.data_type)
    return out


def _apply_rules(m: onnx.ModelProto, block: int) -> int:
    """One pass of the shape rules over the nodes; returns how many outputs got a shape."""
    known = _known(m)
    added = 0
    for n in m.graph.node:
        rule = _RULES.get((n.domain, n.op_type))
        if rule is None or not n.output or not n.output[0] or n.output[0] in known:
            continue
        ins = [known.get(x, (None, 0))[0] if x else None for x in n.input]
        if not ins or ins[0] is None:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        attrs = {k: v.decode() if isinstance(v, bytes) else v for k, v in attrs.items()}
        info = NodeInfo(n.name, n.op_type, n.domain, (), (), attrs)
        shape = rule(info, ins, block)
        if shape is None:
            continue
        src = n.input[_ELEM_FROM.get((n.domain, n.op_type), 0)]
        if src not in known:
            continue
        elem = known[src][1]
        if n.op_type == "QGemm" and len(n.input) < 8:  # no y_scale: QGemm writes float
            elem = onnx.TensorProto.FLOAT
        m.graph.value_info.append(helper.make_tensor_value_info(n.output[0], elem, list(shape)))
        known[n.output[0]] = (shape, elem)
        added += 1
    return added


def _onnx_infer(m: onnx.ModelProto) -> onnx.ModelProto:
    try:
        return onnx.shape_inference.infer_shapes(m, check_type=False, strict_mode=False, data_prop=True)
    except Exception:  # C++ inference raises several types; the rules and seeds still stand
        return m


def _unknown(m: onnx.ModelProto) -> list[str]:
    known = _known(m)
    used = {i for n in m.graph.node for i in n.input} | {o.name for o in m.graph.output}
    return [o for n in m.graph.node for o in n.output if o and o in used and o not in known]


def infer_optimized(opt: onnx.ModelProto, original: Analysis, block: int | None = None) -> tuple[onnx.ModelProto,
                                                                                                  list[str]]:
    """Bind the optimized graph's inputs as `original` was bound and infer every tensor's shape."""
    block = block or nchwc_block_size()
    m = onnx.ModelProto()
    m.CopyFrom(opt)
    values = original.binding.values
    inits = {t.name for t in m.graph.initializer}
    for vi in m.graph.input:
        if vi.name in inits or not vi.type.HasField("tensor_type"):
            continue
        for axis, d in enumerate(vi.type.tensor_type.shape.dim):
            if d.HasField("dim_value"):
                continue
            name = d.dim_param or anonymous_dim_name(vi.name, axis)
            if name not in values:
                raise DimError(f"onnxruntime's optimized graph has an input dim {name!r} the model does not")
            d.dim_value = values[name]
    del m.graph.value_info[:]
    for vi in m.graph.output:  # declared outputs carry the symbolic dims: give them the bound ones
        t = original.graph.tensors.get(vi.name)
        if t is not None and t.shape is not None and vi.type.HasField("tensor_type"):
            vi.type.tensor_type.ClearField("shape")
            for d in t.shape:
                vi.type.tensor_type.shape.dim.add().dim_value = d
    seeded = {vi.name for vi in m.graph.input} | inits
    producers = {o for n in m.graph.node for o in n.output if o}
    for name, t in original.graph.tensors.items():
        if name in producers and name not in seeded and t.shape is not None and t.dtype != "undefined":
            elem = _ELEM_OF.get(t.dtype)
            if elem is None:
                continue
            m.graph.value_info.append(helper.make_tensor_value_info(name, elem, list(t.shape)))
    return infer_executed(m, block)


def infer_executed(m: onnx.ModelProto, block: int | None = None) -> tuple[onnx.ModelProto, list[str]]:
    """Every tensor's shape in an executed graph whose inputs are bound: onnx's inference, the rules for
    onnxruntime's own ops and small values evaluated, in turn until nothing more is found, then onnxruntime's
    symbolic pass. The bodies of the graph's If/Loop/Scan nodes are inferred with it too, once their inputs
    carry the outer shapes (planner.model.controlflow): they hold the same NCHWc and com.microsoft ops."""
    block = block or nchwc_block_size()
    notes: list[str] = []
    work = m  # inference runs on a copy whose small value computations are Constants (value_folding)
    for _ in range(64):
        before = len(_unknown(work))
        work = _onnx_infer(work)
        _apply_rules(work, block)
        work, folded = fold_values(work)
        if folded:  # new Constants: inference runs again before progress is judged
            continue
        after = len(_unknown(work))
        if after == 0 or after == before:
            break
    if work is not m:
        m = with_inferred_types(m, work)
    if _unknown(m):
        try:  # never the public infer_shapes: it saves ./sym_shape_infer_temp.onnx whenever a shape stays unknown
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                sym = symbolic_infer(m, auto_merge=True, guess_output_rank=False)
            if sym is not None and len(_unknown(sym)) < len(_unknown(m)):
                m = sym
        except Exception:  # best effort, as in planner.model.shapes.infer
            pass
    left = _unknown(m)
    if left:
        notes.append(f"{len(left)} tensor shapes of onnxruntime's graph stayed unknown: {', '.join(left[:5])}")
    return m, notes


def ort_analysis(loaded: LoadedModel, dims: dict[str, int] | None = None, batch: int | None = None,
                 analyzer: Analyzer | None = None) -> Analysis:
    """The graph onnxruntime runs for `loaded` at this binding, as an Analysis the predictor can time.

    The model is taken exactly as given: a batch dim that the file fixes cannot be changed here, because
    onnxruntime would refuse to run it at another size.
    """
    analyzer = analyzer or Analyzer(loaded)
    spec = analyzer.spec
    if batch is not None and spec.batch is None:
        if spec.fixed_batch is not None and batch != spec.fixed_batch:
            raise DimError(f"--batch {batch}: the model's batch is fixed at {spec.fixed_batch}; onnxruntime runs "
                           "it as given")
        if spec.fixed_batch is None and batch != 1:
            raise DimError(f"--batch {batch}: the model has no batch dim")
        batch = None
    original = analyzer.analyze(dims, batch=batch)
    opt = optimized_model(loaded)
    inferred, notes = infer_optimized(opt, original)
    graph = build_graph(inferred, fold_constants=False)
    graph, flow_notes = resolve_control_flow(graph, inferred, analyzer.loop_trips,  # If/Loop/Scan bodies run too
                                             infer_body=infer_executed, values=analyzer.values)
    notes += flow_notes
    used = set(graph.consumers()) | set(graph.outputs)
    unknown = [t.name for n in graph.nodes for t in n.outputs if t is not None and t.shape is None and t.name in used]
    return Analysis(graph=graph, binding=original.binding,
                    notes=[*original.notes, "graph: onnxruntime's optimized graph (ORT_ENABLE_ALL, CPU)", *notes],
                    unknown_shapes=unknown)
