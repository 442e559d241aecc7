"""Precision passes, wrapping onnxruntime's quantization tools and float16 converter.

    int8-dynamic   quantize_dynamic: MatMul/Gemm weights int8 (per tensor, symmetric), activations quantized
                   per batch at run time (DynamicQuantizeLinear + MatMulInteger, which onnxruntime fuses into
                   DynamicQuantizeMatMul). On an x86 CPU without VNNI or AMX, weights in 7 bits (reduce_range,
                   option int8_reduce_range, which the planner sets from planner.targets.host.u8s8_saturates), as
                   onnxruntime's docs advise against u8 x s8 saturation;
                   the same for int8-static.  Attention stays float: QAttention has no shape inference in
                   onnxruntime's symbolic pass, and the planner must see every shape. With `int8_gather` (set
                   for decoders) the same tool quantizes the token embedding too (the Gather indexed by
                   `input_ids`): stored int8, the rows gathered then dequantized (Gather + DequantizeLinear), a
                   quarter of its float bytes. Other tables (positions, rotary cos/sin) stay float.
    int8-static    quantize_static, QDQ format: Conv/MatMul/Gemm weights int8 per channel, activations uint8 with
                   ranges calibrated (MinMax) on inputs from the user's .npz, or on seeded generated inputs with a
                   printed warning that accuracy numbers from random data mean little.
    int8-weight    the same tool at 8 bits: weight-only int8 (activations stay float), the same options.
    int4           MatMulNBitsQuantizer: MatMul weights to 4-bit blocks (block size a parameter, default 32,
                   symmetric unless `int4_symmetric` is False: then a uint8 zero point per block) in
                   com.microsoft::MatMulNBits; accuracy_level 4 lets the CPU run int8 × int4. A decoder's lm_head
                   (the MatMul that writes `logits`) is quantized too unless `int4_lm_head` is False: it is the
                   largest single weight of a small-vocabulary model and the most sensitive one.
    fp16           onnxruntime.transformers.float16: weights and arithmetic in float16; `fp16_keep_io` (default
                   on) keeps float32 graph inputs and outputs so callers feed what they fed before.
Each reports the weight bytes before and after.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from pathlib import Path

import onnx

from passes.base import Pass, PassContext, PassResult, copy_model, op_counts, register_pass
from passes.cleanup import count_delta
from passes.fusion.ort import ensure_ms_opset
from planner.errors import PlannerError

_QUANT_OPS = {"MatMulInteger", "DynamicQuantizeLinear", "QuantizeLinear", "DequantizeLinear", "QLinearConv",
              "QLinearMatMul", "com.microsoft::MatMulNBits", "com.microsoft::QAttention", "ConvInteger",
              "com.microsoft::DynamicQuantizeMatMul", "com.microsoft::MatMulIntegerToFloat", "MatMulNBits"}


@contextlib.contextmanager
def _quiet():
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


def _float_matmuls(model: onnx.ModelProto, ops: tuple[str, ...] = ("MatMul", "Gemm")) -> list[onnx.NodeProto]:
    """Nodes whose weight (input 1) is a float initializer: what weight quantization can touch."""
    inits = {t.name: t for t in model.graph.initializer}
    out = []
    for n in model.graph.node:
        if n.op_type in ops and len(n.input) > 1 and n.input[1] in inits:
            t = inits[n.input[1]]
            if t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16) and len(t.dims) == 2:
                out.append(n)
    return out


def _float_check(model: onnx.ModelProto) -> str | None:
    already = [op for op in op_counts(model) if op in _QUANT_OPS]
    if already:
        return f"already quantized ({', '.join(sorted(already))})"
    if any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer):
        return "weights are already float16"
    return None


REDUCED_RANGE = ("int8 weights in 7 bits (reduce_range): this CPU has no VNNI/AMX, and onnxruntime's u8 x s8 "
                 "kernel saturates without them")


def _result(before: onnx.ModelProto, after: onnx.ModelProto, reduced: bool = False) -> PassResult:
    """`before` must be a serialized-equal copy taken before the tool ran (the tools edit their input)."""
    ensure_ms_opset(after)
    return PassResult(after, True, count_delta(before, after), (REDUCED_RANGE,) if reduced else ())


@register_pass
class Int8Dynamic(Pass):
    name = "int8-dynamic"
    description = "onnxruntime quantize_dynamic: int8 MatMul/Gemm weights, activations quantized at run time"
    precision = "int8"
    exact = False

    def check(self, model: onnx.ModelProto) -> str | None:
        return _float_check(model) or (None if _float_matmuls(model) else "no MatMul/Gemm with a float weight")

    def run(self, model: onnx.ModelProto, ctx: PassContext) -> PassResult:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        with tempfile.TemporaryDirectory() as d, _quiet():
            out = Path(d) / "q.onnx"
            ops, exclude = ["MatMul", "Gemm"], []
            if ctx.options.get("int8_gather"):
                keep = set(embedding_gathers(model))
                ops.append("Gather")
                exclude = [n.name for n in model.graph.node if n.op_type == "Gather" and n.name not in keep]
            reduced = bool(ctx.options.get("int8_reduce_range"))
            quantize_dynamic(model, out, op_types_to_quantize=ops, weight_type=QuantType.QInt8,
                             nodes_to_exclude=exclude, reduce_range=reduced,
                             extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT, "MatMulConstBOnly": True})
            q = onnx.load(str(out))
        return _result(model, q, reduced)


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over a list of feeds."""

    def __init__(self, feeds: list[dict]) -> None:
        self._it = iter(feeds)

    def get_next(self):
        return next(self._it, None)

    def rewind(self):  # pragma: no cover - used by some calibrators
        pass


@register_pass
class Int8Static(Pass):
    name = "int8-static"
    description = "onnxruntime quantize_static, QDQ: int8 weights per channel, uint8 activations calibrated"
    precision = "int8"
    exact = False
    needs = ("calibration",)

    def check(self, model: onnx.ModelProto) -> str | None:
        if reason := _float_check(model):
            return reason
        if not _float_matmuls(model, ("MatMul", "Gemm", "Conv")) and not any(
                n.op_type == "Conv" for n in model.graph.node):
            return "no Conv/MatMul/Gemm with a float weight"
        if any(n.domain == "com.microsoft" for n in model.graph.node):
            return "com.microsoft fused ops present: static QDQ runs on the unfused graph (onnxruntime fuses QDQ)"
        return None

    def run(self, model: onnx.ModelProto, ctx: PassContext) -> PassResult:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

        if ctx.calibration_generated:
            ctx.warn("int8-static is calibrated on generated random inputs: accuracy numbers from random data "
                     "mean little (pass --calibration data.npz)")
        reduced = bool(ctx.options.get("int8_reduce_range"))
        with tempfile.TemporaryDirectory() as d, _quiet():
            out = Path(d) / "q.onnx"
            quantize_static(model, out, _Reader(ctx.calibration or []), quant_format=QuantFormat.QDQ,
                            op_types_to_quantize=["Conv", "MatMul", "Gemm"], per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax, reduce_range=reduced,
                            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
            q = onnx.load(str(out))
        return _result(model, q, reduced)


class _NBitsWeights(Pass):
    """Weight-only block quantization of MatMul weights into com.microsoft::MatMulNBits (`bits` per weight)."""

    bits = 4
    exact = False

    def check(self, model: onnx.ModelProto) -> str | None:
        if reason := _float_check(model):
            return reason
        inits = {t.name: t for t in model.graph.initializer}
        ok = [n for n in _float_matmuls(model, ("MatMul",)) if inits[n.input[1]].dims[0] >= 16]
        return None if ok else "no MatMul with a constant 2-D float weight of K >= 16"

    def run(self, model: onnx.ModelProto, ctx: PassContext) -> PassResult:
        from onnxruntime.quantization.matmul_nbits_quantizer import (
            DefaultWeightOnlyQuantConfig,
            MatMulNBitsQuantizer,
        )

        block = int(ctx.options.get("int4_block_size", 32))
        if block < 16 or block & (block - 1):

            raise PlannerError(f"int4 block size {block}: must be a power of two >= 16")
        level = ctx.options.get("int4_accuracy_level", 4)
        symmetric = bool(ctx.options.get("int4_symmetric", True))
        exclude = [] if ctx.options.get("int4_lm_head", True) else lm_head_nodes(model)
        cfg = DefaultWeightOnlyQuantConfig(block_size=block, is_symmetric=symmetric, accuracy_level=level,
                                           bits=self.bits)
        before = copy_model(model)
        with _quiet():
            q = MatMulNBitsQuantizer(model, bits=self.bits, block_size=block, is_symmetric=symmetric,
                                     accuracy_level=level, nodes_to_exclude=exclude, algo_config=cfg)
            q.process()
        out = q.model.model
        r = _result(before, out)
        counts = {**r.counts, "block_size": block, "symmetric": int(symmetric), "kept_float": len(exclude)}
        return PassResult(r.model, r.changed, counts, r.notes)


@register_pass
class Int4Weights(_NBitsWeights):
    name = "int4"
    description = "onnxruntime MatMulNBitsQuantizer: 4-bit block-quantized MatMul weights (MatMulNBits)"
    precision = "int4"
    bits = 4


@register_pass
class Int8Weights(_NBitsWeights):
    name = "int8-weight"
    description = "onnxruntime MatMulNBitsQuantizer, bits 8: weight-only int8 MatMul weights (MatMulNBits)"
    precision = "int8"
    bits = 8


def embedding_gathers(model: onnx.ModelProto) -> list[str]:
    """Names of the Gather nodes that read a constant table at the `input_ids` graph input (directly or through
    Reshape/Cast/Identity/Unsqueeze/Flatten): the token embedding. Unnamed nodes are named here."""
    producer = {o: n for n in model.graph.node for o in n.output}
    inits = {t.name for t in model.graph.initializer}
    out = []
    for i, node in enumerate(model.graph.node):
        if node.op_type != "Gather" or len(node.input) < 2 or node.input[0] not in inits:
            continue
        src = node.input[1]
        while src in producer and producer[src].op_type in ("Reshape", "Cast", "Identity", "Unsqueeze", "Flatten"):
            src = producer[src].input[0]
        if src == "input_ids":
            if not node.name:
                node.name = f"embedding_gather_{i}"
            out.append(node.name)
    return out


def lm_head_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the MatMul nodes that write the `logits` output (a decoder's lm_head), directly or through one
    Reshape/Cast (onnx_ir names unnamed nodes, so names are set here where missing)."""
    producer = {o: n for n in model.graph.node for o in n.output}
    out = []
    for name in [o.name for o in model.graph.output if "logits" in o.name]:
        node = producer.get(name)
        if node is not None and node.op_type in ("Reshape", "Cast", "Identity"):
            node = producer.get(node.input[0])
        if node is not None and node.op_type == "MatMul":
            if not node.name:
                node.name = f"lm_head_matmul_{len(out)}"
            out.append(node.name)
    return out


@register_pass
class Fp16(Pass):
    name = "fp16"
    description = "onnxruntime.transformers.float16: float16 weights and arithmetic (float32 I/O kept)"
    precision = "fp16"
    exact = False

    def check(self, model: onnx.ModelProto) -> str | None:
        if reason := _float_check(model):
            return reason
        if not any(t.data_type == onnx.TensorProto.FLOAT for t in model.graph.initializer):
            return "no float32 weights"
        return None

    def run(self, model: onnx.ModelProto, ctx: PassContext) -> PassResult:
        from onnxruntime.transformers.float16 import convert_float_to_float16
        from onnxruntime.transformers.onnx_model import OnnxModel

        keep = bool(ctx.options.get("fp16_keep_io", True))
        before = copy_model(model)
        with _quiet():
            out = convert_float_to_float16(model, keep_io_types=keep)
            wrapped = OnnxModel(out)
            wrapped.topological_sort()  # the converter appends the input Casts after their readers
        return _result(before, wrapped.model)
