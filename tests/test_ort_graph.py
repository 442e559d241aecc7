"""The graph onnxruntime executes: saved without running, shapes inferred, every op costed."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from planner.costs import OpClass, lookup
from planner.model.ir import NodeInfo
from planner.model.loader import load_model
from planner.ort.executed import _conv_like, _reorder_input, _reorder_output, _upsample, ort_analysis
from planner.predict.families import kernel_family, kernel_steps

MODELS = Path(__file__).resolve().parent.parent / "models"


def _conv_bn_relu(path: Path) -> Path:
    rng = np.random.default_rng(1)
    c = 32
    inits = [numpy_helper.from_array(rng.standard_normal((c, 16, 3, 3)).astype(np.float32), "w"),
             *(numpy_helper.from_array(v.astype(np.float32), n) for n, v in
               (("s", np.ones(c)), ("b", np.zeros(c)), ("m", np.zeros(c)), ("v", np.ones(c))))]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["n"], name="bn"),
             helper.make_node("Relu", ["n"], ["y"], name="relu")]
    g = helper.make_graph(nodes, "cbr", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16, 20, 20])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", c, 20, 20])], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    return path


def test_conv_bn_relu_becomes_one_blocked_conv_with_shapes(tmp_path):
    a = ort_analysis(load_model(_conv_bn_relu(tmp_path / "cbr.onnx")), batch=3)
    ops = [(n.domain, n.op_type) for n in a.graph.nodes]
    assert ("", "BatchNormalization") not in ops and ("", "Relu") not in ops  # folded and fused by onnxruntime
    conv = next(n for n in a.graph.nodes if n.op_type in ("Conv", "FusedConv"))
    assert conv.outputs[0].shape[0] == 3 and conv.outputs[0].shape[2:] == (20, 20)
    assert a.unknown_shapes == []
    out = a.graph.tensors[a.graph.outputs[0]]
    assert out.shape == (3, 32, 20, 20)


@pytest.mark.parametrize("name,dims", [("cnn.onnx", {}), ("mlp.onnx", {}), ("encoder.onnx", {"sequence": 16}),
                                       ("decoder.onnx", {"sequence_length": 1, "past_sequence_length": 8})])
def test_every_op_onnxruntime_runs_has_a_formula(name, dims):
    a = ort_analysis(load_model(MODELS / name), dims, batch=2)
    missing = {f"{n.domain}::{n.op_type}" for n in a.graph.nodes if lookup(n.domain, n.op_type) is None}
    assert missing == set()
    assert a.unknown_shapes == []


def _node(op, domain="", inputs=(), attrs=None):
    from planner.model.ir import TensorInfo

    ins = tuple(TensorInfo(f"i{k}", s, "float32") for k, s in enumerate(inputs))
    return NodeInfo("n", op, domain, ins, (), attrs or {})


def test_nchwc_shape_rules_by_hand():
    # 3 channels round up to one block of 16; channels_last reads C from the last axis
    assert _reorder_input(_node("ReorderInput"), [(2, 3, 7, 7)], 16) == (2, 16, 7, 7)
    assert _reorder_input(_node("ReorderInput", attrs={"channels_last": 1}), [(2, 7, 7, 40)], 8) == (2, 40, 7, 7)
    assert _reorder_output(_node("ReorderOutput", attrs={"channels": 3}), [(2, 16, 7, 7)], 16) == (2, 3, 7, 7)
    # conv: 224 -> (224 + 3 + 3 - 7) // 2 + 1 = 112 output rows, W[0] output channels
    conv = _node("Conv", attrs={"kernel_shape": [7, 7], "strides": [2, 2], "pads": [3, 3, 3, 3]})
    assert _conv_like(conv, [(1, 3, 224, 224), (64, 3, 7, 7)], 16) == (1, 64, 112, 112)
    # nchwc Upsample (a nearest Resize in the blocked layout) carries one scale per dim, N and C included: a
    # 2x FPN upsample of [1, 64, 20, 20] is [1, 64, 40, 40] (the rule used to scale H and W by N's and C's 1)
    assert _upsample(_node("Upsample", attrs={"scales": [1, 1, 2, 2]}), [(1, 64, 20, 20)], 16) == (1, 64, 40, 40)
    assert _upsample(_node("Upsample", attrs={"scales": [4, 4]}), [(1, 16, 5, 7)], 16) == (1, 16, 20, 28)


def test_families_and_steps():
    def n(op, domain="", shapes=(), **attrs):
        return _node(op, domain, shapes, attrs)

    assert kernel_family(n("MatMul"), OpClass.MATRIX) == "gemm"
    assert kernel_family(n("FusedGemm", "com.microsoft"), OpClass.MATRIX) == "gemm_bias"
    assert kernel_family(n("Conv", "com.microsoft.nchwc", [(1, 64, 8, 8), (64, 1, 3, 3)], group=64),
                         OpClass.MATRIX) == "nchwc.conv_dw"
    assert kernel_family(n("Conv", "com.microsoft.nchwc", [(1, 3, 8, 8), (64, 3, 3, 3)]),
                         OpClass.MATRIX) == "nchwc.conv_nchw"
    assert kernel_family(n("Conv", "com.microsoft.nchwc", [(1, 64, 8, 8), (64, 64, 3, 3)]),
                         OpClass.MATRIX) == "nchwc.conv"
    # grouped: a 1x1 stride-1 kernel (a GEMM per group off the input) apart from the im2col ones
    assert kernel_family(n("Conv", "", [(1, 60, 8, 8), (60, 20, 1, 1)], group=3),
                         OpClass.MATRIX) == "conv_grouped_1x1"
    assert kernel_family(n("Conv", "", [(1, 60, 8, 8), (60, 20, 1, 1)], group=3, strides=[2, 2]),
                         OpClass.MATRIX) == "conv_grouped"
    assert kernel_family(n("Conv", "", [(1, 64, 8, 8), (64, 2, 3, 3)], group=32), OpClass.MATRIX) == "conv_grouped"
    # a dense blocked conv with one block of output channels (8 is one block with and without AVX-512)
    assert kernel_family(n("Conv", "com.microsoft.nchwc", [(1, 64, 8, 8), (8, 64, 3, 3)]),
                         OpClass.MATRIX) == "nchwc.conv:1block"
    assert kernel_family(n("Conv", "com.microsoft.nchwc", [(1, 3, 8, 8), (8, 3, 3, 3)]),
                         OpClass.MATRIX) == "nchwc.conv_nchw:1block"
    # depthwise 1x1: a BatchNormalization in onnxruntime's blocked layout, timed by its bytes
    assert kernel_family(n("Conv", "com.microsoft.nchwc", [(1, 64, 8, 8), (64, 1, 1, 1)], group=64),
                         OpClass.MATRIX) == "nchwc.conv_dw_1x1"
    assert kernel_family(n("Conv", "com.microsoft.nchwc", [(1, 64, 8, 8), (64, 1, 1, 1)], group=64, pads=[1] * 4),
                         OpClass.MATRIX) == "nchwc.conv_dw"
    # a float depthwise conv at stride 2 is its own family (a plain one gathers its im2col element by element, a
    # blocked one reads four input pixels an output); the int8 ones are not split
    dw = [(1, 96, 112, 112), (96, 1, 3, 3)]
    assert kernel_family(n("Conv", "", dw, group=96, strides=[2, 2]), OpClass.MATRIX) == "conv_dw:strided"
    assert kernel_family(n("FusedConv", "com.microsoft", dw, group=96, strides=[2, 2]),
                         OpClass.MATRIX) == "conv_dw:strided"
    assert kernel_family(n("Conv", "", dw, group=96, strides=[1, 1]), OpClass.MATRIX) == "conv_dw"
    assert kernel_family(n("Conv", "com.microsoft.nchwc", dw, group=96, strides=[2, 2]),
                         OpClass.MATRIX) == "nchwc.conv_dw:strided"
    assert kernel_family(n("Conv", "com.microsoft.nchwc", dw, group=96), OpClass.MATRIX) == "nchwc.conv_dw"
    assert kernel_family(n("ConvInteger", "", dw, group=96, strides=[2, 2]), OpClass.MATRIX) == "conv_dw"
    assert kernel_family(n("BiasGelu", "com.microsoft"), OpClass.VECTOR) == "ms.BiasGelu"
    # an interpolating Resize weighs 2^d (linear) or 4^d (cubic) inputs an output: apart from a nearest one
    assert kernel_family(n("Resize", "", mode="linear"), OpClass.VECTOR) == "Resize:interpolated"
    assert kernel_family(n("Resize", "", mode="nearest"), OpClass.VECTOR) == "Resize"
    assert kernel_family(n("Resize"), OpClass.VECTOR) == "Resize"
    assert kernel_family(n("GRU", "", [(50, 4, 32)]), OpClass.MATRIX) == "gru"
    assert kernel_steps(n("LSTM", "", [(50, 4, 32)])) == 50
    assert kernel_steps(n("GRU", "", [(4, 50, 32)], layout=1)) == 50
    assert kernel_steps(n("MatMul", "", [(50, 4, 32)])) == 1


def test_transposes_of_long_contiguous_runs_are_their_own_family():
    from planner.predict.families import contiguous_run

    def t(shape, perm):
        return _node("Transpose", "", [shape], {"perm": perm} if perm is not None else {})

    shuffle = t((1, 4, 34, 28, 28), [0, 2, 1, 3, 4])  # ShuffleNet's channel shuffle: 28 x 28 = 784 in order
    assert contiguous_run(shuffle) == 784 and kernel_family(shuffle, OpClass.DATA) == "Transpose:long"
    heads = t((1, 128, 4, 32), [0, 2, 1, 3])  # attention heads: runs of d = 32
    assert contiguous_run(heads) == 32 and kernel_family(heads, OpClass.DATA) == "Transpose"
    assert contiguous_run(t((8, 16), None)) == 1  # no perm: reversed axes, nothing stays in place
    assert contiguous_run(t((2, 3, 4), [0, 1])) == 1  # a perm of the wrong rank is no run at all


def test_a_quick_gelu_at_alpha_one_is_silu_and_the_suite_times_both():
    """onnxruntime's QuickGelu scales every element in a scalar loop unless α is 1 (its default is 1.702), so
    SiLU, which it makes of x·Sigmoid(x), is a family apart; the suite has a bench in each."""
    from planner.calibration.suite import _vector_benches
    from planner.model.loader import LoadedModel

    def q(**attrs):
        return _node("QuickGelu", "com.microsoft", [(4, 64)], attrs)

    assert kernel_family(q(alpha=1.0), OpClass.VECTOR) == "ms.QuickGelu:silu"
    assert kernel_family(q(alpha=1.702), OpClass.VECTOR) == "ms.QuickGelu"
    assert kernel_family(q(), OpClass.VECTOR) == "ms.QuickGelu"  # the default α is not 1
    got = set()
    for bench in _vector_benches(quick=True):
        if bench.label.startswith("QuickGelu"):
            loaded = LoadedModel(model=onnx.load_from_string(bench.model), path=Path("b.onnx"), sha256=bench.label)
            got |= {kernel_family(n, OpClass.VECTOR) for n in ort_analysis(loaded).graph.nodes}
    assert got == {"ms.QuickGelu", "ms.QuickGelu:silu"}


def test_a_refined_vector_family_a_calibration_never_measured_takes_its_parents_speed_and_fixed_cost():
    from planner.calibration.rates import CalibratedRates
    from planner.targets.catalog import bundled_targets

    t = bundled_targets()["a10g"]
    old = CalibratedRates(throughput_curves={"ms.QuickGelu": ((1e5, 10e9), (1e7, 8e9))},
                          kernel_fixed_s={"ms.QuickGelu": 2e-7, "vector": 9e-7})
    assert old.family_bytes_per_s("ms.QuickGelu:silu", 1e5, t) == 10e9
    assert old.fixed_s("ms.QuickGelu:silu", "vector", t) == pytest.approx(t.launch_overhead_s + 2e-7)
    new = dataclasses.replace(old, throughput_curves={**old.throughput_curves, "ms.QuickGelu:silu": ((1e5, 20e9),)})
    assert new.family_bytes_per_s("ms.QuickGelu:silu", 1e5, t) == 20e9
    assert old.fixed_s("Relu", "vector", t) == pytest.approx(t.launch_overhead_s + 9e-7)


def test_a_pad_copies_one_run_per_index_before_its_innermost_padded_axis():
    from planner.model.ir import TensorInfo
    from planner.predict.families import contiguous_runs

    def pad(x, y, op="Pad"):
        return NodeInfo("p", op, "", (TensorInfo("x", x, "float32"),), (TensorInfo("y", y, "float32"),), {})

    assert contiguous_runs(pad((2, 16, 28, 28), (2, 16, 30, 30))) == 2 * 16 * 28  # rows of W
    assert contiguous_runs(pad((2, 16, 28, 28), (2, 16, 30, 28))) == 2 * 16  # H only: planes of H·W
    assert contiguous_runs(pad((2, 16, 28, 28), (2, 20, 28, 28))) == 2  # C only: one block an image
    assert contiguous_runs(pad((2, 16, 28, 28), (2, 16, 28, 28))) == 1  # nothing padded: one copy
    assert contiguous_runs(pad((2, 16, 28, 28), (2, 16, 30, 30), "Concat")) == 0  # not timed by runs
    assert contiguous_runs(pad((2, 16, 28, 28), None)) == 0  # shape unknown


def test_a_gather_copies_a_run_per_index_and_a_scatternd_one_per_update():
    from planner.model.ir import TensorInfo
    from planner.predict.families import contiguous_runs

    def node(op, x, idx, y, **attrs):
        ins = (TensorInfo("x", x, "int64"), TensorInfo("i", idx, "int64"))
        return NodeInfo("g", op, "", ins, (TensorInfo("y", y, "int64"),), attrs)

    # BEiT's relative-position index: coordinate 0 of each of 196 x 196 pairs, one element a run
    assert contiguous_runs(node("Gather", (196, 196, 2), (), (196, 196), axis=2)) == 196 * 196
    assert contiguous_runs(node("Gather", (196, 196, 2), (), (196, 196), axis=-1)) == 196 * 196
    # an embedding: one row per token, whatever the row's length
    assert contiguous_runs(node("Gather", (50000, 768), (1, 128), (1, 128, 768))) == 128
    # ScatterND: one update per index tuple (indices' last axis is the tuple)
    assert contiguous_runs(node("ScatterND", (196, 196, 2), (196, 196, 1, 3), (196, 196, 2))) == 196 * 196
    assert contiguous_runs(node("ScatterND", (256, 512), (64, 1), (256, 512))) == 64
    assert contiguous_runs(node("Gather", None, (4,), None)) == 0  # shape unknown


def test_short_rows_are_their_own_family():
    def n(op, shape, domain=""):
        return _node(op, domain, [shape])

    assert kernel_family(n("Softmax", (2, 4, 16, 32)), OpClass.VECTOR) == "Softmax:short"
    assert kernel_family(n("Softmax", (1, 4, 128, 128)), OpClass.VECTOR) == "Softmax"
    assert kernel_family(n("SkipLayerNormalization", (1, 8, 64), "com.microsoft"),
                         OpClass.VECTOR) == "ms.SkipLayerNormalization:short"
    assert kernel_family(n("Relu", (4, 8)), OpClass.VECTOR) == "Relu"


def _if_cnn(path: Path) -> Path:
    """A CNN inside a top-level If, as some exporters write a mode switch: each branch two stride-2 convs."""
    rng = np.random.default_rng(2)

    def branch(name: str, k: int) -> onnx.GraphProto:
        # channels a multiple of both NCHWc block sizes (8 on AVX2, 16 on AVX-512): no padded channels
        inits = [numpy_helper.from_array(rng.standard_normal((16, 3, k, k)).astype(np.float32), f"{name}_w0"),
                 numpy_helper.from_array(rng.standard_normal((32, 16, k, k)).astype(np.float32), f"{name}_w1")]
        nodes = [helper.make_node("Conv", ["image", f"{name}_w0"], [f"{name}_c0"], kernel_shape=[k, k],
                                  pads=[k // 2] * 4, strides=[2, 2]),
                 helper.make_node("Relu", [f"{name}_c0"], [f"{name}_r0"]),
                 helper.make_node("Conv", [f"{name}_r0", f"{name}_w1"], [f"{name}_c1"], kernel_shape=[k, k],
                                  pads=[k // 2] * 4, strides=[2, 2]),
                 helper.make_node("GlobalAveragePool", [f"{name}_c1"], [f"{name}_out"])]
        return helper.make_graph(nodes, name, [], [helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT,
                                                                                  None)], inits)

    node = helper.make_node("If", ["mode"], ["y"], then_branch=branch("fast", 3), else_branch=branch("wide", 5))
    g = helper.make_graph([node], "if_cnn", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [-1, 3, 32, 32]),
                                             helper.make_tensor_value_info("mode", TensorProto.BOOL, [])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [-1, 32, 1, 1])])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    return path


def test_if_bodies_of_the_executed_graph_get_shapes(tmp_path):
    """onnxruntime rewrites an If's branches into NCHWc convs too; their shapes come from the same rules as
    the main graph's (before, onnx's inference left every body tensor unknown and the model was costed at 6%
    of its FLOPs: the zoo's cf-if predicted 10x too fast)."""
    from planner.costs import node_cost
    from planner.model.controlflow import bodies

    a = ort_analysis(load_model(_if_cnn(tmp_path / "if.onnx")), batch=1)
    (n,) = [n for n in a.graph.nodes if n.op_type == "If"]
    branches = bodies(n)
    assert branches is not None
    for b in branches:
        convs = [m for m in b.graph.nodes if m.op_type == "Conv"]
        assert [m.outputs[0].shape[2:] for m in convs] == [(16, 16), (8, 8)]
    # by hand, the 5x5 branch: 16*16 px * 16 ch * (3*25) MACs + 8*8 px * 32 ch * (16*25) MACs, 2 FLOPs per MAC
    wide = 2 * (16 * 16 * 16 * 3 * 25 + 8 * 8 * 32 * 16 * 25)
    flops = node_cost(n).cost.flops
    assert wide <= flops < 1.05 * wide  # the larger branch, plus its elementwise and pooling work


def test_int8_gemms_are_families_by_b_sign_by_epilogue_and_by_whether_b_is_fed():
    """VNNI multiplies unsigned by signed bytes; u8 x u8 (uint8 weights, or QDQ attention's two activations) takes
    a slower path ("gemm:u8u8"); what an op does around the GEMM (requantize, quantize A, scale to float) is its
    own family; a B fed at run time is packed every call (":fed"). The calibration's benches land there."""
    from planner.calibration.suite import _int8_benches, _u8u8_benches
    from planner.model.ir import WEIGHT, TensorInfo
    from planner.model.loader import LoadedModel

    def mm(op, a, b, b_at=1, fed=False):
        ins = [TensorInfo("a", (4, 8), a)] + [TensorInfo(f"s{i}", (), "float32") for i in range(b_at - 1)]
        return NodeInfo("n", op, "com.microsoft" if op in ("DynamicQuantizeMatMul", "MatMulIntegerToFloat") else "",
                        (*ins, TensorInfo("b", (8, 8), b, **({} if fed else {"role": WEIGHT}))), (), {})

    assert kernel_family(mm("MatMulInteger", "uint8", "uint8"), OpClass.MATRIX) == "gemm:u8u8"
    assert kernel_family(mm("MatMulInteger", "uint8", "int8"), OpClass.MATRIX) == "gemm"
    assert kernel_family(mm("QLinearMatMul", "uint8", "int8", b_at=3), OpClass.MATRIX) == "gemm:q"
    assert kernel_family(mm("QLinearMatMul", "uint8", "uint8", b_at=3, fed=True), OpClass.MATRIX) == "gemm:u8u8:q:fed"
    assert kernel_family(mm("DynamicQuantizeMatMul", "float32", "uint8"), OpClass.MATRIX) == "gemm:u8u8:dq"
    assert kernel_family(mm("MatMulIntegerToFloat", "uint8", "int8"), OpClass.MATRIX) == "gemm:tofloat"
    assert kernel_family(mm("MatMul", "float32", "float32"), OpClass.MATRIX) == "gemm"

    def families(benches):
        out = set()
        for bench in benches:
            loaded = LoadedModel(model=onnx.load_from_string(bench.model), path=Path("bench.onnx"), sha256=bench.label)
            out |= {kernel_family(n, OpClass.MATRIX) for n in ort_analysis(loaded).graph.nodes}
        return out

    assert families(_int8_benches(quick=False)[:4]) == {"gemm", "gemm:q", "gemm:dq", "gemm:tofloat"}
    assert families(_u8u8_benches(quick=False)) == {"gemm:u8u8", "gemm:u8u8:q", "gemm:u8u8:dq", "gemm:u8u8:tofloat",
                                                     "gemm:u8u8:q:fed"}


def test_a_float_gemm_whose_b_is_fed_is_its_own_family_and_one_row_without_the_gemv_shortcut_another():
    """MLAS prepacks a constant B at session start and packs a fed one inside every call ("gemm:fed"); one row of A
    goes to its GEMV kernel only at alpha = 1, so a decode step's scaled QKᵀ is "gemm:fed:nogemv". The suite's fed
    benches land in those two families or, a weight-sized B, "gemm:fed:wide" (families.WIDE), its prepacked ones
    stay "gemm" (or "gemm:aliased", families.ALIASED)."""
    from planner.calibration.suite import _fed_gemm_benches, _gemm_benches
    from planner.model.ir import WEIGHT, TensorInfo
    from planner.model.loader import LoadedModel

    def mm(op, rows, fed, **attrs):
        return NodeInfo("n", op, "com.microsoft" if op == "FusedMatMul" else "",
                        (TensorInfo("a", (8, rows, 64), "float32"),
                         TensorInfo("b", (8, 64, 32), "float32", **({} if fed else {"role": WEIGHT}))), (), attrs)

    assert kernel_family(mm("MatMul", 128, fed=True), OpClass.MATRIX) == "gemm:fed"
    assert kernel_family(mm("MatMul", 1, fed=True), OpClass.MATRIX) == "gemm:fed"
    assert kernel_family(mm("FusedMatMul", 1, fed=True, alpha=0.125, transB=1), OpClass.MATRIX) == "gemm:fed:nogemv"
    assert kernel_family(mm("FusedMatMul", 128, fed=True, alpha=0.125), OpClass.MATRIX) == "gemm:fed"
    assert kernel_family(mm("FusedMatMul", 1, fed=False, alpha=0.125), OpClass.MATRIX) == "gemm"

    def families(benches):
        out = []
        for bench in benches:
            loaded = LoadedModel(model=onnx.load_from_string(bench.model), path=Path("bench.onnx"), sha256=bench.label)
            out += [kernel_family(n, OpClass.MATRIX) for n in ort_analysis(loaded).graph.nodes]
        return out

    fed = families(_fed_gemm_benches(quick=False))
    assert set(fed) == {"gemm:fed", "gemm:fed:nogemv", "gemm:fed:wide", "gemm:fed:wide:aliased"}
    assert fed.count("gemm:fed:nogemv") == 4
    assert fed.count("gemm:fed:wide:aliased") == 3  # families.ALIASED
    assert set(families(b for b in _gemm_benches(quick=False) if not b.label.startswith("fed"))) == \
        {"gemm", "gemm_bias", "gemm:aliased", "gemm_bias:aliased", "gemm:transA"}  # families.ALIASED, TRANSPOSED_A


def test_a_refined_int8_family_a_calibration_never_measured_takes_the_kernel_it_refines():
    """A calibration written before a family was split off times it as its parent: the fed QLinearMatMul as the
    constant-B one, that as the u8 x u8 GEMM; never as another precision's or the op class's curve."""
    from planner.calibration.rates import CalibratedRates
    from planner.targets.catalog import bundled_targets

    rates = CalibratedRates(rate_curves={"gemm:u8u8.int8": ((1.0, 100e9), (100.0, 170e9)),
                                         "matrix.int8": ((1.0, 400e9),), "gemm:u8u8:q:fed.int8": ((1.0, 30e9),)})
    t = bundled_targets()["a10g"]
    assert rates.flops_per_s("matrix", "gemm:u8u8:q:fed", "int8", 1e15, 1.0, t) == 30e9
    assert rates.flops_per_s("matrix", "gemm:u8u8:q", "int8", 1e15, 100.0, t) == pytest.approx(170e9)
    assert rates.flops_per_s("matrix", "gemm:q", "int8", 1e15, 1.0, t) == 400e9
    floats = CalibratedRates(rate_curves={"gemm.fp32": ((1.0, 20e9),), "gemm:fed.fp32": ((1.0, 15e9),)})
    assert floats.flops_per_s("matrix", "gemm:fed:nogemv", "fp32", 1e15, 1.0, t) == 15e9
    assert CalibratedRates(rate_curves={"gemm.fp32": ((1.0, 20e9),)}).flops_per_s(
        "matrix", "gemm:fed:nogemv", "fp32", 1e15, 1.0, t) == 20e9


@pytest.mark.parametrize("op,family", [("GroupQueryAttention", "ms.GroupQueryAttention"),
                                       ("MultiHeadAttention", "ms.MultiHeadAttention")])
def test_attention_benches_are_the_fused_kernels_with_their_flops_by_hand(op, family):
    """The calibration's fused-attention benches run in onnxruntime as written (present = past then the new
    keys), land in their own family, and cost sdpa = B·H·S·T·(2d + 5 + 2d) FLOPs: batch 8, one new token over
    a cache of 255, 8 heads of 64: 8·8·1·256·261 = 4,276,224."""
    import onnxruntime as ort

    from planner.calibration.suite import _attention
    from planner.costs import node_cost
    from planner.model.loader import LoadedModel

    bench = _attention(op, 8, 1, 255)
    out, present_k, _ = ort.InferenceSession(bench.model, providers=["CPUExecutionProvider"]).run(None, bench.feeds)
    kv = present_k.shape[1]
    new_k = bench.feeds["k"].reshape(8, 1, kv, 64).transpose(0, 2, 1, 3)
    np.testing.assert_array_equal(present_k, np.concatenate([bench.feeds["pk"], new_k], axis=2))
    loaded = LoadedModel(model=onnx.load_from_string(bench.model), path=Path("bench.onnx"), sha256=f"{op}-bench")
    [node] = [n for n in ort_analysis(loaded).graph.nodes if n.op_type == op]
    assert kernel_family(node, OpClass.MATRIX) == family
    assert node_cost(node).cost.flops == 8 * 8 * 1 * 256 * 261
