"""The pass contract: a pass takes a ModelProto and returns a new one plus what it changed; it never mutates
its input. Passes are registered by name and composed into named pipelines whose ordering rules are checked in
code (`Pipeline.validate`), not promised in comments.

    result = get_pass("cleanup").apply(model, ctx)      # PassResult(model, changed, counts, notes, seconds)

A pass declares:
    precision   the precision its output computes at ("int8", "int4", "fp16"), None for float-exact rewrites
    exact       True: the rewrite must not change the outputs (verified to a tight tolerance)
    after       passes that, when in the same pipeline, must run before this one
    needs       what it needs from the context ("calibration": inputs to calibrate activation ranges)
and implements `check(model) -> reason | None` (precondition: why it cannot apply) and `run(model, ctx)`.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import onnx

from planner.errors import PlannerError


class PassRejected(PlannerError):
    """A pass that cannot apply or whose result failed verification; the message is the reason."""


@dataclass(frozen=True)
class PassResult:
    model: onnx.ModelProto
    changed: bool
    counts: Mapping[str, int]  # per rewrite: "Attention": 2, "nodes_removed": 5, ...
    notes: tuple[str, ...] = ()
    seconds: float = 0.0


@dataclass
class PassContext:
    """What passes may read besides the model: options and data, never the planner's state."""

    calibration: list[dict[str, Any]] | None = None  # feeds for static quantization
    calibration_generated: bool = False  # True: the feeds are seeded random data, not the user's
    options: dict[str, Any] = field(default_factory=dict)  # e.g. {"int4_block_size": 32, "fp16_keep_io": True}
    warn: Callable[[str], None] = lambda msg: None


def op_counts(model: onnx.ModelProto) -> Counter:
    return Counter(f"{n.domain}::{n.op_type}" if n.domain not in ("", "ai.onnx") else n.op_type
                   for n in model.graph.node)


def weight_bytes(model: onnx.ModelProto) -> int:
    return sum(t.ByteSize() for t in model.graph.initializer)


def copy_model(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out


def _unnamed(graph: onnx.GraphProto) -> None:
    for node in graph.node:
        node.name = ""
        node.doc_string = ""
        for attr in node.attribute:
            if attr.HasField("g"):
                _unnamed(attr.g)
            for g in attr.graphs:
                _unnamed(g)


def _content_bytes(model: onnx.ModelProto) -> bytes:
    """The model's bytes without node names and doc strings: onnx_ir names every unnamed node ("node", ...),
    so a rewrite that did nothing else must still count as no change."""
    out = copy_model(model)
    out.doc_string = ""
    out.graph.doc_string = ""
    _unnamed(out.graph)
    for f in out.functions:
        for node in f.node:
            node.name = ""
    return out.SerializeToString(deterministic=True)


class Pass:
    name: str = ""
    description: str = ""
    precision: str | None = None
    exact: bool = True
    after: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()

    def check(self, model: onnx.ModelProto) -> str | None:
        """Why this pass cannot apply to `model`, or None."""
        return None

    def run(self, model: onnx.ModelProto, ctx: PassContext) -> PassResult:  # pragma: no cover - abstract
        raise NotImplementedError

    def apply(self, model: onnx.ModelProto, ctx: PassContext | None = None) -> PassResult:
        """Run on a private copy (the caller's model is never touched); refuse when the precondition fails."""
        ctx = ctx or PassContext()
        reason = self.check(model)
        if reason:
            raise PassRejected(f"{self.name}: {reason}")
        if "calibration" in self.needs and not ctx.calibration:
            raise PassRejected(f"{self.name}: needs calibration inputs")
        t0 = time.perf_counter()
        before = _content_bytes(model)
        result = self.run(copy_model(model), ctx)  # wrapped tools often edit the proto they are given
        changed = _content_bytes(result.model) != before
        counts = dict(result.counts)
        notes = tuple(result.notes)
        if self.precision:
            wb, wa = weight_bytes(model), weight_bytes(result.model)
            counts["weight_bytes_before"], counts["weight_bytes_after"] = wb, wa
            notes += (f"weights {wb:,} B -> {wa:,} B ({wa / wb:.2f}x)" if wb else "no weights",)
        return PassResult(result.model, changed, counts, notes, time.perf_counter() - t0)


_PASSES: dict[str, Pass] = {}


def register_pass(cls: type[Pass]) -> type[Pass]:
    p = cls()
    if not p.name:
        raise ValueError(f"{cls.__name__}: a pass needs a name")
    if p.name in _PASSES:
        raise ValueError(f"pass '{p.name}' registered twice")
    _PASSES[p.name] = p
    return cls


def get_pass(name: str) -> Pass:
    if name not in _PASSES:
        raise PlannerError(f"unknown pass '{name}' (known: {', '.join(sorted(_PASSES))})")
    return _PASSES[name]


def registered_passes() -> dict[str, Pass]:
    return dict(_PASSES)


@dataclass(frozen=True)
class Pipeline:
    name: str
    passes: tuple[str, ...]
    description: str = ""
    auto: bool = True  # part of `--passes auto`

    @property
    def precision(self) -> str:
        for name in self.passes:
            p = get_pass(name)
            if p.precision:
                return p.precision
        return "fp32"

    def validate(self) -> None:
        """Ordering rules, checked: every declared `after` holds, at most one precision pass, and it runs last."""
        names = list(self.passes)
        if len(set(names)) != len(names):
            raise PlannerError(f"pipeline '{self.name}': a pass appears twice")
        lossy = [n for n in names if get_pass(n).precision]
        if len(lossy) > 1:
            raise PlannerError(f"pipeline '{self.name}': more than one precision pass ({', '.join(lossy)})")
        if lossy and names[-1] != lossy[0]:
            raise PlannerError(f"pipeline '{self.name}': precision pass '{lossy[0]}' must run last "
                               "(graph rewrites do not match quantized or fp16 graphs)")
        for i, n in enumerate(names):
            for before in get_pass(n).after:
                if before in names and names.index(before) > i:
                    raise PlannerError(f"pipeline '{self.name}': '{before}' must run before '{n}'")


_PIPELINES: dict[str, Pipeline] = {}


def register_pipeline(pipeline: Pipeline) -> Pipeline:
    if pipeline.name in _PIPELINES:
        raise ValueError(f"pipeline '{pipeline.name}' registered twice")
    pipeline.validate()
    _PIPELINES[pipeline.name] = pipeline
    return pipeline


def get_pipeline(name: str) -> Pipeline:
    if name not in _PIPELINES:
        raise PlannerError(f"unknown pipeline '{name}' (known: {', '.join(_PIPELINES)})")
    return _PIPELINES[name]


def registered_pipelines() -> dict[str, Pipeline]:
    return dict(_PIPELINES)
