"""Build the small models shipped in models/ (deterministic: a rebuild gives byte-identical files).

    python models/build_models.py [--out models/]

* ``mlp.onnx``      x [batch, 784] -> Gemm 784x256 + Relu -> Gemm 256x128 + Relu -> Gemm 128x10 -> Softmax
* ``cnn.onnx``      image [batch, 3, 64, 64] -> 3 x (Conv + BatchNormalization + Relu) with a MaxPool,
                    GlobalAveragePool, Flatten, Gemm -> 10 logits
* ``encoder.onnx``  BERT-like encoder, 2 layers, hidden 128, 4 heads, erf-GELU FFN of 256
* ``decoder.onnx``  Llama-style decoder with KV cache, ``llama_like.TINY`` (see llama_like.py)

All are opset 17, built with onnx.helper only, with seeded weights drawn from the PCG64 bit stream (stable
across numpy releases), serialized deterministically and written through a temporary file and os.replace.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

try:  # imported as part of the repository (tests) ...
    from models.llama_like import IR_VERSION, OPSET, TINY, build_decoder
except ImportError:  # ... or run as a script: python models/build_models.py
    from llama_like import IR_VERSION, OPSET, TINY, build_decoder

SEED = 0
MODELS_DIR = Path(__file__).resolve().parent
MODEL_FILES = ("mlp.onnx", "cnn.onnx", "encoder.onnx", "decoder.onnx")

# encoder.onnx dimensions
ENC_VOCAB = 256
ENC_MAX_POSITION = 128
ENC_HIDDEN = 128
ENC_HEADS = 4
ENC_INTERMEDIATE = 256
ENC_LAYERS = 2


class _Rand:
    """Seeded uniform values from raw PCG64 draws; the raw stream is stable across numpy versions."""

    def __init__(self, seed: int) -> None:
        self.bitgen = np.random.PCG64(seed)

    def uniform(self, shape: tuple[int, ...], low: float, high: float) -> np.ndarray:
        n = math.prod(shape)
        u = (self.bitgen.random_raw(n) >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
        return (low + (high - low) * u).reshape(shape).astype(np.float32)

    def he(self, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
        a = math.sqrt(6.0 / fan_in)
        return self.uniform(shape, -a, a)

    def small(self, shape: tuple[int, ...], scale: float = 0.02) -> np.ndarray:
        return self.uniform(shape, -scale, scale)


class _Builder:
    def __init__(self, seed: int) -> None:
        self.rand = _Rand(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[TensorProto] = []
        self.names: set[str] = set()

    def init(self, name: str, array) -> str:
        assert name not in self.names, name
        self.names.add(name)
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def const(self, name: str, values, dtype=np.int64) -> str:
        if name not in self.names:
            self.init(name, np.asarray(values, dtype=dtype))
        return name

    def op(self, op_type: str, inputs: list[str], name: str, output: str | None = None, **attrs) -> str:
        out = output or f"{name}_output_0"
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=name, **attrs))
        return out

    def model(self, name: str, inputs, outputs, doc: str) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, name, inputs, outputs, initializer=self.inits)
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            ir_version=IR_VERSION,
            producer_name="onnx-planner",
            producer_version="0.1.0",
            doc_string=doc,
        )
        onnx.checker.check_model(model, full_check=True)
        return model


def make_mlp(seed: int = SEED) -> onnx.ModelProto:
    b = _Builder(seed)
    x = "x"
    dims = [784, 256, 128, 10]
    for i, (n_in, n_out) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        w = b.init(f"fc{i + 1}.weight", b.rand.he((n_out, n_in), n_in))  # torch layout [out, in], transB=1
        bias = b.init(f"fc{i + 1}.bias", b.rand.small((n_out,)))
        x = b.op("Gemm", [x, w, bias], f"/fc{i + 1}/Gemm", transB=1)
        if i < len(dims) - 2:
            x = b.op("Relu", [x], f"/relu{i + 1}/Relu")
    b.op("Softmax", [x], "/softmax/Softmax", output="probabilities", axis=-1)
    return b.model(
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 784])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 10])],
        "MLP 784-256-128-10 with Relu and Softmax (MNIST-sized), built by models/build_models.py",
    )


def make_cnn(seed: int = SEED) -> onnx.ModelProto:
    b = _Builder(seed)
    x = "image"
    # (in, out, stride); a 2x2 MaxPool follows block 1: 64x64 -> 64x64 -> 32x32 -> 16x16 -> 8x8
    blocks = [(3, 16, 1), (16, 32, 2), (32, 64, 2)]
    for i, (c_in, c_out, stride) in enumerate(blocks):
        p = f"block{i + 1}"
        w = b.init(f"{p}.conv.weight", b.rand.he((c_out, c_in, 3, 3), c_in * 9))
        x = b.op("Conv", [x, w], f"/{p}/conv/Conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                 strides=[stride, stride])
        scale = b.init(f"{p}.bn.weight", b.rand.uniform((c_out,), 0.9, 1.1))
        bias = b.init(f"{p}.bn.bias", b.rand.small((c_out,), 0.05))
        mean = b.init(f"{p}.bn.running_mean", b.rand.small((c_out,), 0.05))
        var = b.init(f"{p}.bn.running_var", b.rand.uniform((c_out,), 0.9, 1.1))
        x = b.op("BatchNormalization", [x, scale, bias, mean, var], f"/{p}/bn/BatchNormalization",
                 epsilon=1e-5)
        x = b.op("Relu", [x], f"/{p}/relu/Relu")
        if i == 0:
            x = b.op("MaxPool", [x], "/pool/MaxPool", kernel_shape=[2, 2], strides=[2, 2])
    x = b.op("GlobalAveragePool", [x], "/gap/GlobalAveragePool")
    x = b.op("Flatten", [x], "/flatten/Flatten", axis=1)
    w = b.init("fc.weight", b.rand.he((10, 64), 64))
    bias = b.init("fc.bias", b.rand.small((10,)))
    b.op("Gemm", [x, w, bias], "/fc/Gemm", output="logits", transB=1)
    return b.model(
        "cnn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 64, 64])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        "CNN: 3 x (Conv3x3 + BatchNorm + Relu), channels 16/32/64, MaxPool, GlobalAveragePool, Gemm to 10",
    )


def make_encoder(seed: int = SEED) -> onnx.ModelProto:
    b = _Builder(seed)
    h, nh, inter = ENC_HIDDEN, ENC_HEADS, ENC_INTERMEDIATE
    d = h // nh

    def linear(x: str, n_in: int, n_out: int, wname: str, nname: str) -> str:
        w = b.init(f"{wname}.weight", b.rand.small((n_in, n_out), math.sqrt(3.0 / n_in)))  # [in, out]
        bias = b.init(f"{wname}.bias", b.rand.small((n_out,)))
        y = b.op("MatMul", [x, w], f"{nname}/MatMul")
        return b.op("Add", [bias, y], f"{nname}/Add")

    def layer_norm(x: str, wname: str, nname: str) -> str:
        gamma = b.init(f"{wname}.weight", np.ones(h, np.float32))
        beta = b.init(f"{wname}.bias", np.zeros(h, np.float32))
        return b.op("LayerNormalization", [x, gamma, beta], f"{nname}/LayerNormalization", axis=-1,
                    epsilon=1e-12)

    # embeddings: word + position
    word = b.init("embeddings.word_embeddings.weight", b.rand.small((ENC_VOCAB, h)))
    pos = b.init("embeddings.position_embeddings.weight", b.rand.small((ENC_MAX_POSITION, h)))
    shape = b.op("Shape", ["input_ids"], "/embeddings/Shape")
    seq = b.op("Gather", [shape, b.const("const_one", 1)], "/embeddings/Gather", axis=0)
    pos_ids = b.op("Range", [b.const("const_zero", 0), seq, b.const("const_one", 1)], "/embeddings/Range")
    x = b.op("Gather", [word, "input_ids"], "/embeddings/word_embeddings/Gather", axis=0)
    p = b.op("Gather", [pos, pos_ids], "/embeddings/position_embeddings/Gather", axis=0)
    x = b.op("Add", [x, p], "/embeddings/Add")
    x = layer_norm(x, "embeddings.LayerNorm", "/embeddings/LayerNorm")

    # extended attention mask: (1 - mask) * -10000, shape [batch, 1, 1, sequence]
    m = b.op("Unsqueeze", ["attention_mask", b.const("const_axes_1_2", [1, 2])], "/mask/Unsqueeze")
    m = b.op("Cast", [m], "/mask/Cast", to=TensorProto.FLOAT)
    m = b.op("Sub", [b.const("const_f_one", 1.0, np.float32), m], "/mask/Sub")
    mask = b.op("Mul", [m, b.const("const_f_mask_min", -10000.0, np.float32)], "/mask/Mul")

    heads_shape = b.const("const_shape_heads", [0, 0, nh, d])
    merge_shape = b.const("const_shape_merge", [0, 0, h])
    sqrt_d = b.const("const_f_sqrt_head_dim", math.sqrt(d), np.float32)
    for i in range(ENC_LAYERS):
        W, N = f"encoder.layer.{i}", f"/encoder/layer.{i}"
        A = f"{N}/attention/self"
        split = {}
        for proj, perm in (("query", [0, 2, 1, 3]), ("key", [0, 2, 3, 1]), ("value", [0, 2, 1, 3])):
            y = linear(x, h, h, f"{W}.attention.self.{proj}", f"{A}/{proj}")
            y = b.op("Reshape", [y, heads_shape], f"{A}/{proj}/Reshape")  # [B, S, nh, d]
            split[proj] = b.op("Transpose", [y], f"{A}/{proj}/Transpose", perm=perm)
        scores = b.op("MatMul", [split["query"], split["key"]], f"{A}/MatMul")  # [B, nh, S, S]
        scores = b.op("Div", [scores, sqrt_d], f"{A}/Div")
        scores = b.op("Add", [scores, mask], f"{A}/Add")
        probs = b.op("Softmax", [scores], f"{A}/Softmax", axis=-1)
        ctx = b.op("MatMul", [probs, split["value"]], f"{A}/MatMul_1")  # [B, nh, S, d]
        ctx = b.op("Transpose", [ctx], f"{A}/Transpose", perm=[0, 2, 1, 3])
        ctx = b.op("Reshape", [ctx, merge_shape], f"{A}/Reshape")  # [B, S, h]
        y = linear(ctx, h, h, f"{W}.attention.output.dense", f"{N}/attention/output/dense")
        y = b.op("Add", [y, x], f"{N}/attention/output/Add")
        x = layer_norm(y, f"{W}.attention.output.LayerNorm", f"{N}/attention/output/LayerNorm")

        y = linear(x, h, inter, f"{W}.intermediate.dense", f"{N}/intermediate/dense")
        G = f"{N}/intermediate/intermediate_act_fn"  # GELU, erf form: x * 0.5 * (1 + erf(x / sqrt(2)))
        e = b.op("Div", [y, b.const("const_f_sqrt2", math.sqrt(2.0), np.float32)], f"{G}/Div")
        e = b.op("Erf", [e], f"{G}/Erf")
        e = b.op("Add", [e, b.const("const_f_one", 1.0, np.float32)], f"{G}/Add")
        e = b.op("Mul", [y, e], f"{G}/Mul")
        y = b.op("Mul", [e, b.const("const_f_half", 0.5, np.float32)], f"{G}/Mul_1")
        y = linear(y, inter, h, f"{W}.output.dense", f"{N}/output/dense")
        y = b.op("Add", [y, x], f"{N}/output/Add")
        x = layer_norm(y, f"{W}.output.LayerNorm", f"{N}/output/LayerNorm")
    b.nodes[-1].output[0] = "last_hidden_state"

    return b.model(
        "encoder",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"]),
        ],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", h])],
        f"BERT-like encoder: {ENC_LAYERS} layers, hidden {h}, {nh} heads, FFN {inter} (erf GELU), "
        f"vocab {ENC_VOCAB}, max sequence {ENC_MAX_POSITION}; built by models/build_models.py",
    )


def write_atomic(model: onnx.ModelProto, path: Path) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(model.SerializeToString(deterministic=True))
    os.replace(tmp, path)
    return path


def build_all(out: str | Path = MODELS_DIR, seed: int = SEED) -> dict[str, Path]:
    """Build the four models into ``out``; returns {file name: path}."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    makers: dict[str, Callable[[int], onnx.ModelProto]] = {
        "mlp.onnx": make_mlp, "cnn.onnx": make_cnn, "encoder.onnx": make_encoder,
    }
    paths = {name: write_atomic(make(seed), out / name) for name, make in makers.items()}
    paths["decoder.onnx"] = build_decoder(TINY, out / "decoder.onnx", seed=seed)
    onnx.checker.check_model(str(paths["decoder.onnx"]), full_check=True)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(MODELS_DIR), help="output directory (default: models/)")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    for name, path in build_all(args.out, args.seed).items():
        model = onnx.load(path)
        print(f"{name:14s} {path.stat().st_size:>9,d} bytes  {len(model.graph.node):4d} nodes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
