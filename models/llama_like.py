"""A Llama-style decoder with KV cache, built from primitive ONNX ops (no contrib ops).

The graph follows the layout of an optimum / ``torch.onnx`` export of ``LlamaForCausalLM`` with a KV cache:

* inputs ``input_ids`` [batch_size, sequence_length] int64, ``attention_mask`` [batch_size,
  total_sequence_length] int64, ``position_ids`` [batch_size, sequence_length] int64 and, per layer,
  ``past_key_values.{i}.key`` / ``.value`` [batch_size, num_key_value_heads, past_sequence_length, head_dim];
* outputs ``logits`` [batch_size, sequence_length, vocab_size] and ``present.{i}.key`` / ``.value``
  [batch_size, num_key_value_heads, total_sequence_length, head_dim];
* weights named like the Hugging Face state dict (``model.layers.0.self_attn.q_proj.weight``...), but stored
  as ``[in_features, out_features]`` so that each projection is a plain ``MatMul``;
* node names like ``/model/layers.0/self_attn/q_proj/MatMul``.

Per layer: RMSNorm (Pow, ReduceMean, Add, Sqrt, Reciprocal, Mul, Mul), Q/K/V projections, rotary embedding
(cos/sin tables gathered by ``position_ids``, rotate_half via Slice/Neg/Concat), concat with the past KV,
grouped-query attention (KV heads repeated with Unsqueeze/Expand/Reshape, i.e. ``repeat_interleave``), scaled
scores plus a causal and padding mask built from ``attention_mask``, Softmax, output projection, residual, and
a SwiGLU MLP (SiLU written as ``x * Sigmoid(x)``). For float16 models the norm and the softmax run in float32
(Cast in and out), as the Hugging Face implementation does.

Weights are either embedded (seeded random values, std 0.02; norms are ones; cos/sin tables are exact) or,
with ``external_data=True``, described as external data in one ``<model>.onnx.data`` file beside the model
*without the bytes being produced*: each large initializer gets ``location`` / ``offset`` / ``length``
entries (offsets 4096-aligned), which is enough for a cost model to know every weight's size. This is how
the 7B and 70B presets build in a second or two using a few MB of memory.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = [
    "DecoderConfig",
    "TINY",
    "LLAMA2_7B",
    "LLAMA3_70B",
    "OPSET",
    "IR_VERSION",
    "EXTERNAL_THRESHOLD",
    "ALIGNMENT",
    "WEIGHT_FORMATS",
    "INT4_BLOCK_SIZE",
    "make_decoder",
    "external_tensor",
    "build_decoder",
    "rotary_table_names",
]

OPSET = 17
IR_VERSION = 8  # the lowest IR version that carries opset 17; loads in every onnxruntime >= 1.13
EXTERNAL_THRESHOLD = 1024  # initializers smaller than this many bytes stay inline
ALIGNMENT = 4096  # external-data offsets are multiples of this
INIT_STD = 0.02
WEIGHT_FORMATS = ("dense", "int4", "int8")
INT4_BLOCK_SIZE = 32  # MatMul4BitsQuantizer's default block size
MS_DOMAIN = "com.microsoft"

_ONNX_DTYPE = {"float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16}
_NP_DTYPE = {"float32": np.float32, "float16": np.float16}
_INT64_MAX = np.iinfo(np.int64).max


@dataclass(frozen=True)
class DecoderConfig:
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int | None = None  # defaults to hidden_size // num_heads
    max_position: int = 2048  # rows of the rotary cos/sin tables
    dtype: str = "float32"  # "float32" or "float16"
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    name: str = field(default="llama", compare=False)

    def __post_init__(self) -> None:
        if self.head_dim is None:
            if self.hidden_size % self.num_heads:
                raise ValueError("hidden_size must be a multiple of num_heads when head_dim is not given")
            object.__setattr__(self, "head_dim", self.hidden_size // self.num_heads)
        if self.dtype not in _ONNX_DTYPE:
            raise ValueError(f"dtype must be one of {sorted(_ONNX_DTYPE)}, not {self.dtype!r}")
        if self.num_heads % self.num_kv_heads:
            raise ValueError("num_heads must be a multiple of num_kv_heads")
        if self.head_dim % 2:
            raise ValueError("head_dim must be even for the rotary embedding")

    @property
    def dtype_bytes(self) -> int:
        return np.dtype(_NP_DTYPE[self.dtype]).itemsize

    @property
    def num_parameters(self) -> int:
        """Learned parameters: embedding, projections, norms, lm_head (the rotary tables are buffers)."""
        h, d = self.hidden_size, self.head_dim
        attn = h * self.num_heads * d * 2 + h * self.num_kv_heads * d * 2  # q, o; k, v
        mlp = 3 * h * self.intermediate_size
        per_layer = attn + mlp + 2 * h
        return self.vocab_size * h + self.num_layers * per_layer + h + h * self.vocab_size


TINY = DecoderConfig(
    vocab_size=256, hidden_size=64, intermediate_size=128, num_layers=2, num_heads=4, num_kv_heads=2,
    max_position=128, dtype="float32", name="tiny",
)
LLAMA2_7B = DecoderConfig(
    vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_layers=32, num_heads=32, num_kv_heads=32,
    max_position=4096, dtype="float16", rms_norm_eps=1e-5, rope_theta=10000.0, name="llama2-7b",
)
LLAMA3_70B = DecoderConfig(
    vocab_size=128256, hidden_size=8192, intermediate_size=28672, num_layers=80, num_heads=64, num_kv_heads=8,
    max_position=8192, dtype="float16", rms_norm_eps=1e-5, rope_theta=500000.0, name="llama3-70b",
)


def rotary_table_names() -> tuple[str, str]:
    """Initializer names of the rotary cos/sin tables (buffers, not learned parameters)."""
    return ("model.rotary_emb.cos_cached", "model.rotary_emb.sin_cached")


def external_tensor(name: str, shape: tuple[int, ...], data_type: int, nbytes: int, location: str,
                    end: int) -> tuple[TensorProto, int]:
    """An initializer described as external data only (its bytes never produced), placed at the first ALIGNMENT
    boundary after `end` in `location`; and the new end of the data file."""
    t = TensorProto()
    t.name, t.data_type = name, data_type
    t.dims.extend(shape)
    t.data_location = TensorProto.EXTERNAL
    offset = -(-end // ALIGNMENT) * ALIGNMENT
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(nbytes))):
        entry = t.external_data.add()
        entry.key, entry.value = key, value
    return t, offset + nbytes


class _Weights:
    """Creates initializers: real values when inline, external-data metadata only when large."""

    def __init__(self, cfg: DecoderConfig, *, external_location: str | None, seed: int) -> None:
        self.cfg = cfg
        self.location = external_location
        self.bitgen = np.random.PCG64(seed)  # bit-generator streams are stable across numpy versions
        self.offset = 0  # end of the last external tensor
        self.initializers: list[TensorProto] = []

    @property
    def external_size(self) -> int:
        return self.offset

    def _uniform(self, n: int) -> np.ndarray:
        # Uniform(-a, a) with std INIT_STD, from raw 64-bit draws (Generator distributions may change between
        # numpy releases, the PCG64 stream may not), so that rebuilt models are byte-identical.
        raw = self.bitgen.random_raw(n)
        u = (raw >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
        a = INIT_STD * math.sqrt(3.0)
        return (2.0 * u - 1.0) * a

    def add(self, name: str, shape: tuple[int, ...], kind: str) -> str:
        """kind: "random", "ones", "cos" or "sin" (the last two only for the rotary tables); for int4 weights
        "packed" (uint8, two 4-bit values per byte) and "scales" (one per block, the model's float dtype)."""
        cfg = self.cfg
        packed = kind == "packed"
        nbytes = math.prod(shape) * (1 if packed else cfg.dtype_bytes)
        if self.location is not None and nbytes >= EXTERNAL_THRESHOLD:
            data_type = TensorProto.UINT8 if packed else _ONNX_DTYPE[cfg.dtype]
            t, self.offset = external_tensor(name, shape, data_type, nbytes, self.location, self.offset)
            self.initializers.append(t)
            return name
        n = math.prod(shape)
        if kind == "random":
            values = self._uniform(n).reshape(shape)
        elif kind == "ones":
            values = np.ones(shape)
        elif kind in ("cos", "sin"):
            values = _rotary_table(cfg, kind)
        elif packed:  # uniform 4-bit codes 0..15 (zero point 8): dequantised std = scale * sqrt(21.25)
            values = (self.bitgen.random_raw(n) & np.uint64(0xFF)).astype(np.uint8).reshape(shape)
            self.initializers.append(numpy_helper.from_array(values, name))
            return name
        elif kind == "scales":
            values = np.full(shape, INIT_STD / math.sqrt(21.25))
        else:  # pragma: no cover - internal misuse
            raise ValueError(kind)
        self.initializers.append(numpy_helper.from_array(values.astype(_NP_DTYPE[cfg.dtype]), name))
        return name


def _rotary_table(cfg: DecoderConfig, kind: str) -> np.ndarray:
    d = cfg.head_dim
    inv_freq = 1.0 / (cfg.rope_theta ** (np.arange(0, d, 2, dtype=np.float64) / d))
    freqs = np.outer(np.arange(cfg.max_position, dtype=np.float64), inv_freq)
    emb = np.concatenate([freqs, freqs], axis=-1)  # [max_position, head_dim], the Hugging Face layout
    return np.cos(emb) if kind == "cos" else np.sin(emb)


class _Graph:
    """Minimal node builder: names outputs ``<node name>_output_<k>`` and shares small constants."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.consts: dict[tuple, TensorProto] = {}

    def const(self, values, dtype) -> str:
        arr = np.asarray(values, dtype=dtype)
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self.consts:
            kind = {np.dtype(np.int64): "i64", np.dtype(np.float32): "f32", np.dtype(np.float16): "f16"}
            flat = [str(v) for v in arr.reshape(-1)]  # numpy scalars print at their own precision
            suffix = "_".join(flat) if arr.size <= 8 else str(len(self.consts))
            suffix = suffix.replace("-", "m").replace(".", "p").replace("+", "")
            name = f"const_{kind[arr.dtype]}_{'x'.join(map(str, arr.shape)) or 'scalar'}_{suffix}"
            self.consts[key] = numpy_helper.from_array(arr, name)
        return self.consts[key].name

    def i64(self, values) -> str:
        return self.const(values, np.int64)

    def op(self, op_type: str, inputs: list[str], name: str, *, n_out: int = 1, outputs=None, **attrs):
        outs = list(outputs) if outputs is not None else [f"{name}_output_{k}" for k in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=name, **attrs))
        return outs[0] if len(outs) == 1 else outs


def make_decoder(
    cfg: DecoderConfig, *, external_location: str | None = None, seed: int = 0, weights: str = "dense",
    block_size: int = INT4_BLOCK_SIZE,
) -> tuple[onnx.ModelProto, int]:
    """Build the decoder in memory.

    With ``external_location`` set, initializers of ``EXTERNAL_THRESHOLD`` bytes or more are described as
    external data in that (relative) file and their bytes are never produced. Returns the model and the size
    in bytes the external data file must have (0 when everything is inline).

    ``weights="int4"``: every projection and ``lm_head`` is a ``com.microsoft::MatMulNBits`` (bits 4,
    ``block_size``, symmetric, no zero points) reading ``<weight>_Q4`` packed uint8 [N, K / block_size,
    block_size / 2] and ``<weight>_scales`` [N * K / block_size] in the model's float dtype, as onnxruntime's
    ``MatMul4BitsQuantizer`` lays them out (``weights="int8"``: bits 8, ``<weight>_Q8`` [N, K / block_size,
    block_size], onnxruntime's 8-bit MatMulNBits layout); the embedding and the norms stay in the float dtype.
    Inline values are random codes, not a quantisation of the dense model: the graph is for planning and runs,
    not accuracy.
    """
    if weights not in WEIGHT_FORMATS:
        raise ValueError(f"weights must be one of {WEIGHT_FORMATS}, not {weights!r}")
    int4 = weights != "dense"  # a MatMulNBits format: "int4" or "int8"
    bits = 8 if weights == "int8" else 4
    suffix = f"_Q{bits}"
    h, d = cfg.hidden_size, cfg.head_dim
    nh, nkv = cfg.num_heads, cfg.num_kv_heads
    fdt = _ONNX_DTYPE[cfg.dtype]
    np_fdt = _NP_DTYPE[cfg.dtype]
    fp16 = cfg.dtype == "float16"
    w = _Weights(cfg, external_location=external_location, seed=seed)
    g = _Graph()

    def proj_weight(name: str, k: int, n: int):
        """A [k, n] projection: the dense weight's name, or (packed, scales, k, n) for int4."""
        if not int4:
            return w.add(name, (k, n), "random")
        blocks = -(-k // block_size)
        packed = w.add(f"{name}{suffix}", (n, blocks, block_size * bits // 8), "packed")
        return packed, w.add(f"{name}_scales", (n * blocks,), "scales"), k, n

    def linear(x: str, weight, name: str, outputs=None) -> str:
        if not int4:
            return g.op("MatMul", [x, weight], name, outputs=outputs)
        packed, scales, k, n = weight
        return g.op("MatMulNBits", [x, packed, scales], f"{name}{suffix}", outputs=outputs, domain=MS_DOMAIN,
                    K=k, N=n, bits=bits, block_size=block_size)

    # ---- inputs / outputs -------------------------------------------------------------------------------
    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch_size", "sequence_length"]),
        helper.make_tensor_value_info(
            "attention_mask", TensorProto.INT64, ["batch_size", "total_sequence_length"]
        ),
        helper.make_tensor_value_info("position_ids", TensorProto.INT64, ["batch_size", "sequence_length"]),
    ]
    outputs = [
        helper.make_tensor_value_info("logits", fdt, ["batch_size", "sequence_length", cfg.vocab_size]),
    ]
    for i in range(cfg.num_layers):
        for kv in ("key", "value"):
            inputs.append(helper.make_tensor_value_info(
                f"past_key_values.{i}.{kv}", fdt, ["batch_size", nkv, "past_sequence_length", d]))
    for i in range(cfg.num_layers):
        for kv in ("key", "value"):
            outputs.append(helper.make_tensor_value_info(
                f"present.{i}.{kv}", fdt, ["batch_size", nkv, "total_sequence_length", d]))

    # ---- weights that precede the layers (creation order = external-data order) ---------------------------
    embed = w.add("model.embed_tokens.weight", (cfg.vocab_size, h), "random")
    cos_name, sin_name = rotary_table_names()
    cos_table = w.add(cos_name, (cfg.max_position, d), "cos")
    sin_table = w.add(sin_name, (cfg.max_position, d), "sin")

    def rms_norm(x: str, weight: str, prefix: str) -> str:
        if fp16:
            x = g.op("Cast", [x], f"{prefix}/Cast", to=TensorProto.FLOAT)
        sq = g.op("Pow", [x, g.const(2.0, np.float32)], f"{prefix}/Pow")
        var = g.op("ReduceMean", [sq], f"{prefix}/ReduceMean", axes=[-1], keepdims=1)
        var = g.op("Add", [var, g.const(cfg.rms_norm_eps, np.float32)], f"{prefix}/Add")
        std = g.op("Sqrt", [var], f"{prefix}/Sqrt")
        inv = g.op("Reciprocal", [std], f"{prefix}/Reciprocal")
        y = g.op("Mul", [x, inv], f"{prefix}/Mul")
        if fp16:
            y = g.op("Cast", [y], f"{prefix}/Cast_1", to=fdt)
        return g.op("Mul", [weight, y], f"{prefix}/Mul_1")

    # ---- embedding, rotary cos/sin, attention mask (once, shared by all layers) ---------------------------
    hidden = g.op("Gather", [embed, "input_ids"], "/model/embed_tokens/Gather", axis=0)

    cos = g.op("Gather", [cos_table, "position_ids"], "/model/rotary_emb/Gather", axis=0)  # [B, S, d]
    sin = g.op("Gather", [sin_table, "position_ids"], "/model/rotary_emb/Gather_1", axis=0)
    cos = g.op("Unsqueeze", [cos, g.i64([1])], "/model/rotary_emb/Unsqueeze")  # [B, 1, S, d]
    sin = g.op("Unsqueeze", [sin, g.i64([1])], "/model/rotary_emb/Unsqueeze_1")

    p = "/model/attn_mask"
    seq_len = g.op("Gather", [g.op("Shape", ["input_ids"], f"{p}/Shape"), g.i64(1)], f"{p}/Gather", axis=0)
    total_len = g.op(
        "Gather", [g.op("Shape", ["attention_mask"], f"{p}/Shape_1"), g.i64(1)], f"{p}/Gather_1", axis=0
    )
    past_len = g.op("Sub", [total_len, seq_len], f"{p}/Sub")
    key_pos = g.op("Range", [g.i64(0), total_len, g.i64(1)], f"{p}/Range")  # [T]
    query_pos = g.op("Range", [past_len, total_len, g.i64(1)], f"{p}/Range_1")  # [S] (cache positions)
    key_pos = g.op("Unsqueeze", [key_pos, g.i64([0])], f"{p}/Unsqueeze")  # [1, T]
    query_pos = g.op("Unsqueeze", [query_pos, g.i64([1])], f"{p}/Unsqueeze_1")  # [S, 1]
    causal = g.op("LessOrEqual", [key_pos, query_pos], f"{p}/LessOrEqual")  # [S, T]
    padding = g.op("Cast", ["attention_mask"], f"{p}/Cast", to=TensorProto.BOOL)  # [B, T]
    padding = g.op("Unsqueeze", [padding, g.i64([1, 2])], f"{p}/Unsqueeze_2")  # [B, 1, 1, T]
    allowed = g.op("And", [causal, padding], f"{p}/And")  # [B, 1, S, T]
    # The mask and the softmax are float32 even for float16 models (no overflow of the fill value).
    mask = g.op(
        "Where",
        [allowed, g.const(0.0, np.float32), g.const(np.finfo(np.float32).min, np.float32)],
        f"{p}/Where",
    )

    scale = g.const(1.0 / math.sqrt(d), np_fdt)
    half = d // 2

    def rotate(x: str, prefix: str) -> str:
        x1 = g.op("Slice", [x, g.i64([0]), g.i64([half]), g.i64([-1])], f"{prefix}/Slice")
        x2 = g.op("Slice", [x, g.i64([half]), g.i64([_INT64_MAX]), g.i64([-1])], f"{prefix}/Slice_1")
        neg = g.op("Neg", [x2], f"{prefix}/Neg")
        rot = g.op("Concat", [neg, x1], f"{prefix}/Concat", axis=-1)
        a = g.op("Mul", [x, cos], f"{prefix}/Mul")
        b = g.op("Mul", [rot, sin], f"{prefix}/Mul_1")
        return g.op("Add", [a, b], f"{prefix}/Add")

    def repeat_kv(x: str, prefix: str) -> str:
        if nkv == nh:
            return x
        x = g.op("Unsqueeze", [x, g.i64([2])], f"{prefix}/Unsqueeze")  # [B, nkv, 1, T, d]
        x = g.op("Expand", [x, g.i64([1, 1, nh // nkv, 1, 1])], f"{prefix}/Expand")  # [B, nkv, rep, T, d]
        return g.op("Reshape", [x, g.i64([0, nh, -1, d])], f"{prefix}/Reshape")  # [B, nh, T, d]

    # ---- decoder layers ---------------------------------------------------------------------------------
    for i in range(cfg.num_layers):
        L = f"/model/layers.{i}"
        W = f"model.layers.{i}"
        ln1 = w.add(f"{W}.input_layernorm.weight", (h,), "ones")
        wq = proj_weight(f"{W}.self_attn.q_proj.weight", h, nh * d)
        wk = proj_weight(f"{W}.self_attn.k_proj.weight", h, nkv * d)
        wv = proj_weight(f"{W}.self_attn.v_proj.weight", h, nkv * d)
        wo = proj_weight(f"{W}.self_attn.o_proj.weight", nh * d, h)
        ln2 = w.add(f"{W}.post_attention_layernorm.weight", (h,), "ones")
        wg = proj_weight(f"{W}.mlp.gate_proj.weight", h, cfg.intermediate_size)
        wu = proj_weight(f"{W}.mlp.up_proj.weight", h, cfg.intermediate_size)
        wd = proj_weight(f"{W}.mlp.down_proj.weight", cfg.intermediate_size, h)

        A = f"{L}/self_attn"
        x = rms_norm(hidden, ln1, f"{L}/input_layernorm")
        heads = {}
        for proj, weight, n in (("q", wq, nh), ("k", wk, nkv), ("v", wv, nkv)):
            y = linear(x, weight, f"{A}/{proj}_proj/MatMul")  # [B, S, n*d]
            y = g.op("Reshape", [y, g.i64([0, 0, n, d])], f"{A}/{proj}/Reshape")  # [B, S, n, d]
            heads[proj] = g.op("Transpose", [y], f"{A}/{proj}/Transpose", perm=[0, 2, 1, 3])  # [B, n, S, d]
        q = rotate(heads["q"], f"{A}/rotary_q")
        k = rotate(heads["k"], f"{A}/rotary_k")
        k = g.op("Concat", [f"past_key_values.{i}.key", k], f"{A}/Concat_k", axis=2,
                 outputs=[f"present.{i}.key"])  # [B, nkv, T, d]
        v = g.op("Concat", [f"past_key_values.{i}.value", heads["v"]], f"{A}/Concat_v", axis=2,
                 outputs=[f"present.{i}.value"])
        k = repeat_kv(k, f"{A}/repeat_kv_k")
        v = repeat_kv(v, f"{A}/repeat_kv_v")
        kt = g.op("Transpose", [k], f"{A}/Transpose", perm=[0, 1, 3, 2])  # [B, nh, d, T]
        scores = g.op("MatMul", [q, kt], f"{A}/MatMul")  # [B, nh, S, T]
        scores = g.op("Mul", [scores, scale], f"{A}/Mul")
        if fp16:
            scores = g.op("Cast", [scores], f"{A}/Cast", to=TensorProto.FLOAT)
        scores = g.op("Add", [scores, mask], f"{A}/Add")
        probs = g.op("Softmax", [scores], f"{A}/Softmax", axis=-1)
        if fp16:
            probs = g.op("Cast", [probs], f"{A}/Cast_1", to=fdt)
        ctx = g.op("MatMul", [probs, v], f"{A}/MatMul_1")  # [B, nh, S, d]
        ctx = g.op("Transpose", [ctx], f"{A}/Transpose_1", perm=[0, 2, 1, 3])  # [B, S, nh, d]
        ctx = g.op("Reshape", [ctx, g.i64([0, 0, nh * d])], f"{A}/Reshape")  # [B, S, nh*d]
        attn_out = linear(ctx, wo, f"{A}/o_proj/MatMul")
        hidden = g.op("Add", [hidden, attn_out], f"{L}/Add")

        M = f"{L}/mlp"
        x = rms_norm(hidden, ln2, f"{L}/post_attention_layernorm")
        gate = linear(x, wg, f"{M}/gate_proj/MatMul")
        up = linear(x, wu, f"{M}/up_proj/MatMul")
        silu = g.op("Mul", [gate, g.op("Sigmoid", [gate], f"{M}/act_fn/Sigmoid")], f"{M}/act_fn/Mul")
        inner = g.op("Mul", [silu, up], f"{M}/Mul")
        down = linear(inner, wd, f"{M}/down_proj/MatMul")
        hidden = g.op("Add", [hidden, down], f"{L}/Add_1")

    norm_w = w.add("model.norm.weight", (h,), "ones")
    lm_head = proj_weight("lm_head.weight", h, cfg.vocab_size)
    hidden = rms_norm(hidden, norm_w, "/model/norm")
    linear(hidden, lm_head, "/lm_head/MatMul", outputs=["logits"])

    graph = helper.make_graph(
        g.nodes, f"{cfg.name}_decoder", inputs, outputs, initializer=w.initializers + list(g.consts.values())
    )
    opsets = [helper.make_opsetid("", OPSET)] + ([helper.make_opsetid(MS_DOMAIN, 1)] if int4 else [])
    model = helper.make_model(
        graph,
        opset_imports=opsets,
        ir_version=IR_VERSION,
        producer_name="onnx-planner",
        producer_version="0.1.0",
        doc_string=f"Llama-style decoder ({cfg.name}), built by models/llama_like.py",
    )
    props = {
        "num_layers": cfg.num_layers, "hidden_size": h, "num_heads": nh, "num_kv_heads": nkv, "head_dim": d,
        "intermediate_size": cfg.intermediate_size, "vocab_size": cfg.vocab_size,
        "max_position": cfg.max_position, "dtype": cfg.dtype, "num_parameters": cfg.num_parameters,
    }
    if int4:
        props.update(weights=weights, block_size=block_size)
    helper.set_model_props(model, {k: str(v) for k, v in props.items()})
    return model, w.external_size


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def build_decoder(
    cfg: DecoderConfig,
    path: str | Path,
    *,
    external_data: bool = False,
    sparse: bool = True,
    seed: int = 0,
    weights: str = "dense",
    block_size: int = INT4_BLOCK_SIZE,
) -> Path:
    """Build the decoder described by ``cfg`` and write it to ``path``; returns the path.

    ``external_data=False``: every weight is embedded with seeded random values (only sensible for small
    configs; refused beyond protobuf's 2 GiB limit). ``external_data=True``: weights of 1 KiB or more are
    recorded as external data in ``<path>.data`` (``location`` is the bare file name, relative to the model)
    and their bytes are never produced. With ``sparse=True`` the data file is created at its full length
    with ``truncate()``, a sparse file of zeros that takes no disk space, so that tools which open it (or
    onnxruntime) find every ``offset + length`` in range; with ``sparse=False`` no data file is written at all
    (metadata only). Both files are written through a temporary name and ``os.replace``. ``weights="int4"``
    stores the projections as MatMulNBits (see ``make_decoder``).
    """
    path = Path(path)
    if not external_data and cfg.num_parameters * cfg.dtype_bytes > 1 << 30:
        raise ValueError(
            f"{cfg.name}: {cfg.num_parameters:,} parameters are too many to embed; use external_data=True"
        )
    location = path.name + ".data" if external_data else None
    model, data_size = make_decoder(cfg, external_location=location, seed=seed, weights=weights,
                                    block_size=block_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    if external_data and sparse:
        data_path = path.with_name(location)
        tmp = data_path.with_name(data_path.name + ".tmp")
        with open(tmp, "wb") as f:
            f.truncate(data_size)
        os.replace(tmp, data_path)
    _write_atomic(path, model.SerializeToString(deterministic=True))
    return path
