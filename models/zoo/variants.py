"""The precision variants of a zoo model, made with onnxruntime's own tools, as people ship them.

    int8-dynamic    quantize_dynamic (QOperator): MatMulInteger, ConvInteger, DynamicQuantizeLSTM, with
                    DynamicQuantizeLinear in front. Weights u8 where the model has a Conv (onnxruntime's CPU
                    ConvInteger takes u8 weights only), s8 elsewhere.
    int8-qoperator  quantize_static, QuantFormat.QOperator: QLinearConv, QLinearMatMul, QLinearAdd, ...
    int8-qdq        quantize_static, QuantFormat.QDQ: QuantizeLinear / DequantizeLinear pairs around float
                    ops (onnxruntime fuses them into int8 kernels); s8 activations and weights
    fp16            onnxruntime.transformers.float16: weights and activations float16, float32 inputs and
                    outputs kept (a Cast at each end); onnxruntime runs the ops it has no fp16 kernel for in
                    float32 behind inserted Casts

Static variants calibrate (MinMax) on a few seeded draws of the inputs at the binding the model is scored at.
Every writer goes through a temporary file in the destination's folder and os.replace.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import onnx
from onnx import helper, numpy_helper

from models.zoo.feeds import make_feeds, run_once

CALIBRATION_DRAWS = 4


def _has(model: onnx.ModelProto, op_type: str) -> bool:
    return any(n.op_type == op_type for n in model.graph.node)


def replace_into(dst: Path, write) -> Path:
    """Call write(tmp_path), then move tmp_path onto dst: a reader never sees half a file."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dst


def save_model(model: onnx.ModelProto, dst: Path) -> Path:
    """Save atomically, weights embedded (every zoo model is far below 2 GB)."""
    return replace_into(dst, lambda p: onnx.save(model, str(p)))


def minus_one(model: onnx.ModelProto, names: tuple[str, ...] | list[str]) -> int:
    """Rewrite the named symbolic dims of the graph's inputs and outputs as -1, in place, as some exporters
    write "dynamic"; returns how many dims changed."""
    count = 0
    for vi in [*model.graph.input, *model.graph.output]:
        for d in vi.type.tensor_type.shape.dim:
            if d.dim_param in names:
                d.ClearField("dim_param")
                d.dim_value = -1
                count += 1
    return count


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over seeded feeds."""

    def __init__(self, model: onnx.ModelProto, dims: dict[str, int]):
        self._feeds = iter([make_feeds(model, dims, seed) for seed in range(CALIBRATION_DRAWS)])

    def get_next(self):
        return next(self._feeds, None)

    def rewind(self):  # pragma: no cover - MinMax does not rewind
        raise NotImplementedError


def int8_dynamic(src: Path, dst: Path) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(src))
    weights = QuantType.QUInt8 if _has(model, "Conv") else QuantType.QInt8
    return replace_into(dst, lambda p: quantize_dynamic(str(src), str(p), weight_type=weights))


def constants_as_initializers(model: onnx.ModelProto) -> int:
    """Turn Constant nodes and Identity nodes of an initializer into initializers, in place; returns how many.

    torch.onnx.export deduplicates equal initializers behind Identity nodes (the zero biases of folded
    BatchNormalizations), and onnxruntime's static quantizer then finds a Conv bias that is no initializer and
    fails; an export with plain initializers is the same model."""
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    keep, moved = [], 0
    for n in g.node:
        if n.op_type == "Constant" and len(n.attribute) == 1 and n.attribute[0].name == "value":
            t = onnx.TensorProto()
            t.CopyFrom(n.attribute[0].t)
        elif n.op_type == "Identity" and n.input[0] in inits:
            t = onnx.TensorProto()
            t.CopyFrom(inits[n.input[0]])
        else:
            keep.append(n)
            continue
        t.name = n.output[0]
        g.initializer.append(t)
        inits[t.name] = t
        moved += 1
    del g.node[:]
    g.node.extend(keep)
    return moved


# What a static variant quantizes when quantizing every op the quantizer knows breaks the model (onnxruntime then
# refuses it: T5's and MPNet's relative-position buckets are float Log/Div/Mul arithmetic turned into indices,
# which QDQ rounding sends out of the embedding's range). Excluding such nodes is what users do; quantizing the
# ops that carry the weights is the simple form of it.
WEIGHT_OPS = ["MatMul", "Gemm", "Conv", "ConvTranspose", "LSTM", "GRU"]
NOTE_KEY = "onnx_planner_zoo_note"  # metadata_props entry: what a variant's build did differently


def int8_static(src: Path, dst: Path, dims: dict[str, int], fmt: str, op_types: list[str] | None = None) -> Path:
    """fmt: "qoperator" or "qdq"; op_types: what to quantize (default: every op type the quantizer knows)."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    model = onnx.load(str(src))
    if constants_as_initializers(model):
        plain = dst.with_name(f".{dst.name}.plain.tmp")
        replace_into(plain, lambda p: onnx.save(model, str(p)))
        try:
            return int8_static(plain, dst, dims, fmt, op_types)
        finally:
            plain.unlink(missing_ok=True)
    qfmt = QuantFormat.QOperator if fmt == "qoperator" else QuantFormat.QDQ
    act = QuantType.QUInt8 if fmt == "qoperator" else QuantType.QInt8

    def write(p: Path) -> None:
        quantize_static(str(src), str(p), _Reader(model, dims), quant_format=qfmt, activation_type=act,
                        weight_type=QuantType.QInt8, op_types_to_quantize=op_types,
                        extra_options={"ActivationSymmetric": fmt == "qdq"})

    return replace_into(dst, write)


def fp16(src: Path, dst: Path) -> Path:
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True, disable_shape_infer=True)
    resize_scales_float32(model)
    return save_model(model, dst)


def resize_scales_float32(model: onnx.ModelProto) -> int:
    """Give Resize its scales back in float32, in place; returns how many.

    The float16 converter turns every Constant into float16, the scales of a Resize too, which onnx's type
    constraints forbid (scales are float32 whatever the data's type)."""
    producers = {o: n for n in model.graph.node for o in n.output}
    inits = {t.name: t for t in model.graph.initializer}
    fixed = 0
    for n in model.graph.node:
        if n.op_type != "Resize" or len(n.input) < 3 or not n.input[2]:
            continue
        src = producers.get(n.input[2])
        t = src.attribute[0].t if src is not None and src.op_type == "Constant" else inits.get(n.input[2])
        if t is not None and t.data_type == onnx.TensorProto.FLOAT16:
            arr = numpy_helper.to_array(t).astype("float32")
            t.CopyFrom(numpy_helper.from_array(arr, t.name))
            fixed += 1
    return fixed


def make_variant(variant: str, src: Path, dst: Path, dims: dict[str, int]) -> Path:
    """Write `variant` of the fp32 model at src to dst."""
    if variant == "int8-dynamic":
        return int8_dynamic(src, dst)
    if variant in ("int8-qoperator", "int8-qdq"):
        fmt = variant.removeprefix("int8-")
        int8_static(src, dst, dims, fmt)
        ran, why, _ = run_once(str(dst), dims)
        if not ran:  # quantizing everything broke it: the weight-carrying ops only, and the file says so
            int8_static(src, dst, dims, fmt, WEIGHT_OPS)
            model = onnx.load(str(dst))
            helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props},
                                                NOTE_KEY: f"only {', '.join(WEIGHT_OPS)} quantized: with every op "
                                                          f"quantized onnxruntime refused it ({why[:200]})"})
            save_model(model, dst)
        return dst
    if variant == "fp16":
        return fp16(src, dst)
    raise ValueError(f"unknown variant {variant!r}")
