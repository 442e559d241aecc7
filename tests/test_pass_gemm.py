"""gemm (onnxscript's rules, wrapped): MatMul + Add to Gemm where A is 2-D; never for batched MatMuls."""

from __future__ import annotations

from onnx import helper
from pass_helpers import fvi, init, make_model, mlp, rand, serialized

import passes
from passes.runner import Runner
from passes.verify import Reference


def _run(m):
    r = Runner(m, Reference.build(m)).run(passes.Pipeline("t", ("gemm",)))
    return r, r.steps[0]


def test_matmul_add_becomes_gemm_with_parity():
    m = mlp()
    before = serialized(m)
    r, step = _run(m)
    assert step.applied and step.counts["MatMul+Add->Gemm"] == 2
    assert [n.op_type for n in r.model.graph.node] == ["Gemm", "Relu", "Gemm"]
    assert r.drift.cosine > 0.99999 and r.drift.top1 == 1.0
    assert serialized(m) == before


def test_transposed_input_folds_into_trans_b():
    m = make_model([helper.make_node("Transpose", ["w"], ["wt"], perm=[1, 0]),
                    helper.make_node("MatMul", ["x", "wt"], ["h"]), helper.make_node("Add", ["h", "b"], ["y"])],
                   [fvi("x", ["batch", 8])], [fvi("y", ["batch", 4])], [init("w", rand((4, 8))), init("b", rand((4,)))])
    r, step = _run(m)
    ops = [n.op_type for n in r.model.graph.node]
    assert "Gemm" in ops and "MatMul" not in ops
    assert r.drift.cosine > 0.99999


def test_batched_matmul_is_not_a_gemm():
    m = make_model([helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Add", ["h", "b"], ["y"])],
                   [fvi("x", ["batch", "sequence", 8])], [fvi("y", ["batch", "sequence", 4])],
                   [init("w", rand((8, 4))), init("b", rand((4,)))])
    r, step = _run(m)
    assert not step.changed and [n.op_type for n in r.model.graph.node] == ["MatMul", "Add"]
