"""Operator costs: importing this package registers every formula family.

    from planner.costs import node_cost
    node_cost(node).cost.flops

Families (one module each, the math in its docstring): elementwise, linalg, conv, norm, pool, reduce,
movement (data and view ops), rnn, attention, quant, contrib (onnxruntime fusions), spectral, misc.
If, Loop and Scan (controlflow) cost their subgraphs, which planner.model.controlflow resolves with shapes and repeats.
"""

from planner.costs import (  # noqa: F401  (imported for their registrations)
    attention,
    contrib,
    controlflow,
    conv,
    elementwise,
    linalg,
    misc,
    movement,
    norm,
    pool,
    quant,
    reduce,
    rnn,
    spectral,
)
from planner.costs.registry import (
    ZERO,
    NodeCost,
    OpClass,
    OpCost,
    OpSpec,
    io_cost,
    lookup,
    node_cost,
    registered,
)

__all__ = ["ZERO", "NodeCost", "OpClass", "OpCost", "OpSpec", "io_cost", "lookup", "node_cost", "registered"]
