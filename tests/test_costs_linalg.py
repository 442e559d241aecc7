from costs_helpers import W, cost

from planner.costs import OpClass, lookup
from planner.costs.linalg import einsum_flops


def test_matmul_2d():
    m, k, n = 128, 768, 3072
    c = cost("MatMul", [(m, k), ((k, n), "float32", W)], [(m, n)])
    assert c.flops == 2 * m * k * n
    assert c.bytes_read == (m * k + k * n) * 4
    assert c.bytes_written == m * n * 4
    assert c.weight_bytes == k * n * 4
    assert lookup("", "MatMul").op_class is OpClass.MATRIX


def test_matmul_broadcast_batch():
    b, h, m, k, n = 4, 12, 128, 64, 128
    c = cost("MatMul", [(b, 1, m, k), (h, k, n)], [(b, h, m, n)])
    assert c.flops == 2 * (b * h) * m * k * n


def test_matmul_1d_operands():
    m, k, n = 16, 768, 3072
    assert cost("MatMul", [(k,), (k, n)], [(n,)]).flops == 2 * k * n
    assert cost("MatMul", [(m, k), (k,)], [(m,)]).flops == 2 * m * k
    assert cost("MatMul", [(k,), (k,)], [()]).flops == 2 * k


def test_matmul_unknown_a_uses_output_and_k():
    m, k, n = 32, 512, 256
    assert cost("MatMul", [None, (k, n)], [(m, n)]).flops == 2 * m * k * n
    c = cost("MatMul", [(None,), (None,)], [(None,)])
    assert c.flops == 0 and c.bytes == 0


def test_gemm_trans_bias_alpha():
    m, k, n = 64, 256, 1000
    c = cost("Gemm", [(k, m), ((n, k), "float32", W), ((n,), "float32", W)], [(m, n)],
             {"transA": 1, "transB": 1})
    assert c.flops == 2 * m * k * n + m * n
    assert c.weight_bytes == (n * k + n) * 4
    c2 = cost("Gemm", [(m, k), (k, n)], [(m, n)], {"alpha": 0.5})
    assert c2.flops == 2 * m * k * n + m * n


def test_einsum_batched_matmul():
    b, i, j, k = 8, 64, 32, 16
    c = cost("Einsum", [(b, i, j), (b, j, k)], [(b, i, k)], {"equation": "bij,bjk->bik"})
    assert c.flops == 2 * b * i * j * k
    assert lookup("", "Einsum").op_class is OpClass.MATRIX


def test_einsum_variants():
    b, h, q, kk, d = 2, 12, 128, 128, 64
    assert einsum_flops("bhqd,bhkd->bhqk", [(b, h, q, d), (b, h, kk, d)]) == 2 * b * h * q * kk * d
    assert einsum_flops("...ij,...jk->...ik", [(b, h, q, d), (h, d, kk)]) == 2 * b * h * q * d * kk
    assert einsum_flops("ij,jk", [(q, d), (d, kk)]) == 2 * q * d * kk  # implicit output "ik"
    assert einsum_flops("ij->ji", [(q, d)]) == 0  # transpose
    assert einsum_flops("ij->i", [(q, d)]) == q * d  # row sums
    assert einsum_flops("i,j->ij", [(q,), (d,)]) == q * d  # outer product
    assert einsum_flops("ij,ij->ij", [(q, d), (q, d)]) == q * d  # elementwise
    assert einsum_flops("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]) == 3 * 2 * 3 * 4 * 5
    assert einsum_flops("ij,jk->ik", [(2, 3)]) is None  # operand count mismatch
    assert einsum_flops("ijk,jk->i", [(2, 3), (3, 4)]) is None  # rank mismatch


def test_einsum_bad_equation_costs_bytes_only():
    c = cost("Einsum", [(2, 3), (3, 4)], [(2, 4)], {"equation": "ab,bc,cd->ad"})
    assert c.flops == 0 and c.bytes_read == (6 + 12) * 4


def test_det():
    batch, n = 10, 6
    assert cost("Det", [(batch, n, n)], [(batch,)]).flops == batch * 2 * n**3 // 3
