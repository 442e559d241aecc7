"""Fusion: onnxruntime's transformer optimizer (passes/fusion/ort.py) plus our own rules where none fits.

An own rule has three parts, like onnxscript's rewriter:
    pattern   which node anchors it and the subgraph around it, written as the math in the module docstring
    check     returns a *reason* when a near-miss does not apply (so the plan can say why), None when it does
    replace   the new nodes (and initializers) that compute the same thing
`apply_rules` runs a family's rules to a fixed point and returns counts per rule and the near-misses' reasons.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper


class GraphView:
    """Read-only lookups over a GraphProto: producers, consumers, constant values, graph inputs."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        g = model.graph
        self.inits = {t.name: t for t in g.initializer}
        self.inputs = {i.name: i for i in g.input if i.name not in self.inits}
        self.outputs = {o.name for o in g.output}
        self.producer: dict[str, int] = {}
        self.consumers: dict[str, list[int]] = {}
        for i, n in enumerate(g.node):
            for o in n.output:
                if o:
                    self.producer[o] = i
            for x in n.input:
                if x:
                    self.consumers.setdefault(x, []).append(i)
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)

    def node(self, i: int) -> onnx.NodeProto:
        return self.model.graph.node[i]

    def const(self, name: str) -> np.ndarray | None:
        """The value of an initializer or Constant output, else None."""
        if name in self.inits:
            return numpy_helper.to_array(self.inits[name])
        i = self.producer.get(name)
        if i is not None and self.node(i).op_type == "Constant":
            for a in self.node(i).attribute:
                if a.name == "value":
                    return numpy_helper.to_array(a.t)
        return None

    def readers(self, name: str) -> list[onnx.NodeProto]:
        return [self.node(i) for i in self.consumers.get(name, [])]

    def fresh(self, base: str) -> str:
        taken = set(self.producer) | set(self.inits) | set(self.inputs)
        name, k = base, 0
        while name in taken:
            k += 1
            name = f"{base}_{k}"
        return name


@dataclass
class Rewrite:
    remove: list[int]  # node indices to drop
    add: list[onnx.NodeProto]  # inserted where the first removed node was
    initializers: list[onnx.TensorProto] = field(default_factory=list)


class Rule:
    name: str = ""
    anchor: str = ""  # op_type of the node a match starts from

    def check(self, g: GraphView, i: int) -> str | None:
        """Why the pattern anchored at node i does not apply (None: it does)."""
        raise NotImplementedError

    def replace(self, g: GraphView, i: int) -> Rewrite:
        raise NotImplementedError


def _apply_once(model: onnx.ModelProto, rule: Rule) -> tuple[onnx.ModelProto, bool, list[str]]:
    g = GraphView(model)
    misses = []
    for i, n in enumerate(model.graph.node):
        if n.op_type != rule.anchor:
            continue
        reason = rule.check(g, i)
        if reason:
            misses.append(f"{rule.name} at '{n.name or n.op_type}': {reason}")
            continue
        rw = rule.replace(g, i)
        nodes = list(model.graph.node)
        at = min(rw.remove)
        keep = [x for k, x in enumerate(nodes) if k not in set(rw.remove)]
        pos = sum(1 for k in range(at) if k not in set(rw.remove))
        new = keep[:pos] + rw.add + keep[pos:]
        del model.graph.node[:]
        model.graph.node.extend(new)
        model.graph.initializer.extend(rw.initializers)
        return model, True, []
    return model, False, misses


def apply_rules(model: onnx.ModelProto, rules: Iterable[Rule], max_rounds: int = 1000
                ) -> tuple[onnx.ModelProto, Counter, list[str]]:
    """Apply `rules` to a fixed point on `model` (which the caller owns). Returns counts and near-misses."""
    rules = list(rules)
    counts: Counter = Counter()
    misses: list[str] = []
    for _ in range(max_rounds):
        fired = False
        round_misses: list[str] = []
        for r in rules:
            model, hit, m = _apply_once(model, r)
            if hit:
                counts[r.name] += 1
                fired = True
                break
            round_misses += m
        if not fired:
            misses = round_misses
            break
    return model, counts, misses
