"""onnx-planner: what an ONNX model costs to serve on each piece of hardware, and the cheapest plan.

    import planner
    p = planner.plan("model.onnx", targets=["a10g", "t4"], dims={"sequence": 256})
    p.chosen.target, p.chosen.cost_per_million_usd
"""

from planner.api import plan
from planner.calibration.host import get_target, resolve_targets
from planner.errors import PlannerError
from planner.search.plan_types import CandidateReport, KernelReport, ModelSummary, Plan

__version__ = "0.1.0"

__all__ = ["CandidateReport", "KernelReport", "ModelSummary", "Plan", "PlannerError", "get_target", "plan",
           "resolve_targets", "__version__"]
