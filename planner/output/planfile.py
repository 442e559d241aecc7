"""Read a plan JSON written earlier (a CI baseline, one side of a diff) and refuse anything else on one line.

`plan check` runs in CI, where a traceback helps nobody: a missing, truncated, hand-broken or foreign file
must say what is wrong with it and exit 2. Only the keys that readers here need are checked; extra keys are
fine (others add fields), absent optional ones are tolerated, so a plan from an older planner still reads.
The full contract is planner/schema/plan.schema.json, checked against real plans by the tests.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

from planner.errors import PlannerError
from planner.search.plan_types import SCHEMA_VERSION

MAX_PLAN_BYTES = 256 * 1024 * 1024  # a plan is kilobytes to a few megabytes; anything bigger is not one


class PlanFileError(PlannerError):
    """A plan JSON that is missing, unreadable, not JSON, or not a plan this planner can read."""


def schema_text() -> str:
    """The published JSON Schema of the plan document (package data, so it ships with the wheel)."""
    return resources.files("planner").joinpath("schema/plan.schema.json").read_text(encoding="utf-8")


def _require(cond: bool, path: Path | str, what: str) -> None:
    if not cond:
        raise PlanFileError(f"{path}: not a plan this planner can read: {what}")


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def check_candidate(c: Any, path: Path | str, where: str) -> None:
    """The keys a comparison reads from one configuration; numbers may be null (infinite or unknown)."""
    _require(isinstance(c, dict), path, f"{where} is not an object")
    _require(isinstance(c.get("target"), str) and c["target"], path, f"{where}.target is missing")
    _require(isinstance(c.get("batch"), int) and not isinstance(c.get("batch"), bool), path,
             f"{where}.batch is not an integer")
    for key in ("latency_ms", "throughput_per_s", "peak_memory_bytes", "cost_per_million_usd"):
        _require(c.get(key) is None or _is_num(c.get(key)), path, f"{where}.{key} is not a number")
    _require(_is_num(c.get("latency_ms")), path, f"{where}.latency_ms is missing")
    for key in ("kernels", "all_kernels"):
        ks = c.get(key, [])
        _require(isinstance(ks, list) and all(isinstance(k, dict) for k in ks), path,
                 f"{where}.{key} is not a list of kernels")
    _require(isinstance(c.get("time_by_op_type_ms", {}), dict), path, f"{where}.time_by_op_type_ms is not an object")


def read_plan(path: str | os.PathLike, role: str = "plan") -> dict[str, Any]:
    """Load and sanity-check a plan document; `role` ("baseline", ...) names the file in error messages."""
    p = Path(path)
    if not p.exists():
        raise PlanFileError(f"{role} {p}: no such file (write one with: plan MODEL --target T --out {p})")
    if p.is_dir():
        raise PlanFileError(f"{role} {p}: is a directory, not a plan JSON file")
    try:
        size = p.stat().st_size
        if size > MAX_PLAN_BYTES:
            raise PlanFileError(f"{role} {p}: {size:,} bytes is too large to be a plan JSON file")
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise PlanFileError(f"{role} {p}: not a text file (a plan is JSON)") from None
    except OSError as e:
        raise PlanFileError(f"{role} {p}: cannot read: {e.strerror or e}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise PlanFileError(f"{role} {p}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    except RecursionError:
        raise PlanFileError(f"{role} {p}: JSON nested too deeply to be a plan") from None
    name = f"{role} {p}"
    _require(isinstance(doc, dict), name, "the top level is not an object")
    version = doc.get("schema_version")
    _require(version is not None, name, "no schema_version (was it written by 'plan --json' / '--out'?)")
    _require(isinstance(version, int) and not isinstance(version, bool), name, "schema_version is not an integer")
    if version > SCHEMA_VERSION:
        raise PlanFileError(f"{name}: schema_version {version} was written by a newer onnx-planner; "
                            f"this one reads up to {SCHEMA_VERSION} (upgrade onnx-planner)")
    _require(version >= 1, name, f"schema_version {version} is not a known version")
    model = doc.get("model")
    _require(isinstance(model, dict), name, "'model' is missing")
    _require(isinstance(model.get("dims", {}), dict)
             and all(isinstance(v, int) and not isinstance(v, bool) for v in model.get("dims", {}).values()),
             name, "model.dims is not an object of integers")
    _require("chosen" in doc, name, "'chosen' is missing")
    if doc["chosen"] is not None:
        check_candidate(doc["chosen"], name, "chosen")
    cands = doc.get("candidates", [])
    _require(isinstance(cands, list), name, "'candidates' is not a list")
    for i, c in enumerate(cands):
        check_candidate(c, name, f"candidates[{i}]")
    best = doc.get("best_per_target", {})
    _require(isinstance(best, dict), name, "'best_per_target' is not an object")
    for target, c in best.items():
        check_candidate(c, name, f"best_per_target.{target}")
    cons = doc.get("constraints", {})
    _require(cons is None or isinstance(cons, dict), name, "'constraints' is not an object")
    return doc
