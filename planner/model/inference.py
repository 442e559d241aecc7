"""Shape inference: onnx's (with data propagation only where it cannot exhaust memory, planner.model.propagation),
then onnxruntime's symbolic pass where onnx left dims unknown (driven by planner.model.ort_symbolic, since its
public entry point drops a file into the working folder)."""

from __future__ import annotations

import contextlib
import io

import onnx

from planner.model.ort_symbolic import symbolic_infer
from planner.model.propagation import infer_onnx


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
