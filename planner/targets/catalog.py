"""Reads hardware target files into validated `Target`s and resolves the names users type.

A target file is data someone dropped in a folder, so every number is checked on load: a roofline fed a
negative bandwidth or a sparse peak silently produces a plan that looks right and is not. Each number must
say where it came from (`source`), and may say it is `derived` or `unconfirmed`; both land in the Target's
`sources` / `caveats` so a report can show how much to trust a prediction. Errors are one line, naming the
file and the field, because the CLI prints them as they are.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]

from hwtargets import bundled_files
from planner.errors import TargetFileError, UnknownTargetError
from planner.targets.host import detect_host
from planner.targets.runtime import DEFAULT_GPU_PROFILE, get_profile
from planner.targets.target import MATRIX_DTYPES, Target

KINDS = ("gpu", "cpu", "accelerator")
RUNTIMES = ("onnxruntime-cuda", "onnxruntime-rocm", "onnxruntime-cpu", "neuron", "xla")
GPU_RUNTIMES = ("onnxruntime-cuda", "onnxruntime-rocm")
HOST = "host"
ALL = "all"

# Names are typed on a command line and split on commas, so keep them to a plain alphabet.
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_NUMBER_KEYS = frozenset({"value", "source", "derived", "unconfirmed"})

# section -> allowed keys; anything else is most likely a typo that would otherwise be silently ignored.
_SECTIONS: dict[str, frozenset[str]] = {
    "vector": frozenset({"fp32_flops_per_s", "compute_units"}),
    "memory": frozenset({"capacity_bytes", "bandwidth_bytes_per_s", "cache_bytes"}),
    "efficiency": frozenset({"compute", "memory", "launch_overhead_s", "workspace_bytes"}),
    "interconnect": frozenset({"description", "bytes_per_s", "max_devices", "hop_latency_s"}),
    "price": frozenset({"usd_per_hour", "instance", "region", "date"}),
    "runtime": frozenset({"name", "fuse_epilogue", "fuse_elementwise", "fp32_matmul_peak"}),
}
_TOP_LEVEL = frozenset({"name", "full_name", "kind", "matrix_peak_flops_per_s", *_SECTIONS})


class _Reader:
    """Pulls typed values out of one parsed file and records where each number came from."""

    def __init__(self, path: Path, data: Mapping[str, Any]) -> None:
        self.path = path
        self.data = data
        self.sources: dict[str, str] = {}
        self.caveats: dict[str, str] = {}

    def fail(self, problem: str) -> NoReturn:
        message = f"{self.path}: {problem}"
        raise TargetFileError(" ".join(message.split()))

    def section(self, name: str, *, required: bool) -> Mapping[str, Any]:
        table = self.data.get(name)
        if table is None:
            if required:
                self.fail(f"missing required section [{name}]")
            return {}
        if not isinstance(table, Mapping):
            self.fail(f"[{name}] must be a table")
        allowed = _SECTIONS.get(name)
        if allowed is not None:
            unknown = sorted(set(table) - allowed)
            if unknown:
                self.fail(f"unknown key [{name}] {unknown[0]} (allowed: {', '.join(sorted(allowed))})")
        return table

    def string(self, table: Mapping[str, Any], key: str, where: str, *, required: bool,
               default: str = "") -> str:
        value = table.get(key)
        if value is None:
            if required:
                self.fail(f"missing required field {where}")
            return default
        if not isinstance(value, str) or not value.strip():
            self.fail(f"{where} must be a non-empty string")
        return value.strip()

    def boolean(self, table: Mapping[str, Any], key: str, where: str, default: bool) -> bool:
        value = table.get(key, default)
        if not isinstance(value, bool):
            self.fail(f"{where} must be true or false, got {value!r}")
        return value

    def number(self, table: Mapping[str, Any], key: str, where: str, field: str, *, required: bool,
               at_most: float | None = None, integer: bool = False) -> float | None:
        """A `{ value, source, derived?, unconfirmed? }` table; the source is what makes a number usable."""
        entry = table.get(key)
        if entry is None:
            if required:
                self.fail(f"missing required field {where}")
            return None
        if not isinstance(entry, Mapping):
            self.fail(f"{where} must be a table {{ value = ..., source = \"...\" }}, got {entry!r}")
        unknown = sorted(set(entry) - _NUMBER_KEYS)
        if unknown:
            self.fail(f"{where} has unknown key {unknown[0]!r} (allowed: {', '.join(sorted(_NUMBER_KEYS))})")
        if "value" not in entry:
            self.fail(f"{where} has no value")
        value = entry["value"]
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(f"{where} value must be a number, got {value!r}")
        if not math.isfinite(value) or value <= 0:
            self.fail(f"{where} value must be a positive number, got {value!r}")
        if at_most is not None and value > at_most:
            self.fail(f"{where} value must be in (0, {at_most:g}], got {value!r}")
        if integer and not float(value).is_integer():
            self.fail(f"{where} value must be a whole number, got {value!r}")
        source = entry.get("source")
        if not isinstance(source, str) or not source.strip():
            self.fail(f"{where} has no source (every number needs a non-empty source = \"...\")")
        self.sources[field] = source.strip()
        notes = []
        for flag in ("derived", "unconfirmed"):
            if flag in entry:
                text = entry[flag]
                if not isinstance(text, str) or not text.strip():
                    self.fail(f"{where} {flag} must be a non-empty string saying why")
                notes.append(f"{flag}: {text.strip()}")
        if notes:
            self.caveats[field] = "; ".join(notes)
        return value


def load_target_file(path: str | Path) -> Target:
    """Parse and validate one target file; any problem is a TargetFileError naming the file and field."""
    path = Path(path)
    r = _Reader(path, {})
    r.data = data = _read_toml(r, path)
    unknown = sorted(set(data) - _TOP_LEVEL)
    if unknown:
        r.fail(f"unknown top-level key {unknown[0]!r}")
    name, full_name, kind = _identity(r, data)
    matrix = _matrix_peaks(r, data)
    vector = r.section("vector", required=True)
    memory = r.section("memory", required=True)
    eff = r.section("efficiency", required=True)
    link = r.section("interconnect", required=False)
    price = r.section("price", required=False)
    runtime = r.section("runtime", required=True)

    def num(table: Mapping[str, Any], section: str, key: str, field: str, **kw: Any) -> float | None:
        return r.number(table, key, f"[{section}] {key}", field, **kw)

    vector_fp32 = num(vector, "vector", "fp32_flops_per_s", "vector.fp32", required=True)
    units = num(vector, "vector", "compute_units", "vector.compute_units", required=False, integer=True)
    capacity = num(memory, "memory", "capacity_bytes", "memory.capacity", required=True)
    bandwidth = num(memory, "memory", "bandwidth_bytes_per_s", "memory.bandwidth", required=True)
    cache = num(memory, "memory", "cache_bytes", "memory.cache", required=False)
    compute_eff = num(eff, "efficiency", "compute", "efficiency.compute", required=True, at_most=1.0)
    memory_eff = num(eff, "efficiency", "memory", "efficiency.memory", required=True, at_most=1.0)
    launch = num(eff, "efficiency", "launch_overhead_s", "efficiency.launch_overhead", required=True)
    workspace = num(eff, "efficiency", "workspace_bytes", "efficiency.workspace", required=True)
    link_text, link_bw, max_devices = _interconnect(r, link)
    hop = num(link, "interconnect", "hop_latency_s", "interconnect.hop_latency", required=False)
    usd, instance = _price(r, price)
    runtime_name, fp32_peak = _runtime(r, runtime)
    target = Target(
        name=name,
        full_name=full_name,
        kind=kind,
        matrix_flops_per_s=matrix,
        vector_flops_per_s=float(vector_fp32),
        mem_bw_bytes_per_s=float(bandwidth),
        mem_capacity_bytes=float(capacity),
        compute_efficiency=float(compute_eff),
        memory_efficiency=float(memory_eff),
        launch_overhead_s=float(launch),
        workspace_bytes=float(workspace),
        price_usd_per_hour=None if usd is None else float(usd),
        price_instance=instance,
        runtime=runtime_name,
        fuse_epilogue=r.boolean(runtime, "fuse_epilogue", "[runtime] fuse_epilogue", True),
        fuse_elementwise=r.boolean(runtime, "fuse_elementwise", "[runtime] fuse_elementwise", False),
        fp32_matmul_peak=fp32_peak,
        cache_bytes=None if cache is None else float(cache),
        compute_units=None if units is None else int(units),
        interconnect=link_text,
        interconnect_bytes_per_s=None if link_bw is None else float(link_bw),
        max_devices=1 if max_devices is None else int(max_devices),
        **({} if hop is None else {"hop_latency_s": float(hop)}),
        sources=r.sources,
        caveats=r.caveats,
        path=str(path),
    )
    if runtime_name in GPU_RUNTIMES:  # what the default GPU engine adds (its fusion switches are the file's)
        profile = get_profile(DEFAULT_GPU_PROFILE)
        target = replace(target, runtime_profile=profile.name, cuda_graphs=profile.cuda_graphs,
                         dequant_flops_per_weight=dict(profile.dequant_flops_per_weight))
    return target


def _read_toml(r: _Reader, path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except OSError as e:
        r.fail(f"cannot read target file ({e.strerror or e})")
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        r.fail(f"invalid TOML ({e})")


def _identity(r: _Reader, data: Mapping[str, Any]) -> tuple[str, str, str]:
    """(name, full_name, kind), each checked."""
    name = r.string(data, "name", "name", required=True)
    if not _NAME_RE.match(name) or name in (HOST, ALL):
        r.fail(f"name {name!r} must be lower-case letters, digits, '.', '_' or '-' and not "
               f"'{HOST}' or '{ALL}'")
    full_name = r.string(data, "full_name", "full_name", required=True)
    kind = r.string(data, "kind", "kind", required=True)
    if kind not in KINDS:
        r.fail(f"unknown kind {kind!r} (known: {', '.join(KINDS)})")
    return name, full_name, kind


def _matrix_peaks(r: _Reader, data: Mapping[str, Any]) -> dict[str, float]:
    """[matrix_peak_flops_per_s]: at least one dense peak, every key a known precision."""
    matrix_table = data.get("matrix_peak_flops_per_s")
    if not isinstance(matrix_table, Mapping) or not matrix_table:
        r.fail("missing required section [matrix_peak_flops_per_s] (at least one dense peak)")
    matrix: dict[str, float] = {}
    for dtype in matrix_table:
        if dtype not in MATRIX_DTYPES:
            r.fail(f"unknown matrix dtype {dtype!r} in [matrix_peak_flops_per_s] "
                   f"(known: {', '.join(MATRIX_DTYPES)})")
        matrix[dtype] = float(r.number(matrix_table, dtype, f"[matrix_peak_flops_per_s] {dtype}",
                                       f"matrix.{dtype}", required=True))
    return matrix


def _interconnect(r: _Reader, link: Mapping[str, Any]) -> tuple[str, float | None, float | None]:
    """(description, bytes/s per device and direction, devices per node)."""
    link_text = r.string(link, "description", "[interconnect] description", required=False)
    link_bw = r.number(link, "bytes_per_s", "[interconnect] bytes_per_s", "interconnect.bandwidth", required=False)
    # A device count is configuration rather than a measurement, so a bare integer is accepted too.
    max_devices = link.get("max_devices")
    if not isinstance(max_devices, int) or isinstance(max_devices, bool):
        max_devices = r.number(link, "max_devices", "[interconnect] max_devices", "interconnect.max_devices",
                               required=False, integer=True)
    elif max_devices < 1:
        r.fail(f"[interconnect] max_devices must be a positive whole number, got {max_devices!r}")
    return link_text, link_bw, max_devices


def _price(r: _Reader, price: Mapping[str, Any]) -> tuple[float | None, str]:
    """(USD per hour, instance); the region and date join the price's source."""
    usd = r.number(price, "usd_per_hour", "[price] usd_per_hour", "price", required=bool(price))
    instance = r.string(price, "instance", "[price] instance", required=False)
    when = ", ".join(x for x in (r.string(price, "region", "[price] region", required=False),
                                  r.string(price, "date", "[price] date", required=False)) if x)
    if usd is not None and when:
        r.sources["price"] = f"{r.sources['price']} ({when})"
    return usd, instance


def _runtime(r: _Reader, runtime: Mapping[str, Any]) -> tuple[str, str]:
    """(runtime name, the peak an fp32 GEMM runs at)."""
    runtime_name = r.string(runtime, "name", "[runtime] name", required=True)
    if runtime_name not in RUNTIMES:
        r.fail(f"unknown runtime {runtime_name!r} (known: {', '.join(RUNTIMES)})")
    fp32_peak = r.string(runtime, "fp32_matmul_peak", "[runtime] fp32_matmul_peak", required=False,
                         default="fp32")
    if fp32_peak not in MATRIX_DTYPES:
        r.fail(f"[runtime] fp32_matmul_peak {fp32_peak!r} is not a matrix dtype "
               f"(known: {', '.join(MATRIX_DTYPES)})")
    return runtime_name, fp32_peak


@functools.cache
def _bundled() -> dict[str, Target]:
    targets: dict[str, Target] = {}
    for path in bundled_files():
        target = load_target_file(path)
        if target.name in targets:
            raise TargetFileError(f"{path}: target name {target.name!r} is also used by "
                                  f"{targets[target.name].path}")
        targets[target.name] = target
    return targets


def bundled_targets() -> dict[str, Target]:
    """Parsed once per process (the files do not change under us); a copy so callers can't alter the cache."""
    return dict(_bundled())


def _with_extra(extra: Sequence[Target]) -> dict[str, Target]:
    """Bundled targets with the --target-file ones laid over them, so a user can correct a bundled number."""
    targets = bundled_targets()
    for target in extra:
        targets[target.name] = target
    return targets


def known_target_names(extra: Sequence[Target] = ()) -> list[str]:
    """Everything get_target accepts, for error messages and --help."""
    return sorted(set(_with_extra(extra)) | {HOST})


def get_target(name: str, extra: Sequence[Target] = (), host: Callable[[], Target] = detect_host) -> Target:
    """Look a name up; an unknown name lists the known ones so the user can fix a typo without the docs.

    `host` makes the host target, probed only when asked for (planner.calibration.host passes one that applies
    this machine's calibration)."""
    key = name.strip().lower()
    if key == HOST:
        return host()
    targets = _with_extra(extra)
    if key not in targets:
        raise UnknownTargetError(f"unknown target {name.strip()!r}; known targets: "
                                 f"{', '.join(known_target_names(extra))} (or add one with --target-file)")
    return targets[key]


def resolve_targets(spec: str, target_files: Sequence[str] = (), host: Callable[[], Target] = detect_host
                    ) -> list[Target]:
    """Turn `--target a10g,t4` / `all` plus `--target-file`s into targets, in the order the user wrote them.

    "all" means every bundled and file-given target but not "host": host has no real price, so ranking it
    against priced targets by cost would mislead. Ask for it by name.
    """
    extra = [load_target_file(p) for p in target_files]
    names = [part.strip().lower() for part in spec.split(",") if part.strip()]
    if not names:
        raise UnknownTargetError(f"no target given; known targets: {', '.join(known_target_names(extra))}")
    resolved: dict[str, Target] = {}
    for name in names:
        if name == ALL:
            for target_name, target in sorted(_with_extra(extra).items()):
                resolved.setdefault(target_name, target)
        elif name not in resolved:
            resolved[name] = get_target(name, extra, host)
    return list(resolved.values())
