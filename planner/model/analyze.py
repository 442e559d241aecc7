"""Turn a loaded model and a dim binding into the planner's Graph: dims bound, shapes inferred, bodies resolved.

Nodes whose inputs are all constant (Constant, ConstantOfShape of a stored shape, arithmetic on weights) are
folded by planner.model.build, as every runtime folds them at session start: their outputs are weights, and
they cost nothing per inference.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from onnx import helper

from planner.errors import DimError
from planner.model.build import build_graph
from planner.model.controlflow import resolve_control_flow
from planner.model.inference import infer
from planner.model.ir import Graph
from planner.model.loader import LoadedModel
from planner.model.shapes import Binding, DimSpec, apply_binding, bind_dims, dim_spec, skeleton


@dataclass
class Analysis:
    graph: Graph
    binding: Binding
    notes: list[str] = field(default_factory=list)
    unknown_shapes: list[str] = field(default_factory=list)  # node outputs whose shape stayed unknown


class Analyzer:
    """Caches what does not change between dim bindings (the stripped skeleton, the dim classification)."""

    def __init__(self, loaded: LoadedModel, loop_trips: int | None = None,
                 values: Mapping[str, bool | int | float] | None = None) -> None:
        self.loaded = loaded
        self.loop_trips = loop_trips  # for Loops whose trip count the model does not fix (planner.model.controlflow)
        self.given = dict(values or {})  # as the user wrote them (--value), for the measurement's feeds
        self.values = input_values(loaded, self.given)  # as arrays of the inputs' types: they decide If branches
        self.spec: DimSpec = dim_spec(loaded.model)
        self._skeleton, self._weight_inputs = skeleton(loaded.model)
        self._cache: dict[tuple, Analysis] = {}

    @property
    def batch_sweepable(self) -> bool:
        return self.spec.batch is not None or self.spec.fixed_batch is not None

    def analyze(self, dims: dict[str, int] | None = None, batch: int | None = None) -> Analysis:
        dims = dict(dims or {})
        binding = bind_dims(self.spec, dims, batch)
        override = (self.spec.batch is None and self.spec.fixed_batch is not None and batch is not None
                    and batch != self.spec.fixed_batch)
        if override:
            binding.batch = batch
        key = (tuple(sorted(binding.values.items())), binding.batch)
        if key in self._cache:
            return self._cache[key]
        bound = apply_binding(self._skeleton, self.spec, binding, override, self._weight_inputs)
        inferred, notes = infer(bound)
        graph = build_graph(inferred, self._weight_inputs)
        graph, flow_notes = resolve_control_flow(graph, inferred, self.loop_trips, values=self.values)
        notes.extend(flow_notes)
        if override:
            outs = [graph.tensors.get(o) for o in graph.outputs]
            if any(t is None or not t.shape or t.shape[0] != batch for t in outs):
                raise DimError(
                    f"--batch {batch}: the model's batch is fixed at {self.spec.fixed_batch} "
                    "(its graph pins that size) and cannot be changed"
                )
            notes.append(f"batch dim was fixed at {self.spec.fixed_batch}; rebound to {batch}")
        used = set(graph.consumers()) | set(graph.outputs)
        unknown = [t.name for n in graph.nodes for t in n.outputs
                   if t is not None and t.shape is None and t.name in used]
        a = Analysis(graph=graph, binding=binding, notes=notes, unknown_shapes=unknown)
        self._cache[key] = a
        return a


def input_values(loaded: LoadedModel, given: Mapping[str, bool | int | float]) -> dict[str, np.ndarray]:
    """`--value NAME=V` as arrays of the named inputs' types and shapes; an input that is not there, or that
    holds more than one element, is refused with the reason."""
    inits = {t.name for t in loaded.model.graph.initializer}
    inputs = {vi.name: vi for vi in loaded.model.graph.input if vi.name not in inits}
    out = {}
    for name, v in given.items():
        vi = inputs.get(name)
        if vi is None:
            raise DimError(f"--value {name}={v}: the model has no input {name!r} (its inputs: "
                           f"{', '.join(inputs) or 'none'})")
        tt = vi.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
        if not vi.type.HasField("tensor_type") or any(d is None or d > 1 for d in dims):
            raise DimError(f"--value {name}={v}: binds inputs of one element (a mode or a rate); {name!r} is "
                           f"shaped {dims}")
        try:
            dtype = helper.tensor_dtype_to_np_dtype(tt.elem_type)
            out[name] = np.full(dims, v, dtype=dtype)
        except (KeyError, TypeError, ValueError, OverflowError):
            raise DimError(f"--value {name}={v}: not a value of the input's type") from None
    return out
