"""Runtime profiles: what a GPU run costs depends on the engine as much as on the chip.

The same A100 runs BERT-base in 0.6 ms under TensorRT and in several ms from a Python framework; a 7B decoder
at 1,400 GB/s from a compiled engine and host-bound from eager PyTorch. A profile is data (one TOML file per
profile in hwtargets/runtimes/, every number with its source, like the target files) saying what the engine
changes: which kernels fuse, whether kernels replay as a CUDA graph, the host's dispatch cost per kernel (a step
takes at least that long, however fast the GPU), the fraction of the target's stream bandwidth and GEMM peak its
kernels reach, and the dequantization work of weight-only int4/int8 kernels. `apply_profile` returns the target
as that engine runs it; a plan states the profile it used.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]

from hwtargets import RUNTIME_DIR
from planner.errors import PlannerError, TargetFileError
from planner.targets.target import CUDA_GRAPHS, Target

DEFAULT_GPU_PROFILE = "ort-cuda"
# [M-LAUNCH-OCANNL] github.com/ahrefs/ocannl/issues/488 (hwtargets-reference.md): "graph ~15 us + 0.58 us/node".
GRAPH_LAUNCH_S = 15e-6
GRAPH_PER_KERNEL_S = 0.58e-6
_TOP = frozenset({"name", "description", "kinds", "fuse_epilogue", "fuse_elementwise", "cuda_graphs", "overheads",
                  "efficiency", "weight_only"})
_NUMBERS = {"overheads": ("host_per_kernel_s",), "efficiency": ("memory_scale", "compute_scale"),
            "weight_only": ("int4_dequant_flops_per_weight", "int8_dequant_flops_per_weight")}


@dataclass(frozen=True)
class RuntimeProfile:
    name: str
    description: str
    kinds: tuple[str, ...]
    fuse_epilogue: bool
    fuse_elementwise: bool
    cuda_graphs: str  # "none", "decode" (decoder steps replay a captured graph) or "all"
    host_per_kernel_s: float
    memory_scale: float  # fraction of the target's (stream) memory efficiency its kernels reach
    compute_scale: float
    dequant_flops_per_weight: Mapping[int, float]  # bits -> vector FLOP-equivalents to dequantize one weight
    sources: Mapping[str, str]
    path: str = ""


def _fail(path: Path, problem: str) -> TargetFileError:
    return TargetFileError(f"{path}: {problem}")


def load_profile_file(path: str | Path) -> RuntimeProfile:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise _fail(path, f"cannot read runtime profile: {e}") from None
    unknown = sorted(set(data) - _TOP)
    if unknown:
        raise _fail(path, f"unknown key {unknown[0]}")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise _fail(path, "missing name")
    graphs = data.get("cuda_graphs", "none")
    if graphs not in CUDA_GRAPHS:
        raise _fail(path, f"cuda_graphs {graphs!r} is not one of {', '.join(CUDA_GRAPHS)}")
    numbers: dict[str, float] = {}
    sources: dict[str, str] = {}
    for section, keys in _NUMBERS.items():
        table = data.get(section, {})
        for key in keys:
            entry: Any = table.get(key)
            if not isinstance(entry, Mapping) or not isinstance(entry.get("value"), int | float) \
                    or not isinstance(entry.get("source"), str):
                raise _fail(path, f"[{section}] {key} must be {{ value = <number>, source = \"...\" }}")
            value = float(entry["value"])
            if value < 0 or (section == "efficiency" and not 0 < value <= 1):
                raise _fail(path, f"[{section}] {key} = {value:g} is out of range")
            numbers[key], sources[key] = value, entry["source"]
    return RuntimeProfile(
        name=name, description=str(data.get("description", "")), kinds=tuple(data.get("kinds", ("gpu",))),
        fuse_epilogue=bool(data.get("fuse_epilogue", True)), fuse_elementwise=bool(data.get("fuse_elementwise", False)),
        cuda_graphs=graphs, host_per_kernel_s=numbers["host_per_kernel_s"], memory_scale=numbers["memory_scale"],
        compute_scale=numbers["compute_scale"],
        dequant_flops_per_weight={4: numbers["int4_dequant_flops_per_weight"],
                                  8: numbers["int8_dequant_flops_per_weight"]},
        sources=sources, path=str(path))


@functools.cache
def bundled_profiles() -> dict[str, RuntimeProfile]:
    out = {}
    for p in sorted(Path(RUNTIME_DIR).glob("*.toml")):
        prof = load_profile_file(p)
        out[prof.name] = prof
    return out


def get_profile(name: str) -> RuntimeProfile:
    profiles = bundled_profiles()
    if name not in profiles:
        raise PlannerError(f"--runtime {name}: unknown runtime profile (known: {', '.join(sorted(profiles))})")
    return profiles[name]


def apply_profile(target: Target, profile: RuntimeProfile) -> Target:
    """The target as `profile` runs it. Only GPU targets take a GPU engine's profile; others are returned as
    they are (a CPU target's runtime is onnxruntime's CPU EP, calibrated on `host`)."""
    if target.kind not in profile.kinds:
        return target
    replayed = profile.cuda_graphs == "all"  # every run one graph: a kernel costs its replay, the run one launch
    return replace(
        target, runtime_profile=profile.name,
        launch_overhead_s=GRAPH_PER_KERNEL_S if replayed else target.launch_overhead_s,
        run_overhead_s=target.run_overhead_s + (GRAPH_LAUNCH_S if replayed else 0.0),
        fuse_epilogue=profile.fuse_epilogue, fuse_elementwise=profile.fuse_elementwise, cuda_graphs=profile.cuda_graphs,
        host_per_kernel_s=profile.host_per_kernel_s,
        memory_efficiency=target.memory_efficiency * profile.memory_scale,
        compute_efficiency=target.compute_efficiency * profile.compute_scale,
        dequant_flops_per_weight=dict(profile.dequant_flops_per_weight))
