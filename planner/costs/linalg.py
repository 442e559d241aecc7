"""Matrix products: MatMul, Gemm, Einsum, Det.  A multiply-add counts 2.

    MatMul   A [..., M, K] · B [..., K, N] -> [..., M, N]      FLOPs = 2 · batch · M · K · N
             batch = prod(numpy-broadcast(A[:-2], B[:-2]));
             a 1-D A is [1, K] (M = 1), a 1-D B is [K, 1] (N = 1)
             (when operand shapes are unknown but Y and K are: 2 · numel(Y) · K, the same number).
    Gemm     A [M, K] (transA: [K, M]) · B [K, N] (transB: [N, K])
             FLOPs = 2·M·K·N  + M·N if C is given (beta·C folded into the add; C is broadcast, so beta·C is
             precomputed on the small tensor)  + M·N if alpha != 1.
    Einsum   every index gets its size from the operands (ellipsis dims broadcast, right-aligned);
             with n >= 2 operands and a contracted index (in the inputs, not in the output):
                 FLOPs = n · prod(size of every distinct index)   (n - 1 multiplies and 1 add per point; 2 for
                         the usual two-operand contraction, e.g. "bij,bjk->bik" = 2·b·i·j·k)
             n >= 2, nothing contracted (outer/elementwise products): (n - 1) · prod(sizes)
             one operand: a sum over the dropped indices costs numel(input); a transpose/diagonal costs 0.
             Registered MATRIX (its usual use is a contraction); the op class is per op type, not per node.
    Det      [..., n, n]: LU factorisation, 2/3·n³ per matrix, VECTOR.

Bytes: io_cost (each operand read once, the product written once).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from planner.costs.registry import OpClass, OpCost, attr_str, io_cost, out_numel, register
from planner.model.ir import NodeInfo


def broadcast_shapes(*shapes: Sequence[int]) -> tuple[int, ...]:
    """numpy broadcasting, lenient: mismatched dims take the larger (a cost model must not raise)."""
    rank = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(rank):
        dims = [s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0]
        out.append(max(dims, default=1))
    return tuple(out)


def matmul_dims(a: Sequence[int], b: Sequence[int]) -> tuple[int, int, int, int] | None:
    """(batch, M, K, N) of numpy matmul on these shapes; None for a rank-0 operand."""
    if len(a) == 0 or len(b) == 0:
        return None
    a2 = (1, a[0]) if len(a) == 1 else tuple(a)
    b2 = (b[0], 1) if len(b) == 1 else tuple(b)
    batch = math.prod(broadcast_shapes(a2[:-2], b2[:-2]))
    return batch, a2[-2], a2[-1], b2[-1]


def matmul_flops(a: Sequence[int], b: Sequence[int]) -> int | None:
    dims = matmul_dims(a, b)
    if dims is None:
        return None
    batch, m, k, n = dims
    return 2 * batch * m * k * n


def matmul_cost(node: NodeInfo, ia: int = 0, ib: int = 1, extra_per_out: int = 0) -> OpCost:
    """MatMul-like node with A at input `ia` and B at input `ib`; `extra_per_out` FLOPs per output element."""
    a, b = node.in_shape(ia), node.in_shape(ib)
    flops = None
    if a is not None and b is not None:
        flops = matmul_flops(a, b)
    if flops is None and node.out_shape(0) is not None:
        k = a[-1] if a else (b[-2] if b and len(b) >= 2 else (b[0] if b else None))
        if k is not None:
            flops = 2 * out_numel(node) * k
    if flops is None:
        return io_cost(node)
    return io_cost(node, flops + extra_per_out * out_numel(node))


def gemm_dims(node: NodeInfo, ia: int = 0, ib: int = 1) -> tuple[int, int, int] | None:
    """(M, K, N) of Gemm-like node honouring transA/transB; None if a 2-D operand shape is unknown."""
    a, b = node.in_shape(ia), node.in_shape(ib)
    if a is not None and len(a) == 2:
        m, k = (a[1], a[0]) if node.attr("transA", 0) else (a[0], a[1])
    else:
        return None
    if b is not None and len(b) == 2:
        n = b[0] if node.attr("transB", 0) else b[1]
    else:
        y = node.out_shape(0)
        if y is None or len(y) != 2:
            return None
        n = y[1]
    return m, k, n


def gemm_cost(node: NodeInfo, ia: int = 0, ib: int = 1, ic: int | None = 2, extra_per_out: int = 0) -> OpCost:
    dims = gemm_dims(node, ia, ib)
    if dims is None:
        return io_cost(node)
    m, k, n = dims
    flops = 2 * m * k * n
    if ic is not None and node.has_input(ic):
        flops += m * n
    if node.attr("alpha", 1.0) != 1.0:
        flops += m * n
    return io_cost(node, flops + extra_per_out * m * n)


@register("MatMul", op_class=OpClass.MATRIX)
def matmul(node: NodeInfo) -> OpCost:
    return matmul_cost(node)


@register("Gemm", op_class=OpClass.MATRIX)
def gemm(node: NodeInfo) -> OpCost:
    return gemm_cost(node)


# ---- Einsum --------------------------------------------------------------------------------------------

_TERM = re.compile(r"^[A-Za-z]*(\.\.\.)?[A-Za-z]*$")


def einsum_flops(equation: str, shapes: Sequence[Sequence[int]]) -> int | None:
    """FLOPs of an einsum (see module docstring); None when the equation does not match the shapes."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(shapes) or not all(_TERM.match(t) for t in terms + ([rhs] if arrow else [])):
        return None
    sizes: dict[str, int] = {}
    ell_ranks = []
    for term, shape in zip(terms, shapes, strict=True):
        letters = term.replace("...", "")
        ell = len(shape) - len(letters) if "..." in term else 0
        if ell < 0 or ("..." not in term and len(letters) != len(shape)):
            return None
        ell_ranks.append(ell)
    max_ell = max(ell_ranks, default=0)
    counts: dict[str, int] = {}
    for term, shape, ell in zip(terms, shapes, ell_ranks, strict=True):
        head, _, tail = term.partition("...")
        ell_part = [f"...{max_ell - ell + j}" for j in range(ell)]
        names = list(head) + ell_part + list(tail) if "..." in term else list(term)
        for name, dim in zip(names, shape, strict=True):
            sizes[name] = max(sizes.get(name, 1), dim)
            if not name.startswith("..."):
                counts[name] = counts.get(name, 0) + 1
    ell_names = [f"...{j}" for j in range(max_ell)]
    if arrow:
        out = set(rhs.replace("...", "")) | (set(ell_names) if "..." in rhs else set())
    else:
        out = {c for c, n in counts.items() if n == 1} | set(ell_names)
    total = math.prod(sizes.values())
    contracted = set(sizes) - out
    n_ops = len(shapes)
    if n_ops == 1:
        return total if contracted else 0
    return n_ops * total if contracted else (n_ops - 1) * total


@register("Einsum", op_class=OpClass.MATRIX)
def einsum(node: NodeInfo) -> OpCost:
    eq = attr_str(node, "equation", "")
    shapes = [t.shape if t is not None else None for t in node.inputs]
    if not shapes or any(s is None for s in shapes):
        return io_cost(node)
    flops = einsum_flops(eq, shapes)  # type: ignore[arg-type]
    return io_cost(node, flops or 0)


@register("Det", op_class=OpClass.VECTOR)
def det(node: NodeInfo) -> OpCost:
    x = node.in_shape(0)
    if x is None or len(x) < 2:
        return io_cost(node)
    n = x[-1]
    return io_cost(node, math.prod(x[:-2]) * (2 * n**3) // 3)
