"""If, Loop and Scan: a control-flow node costs what its subgraphs cost, times how often they run.

    If    cost = max(then, else), per component (FLOPs, bytes read, bytes written): an upper bound of whichever
          branch runs, on any target, since roofline time only grows with each component
    Loop  cost = trips x cost(body)      trips: a constant M, else --loop-trips, else a stated default
    Scan  cost = length x cost(body)     length: the scan input's size on its scan axis (x batch for Scan-8)

The subgraphs arrive resolved by planner.model.controlflow: each graph attribute holds a `Body` (the subgraph as a
planner Graph with shapes inferred from the outer scope, how many times it runs, and why). A node whose bodies
were never resolved (built by hand, outside the pipeline) costs its bytes, like an op without a formula.
"""

from __future__ import annotations

from planner.costs.registry import ZERO, OpClass, OpCost, io_cost, node_cost, register
from planner.model.controlflow import Body, bodies
from planner.model.ir import NodeInfo


def scaled(c: OpCost, k: int) -> OpCost:
    return OpCost(c.flops * k, c.bytes_read * k, c.bytes_written * k, c.weight_bytes * k)


def envelope(a: OpCost, b: OpCost) -> OpCost:
    return OpCost(max(a.flops, b.flops), max(a.bytes_read, b.bytes_read), max(a.bytes_written, b.bytes_written),
                  max(a.weight_bytes, b.weight_bytes))


def body_cost(body: Body) -> OpCost:
    """One node run's worth: the body's nodes summed, times its repeats (nested control flow recurses here)."""
    total = ZERO
    for n in body.graph.nodes:
        total = total + node_cost(n).cost
    return scaled(total, body.repeats)


@register("If", op_class=OpClass.VECTOR)
def if_cost(node: NodeInfo) -> OpCost:
    b = bodies(node)
    if b is None:
        return io_cost(node)
    return envelope(body_cost(b[0]), body_cost(b[1]))


@register("Loop", "Scan", op_class=OpClass.VECTOR)
def repeated_body_cost(node: NodeInfo) -> OpCost:
    b = bodies(node)
    return io_cost(node) if b is None else body_cost(b[0])
