"""A graph's nodes in an order that runs: a rule inserts its nodes where the first node it removed was, which a
fused node that reads a tensor computed later (an attention's mask) must not keep."""

from __future__ import annotations

import networkx as nx
import onnx

from planner.model.build import outer_refs


def topological_order(g: onnx.GraphProto) -> list[int]:
    """Node indices producers-first, the file's order kept wherever it already runs (lexicographic sort);
    raises ValueError on a cycle, which no rewrite may make."""
    producer = {o: i for i, n in enumerate(g.node) for o in n.output if o}
    dag = nx.DiGraph()
    dag.add_nodes_from(range(len(g.node)))
    for i, n in enumerate(g.node):
        reads = set(n.input)
        for a in n.attribute:
            for sub in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)):
                reads |= outer_refs(sub)
        for name in reads:
            if name in producer and producer[name] != i:
                dag.add_edge(producer[name], i)
    try:
        return list(nx.lexicographical_topological_sort(dag))
    except nx.NetworkXUnfeasible:
        raise ValueError("the rewrite made a cycle") from None
