"""Verification after every pass: onnx.checker, shape inference, onnxruntime loads it, and on seeded inputs its
outputs match the original's.

Drift of a transformed model against the original, over every float output:
    max_abs_err   max |y' - y|
    max_rel_err   max |y' - y| / max |y|          (relative to the output's scale, robust to zeros)
    cosine        min over outputs of  <y', y> / (|y'| |y|)
    top1          for classifier-like outputs ([batch, classes], or "...logits"): share of rows whose argmax agrees
A float-exact pass (fusion, cleanup) must keep cosine >= 0.99999 and max_rel_err <= 1e-3; a lossy pass
(quantization, fp16) only has to produce finite outputs of the same shapes here: its drift is judged by the
search against --max-drift.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import onnx

from planner.errors import PlannerError
from planner.model.shapes import anonymous_dim_name, bind_dims, dim_spec

# onnxruntime registers these contrib ops in the ai.onnx domain (its transformer optimizer emits them there), so
# onnx.checker does not know them; onnxruntime loading and running the model is their check.
ORT_ONNX_DOMAIN_OPS = frozenset({"SimplifiedLayerNormalization"})
EXACT_MIN_COSINE = 0.99999
EXACT_MAX_REL = 1e-3
VERIFY_BATCH = 8
SEED = 0

_NP_DTYPES = {
    onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.DOUBLE: np.float64, onnx.TensorProto.FLOAT16: np.float16,
    onnx.TensorProto.INT64: np.int64, onnx.TensorProto.INT32: np.int32, onnx.TensorProto.INT8: np.int8,
    onnx.TensorProto.UINT8: np.uint8, onnx.TensorProto.BOOL: np.bool_, onnx.TensorProto.INT16: np.int16,
}


@dataclass(frozen=True)
class Drift:
    max_abs_err: float
    max_rel_err: float
    cosine: float
    top1: float | None  # None: no classifier-like output
    samples: int  # rows compared (the verification batch)
    inputs: str  # "generated (seed 0)" or "user .npz"
    # Decoders (planner.llm.generation): agreement, cosines and perplexity of a greedy generation; None otherwise.
    generation: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def violates(self, max_drift: float) -> str | None:
        """Why this drift exceeds the limit (1 - cosine and top-1 disagreement each at most max_drift)."""
        if not math.isfinite(self.cosine) or 1 - self.cosine > max_drift:
            return f"drift: cosine {self.cosine:.5f} < {1 - max_drift:g} (--max-drift {max_drift:g})"
        if self.top1 is not None and 1 - self.top1 > max_drift:
            what = "token agreement" if self.generation else "top-1 agreement"
            return f"drift: {what} {self.top1:.3f} < {1 - max_drift:g} (--max-drift {max_drift:g})"
        change = (self.generation or {}).get("perplexity_change")
        if change is not None and (not math.isfinite(change) or change > max_drift):
            return f"drift: perplexity {100 * change:+.2f}% > +{100 * max_drift:g}% (--max-drift {max_drift:g})"
        return None


class ContractBroken(Exception):
    """A rewrite broke a contract its model must keep (a decoder's KV cache): the message is the reason."""


ZERO_DRIFT = Drift(0.0, 0.0, 1.0, None, 0, "none: the model as stored")


# ---- inputs ------------------------------------------------------------------------------------------------


def _gather_rows(model: onnx.ModelProto) -> dict[str, int]:
    """Graph inputs used as Gather indices into a weight: their valid range is [0, rows)."""
    inits = {t.name: t for t in model.graph.initializer}
    rows: dict[str, int] = {}
    for n in model.graph.node:
        if n.op_type == "Gather" and len(n.input) > 1 and n.input[0] in inits:
            axis = next((a.i for a in n.attribute if a.name == "axis"), 0)
            dims = list(inits[n.input[0]].dims)
            if dims:
                r = dims[axis]
                rows[n.input[1]] = min(rows.get(n.input[1], r), r)
        if n.domain == "com.microsoft" and n.op_type == "EmbedLayerNormalization" and n.input[2] in inits:
            rows[n.input[0]] = int(inits[n.input[2]].dims[0])
    return rows


def input_shapes(model: onnx.ModelProto, batch: int = VERIFY_BATCH, dims: dict[str, int] | None = None
                 ) -> dict[str, tuple[tuple[int, ...], int]]:
    """Concrete (shape, elem_type) per graph input, symbolic dims bound by the planner's rules."""

    spec = dim_spec(model)
    binding = bind_dims(spec, dict(dims or {}), batch if spec.batch else None)
    inits = {t.name for t in model.graph.initializer}
    out = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        shape = []
        for axis, d in enumerate(tt.shape.dim):
            if d.HasField("dim_value"):
                shape.append(d.dim_value)
            else:
                shape.append(binding.values.get(d.dim_param or anonymous_dim_name(vi.name, axis), 1))
        out[vi.name] = (tuple(shape), tt.elem_type)
    return out


def generate_inputs(model: onnx.ModelProto, batch: int = VERIFY_BATCH, seed: int = SEED,
                    dims: dict[str, int] | None = None) -> dict[str, np.ndarray]:
    """Seeded inputs: ids inside the embedding table, right-padded masks, normal floats."""
    rng = np.random.default_rng(seed)
    rows = _gather_rows(model)
    feeds: dict[str, np.ndarray] = {}
    for name, (shape, elem) in input_shapes(model, batch, dims).items():
        dtype = _NP_DTYPES.get(elem)
        if dtype is None:
            raise onnx.checker.ValidationError(f"input '{name}': dtype {elem} cannot be generated")
        low = name.lower()
        if np.issubdtype(dtype, np.floating):
            feeds[name] = rng.standard_normal(shape).astype(dtype)
        elif dtype == np.bool_ or "mask" in low:
            m = np.ones(shape, dtype=dtype)
            if len(shape) >= 2 and shape[-1] > 1:  # right padding of varying length, a real batch's shape
                for r in range(1, shape[0]):
                    keep = max(1, shape[-1] - int(rng.integers(0, shape[-1] // 2 + 1)))
                    m[r, ..., keep:] = 0
            feeds[name] = m
        elif name in rows:
            feeds[name] = rng.integers(0, max(1, rows[name]), size=shape).astype(dtype)
        elif "position" in low and shape:
            feeds[name] = np.broadcast_to(np.arange(shape[-1]), shape).astype(dtype).copy()
        else:
            feeds[name] = np.zeros(shape, dtype=dtype)
    return feeds


def load_npz(path: str, model: onnx.ModelProto) -> list[dict[str, np.ndarray]]:
    """User inputs: an .npz with one array per graph input (first axis = the batch)."""

    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise PlannerError(f"{path}: cannot read calibration data ({e})") from None
    inits = {t.name for t in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in inits]
    missing = [n for n in names if n not in data.files]
    if missing:
        raise PlannerError(f"{path}: no array for input(s) {', '.join(missing)} (has: {', '.join(data.files)})")
    feeds = {n: data[n] for n in names}
    n_rows = {v.shape[0] if v.ndim else 1 for v in feeds.values()}
    if len(n_rows) != 1:
        raise PlannerError(f"{path}: arrays disagree on the first (batch) axis: {sorted(n_rows)}")
    rows = n_rows.pop()
    step = max(1, min(VERIFY_BATCH, rows))
    return [{n: v[i:i + step] for n, v in feeds.items()} for i in range(0, rows, step)]


# ---- running and comparing -----------------------------------------------------------------------------------


def session(model: onnx.ModelProto | os.PathLike):
    """A CPU session of `model`; given a path, onnxruntime reads the file and its external data itself (a model
    whose weights are external data runs from its folder, never serialized through protobuf here)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 4  # failures come back as exceptions with their reason; no log spew
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    source = str(model) if isinstance(model, os.PathLike) else model.SerializeToString()
    return ort.InferenceSession(source, so, providers=["CPUExecutionProvider"])


def run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    s = session(model)
    return [np.asarray(o) for o in s.run(None, feeds)]


def _classifier_like(name: str, shape: tuple[int, ...]) -> bool:
    return (len(shape) == 2 and shape[-1] >= 2) or ("logit" in name.lower() and len(shape) >= 2)


def compare(ref: list[np.ndarray], got: list[np.ndarray], names: list[str], inputs: str) -> Drift:
    if len(ref) != len(got):
        raise ValueError(f"{len(got)} outputs, the original has {len(ref)}")
    max_abs = max_rel = 0.0
    cosine = 1.0
    agree, rows = 0, 0
    samples = 0
    for name, a, b in zip(names, ref, got, strict=True):
        if a.shape != b.shape:
            raise ValueError(f"output '{name}': shape {b.shape}, the original's is {a.shape}")
        samples = max(samples, a.shape[0] if a.ndim else 1)
        if not np.issubdtype(a.dtype, np.floating):
            if not np.array_equal(a, b):
                raise ValueError(f"output '{name}': integer values differ")
            continue
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        if not np.all(np.isfinite(b64)):
            raise ValueError(f"output '{name}': non-finite values")
        diff = float(np.max(np.abs(a64 - b64))) if a.size else 0.0
        scale = float(np.max(np.abs(a64))) if a.size else 0.0
        max_abs = max(max_abs, diff)
        max_rel = max(max_rel, diff / scale if scale > 0 else (0.0 if diff == 0 else math.inf))
        na, nb = float(np.linalg.norm(a64)), float(np.linalg.norm(b64))
        cos = 1.0 if na == nb == 0 else (float(np.sum(a64 * b64)) / (na * nb) if na and nb else 0.0)
        cosine = min(cosine, cos)
        if _classifier_like(name, a.shape):
            ra, rb = a64.reshape(-1, a.shape[-1]), b64.reshape(-1, b.shape[-1])
            agree += int(np.sum(np.argmax(ra, -1) == np.argmax(rb, -1)))
            rows += ra.shape[0]
    return Drift(max_abs, max_rel, min(cosine, 1.0), agree / rows if rows else None, samples, inputs)


@dataclass
class Reference:
    """The original model's outputs on the verification inputs, computed once and shared by every pass."""

    feeds: list[dict[str, np.ndarray]]
    outputs: list[list[np.ndarray]]
    names: list[str]
    inputs: str

    @classmethod
    def build(cls, model: onnx.ModelProto, feeds: list[dict[str, np.ndarray]] | None = None,
              dims: dict[str, int] | None = None) -> Reference:
        how = "user .npz"
        if not feeds:
            feeds = [generate_inputs(model, dims=dims)]
            how = f"generated (seed {SEED}, batch {next(iter(feeds[0].values())).shape[0] if feeds[0] else 1})"
        outs = [run(model, f) for f in feeds]
        return cls(feeds, outs, [o.name for o in model.graph.output], how)

    def drift(self, model: onnx.ModelProto) -> Drift:
        s = session(model)
        want = {i.name: i.type for i in s.get_inputs()}
        ref = [x for o in self.outputs for x in o]
        got = []
        for f in self.feeds:  # a float16-I/O model gets the same values, cast; its outputs compare as float32
            feeds = {k: v.astype(np.float16) if want.get(k) == "tensor(float16)" and v.dtype == np.float32 else v
                     for k, v in f.items()}
            got += [np.asarray(x).astype(np.float32) if np.asarray(x).dtype == np.float16 else np.asarray(x)
                    for x in s.run(None, feeds)]
        return compare(ref, got, self.names * len(self.feeds), self.inputs)


def verify(model: onnx.ModelProto, reference: Reference, exact: bool) -> tuple[Drift | None, str | None]:
    """(drift, None) when the model passes every check; (drift or None, reason) when it fails one."""
    try:
        onnx.checker.check_model(model)
    except Exception as e:  # checker raises ValidationError and C++ errors
        unknown = re.search(r"No Op registered for (\w+) with domain_version", str(e))
        if unknown is None or unknown.group(1) not in ORT_ONNX_DOMAIN_OPS:
            return None, f"onnx.checker: {str(e).splitlines()[0][:200]}"
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=False)
    except Exception as e:
        return None, f"shape inference: {str(e).splitlines()[0][:200]}"
    try:
        drift = reference.drift(model)
    except ContractBroken as e:
        return None, str(e)
    except Exception as e:  # onnxruntime load/run failures and output mismatches
        return None, f"onnxruntime: {str(e).splitlines()[0][:200] if str(e) else type(e).__name__}"
    if exact and (drift.cosine < EXACT_MIN_COSINE or drift.max_rel_err > EXACT_MAX_REL):
        return drift, (f"outputs changed by a float-exact rewrite: cosine {drift.cosine:.6f}, "
                       f"max rel err {drift.max_rel_err:.2e}")
    return drift, None
