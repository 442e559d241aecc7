"""The registry as a whole: coverage, double registration, unknown ops, and formulas that never raise."""

import itertools
import random

import onnx.defs
import pytest
from costs_helpers import make_node

import planner.costs
from planner.costs import OpClass, OpCost, lookup, node_cost, registered
from planner.costs.registry import register

# Everything the ResNet / BERT / GPT-2 / ViT / YOLO / Whisper exports (and their onnxruntime-optimised forms) use.
COMMON_OPS = [
    "Conv", "ConvTranspose", "BatchNormalization", "Relu", "MaxPool", "AveragePool", "GlobalAveragePool",
    "Flatten", "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Erf", "Tanh", "Sigmoid", "Softmax",
    "LayerNormalization", "ReduceMean", "ReduceSum", "Gather", "Reshape", "Transpose", "Shape", "Unsqueeze",
    "Squeeze", "Concat", "Slice", "Split", "Cast", "Where", "Equal", "ConstantOfShape", "Expand", "Range",
    "Constant", "Identity", "Gelu", "Neg", "Less", "Greater", "Not", "And", "Exp", "Log", "Max", "Min", "Clip",
    "Pad", "Resize", "Tile", "Einsum", "Trilu", "CumSum", "ArgMax", "TopK", "NonZero", "ScatterND", "LeakyRelu",
    "Dropout", "Sum", "HardSigmoid", "HardSwish", "Softplus", "DepthToSpace", "InstanceNormalization",
    "QuantizeLinear", "DequantizeLinear", "Floor", "Abs", "Reciprocal", "GatherElements", "Size", "Mod",
]
COMMON_MS_OPS = [
    "Attention", "MultiHeadAttention", "GroupQueryAttention", "RotaryEmbedding", "SkipLayerNormalization",
    "SkipSimplifiedLayerNormalization", "BiasGelu", "FastGelu", "Gelu", "QuickGelu", "FusedConv", "FusedMatMul",
    "FusedGemm", "BiasAdd", "BiasSoftmax", "NhwcConv", "MatMulNBits", "QLinearConv", "DynamicQuantizeMatMul",
    "EmbedLayerNormalization", "QAttention", "QGemm", "MatMulIntegerToFloat",
]


def test_common_ops_have_formulas():
    assert len(COMMON_OPS) >= 60
    assert [op for op in COMMON_OPS if lookup("", op) is None] == []
    assert [op for op in COMMON_MS_OPS if lookup("com.microsoft", op) is None] == []
    assert lookup("ai.onnx", "MatMul") is lookup("", "MatMul")


def test_onnx_schema_coverage():
    schemas = {s.name for s in onnx.defs.get_all_schemas() if s.domain in ("", "ai.onnx")}
    covered = sorted(op for op in schemas if lookup("", op) is not None)
    missing = sorted(schemas - set(covered))
    print(f"\n{len(covered)}/{len(schemas)} ai.onnx ops have cost formulas; without: {missing}")
    print(f"{len(registered())} (domain, op) pairs registered in all")
    assert len(covered) >= 150
    for op in ("If", "Loop", "Scan"):  # registered: they cost their subgraphs (planner.model.controlflow resolves them)
        assert lookup("", op) is not None


def test_registering_twice_raises():
    with pytest.raises(ValueError, match="registered twice"):
        register("Add")(lambda node: OpCost())
    with pytest.raises(ValueError):
        register("MatMulNBits", domain="com.microsoft")(lambda node: OpCost())


def test_view_ops_cost_zero_and_are_registered_explicitly():
    views = [k for k, spec in registered().items() if spec.op_class is OpClass.VIEW]
    assert ("", "Reshape") in views and ("", "Shape") in views and ("", "Identity") in views
    for domain, op in views:
        node = make_node(op, [(16, 16), (2,)], [(16, 16)], domain=domain)
        assert node_cost(node).cost == OpCost()


def test_unknown_op_is_bytes_only_and_marked():
    n = 1024
    nc = node_cost(make_node("NoSuchOp", [(n,), (n,)], [(n,)], domain="example.custom"))
    assert not nc.known
    assert nc.cost.flops == 0
    assert nc.cost.bytes_read == 2 * n * 4 and nc.cost.bytes_written == n * 4
    assert nc.op_class is OpClass.DATA


def test_package_reexports():
    for name in ("OpCost", "OpClass", "node_cost", "lookup", "registered", "NodeCost", "ZERO"):
        assert hasattr(planner.costs, name)


DTYPES = ["float32", "float16", "int64", "uint8", "int4", "bool"]
SHAPES = [None, (), (1,), (7,), (2, 3), (0, 4), (2, 3, 4), (2, 4, 6, 8), (1, 2, 3, 4, 5), (2, 3, 4, 5, 6, 7)]
ODD_ATTRS = [
    {},
    {"num_heads": 0, "kv_num_heads": 0, "q_num_heads": 0, "K": 0, "N": 0, "group": 0, "size": 0, "k": 0},
    {"kernel_shape": [], "strides": [], "pads": [], "dilations": [], "axis": 99, "axes": [],
     "activations": [], "equation": "", "mode": b"", "direction": b"sideways", "activation": b"NoSuch"},
    {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "group": 2, "num_heads": 2,
     "kv_num_heads": 1, "q_num_heads": 2, "hidden_size": 4, "K": 4, "N": 4, "bits": 4, "block_size": 2,
     "equation": b"ij,jk->ik", "mode": "linear", "direction": "bidirectional", "layout": 1, "transA": 1,
     "transB": 1, "qkv_hidden_sizes": [4, 4, 4], "do_rotary": 1, "rotary_embedding_dim": 2,
     "local_window_size": 2, "softcap": 1.0, "output_shape": [5, 5], "noop_with_empty_axes": 1},
]


@pytest.mark.parametrize("key", sorted(registered()), ids=lambda k: f"{k[0] or 'ai.onnx'}::{k[1]}")
def test_formula_never_raises_on_odd_nodes(key):
    domain, op = key
    formula = registered()[key].formula
    rng = random.Random(f"{domain}{op}")
    for attrs, n_in in itertools.product(ODD_ATTRS, (0, 1, 2, 3, 5, 9, 12)):
        for _ in range(6):
            def spec():
                return (rng.choice(SHAPES), rng.choice(DTYPES), rng.choice(("weight", "activation")))

            inputs = [None if rng.random() < 0.2 else spec() for _ in range(n_in)]
            outputs = [None if rng.random() < 0.2 else spec() for _ in range(rng.randint(0, 3))]
            node = make_node(op, inputs, outputs, attrs, domain)
            c = formula(node)
            assert isinstance(c, OpCost)
            assert min(c.flops, c.bytes_read, c.bytes_written, c.weight_bytes) >= 0, (node, c)
            assert c.weight_bytes <= c.bytes_read
