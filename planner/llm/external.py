"""The decoder's weight-only pipelines on a decoder whose weights are external data: written to files one
weight at a time, checked on the file, verified by generation from the file.

A decoder over protobuf's 2 GB limit cannot be a ModelProto with its weights, so nothing here makes one:
passes.external quantizes (onnxruntime's own per-MatMul step, the output's data file appended as it goes),
onnx.checker checks the written file by its path (external data checked in place), and onnxruntime runs the
original and the rewrite from their files for the generation check (planner.llm.generation), as it would serve
them. Which pipelines run this way: the weight-only ones (int4, int8-weight). The passes before their
precision step (cleanup's constant folding, the fusions) and the other precision passes (quantize_dynamic,
the float16 converter) take the whole model in memory: the first are skipped (named in the step's notes), the
others refused with that reason.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import onnx

from passes.base import Pipeline
from passes.external import Written, quantize_external
from passes.runner import PipelineResult, StepReport
from passes.verify import ContractBroken
from planner.errors import PlannerError
from planner.llm.generation import GenerationReference
from planner.model.loader import LoadedModel

WEIGHT_ONLY_BITS = {"int4": 4, "int8-weight": 8}  # the precision passes that run one weight at a time
INT4_ACCURACY_LEVEL = 4  # as passes.quantize: the CPU runs int8 x int4


@dataclass
class ExternalRun:
    result: PipelineResult
    written: Written | None  # None when rejected


def _check_file(path: Path) -> str | None:
    """onnx.checker on the file (its path: external data checked where it lies, no 2 GB limit), or why not."""
    try:
        onnx.checker.check_model(str(path))
    except Exception as e:  # checker raises ValidationError and C++ errors
        return f"onnx.checker: {str(e).splitlines()[0][:200]}"
    return None


def _rejected(p: Pipeline, name: str, why: str) -> ExternalRun:
    return ExternalRun(PipelineResult(p, None, [StepReport(name, False, False, {}, 0.0, None, why)], None,
                                      f"{name}: {why}"), None)


def run_external(loaded: LoadedModel, reference: GenerationReference, pipelines: Sequence[Pipeline],
                 options: dict, scratch: Path) -> dict[str, ExternalRun]:
    """Each pipeline's weight-only step on the external-data decoder, written under `scratch`, verified by
    generation against `reference` (the original run from its file). `options`: PassContext options."""
    out: dict[str, ExternalRun] = {}
    for p in pipelines:
        name = p.passes[-1] if p.passes else ""
        if name not in WEIGHT_ONLY_BITS:
            out[p.name] = _rejected(p, name, "the weights are external data: only the weight-only passes "
                                    f"({', '.join(WEIGHT_ONLY_BITS)}) run on such decoders")
            continue
        folder = scratch / p.name
        folder.mkdir()
        t0 = time.perf_counter()
        try:
            written = quantize_external(loaded.model, loaded.path.parent, folder / "model.onnx",
                                        bits=WEIGHT_ONLY_BITS[name], block_size=int(options["int4_block_size"]),
                                        symmetric=bool(options["int4_symmetric"]),
                                        accuracy_level=INT4_ACCURACY_LEVEL, lm_head=bool(options["int4_lm_head"]))
        except PlannerError as e:
            out[p.name] = _rejected(p, name, str(e))
            continue
        seconds = time.perf_counter() - t0
        if not written.quantized:
            out[p.name] = _rejected(p, name, "no MatMul with a constant 2-D float weight")
            continue
        if why := _check_file(written.path):
            out[p.name] = _rejected(p, name, f"failed verification: {why}")
            continue
        try:
            drift = reference.drift(written.path)
        except ContractBroken as e:
            out[p.name] = _rejected(p, name, f"failed verification: {e}")
            continue
        except Exception as e:  # onnxruntime cannot load or run the written model
            why = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
            out[p.name] = _rejected(p, name, f"failed verification: onnxruntime: {why}")
            continue
        before, after = written.bytes_before, written.bytes_after
        counts = {"+com.microsoft::MatMulNBits": len(written.quantized), "-MatMul": len(written.quantized),
                  "external_tensors_copied": written.copied, "block_size": int(options["int4_block_size"]),
                  "symmetric": int(bool(options["int4_symmetric"])), "weight_bytes_before": before,
                  "weight_bytes_after": after}
        notes = (f"weights {before:,} B -> {after:,} B ({after / before:.2f}x)",
                 f"written one weight at a time with external data ({written.data_path.name})")
        if p.passes[:-1]:
            notes += (f"skipped before it (they take the whole model in memory): {', '.join(p.passes[:-1])}",)
        step = StepReport(name, True, True, counts, seconds, drift, None, notes)
        out[p.name] = ExternalRun(PipelineResult(p, written.model, [step], drift, None), written)
    return out
