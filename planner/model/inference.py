"""Shape inference: onnx's (with data propagation only where it cannot exhaust memory, planner.model.propagation),
then, where dims stay unknown, onnx's again on a copy whose small value computations are evaluated
(planner.model.value_folding), then onnxruntime's symbolic pass where onnx left dims unknown (driven by
planner.model.ort_symbolic, since its public entry point drops a file into the working folder)."""

from __future__ import annotations

import contextlib
import io

import onnx

from planner.model.ort_symbolic import symbolic_infer
from planner.model.propagation import infer_onnx
from planner.model.value_folding import fold_values, with_inferred_types

FOLD_ROUNDS = 8


def _unknown_count(m: onnx.ModelProto) -> int:
    known: set[str] = set()
    for vi in list(m.graph.value_info) + list(m.graph.output) + list(m.graph.input):
        tt = vi.type.tensor_type
        if vi.type.HasField("tensor_type") and tt.HasField("shape") and all(
            d.HasField("dim_value") for d in tt.shape.dim
        ):
            known.add(vi.name)
    known |= {t.name for t in m.graph.initializer}
    used = {i for n in m.graph.node for i in n.input} | {o.name for o in m.graph.output}
    return sum(1 for n in m.graph.node for o in n.output if o and o in used and o not in known)


def infer(m: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """Shape inference, onnx first then onnxruntime's symbolic pass; returns the model and notes."""
    notes: list[str] = []
    try:
        out, prop_notes = infer_onnx(m)
        notes.extend(prop_notes)
    except Exception as e:  # C++ inference errors surface as several exception types
        notes.append(f"onnx shape inference failed: {str(e).splitlines()[0][:200]}")
        out = m
    out = fold_and_infer(out, notes)
    if _unknown_count(out):
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                sym = symbolic_infer(out, auto_merge=True, guess_output_rank=True)
            if sym is not None and _unknown_count(sym) < _unknown_count(out):
                out = sym
                notes.append("onnxruntime symbolic shape inference filled dims onnx left unknown")
        except Exception as e:  # a best-effort second opinion; its failure is reported, not fatal
            reason = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
            notes.append(f"onnxruntime symbolic shape inference failed: {reason}")
    return out, notes


def fold_and_infer(out: onnx.ModelProto, notes: list[str]) -> onnx.ModelProto:
    """Where dims stayed unknown, evaluate the small value computations and infer again (value_folding)."""
    work, total = out, 0
    for _ in range(FOLD_ROUNDS):
        if not _unknown_count(work):
            break
        folded, n = fold_values(work)
        if not n:
            break
        try:
            work, _ = infer_onnx(folded)
        except Exception:  # as above: the shapes found so far stand
            break
        total += n
    if not total or _unknown_count(work) >= _unknown_count(out):
        return out
    notes.append(f"{total} small value computations evaluated to bind shapes onnx could not propagate")
    return with_inferred_types(out, work)
