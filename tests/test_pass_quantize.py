"""Precision passes: int8 dynamic, int8 static (QDQ, calibrated), int4 MatMulNBits, fp16; weight bytes; parity."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from pass_helpers import fvi, init, make_model, mlp, rand

import passes
from passes.base import PassContext
from passes.runner import Runner
from passes.verify import Reference, generate_inputs


def _run(m, name, ctx=None):
    r = Runner(m, Reference.build(m), ctx).run(passes.Pipeline("t", (name,)))
    return r, r.steps[0]


def _ops(m):
    return [n.op_type for n in m.graph.node]


def test_int8_dynamic():
    m = mlp(128, 64)
    r, step = _run(m, "int8-dynamic")
    assert step.applied and r.rejected is None
    assert _ops(r.model).count("MatMulInteger") == 2 and "MatMul" not in _ops(r.model)
    assert step.counts["weight_bytes_after"] < 0.3 * step.counts["weight_bytes_before"]
    assert any("weights" in n for n in step.notes)
    assert r.drift.cosine > 0.999 and r.drift.top1 is not None and r.drift.top1 >= 0.875
    assert r.precision == "int8"


def test_int8_static_qdq_with_calibration_and_its_warning():
    m = mlp(128, 64)
    warnings = []
    calib = [generate_inputs(m, seed=s) for s in (11, 12, 13)]
    ctx = PassContext(calibration=calib, calibration_generated=True, warn=warnings.append)
    r, step = _run(m, "int8-static", ctx)
    assert step.applied, step.reason
    ops = _ops(r.model)
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops and "MatMul" in ops  # QDQ form
    assert any("random data mean little" in w for w in warnings)
    assert r.drift.cosine > 0.99


def test_int8_static_needs_calibration():
    r, step = _run(mlp(), "int8-static")
    assert not step.applied and "calibration" in step.reason and r.rejected


@pytest.mark.parametrize("block", [16, 32])
def test_int4_matmul_nbits_block_size(block):
    m = mlp(128, 64)
    r, step = _run(m, "int4", PassContext(options={"int4_block_size": block}))
    nb = [n for n in r.model.graph.node if n.op_type == "MatMulNBits"]
    assert nb and all(next(a.i for a in n.attribute if a.name == "block_size") == block for n in nb)
    assert step.counts["weight_bytes_after"] < 0.5 * step.counts["weight_bytes_before"]
    assert r.drift.cosine > 0.99


def test_int4_refuses_small_k_and_gemm_only_models():
    m = make_model([helper.make_node("Gemm", ["x", "w"], ["y"])], [fvi("x", ["batch", 8])], [fvi("y", ["batch", 4])],
                   [init("w", rand((8, 4)))])
    r, step = _run(m, "int4")
    assert r.rejected and "K >= 16" in step.reason


@pytest.mark.parametrize("keep_io", [True, False])
def test_fp16_keeps_float32_io_when_asked(keep_io):
    m = mlp(64, 32)
    r, step = _run(m, "fp16", PassContext(options={"fp16_keep_io": keep_io}))
    assert step.applied, step.reason
    assert r.drift.cosine > 0.9999  # float16 I/O is verified on the same values, cast
    want = TensorProto.FLOAT if keep_io else TensorProto.FLOAT16
    assert r.model.graph.input[0].type.tensor_type.elem_type == want
    assert all(t.data_type != TensorProto.FLOAT for t in r.model.graph.initializer)


def test_precision_passes_refuse_already_quantized_models():
    m = mlp(128, 64)
    q = passes.get_pass("int8-dynamic").apply(m).model
    for name in ("int8-dynamic", "int4", "fp16"):
        with pytest.raises(passes.PassRejected, match="already quantized"):
            passes.get_pass(name).apply(q)


def test_no_matmul_means_nothing_to_quantize():
    m = make_model([helper.make_node("Relu", ["x"], ["y"])], [fvi("x", [2, 3])], [fvi("y", [2, 3])],
                   [init("unused", np.ones(1, np.float32))])
    with pytest.raises(passes.PassRejected, match="no MatMul"):
        passes.get_pass("int8-dynamic").apply(m)
    assert isinstance(m, onnx.ModelProto)
