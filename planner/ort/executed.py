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
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import onnx
from onnx import helper

from planner.costs.conv import conv_out_spatial
from planner.costs.linalg import broadcast_shapes
from planner.errors import DimError, PlannerError
from planner.model.analyze import Analysis, Analyzer, build_graph, dtype_name
from planner.model.ir import NodeInfo
from planner.model.loader import LoadedModel
from planner.model.shapes import anonymous_dim_name
from planner.targets.target import Target

if TYPE_CHECKING:
    from planner.calibration.store import Calibration
    from planner.predict.predictor import Prediction

NCHWC = "com.microsoft.nchwc"
MS = "com.microsoft"
_EXTERNAL_MIN_BYTES = 1024  # initializers at least this big are saved outside the optimized .onnx

Shape = tuple[int, ...]
_ELEM_OF = {dtype_name(v): v for v in onnx.TensorProto.DataType.values() if v}


class OrtGraphError(PlannerError):
    """onnxruntime could not build a session for the model (unsupported op, invalid graph)."""


def session_options(threads: int = 1, *, optimized_path: str | None = None, profile_prefix: str | None = None,
                    external_file: str | None = None):
    """The one place session settings live, so the graph we predict is the graph validate measures.

    ORT_ENABLE_ALL, sequential execution, one inter-op thread, `threads` intra-op threads (pinned: a
    calibration is per thread count), CPU execution provider, warnings off.
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    if optimized_path:
        so.optimized_model_filepath = optimized_path
        if external_file:
            so.add_session_config_entry("session.optimized_model_external_initializers_file_name", external_file)
            so.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes",
                                        str(_EXTERNAL_MIN_BYTES))
    if profile_prefix:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    return so


def make_session(model: str | os.PathLike | bytes, so):
    """An onnxruntime CPU session; a model onnxruntime refuses is a one-line OrtGraphError."""
    import onnxruntime as ort

    src = model if isinstance(model, bytes) else str(model)
    try:
        return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types from C++
        first = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        raise OrtGraphError(f"onnxruntime cannot run this model on the CPU: {first}") from None


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


@functools.cache
def nchwc_block_size() -> int:
    """MLAS's NCHWc block (floats per channel block): 16 with AVX-512F, else 8. Read once: kernel_family asks
    for every blocked convolution."""
    from planner.targets.host import _cpuinfo, _flags

    return 16 if "avx512f" in _flags(_cpuinfo()) else 8


def _roundup(x: int, b: int) -> int:
    return -(-x // b) * b


def _conv_like(node: NodeInfo, shapes: list[Shape | None], block: int) -> Shape | None:
    x, w = shapes[0], shapes[1] if len(shapes) > 1 else None
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
    return (x[0], x[1], *(d * s[i % len(s)] for i, d in enumerate(x[2:])))


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
    from planner.costs.contrib import _transposed

    a, b = shapes[0], shapes[1] if len(shapes) > 1 else None
    if a is None or b is None or len(a) < 2 or len(b) < 2:
        return None
    a = _transposed(a, bool(node.attr("transA", 0)), bool(node.attr("transBatchA", 0)))
    b = _transposed(b, bool(node.attr("transB", 0)), bool(node.attr("transBatchB", 0)))
    return (*broadcast_shapes(a[:-2], b[:-2]), a[-2], b[-1])


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
}
for _op in ("QuickGelu", "BiasGelu", "FastGelu", "Gelu", "BiasAdd", "SkipLayerNormalization",
            "SkipSimplifiedLayerNormalization", "BiasDropout", "BiasSoftmax"):
    _RULES[(MS, _op)] = _same_as_input


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
        elem = known[n.input[0]][1]
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
    notes: list[str] = []
    for _ in range(64):
        before = len(_unknown(m))
        m = _onnx_infer(m)
        _apply_rules(m, block)
        after = len(_unknown(m))
        if after == 0 or after == before:
            break
    if _unknown(m):
        try:
            from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                sym = SymbolicShapeInference.infer_shapes(m, auto_merge=True, guess_output_rank=False)
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
    used = set(graph.consumers()) | set(graph.outputs)
    unknown = [t.name for n in graph.nodes for t in n.outputs if t is not None and t.shape is None and t.name in used]
    return Analysis(graph=graph, binding=original.binding,
                    notes=[*original.notes, "graph: onnxruntime's optimized graph (ORT_ENABLE_ALL, CPU)", *notes],
                    unknown_shapes=unknown)


# ---- predicting it on this machine ----------------------------------------------------------------------


@dataclass
class OrtPrediction:
    prediction: Prediction
    analysis: Analysis
    target: Target
    calibration: Calibration | None
    threads: int = 1
    notes: list[str] = field(default_factory=list)


BASE_IO = 2  # the calibration's chains have one input and one output: run_overhead_s includes both


def run_overhead(run_s: float, per_io_s: float, n_io: int) -> float:
    """What one Run call costs beyond the kernels, for a graph with `n_io` inputs and outputs in all."""
    return max(run_s + per_io_s * (n_io - BASE_IO), 0.0)


def ort_host_target(threads: int, n_io: int, calibration_path: str | os.PathLike | None = None
                    ) -> tuple[Target, Calibration | None, list[str]]:
    """`host` for a graph onnxruntime already optimized: every node is its own kernel (onnxruntime did the
    fusing), every node is dispatched, and a run costs the calibrated fixed part plus a part per input and
    output. Uncalibrated, the nominal peaks are scaled to `threads` of the machine's cores."""
    from planner.calibration.store import calibrated_host

    host = calibrated_host(threads, calibration_path)
    t, cal = host.target, host.calibration
    if cal is None:
        cores = max(1, int(os.cpu_count() or 1))
        share = min(threads, cores) / cores
        t = replace(t, matrix_flops_per_s={k: v * share for k, v in t.matrix_flops_per_s.items()},
                    vector_flops_per_s=t.vector_flops_per_s * share)
        run = 0.0
    else:
        run = run_overhead(cal.run_overhead_s, cal.run_overhead_per_io_s, n_io)
    return as_executed(t, run), cal, host.notes


def as_executed(t: Target, run_s: float) -> Target:
    """`t` timing a graph onnxruntime already optimized: every node its own kernel and dispatched, and a run
    costing `run_s` beyond them."""
    return replace(t, fuse_epilogue=False, fuse_elementwise=False, dispatch_views=True, run_overhead_s=run_s)


def predict_ort(loaded: LoadedModel, threads: int = 1, dims: dict[str, int] | None = None,
                batch: int | None = None, calibration_path: str | os.PathLike | None = None,
                analyzer: Analyzer | None = None) -> OrtPrediction:
    """Predict `loaded` as onnxruntime runs it on this machine with `threads` intra-op threads.

    Nothing of the model runs: its optimized graph is costed, and the host calibration times the kernels.
    """
    from planner.predict.predictor import Predictor

    analysis = ort_analysis(loaded, dims, batch, analyzer)
    g = analysis.graph
    target, cal, notes = ort_host_target(threads, len(g.inputs) + len(g.outputs), calibration_path)
    prediction = Predictor().predict(analysis, target)
    return OrtPrediction(prediction, analysis, target, cal, threads, [*notes, *analysis.notes])


def predict_host(predictor, analyzer: Analyzer, analysis: Analysis, host: Target, dims: dict[str, int] | None,
                 batch: int | None, precision: str | None = None) -> Prediction:
    """`plan --target host`: the graph onnxruntime will execute (its fusions, layouts and every node dispatched),
    timed as `plan predict` and `plan validate` time it, rather than the model's own graph fused by rule. A
    model onnxruntime cannot optimize here is planned as stored (`analysis`), and says so."""
    from planner.calibration.store import DEFAULT_THREADS

    try:
        ort = ort_analysis(analyzer.loaded, dims, batch, analyzer)
    except PlannerError as e:
        p = predictor.predict(analysis, host, precision)
        return replace(p, notes=p.notes + (f"host: planned as stored, not as onnxruntime runs it ({e})",))
    g = ort.graph
    target, _, _ = ort_host_target(DEFAULT_THREADS, len(g.inputs) + len(g.outputs))
    p = predictor.predict(ort, replace(target, name=host.name), precision)
    return replace(p, notes=p.notes + ("host: onnxruntime's optimized graph (ORT_ENABLE_ALL, 1 thread)",))


__all__ = ["OrtGraphError", "OrtPrediction", "dtype_name", "infer_optimized", "make_session", "optimized_model",
           "as_executed", "ort_analysis", "ort_host_target", "predict_host", "predict_ort", "session_options"]
