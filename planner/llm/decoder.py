"""Recognise an autoregressive decoder with a KV cache, and name the dims its two phases bind.

A decoder exported with a cache (optimum's exporter, onnxruntime-genai's builder, older transformers exports)
reads one past tensor per layer and kind and writes the matching present tensor:

    input_ids [batch, seq] ──▶ ... layer i ... ──▶ logits [batch, seq, vocab]
    past_key_values.{i}.key   [batch, kv_heads, past, head_dim] ─▶ Concat ─▶ present.{i}.key  [.., past + seq, ..]
    past_key_values.{i}.value [batch, kv_heads, past, head_dim] ─▶ Concat ─▶ present.{i}.value
    (older GPT-2 exports: past_{i} [2, batch, heads, past, head_dim] ─▶ present_{i})

Recognised by names (an input whose name starts with "past" and carries a layer number, and an output that
starts with "present"), then read structurally: layers = distinct layer numbers; KV heads and head size from
the past tensors' fixed dims; the batch, sequence, past and total dims from the axes of input_ids, the past
tensors and attention_mask, whatever they are called. Only declarations are read, never weights.

The two phases of generating G tokens after a P-token prompt:

    prefill   sequence = P, past = 0,        total = P       (one run; its last logits give token 1)
    decode    sequence = 1, past = L̄ - 1,    total = L̄       (one run per further token)

where L̄ = P + G // 2 is the mean context over the generated tokens (decode steps attend to P + 1 ... P + G - 1
tokens; their mean is P + G / 2). Decode cost is affine in the context (weights are read once per step, the
cache once per token of context), so the step at the mean context costs the mean step whenever each kernel
stays on one side of the roofline over the generation, which it does for decode at practical batch sizes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import onnx

from planner.errors import PlannerError
from planner.model.ir import DTYPE_BITS, dtype_name
from planner.model.loader import load_model
from planner.model.shapes import anonymous_dim_name

PREFILL, DECODE = "prefill", "decode"
_LAYER = re.compile(r"(\d+)")
_ATTENTION_OPS = {"GroupQueryAttention": "GroupQueryAttention", "MultiHeadAttention": "MultiHeadAttention",
                  "Attention": "Attention", "DecoderMaskedMultiHeadAttention": "DecoderMaskedMultiHeadAttention",
                  "PagedAttention": "PagedAttention"}


@dataclass(frozen=True)
class KVTensor:
    name: str
    layer: int
    kind: str  # "key", "value" or "kv" (both stacked on a leading axis of 2)
    dtype: str
    past_axis: int
    per_token_elements: int  # elements per request per token of context (all fixed dims multiplied)


@dataclass(frozen=True)
class DecoderInfo:
    """What the graph's declarations say about the decoder. `inferred` says how each number was found."""

    layers: int
    kv_heads: int | None  # None when the layout is not [batch, kv_heads, past, head_dim] or its stacked form
    head_dim: int | None
    kv_dtype: str
    kv_bytes_per_token: int  # per request, all layers, key and value: from the past tensors' shapes
    past: tuple[KVTensor, ...]
    present: tuple[str, ...]
    batch_dim: str | None
    sequence_dim: str
    past_dims: tuple[str, ...]
    total_dims: tuple[str, ...]
    attention: str  # "GroupQueryAttention", ..., or "MatMul + Softmax" (plain ops)
    weights: str  # "dense" or "MatMulNBits int4" ...
    vocab_size: int | None
    inferred: dict[str, str] = field(default_factory=dict)

    @property
    def kv_element_bytes(self) -> float:
        return DTYPE_BITS.get(self.kv_dtype, 32) / 8

    def kv_cache_bytes(self, tokens: int, batch: int) -> int:
        """2 x layers x kv_heads x head_dim x bytes x tokens x batch (the past tensors' own element count)."""
        return self.kv_bytes_per_token * tokens * batch


def _dims(vi: onnx.ValueInfoProto) -> list[int | str] | None:
    if not vi.type.HasField("tensor_type") or not vi.type.tensor_type.HasField("shape"):
        return None
    out: list[int | str] = []
    for axis, d in enumerate(vi.type.tensor_type.shape.dim):
        out.append(d.dim_value if d.HasField("dim_value") else (d.dim_param or anonymous_dim_name(vi.name, axis)))
    return out


def _dtype(vi: onnx.ValueInfoProto) -> str:

    return dtype_name(vi.type.tensor_type.elem_type) if vi.type.HasField("tensor_type") else "undefined"


def _kind(name: str) -> str:
    low = name.lower()
    if "key" in low and "value" not in low.replace("key_values", "").replace("key_value", ""):
        return "key"
    if "value" in low.replace("key_values", "").replace("key_value", ""):
        return "value"
    return "kv"


def recognise(model: onnx.ModelProto) -> DecoderInfo | None:
    """The decoder's structure, or None when the graph has no per-layer past inputs and present outputs."""
    g = model.graph
    inits = {t.name for t in g.initializer}
    inputs = [i for i in g.input if i.name not in inits]
    past_vis = [i for i in inputs if i.name.lower().startswith("past") and _LAYER.search(i.name)
                and ".encoder." not in i.name]
    present = tuple(o.name for o in g.output if o.name.lower().startswith("present") and ".encoder." not in o.name)
    if not past_vis or not present:
        return None
    by_name = {i.name: i for i in inputs}
    ids = by_name.get("input_ids") or by_name.get("inputs_embeds")
    ids_dims = _dims(ids) if ids is not None else None
    if not ids_dims or len(ids_dims) < 2 or not isinstance(ids_dims[1], str):
        raise PlannerError("decoder has past key/value inputs but no input_ids [batch, sequence] with a symbolic "
                           "sequence dim: cannot bind its prefill and decode phases")
    inferred: dict[str, str] = {}
    past: list[KVTensor] = []
    past_dims: list[str] = []
    kv_heads = head_dim = None
    for vi in past_vis:
        dims = _dims(vi)
        if not dims or len(dims) < 3:
            raise PlannerError(f"past input '{vi.name}' has no usable shape (rank >= 3 expected)")
        symbolic = [a for a, d in enumerate(dims) if isinstance(d, str)]
        # The past axis: the symbolic axis that is not the batch (batch is axis 0, or axis 1 when stacked [2, B..]).
        lead = 1 if len(dims) == 5 and dims[0] == 2 else 0
        candidates = [a for a in symbolic if a != lead]
        if len(candidates) != 1:
            raise PlannerError(f"past input '{vi.name}' {dims}: cannot tell its past-length axis")
        axis = candidates[0]
        per_token = 1
        for a, d in enumerate(dims):
            if a not in (lead, axis):
                if not isinstance(d, int):
                    raise PlannerError(f"past input '{vi.name}' {dims}: dim {a} must be a number")
                per_token *= d
        kind = "kv" if lead == 1 else _kind(vi.name)
        past.append(KVTensor(vi.name, int(_LAYER.search(vi.name).group(1)), kind, _dtype(vi), axis, per_token))
        if dims[axis] not in past_dims:
            past_dims.append(dims[axis])
        if len(dims) - lead == 4 and axis == lead + 2:  # [batch, kv_heads, past, head_dim]
            kv_heads, head_dim = dims[lead + 1], dims[lead + 3]
    layers = len({p.layer for p in past})
    inferred["layers"] = f"{layers} distinct layer numbers in {len(past)} past inputs ({past[0].name}, ...)"
    if kv_heads is not None:
        inferred["kv_heads, head_dim"] = f"{past[0].name} is [batch, kv_heads={kv_heads}, past, head_dim={head_dim}]"
    dtypes = {p.dtype for p in past}
    kv_dtype = past[0].dtype if len(dtypes) == 1 else max(dtypes, key=lambda d: DTYPE_BITS.get(d, 32))
    per_token = int(sum(p.per_token_elements * DTYPE_BITS.get(p.dtype, 32) // 8 for p in past))
    inferred["kv_bytes_per_token"] = (f"sum over past inputs of their fixed dims x {kv_dtype} bytes "
                                      f"= {per_token} B per token per request")
    sequence_dim = ids_dims[1]
    batch_dim = ids_dims[0] if isinstance(ids_dims[0], str) else None
    total_dims: list[str] = []
    mask = by_name.get("attention_mask")
    mdims = _dims(mask) if mask is not None else None
    if mdims and len(mdims) >= 2 and isinstance(mdims[-1], str) and mdims[-1] not in (sequence_dim, *past_dims):
        total_dims.append(mdims[-1])
    ops = {n.op_type for n in g.node}
    attention = next((v for k, v in _ATTENTION_OPS.items() if k in ops), "MatMul + Softmax")
    nbits = [n for n in g.node if n.op_type in ("MatMulNBits", "MatMulBnb4")]
    if nbits:
        bits = next((a.i for a in nbits[0].attribute if a.name == "bits"), 4)
        weights = f"{nbits[0].op_type} int{bits}"
    else:
        weights = "dense"
    vocab = None
    for o in g.output:
        od = _dims(o)
        if o.name == "logits" and od and isinstance(od[-1], int):
            vocab = od[-1]
    return DecoderInfo(
        layers=layers, kv_heads=kv_heads, head_dim=head_dim, kv_dtype=kv_dtype, kv_bytes_per_token=per_token,
        past=tuple(past), present=present, batch_dim=batch_dim, sequence_dim=sequence_dim,
        past_dims=tuple(past_dims), total_dims=tuple(total_dims), attention=attention, weights=weights,
        vocab_size=vocab, inferred=inferred,
    )


def mean_context(prompt_len: int, gen_len: int) -> int:
    """The context (total length) of the mean decode step: P + G // 2 (at least P + 1)."""
    return prompt_len + max(1, gen_len // 2)


def phase_dims(info: DecoderInfo, prompt_len: int, gen_len: int) -> dict[str, dict[str, int]]:
    """The dim bindings of the two phases (batch excluded: it is swept)."""
    if prompt_len < 1 or gen_len < 1:
        raise PlannerError(f"--prompt-len {prompt_len} / --gen-len {gen_len}: both must be at least 1")
    context = mean_context(prompt_len, gen_len)
    prefill = {info.sequence_dim: prompt_len, **{d: 0 for d in info.past_dims},
               **{d: prompt_len for d in info.total_dims}}
    decode = {info.sequence_dim: 1, **{d: context - 1 for d in info.past_dims}, **{d: context for d in info.total_dims}}
    return {PREFILL: prefill, DECODE: decode}


def decoder_bindings(path, prompt_len: int = 128, gen_len: int = 32, batch: int = 1) -> dict[str, dict]:
    """For `plan validate`: {"prefill": {"dims", "batch"}, "decode": {...}} of the decoder at `path`.

    Feed these to planner.model.analyze.Analyzer.analyze(dims, batch) for the prediction, and to `phase_feeds` for
    onnxruntime inputs of the same shapes. Raises PlannerError when the model is not a decoder.
    """

    info = recognise(load_model(path).model)
    if info is None:
        raise PlannerError(f"{path}: not a decoder (no past key/value inputs and present outputs)")
    return {phase: {"dims": dims, "batch": batch} for phase, dims in phase_dims(info, prompt_len, gen_len).items()}


_NP = {"float32": np.float32, "float16": np.float16, "float64": np.float64, "int64": np.int64, "int32": np.int32,
       "bool": np.bool_, "bfloat16": np.float32}


def phase_feeds(model: onnx.ModelProto, dims: dict[str, int], batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """onnxruntime inputs for one phase: token ids below the vocabulary, a mask of ones over the whole context,
    positions past .. past + seq - 1, and a seeded random cache. Every other input is zeros of its shape."""
    info = recognise(model)
    if info is None:
        raise PlannerError("not a decoder: no past key/value inputs and present outputs")
    rng = np.random.default_rng(seed)
    values = dict(dims)
    if info.batch_dim:
        values[info.batch_dim] = batch
    seq = dims[info.sequence_dim]
    past_len = dims[info.past_dims[0]] if info.past_dims else 0
    inits = {t.name for t in model.graph.initializer}
    feeds: dict[str, np.ndarray] = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        shape = [d if isinstance(d, int) else values.get(d, 1) for d in (_dims(vi) or [])]
        dtype = _NP.get(_dtype(vi), np.float32)
        if vi.name == "input_ids":
            feeds[vi.name] = rng.integers(0, min(info.vocab_size or 100, 1000), size=shape, dtype=dtype)
        elif vi.name == "attention_mask":
            feeds[vi.name] = np.ones(shape, dtype=dtype)
        elif vi.name == "position_ids":
            feeds[vi.name] = np.broadcast_to(np.arange(past_len, past_len + seq, dtype=dtype), shape).copy()
        elif vi.name.lower().startswith("past"):
            feeds[vi.name] = (rng.standard_normal(shape) * 0.5).astype(dtype)
        else:
            feeds[vi.name] = np.zeros(shape, dtype=dtype)
    return feeds
