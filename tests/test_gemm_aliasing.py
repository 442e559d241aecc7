"""A float GEMM whose A rows alias in the L1 is a family of its own (families.ALIASED), and so is one reading A
transposed (families.TRANSPOSED_A)."""

import pytest
from family_rates import refined_rates

from planner.costs import OpClass
from planner.model.ir import WEIGHT, NodeInfo, TensorInfo
from planner.predict.families import ALIAS_BYTES, ALIAS_ROWS, TRANSPOSED_A_ROWS, kernel_family


def matmul(rows: int, k: int, n: int = 768, op: str = "MatMul", fed: bool = False, lead: int = 1,
           **attrs) -> NodeInfo:
    a = (lead, rows, k) if lead > 1 else (rows, k)
    ins = (TensorInfo("a", a, "float32"), TensorInfo("b", (k, n), "float32", "activation" if fed else WEIGHT))
    return NodeInfo("m", op, "com.microsoft" if op.startswith("Fused") else "", ins,
                    (TensorInfo("y", (*a[:-1], n), "float32"),), attrs)


def test_a_rows_a_multiple_of_4_kib_apart_and_twelve_or_more_alias():
    """K = 1024, 2048, 3072 floats put A's rows 4, 8, 12 KiB apart: one L1 set period (4 KiB) or a multiple, so
    the 12 rows MLAS reads together share sets. 1152, 2560 floats (4.5, 10 KiB) do not; 10 rows fit 8 ways."""
    assert ALIAS_BYTES == 4096 and ALIAS_ROWS == 12
    for k in (1024, 2048, 3072, 4096):
        assert kernel_family(matmul(128, k), OpClass.MATRIX) == "gemm:aliased", k
    for k in (768, 1152, 1536, 2304, 2560):
        assert kernel_family(matmul(128, k), OpClass.MATRIX) == "gemm", k
    assert kernel_family(matmul(12, 1024), OpClass.MATRIX) == "gemm:aliased"
    assert kernel_family(matmul(10, 1024), OpClass.MATRIX) == "gemm"
    assert kernel_family(matmul(8, 3072, lead=4), OpClass.MATRIX) == "gemm:aliased"  # [4, 8, K]: 32 rows
    assert kernel_family(matmul(16, 1024, op="Gemm"), OpClass.MATRIX) == "gemm_bias:aliased"


def test_a_fed_b_aliases_too_and_a_batch_of_matrices_counts_the_rows_of_one():
    """MLAS packs a fed B (a dequantized or cast weight, attention's V) and reads A in place all the same; a batched
    product runs matrix by matrix; a transposed A is copied first (its own family, TRANSPOSED_A)."""
    assert kernel_family(matmul(128, 1024, fed=True), OpClass.MATRIX) == "gemm:fed:wide:aliased"  # a 3 MiB B
    scores_v = NodeInfo("m", "MatMul", "", (TensorInfo("p", (8, 64, 1024), "float32"),
                                            TensorInfo("v", (8, 1024, 64), "float32")),
                        (TensorInfo("y", (8, 64, 64), "float32"),), {})
    assert kernel_family(scores_v, OpClass.MATRIX) == "gemm:fed:aliased"
    step = NodeInfo("m", "MatMul", "", (TensorInfo("p", (16, 1, 1024), "float32"),
                                        TensorInfo("v", (16, 1024, 64), "float32")),
                    (TensorInfo("y", (16, 1, 64), "float32"),), {})
    assert kernel_family(step, OpClass.MATRIX) == "gemm:fed"  # one row a matrix: 16 heads are not 16 rows
    assert kernel_family(matmul(128, 1024, op="Gemm", transA=1), OpClass.MATRIX) == "gemm_bias:transA"
    assert kernel_family(matmul(128, 1024, op="FusedMatMul", transA=1), OpClass.MATRIX) == "gemm:transA"
    assert kernel_family(matmul(128, 1024, op="FusedMatMul"), OpClass.MATRIX) == "gemm:aliased"


def test_an_aliased_gemm_takes_its_own_rate_and_an_older_calibration_the_plain_one():
    """Measured on a Zen 4 EPYC: [128, 3072] x [3072, 768] at 104 GFLOP/s, [128, 768] x [768, 3072] at 114."""
    assert refined_rates("gemm", "gemm:aliased", 114e9, 104e9, intensity=53.0) == pytest.approx((104e9, 114e9, 114e9))


def test_the_suite_times_aliased_gemms_and_plain_ones_at_the_same_intensities():
    from planner.calibration.suite import ALIASING_GEMM

    def intensity(m: int, k: int, n: int) -> float:
        return 2 * m * k * n / (4 * (m * k + k * n + m * n))

    aliased = [s for s in ALIASING_GEMM if (4 * s[1]) % ALIAS_BYTES == 0 and s[0] >= ALIAS_ROWS]
    plain = [s for s in ALIASING_GEMM if s not in aliased]
    assert len(aliased) >= 2 and len(plain) >= 2
    # the BERT-base FFN pair: the same FLOPs and bytes, one aliased
    assert any(intensity(*a) == pytest.approx(intensity(*p)) for a in aliased for p in plain)


def test_a_gemm_reading_a_transposed_is_its_own_family_and_never_aliased():
    """SegFormer's head: FusedMatMul(transA) of [1, 32, 16384] by a [32, 128] weight; MLAS gathers A's rows down
    its columns first, so the stride of A's stored rows (16384 floats, a multiple of 4 KiB) says nothing of it."""
    assert TRANSPOSED_A_ROWS == 16
    head = NodeInfo("m", "FusedMatMul", "com.microsoft",
                    (TensorInfo("a", (1, 32, 16384), "float32"), TensorInfo("b", (32, 128), "float32", WEIGHT)),
                    (TensorInfo("y", (1, 16384, 128), "float32"),), {"transA": 1})
    assert kernel_family(head, OpClass.MATRIX) == "gemm:transA"
    batched = NodeInfo("m", "FusedMatMul", "com.microsoft",
                       (TensorInfo("a", (4, 64, 256), "float32"), TensorInfo("b", (4, 64, 32), "float32")),
                       (TensorInfo("y", (4, 256, 32), "float32"),), {"transBatchA": 1})
    assert kernel_family(batched, OpClass.MATRIX) == "gemm:fed:transA"
    assert kernel_family(matmul(64, 8, op="Gemm", transA=1), OpClass.MATRIX) == "gemm_bias"  # [64, 8]ᵀ: 8 rows
    assert refined_rates("gemm", "gemm:transA", 115e9, 93e9, intensity=14.0) == pytest.approx((93e9, 115e9, 115e9))


def test_the_suite_times_transposed_a_gemms_from_short_columns_to_long():
    from planner.calibration.suite import TRANSPOSED_A_GEMM

    columns = sorted(m for _, m, _ in TRANSPOSED_A_GEMM)
    assert columns[0] <= 256 and columns[-1] >= 8192 and all(m >= TRANSPOSED_A_ROWS for m in columns)
