import math

import pytest
from costs_helpers import F16, W, cost, make_node

from planner.costs import OpClass, lookup, node_cost
from planner.costs.elementwise import TABLE, per_element


def test_add_broadcast_flops_and_bytes():
    b, s, h = 8, 128, 768
    c = cost("Add", [(b, s, h), ((h,), "float32", W)], [(b, s, h)])
    assert c.flops == b * s * h
    assert c.bytes_read == (b * s * h + h) * 4
    assert c.bytes_written == b * s * h * 4
    assert c.weight_bytes == h * 4


@pytest.mark.parametrize("op, per", [("Relu", 1), ("Sigmoid", 4), ("Tanh", 5), ("Erf", 4), ("Exp", 1),
                                     ("Swish", 6), ("Mish", 9), ("HardSwish", 5), ("Pow", 3), ("Clip", 2)])
def test_per_element_counts(op, per):
    n, d = 32, 1024
    assert cost(op, [(n, d)], [(n, d)]).flops == n * d * per


def test_gelu_erf_and_tanh_forms():
    n = 4096
    assert cost("Gelu", [(n,)], [(n,)]).flops == 8 * n
    assert cost("Gelu", [(n,)], [(n,)], {"approximate": b"tanh"}).flops == 13 * n
    assert cost("Gelu", [(n,)], [(n,)], {"approximate": "tanh"}).flops == 13 * n


def test_variadic_sum_mean_max():
    n = 1000
    three = [(n,), (n,), (n,)]
    assert cost("Sum", three, [(n,)]).flops == 2 * n  # (3 - 1) adds
    assert cost("Mean", three, [(n,)]).flops == 3 * n  # 2 adds + 1 divide
    assert cost("Max", [(n,), (n,)], [(n,)]).flops == n
    assert cost("Min", [(n,)], [(n,)]).flops == 0  # a single input is a copy


def test_cast_reads_source_dtype_writes_target_dtype():
    n = 1 << 20
    c = cost("Cast", [((n,), "float32")], [((n,), F16)], {"to": 10})
    assert c.bytes_read == 4 * n
    assert c.bytes_written == 2 * n


def test_where_reads_three_operands():
    n = 512
    c = cost("Where", [((n,), "bool"), (n,), ((), "float32", W)], [(n,)])
    assert c.flops == n
    assert c.bytes_read == n * 1 + n * 4 + 4


def test_com_microsoft_activations():
    n = 2048
    ms = "com.microsoft"
    assert cost("BiasGelu", [(n,), (n,)], [(n,)], domain=ms).flops == 9 * n
    assert cost("FastGelu", [(n,)], [(n,)], domain=ms).flops == 13 * n
    assert cost("FastGelu", [(n,), (n,)], [(n,)], domain=ms).flops == 14 * n
    assert cost("QuickGelu", [(n,)], [(n,)], domain=ms).flops == 6 * n
    assert cost("BiasAdd", [(n,), (n,), (n,)], [(n,)], domain=ms).flops == 2 * n


@pytest.mark.parametrize("domain, op", [("", "Add"), ("", "Sub"), ("", "Mul"), ("", "Div"), ("", "Relu"),
                                        ("", "LeakyRelu"), ("", "Sigmoid"), ("", "Tanh"), ("", "Clip"),
                                        ("", "Gelu"), ("", "Erf"), ("", "HardSigmoid"), ("", "HardSwish"),
                                        ("", "Elu"), ("", "Selu"), ("", "Softplus"), ("", "PRelu"),
                                        ("", "Mish"), ("com.microsoft", "BiasGelu"),
                                        ("com.microsoft", "FastGelu"), ("com.microsoft", "Gelu"),
                                        ("com.microsoft", "QuickGelu"), ("com.microsoft", "BiasAdd")])
def test_epilogue_ops(domain, op):
    spec = lookup(domain, op)
    assert spec is not None and spec.epilogue and spec.op_class is OpClass.VECTOR


@pytest.mark.parametrize("op", ["Equal", "Cast", "Softsign", "Where", "Not", "Sqrt", "Sum"])
def test_not_epilogue(op):
    assert not lookup("", op).epilogue


def test_every_table_row_is_registered():
    for (op, domain), entry in TABLE.items():
        spec = lookup(domain, op)
        assert spec is not None, op
        assert spec.epilogue == entry.epilogue


def test_all_spec_elementwise_ops_have_formulas():
    ops = ["Where", "Cast", "CastLike", "Clip", "PRelu", "LeakyRelu", "HardSigmoid", "HardSwish", "Elu", "Selu",
           "Celu", "Softplus", "Softsign", "Mish", "ThresholdedRelu", "Sin", "Cos", "Tan", "Asin", "Acos", "Atan",
           "Sinh", "Cosh", "Asinh", "Acosh", "Atanh", "Pow", "Mod", "BitShift", "IsNaN", "IsInf", "Sign", "Abs",
           "Neg", "Floor", "Ceil", "Round", "Reciprocal", "Not", "And", "Or", "Xor", "Sum", "Mean", "Max", "Min",
           "Shrink", "Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual", "BitwiseAnd", "BitwiseOr",
           "BitwiseXor", "BitwiseNot", "Swish", "SwiGLU"]
    missing = [op for op in ops if lookup("", op) is None]
    assert missing == []


def test_per_element_lookup_for_other_families():
    assert per_element("Sigmoid") == 4
    assert per_element("Tanh") == 5
    assert per_element("NoSuchOp") == 0


def test_unknown_output_shape_costs_known_bytes_only():
    n = 100
    node = make_node("Relu", [(n,)], [None])
    c = node_cost(node).cost
    assert c.flops == 0 and c.bytes_read == 4 * n and c.bytes_written == 0


def test_fp16_bytes_are_half():
    shape = (4, 256)
    c = cost("Mul", [(shape, F16), (shape, F16)], [(shape, F16)])
    assert c.bytes_read == 2 * 2 * math.prod(shape)
