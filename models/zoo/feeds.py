"""Inputs for a zoo model at one binding of its dims, and the one onnxruntime run that says whether it runs.

The same feeds calibrate the static int8 variants (a few seeded draws), so a model is quantized on inputs of
the shape it is scored at. Token ids are drawn below 100 (every zoo vocabulary is larger), attention masks are
ones, token type ids zero, position ids count on from the past length, booleans (optimum's use_cache_branch) are true.
"""

from __future__ import annotations

import re
import time

import numpy as np
import onnx
import onnxruntime as ort

_DTYPES = {onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.FLOAT16: np.float16,
           onnx.TensorProto.DOUBLE: np.float64, onnx.TensorProto.INT64: np.int64, onnx.TensorProto.INT32: np.int32,
           onnx.TensorProto.BOOL: np.bool_, onnx.TensorProto.UINT8: np.uint8, onnx.TensorProto.INT8: np.int8}
_TERM = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class BindingError(ValueError):
    """A binding that does not fit the model: a dim it leaves unbound, or one the model does not have."""


def graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    inits = {t.name for t in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in inits]


def symbolic_dims(model: onnx.ModelProto) -> list[str]:
    """The named symbolic dims of the model's inputs, in order (expressions such as `a + b` excluded)."""
    out: list[str] = []
    for vi in graph_inputs(model):
        for d in vi.type.tensor_type.shape.dim:
            if d.dim_param and _TERM.match(d.dim_param) and d.dim_param not in out:
                out.append(d.dim_param)
    return out


def _dim(d: onnx.TensorShapeProto.Dimension, dims: dict[str, int], where: str) -> int:
    if d.HasField("dim_value") and d.dim_value >= 0:
        return d.dim_value
    if not d.dim_param:  # -1 or nothing: a dynamic dim without a name; the planner binds it as the batch, 1
        return 1
    terms = [t.strip() for t in d.dim_param.split("+")]
    if all(_TERM.match(t) for t in terms):
        missing = [t for t in terms if t not in dims]
        if not missing:
            return sum(dims[t] for t in terms)
    raise BindingError(f"{where}: dim {d.dim_param!r} is not bound by {dims}")


def input_shapes(model: onnx.ModelProto, dims: dict[str, int]) -> dict[str, tuple[tuple[int, ...], type]]:
    """Each input's concrete shape and numpy dtype at this binding."""
    out = {}
    for vi in graph_inputs(model):
        tt = vi.type.tensor_type
        if tt.elem_type not in _DTYPES:
            raise BindingError(f"{vi.name}: element type {tt.elem_type} is not one the zoo feeds")
        out[vi.name] = (tuple(_dim(d, dims, vi.name) for d in tt.shape.dim), _DTYPES[tt.elem_type])
    return out


def make_feeds(model: onnx.ModelProto, dims: dict[str, int], seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded inputs for one run at this binding."""
    rng = np.random.default_rng(seed)
    past = next((v for k, v in dims.items() if k.startswith("past")), 0)
    feeds = {}
    for name, (shape, dtype) in input_shapes(model, dims).items():
        if dtype is np.bool_:
            feeds[name] = np.ones(shape, np.bool_)
        elif np.issubdtype(dtype, np.integer):
            if "token_type" in name:
                feeds[name] = np.zeros(shape, dtype)
            elif "mask" in name:
                feeds[name] = np.ones(shape, dtype)
            elif "position" in name:
                feeds[name] = np.broadcast_to(np.arange(past, past + shape[-1], dtype=dtype), shape).copy()
            else:
                feeds[name] = rng.integers(0, 100, size=shape).astype(dtype)
        else:
            feeds[name] = rng.standard_normal(shape).astype(dtype)
    return feeds


def run_once(path: str, dims: dict[str, int], seed: int = 0) -> tuple[bool, str, float]:
    """One onnxruntime run at 1 thread (ORT_ENABLE_ALL, as plan validate runs): (ran, why not, its wall seconds).

    The seconds are of one cold run on whatever else the machine is doing: a size check (is the model within
    the zoo's budget of about 0.3 s a run?), not a measurement."""
    try:
        model = onnx.load(path, load_external_data=False)
        feeds = make_feeds(model, dims, seed)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        t0 = time.perf_counter()
        sess.run(None, feeds)
        seconds = time.perf_counter() - t0
    except Exception as e:  # noqa: BLE001 - any refusal is the answer, recorded with its message
        return False, f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}", 0.0
    return True, "", seconds
