"""Every graph of a model: the main one and the subgraphs If/Loop/Scan attributes hold."""

from __future__ import annotations

import onnx


def iter_graphs(graph: onnx.GraphProto):
    """The graph and every subgraph nested in If/Loop/Scan attributes."""
    yield graph
    for node in graph.node:
        for a in node.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                yield from iter_graphs(a.g)
            elif a.type == onnx.AttributeProto.GRAPHS:
                for g in a.graphs:
                    yield from iter_graphs(g)
