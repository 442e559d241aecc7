"""onnx-planner: what an ONNX model costs to serve on each piece of hardware, and the cheapest plan.

    import planner
    p = planner.plan("model.onnx", targets=["a10g", "t4"], dims={"sequence": 256})
    p.chosen.target, p.chosen.cost_per_million_usd

The API is loaded on first use (PEP 562): `passes` imports `planner.errors`, which runs this file first; were
the whole pipeline imported here, `import passes` on its own would meet itself half-initialised (the decoder
variants import `passes.base`).
"""

from planner.errors import PlannerError

__version__ = "0.1.0"

__all__ = ["CandidateReport", "KernelReport", "ModelSummary", "Plan", "PlannerError", "get_target", "plan",
           "resolve_targets", "__version__"]


def __getattr__(name: str) -> object:
    if name == "plan":
        from planner.api import plan

        return plan
    if name in ("get_target", "resolve_targets"):
        from planner.calibration import host

        return getattr(host, name)
    if name in ("CandidateReport", "KernelReport", "ModelSummary", "Plan"):
        from planner.search import plan_types

        return getattr(plan_types, name)
    raise AttributeError(f"module 'planner' has no attribute {name!r}")
