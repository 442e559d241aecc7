"""The machine the planner runs on, as a `Target` with nominal ceilings.

`host` is the one target we can measure, so its numbers here are only a starting point: the formula-level
peaks from hwtargets-reference.md section 3 applied to what the OS tells us, until calibration replaces
them. Every probe degrades to a stated default rather than raising, because the planner must still run in
a container without /proc or /sys, on macOS, or on an Arm box whose cpuinfo looks nothing like x86's.
"""

from __future__ import annotations

import functools
import math
import os
import platform
import re
from pathlib import Path

from planner.targets.target import Target

_DEFAULT_CLOCK_HZ = 2.5e9
_BW_PER_CORE_BYTES_PER_S = 10e9  # nominal: a DDR4/DDR5 core streams roughly this; calibration replaces it
_BW_CAP_BYTES_PER_S = 100e9  # nominal: a few channels' worth; a single process rarely sees a socket's peak
_DEFAULT_MEMORY_BYTES = 8 * 2**30
_WORKSPACE_BYTES = 64 * 2**20
# [S-NABLE] in docs/hwtargets-reference.md: c7i.xlarge on-demand, us-east-1, 4 vCPU.
_C7I_XLARGE_USD_PER_HOUR = 0.1785
_C7I_XLARGE_VCPUS = 4
_NOMINAL = "nominal until calibrated"


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(errors="replace")
    except (OSError, ValueError):
        return None


def _cpuinfo() -> list[dict[str, str]]:
    """/proc/cpuinfo as one dict per block; [] where it does not exist."""
    text = _read("/proc/cpuinfo") or ""
    blocks: list[dict[str, str]] = []
    for chunk in text.split("\n\n"):
        block = {}
        for line in chunk.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                block[key.strip().lower()] = value.strip()
        if block:
            blocks.append(block)
    return blocks


def _usable_cpus() -> list[int]:
    """The CPUs this process may run on: ORT sizes its thread pool from these, not from the whole box."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def _cgroup_cpu_limit() -> int | None:
    """A container's CPU quota (cgroup v2 cpu.max) throttles below the affinity mask; None when unlimited."""
    text = _read("/sys/fs/cgroup/cpu.max")
    if not text:
        return None
    parts = text.split()
    try:
        if len(parts) == 2 and parts[0] != "max":
            return max(1, math.ceil(int(parts[0]) / int(parts[1])))
    except (ValueError, ZeroDivisionError):
        return None
    return None


def _physical_cores(cpus: list[int], cpuinfo: list[dict[str, str]]) -> int:
    """Hyperthreads share FMA units, so peak FLOP/s scales with cores, not logical CPUs."""
    groups = set()
    for cpu in cpus:
        siblings = _read(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list")
        if siblings is None:
            groups = set()
            break
        groups.add(siblings.strip())
    if groups:
        return len(groups)
    wanted = set(cpus)
    pairs = set()
    for block in cpuinfo:
        try:
            if int(block["processor"]) in wanted and "core id" in block:
                pairs.add((block.get("physical id", "0"), block["core id"]))
        except (KeyError, ValueError):
            continue
    return len(pairs) if pairs else len(cpus)


def _model_name(cpuinfo: list[dict[str, str]]) -> str:
    for block in cpuinfo:
        for key in ("model name", "cpu model", "hardware"):
            if block.get(key):
                return block[key]
    return platform.processor() or platform.machine() or "unknown CPU"


def _flags(cpuinfo: list[dict[str, str]]) -> set[str]:
    for block in cpuinfo:
        text = block.get("flags") or block.get("features")
        if text:
            return set(text.split())
    return set()


def _clock_hz(cpuinfo: list[dict[str, str]]) -> tuple[float, str]:
    mhz = []
    for block in cpuinfo:
        try:
            mhz.append(float(block["cpu mhz"]))
        except (KeyError, ValueError):
            continue
    if mhz and max(mhz) > 0:
        return max(mhz) * 1e6, "/proc/cpuinfo 'cpu MHz' (current clock; sustained AVX-512 clocks are lower)"
    khz = _read("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    try:
        if khz and float(khz) > 0:
            return float(khz) * 1e3, "cpufreq cpuinfo_max_freq (max turbo; sustained clocks are lower)"
    except ValueError:
        pass
    return _DEFAULT_CLOCK_HZ, "default 2.5 GHz: no clock readable on this machine"


def _vector_isa(flags: set[str], machine: str) -> tuple[int, str]:
    """FP32 FLOP per cycle per core from the widest FMA the flags promise (reference section 3)."""
    if "avx512f" in flags:
        return 64, "AVX-512, 2 FMA units assumed (1-unit parts have half)"
    if "avx2" in flags and "fma" in flags:
        return 32, "AVX2 + FMA3, 2 x 256-bit FMA"
    if machine in ("aarch64", "arm64") and "sve" in flags:
        return 32, "SVE, 2 x 256-bit FMA pipes assumed (Graviton3 / Neoverse V1)"
    if machine in ("aarch64", "arm64") and "asimd" in flags:
        return 16, "NEON, 2 x 128-bit FMA pipes assumed"
    return 8, "no wide SIMD FMA detected"


def _memory_bytes() -> tuple[float, str]:
    total: float | None = None
    how = ""
    for line in (_read("/proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            try:
                total, how = float(line.split()[1]) * 1024, "/proc/meminfo MemTotal"
            except (IndexError, ValueError):
                pass
            break
    if total is None:
        try:
            total = float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
            how = "sysconf physical pages"
        except (AttributeError, ValueError, OSError):
            total, how = float(_DEFAULT_MEMORY_BYTES), "default 8 GiB: memory size not readable"
    limit = (_read("/sys/fs/cgroup/memory.max") or "").strip()
    if limit.isdigit() and 0 < int(limit) < total:
        total, how = float(limit), "cgroup memory.max (container limit)"
    return total, how


def _cache_levels() -> dict[int, float]:
    """Bytes of each cache level cpu0 sees (the largest where a level has several: data and instruction L1);
    empty where sysfs is absent."""
    sizes: dict[int, float] = {}
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    try:
        entries = sorted(base.glob("index*"))
    except OSError:
        return {}
    for entry in entries:
        match = re.fullmatch(r"(\d+)([KMG]?)", (_read(str(entry / "size")) or "").strip())
        level = (_read(str(entry / "level")) or "").strip()
        if match and level.isdigit():
            size = int(match.group(1)) * {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}[match.group(2)]
            sizes[int(level)] = float(max(size, sizes.get(int(level), 0)))
    return sizes


def _largest_cache_bytes() -> float | None:
    """Largest cache level cpu0 sees (the LLC, usually shared by many cores); None where sysfs is absent."""
    sizes = _cache_levels()
    return max(sizes.values()) if sizes else None


# The instruction-set extensions that change which kernels onnxruntime's MLAS picks (and so every rate a
# calibration measures): a cloud VM's model name ("AMD EPYC") is the same on a Zen 2 with AVX2 and a Zen 4
# with AVX-512 and VNNI, whose GEMMs differ by 2-4x.
KERNEL_FEATURES = ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx512_fp16",
                   "avx_vnni", "amx_tile", "amx_int8", "amx_bf16", "asimd", "asimddp", "asimdhp", "sve", "sve2",
                   "i8mm", "bf16")


def fingerprint_of(cpuinfo: list[dict[str, str]], logical: int, cache_bytes: float | None) -> str:
    """The model name, the CPU family/model numbers where the OS gives them, the logical CPUs, the kernel
    extensions (KERNEL_FEATURES) and the last-level cache: two machines that differ in any of them measure
    different rates, so a calibration of one must not serve the other."""
    first = cpuinfo[0] if cpuinfo else {}
    ids = " ".join(f"{k} {first[k]}" for k in ("cpu family", "model") if first.get(k))
    features = [f for f in KERNEL_FEATURES if f in _flags(cpuinfo)]
    parts = [f"{_model_name(cpuinfo)}" + (f" ({ids})" if ids else ""), f"{logical} logical CPUs",
             "+".join(features) or "no SIMD extensions listed"]
    if cache_bytes:
        parts.append(f"LLC {cache_bytes / 2**20:g} MiB")
    return " / ".join(parts)


def u8s8_saturates() -> bool:
    """Whether onnxruntime's int8 GEMM on this CPU can saturate: x86 without VNNI or AMX multiplies u8 x s8 with
    VPMADDUBSW, whose pairwise int16 sums clip (onnxruntime's quantization docs: on such CPUs try reduce_range
    or U8U8; VNNI has no saturation). On this AVX2 VM it took the BERT-like encoder's int8-dynamic output from
    cosine 0.9999 to 0.978 (reduce_range: 0.99991)."""
    flags = _flags(_cpuinfo())
    x86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "i386")
    return x86 and not flags & {"avx512_vnni", "avx_vnni", "amx_int8"}


def host_fingerprint() -> str:
    """Identifies the machine a calibration was measured on, so it is not applied to a different one."""
    return fingerprint_of(_cpuinfo(), len(_usable_cpus()), _largest_cache_bytes())


def detect_host() -> Target:
    """This machine with nominal peaks; never raises, whatever the OS exposes."""
    cpuinfo = _cpuinfo()
    machine = platform.machine().lower()
    cpus = _usable_cpus()
    logical = len(cpus)
    cores = _physical_cores(cpus, cpuinfo)
    caveats: dict[str, str] = {}
    quota = _cgroup_cpu_limit()
    if quota is not None and quota < logical:
        logical, cores = quota, min(cores, quota)
        caveats["cores"] = f"cgroup cpu.max limits this process to {quota} CPUs"

    flags = _flags(cpuinfo)
    clock, clock_how = _clock_hz(cpuinfo)
    per_cycle, isa = _vector_isa(flags, machine)
    fp32 = cores * clock * per_cycle
    base = f"{cores} cores x {clock / 1e9:.2f} GHz ({clock_how})"
    sources = {"matrix.fp32": f"{base} x {per_cycle} FLOP/cycle ({isa}); reference section 3",
               "vector.fp32": f"{base} x {per_cycle} FLOP/cycle ({isa}); reference section 3"}
    matrix, extras = _matrix_peaks(flags, cores, clock, fp32, base, sources)
    for key in matrix:
        caveats[f"matrix.{key}"] = f"{_NOMINAL}: formula peak at the reported clock"
    caveats["vector.fp32"] = caveats["matrix.fp32"]

    capacity, capacity_how = _memory_bytes()
    bandwidth = min(cores * _BW_PER_CORE_BYTES_PER_S, _BW_CAP_BYTES_PER_S)
    sources["memory.capacity"] = capacity_how
    sources["memory.bandwidth"] = "10 GB/s per physical core, capped at 100 GB/s"
    caveats["memory.bandwidth"] = f"{_NOMINAL}: not measured"
    levels = _cache_levels()
    cache = max(levels.values()) if levels else None
    if cache is not None:
        sources["memory.cache"] = "/sys/devices/system/cpu/cpu0/cache (largest level, shared)"
    if 2 in levels:
        sources["memory.core_cache"] = "/sys/devices/system/cpu/cpu0/cache (level 2)"

    _nominal_runtime(sources, caveats)

    isa_text = ", ".join([isa.split(",")[0], *extras])
    return Target(
        name="host",
        full_name=f"This machine: {_model_name(cpuinfo)} ({cores} cores / {logical} threads; {isa_text})",
        kind="cpu",
        matrix_flops_per_s=matrix,
        vector_flops_per_s=fp32,
        mem_bw_bytes_per_s=bandwidth,
        mem_capacity_bytes=capacity,
        compute_efficiency=0.5,
        memory_efficiency=0.7,
        launch_overhead_s=5e-6,
        workspace_bytes=float(_WORKSPACE_BYTES),
        price_usd_per_hour=_C7I_XLARGE_USD_PER_HOUR / _C7I_XLARGE_VCPUS * logical,
        price_instance=f"nominal: {logical} x c7i.xlarge vCPU price",
        runtime="onnxruntime-cpu",
        fuse_epilogue=True,
        fuse_elementwise=False,
        fp32_matmul_peak="fp32",
        cache_bytes=cache,
        core_cache_bytes=levels.get(2),
        interconnect="",
        interconnect_bytes_per_s=None,
        max_devices=1,
        sources=sources,
        caveats=caveats,
        path="",
    )


@functools.cache
def nchwc_block_size() -> int:
    """MLAS's NCHWc block (floats per channel block): 16 with AVX-512F, else 8. Read once: kernel_family asks
    for every blocked convolution."""

    return 16 if "avx512f" in _flags(_cpuinfo()) else 8


def _matrix_peaks(flags: set[str], cores: int, clock: float, fp32: float, base: str, sources: dict[str, str]
                  ) -> tuple[dict[str, float], list[str]]:
    """Matrix peaks per precision from the CPU's extensions (AMX, VNNI, BF16), with their sources; and the
    extensions' names for the target's full name."""
    matrix = {"fp32": fp32}
    extras = []
    if "amx_int8" in flags:
        matrix["int8"] = cores * clock * 2048
        sources["matrix.int8"] = f"{base} x 2048 INT8 op/cycle (AMX) [C-AMX]"
        extras.append("AMX-INT8")
    elif flags & {"avx512_vnni", "avx_vnni", "asimddp"}:
        matrix["int8"] = 4 * fp32
        sources["matrix.int8"] = "4x the fp32 rate per cycle (VNNI / dot-product int8)"
        extras.append("VNNI")
    elif flags & {"avx2", "avx512bw"}:
        # without VNNI, MLAS multiplies u8 x s8 with VPMADDUBSW: 32 byte products per 256-bit instruction where
        # an fp32 FMA does 8, but two more instructions widen and add them; measured on an AVX2 EPYC (Zen 3),
        # MatMulInteger 256x1024x1024 ran at 187 G op/s against 96 G FLOP/s for the fp32 MatMul
        matrix["int8"] = 2 * fp32
        sources["matrix.int8"] = "2x the fp32 rate per cycle (u8 x s8 through VPMADDUBSW, no VNNI)"
    if "amx_bf16" in flags:
        matrix["bf16"] = cores * clock * 1024
        sources["matrix.bf16"] = f"{base} x 1024 BF16 FLOP/cycle (AMX) [C-AMX]"
        extras.append("AMX-BF16")
    elif "avx512_bf16" in flags:
        matrix["bf16"] = 2 * fp32
        sources["matrix.bf16"] = "2x the fp32 rate per cycle (AVX512-BF16 dot products)"
        extras.append("AVX512-BF16")
    if "avx512_fp16" in flags:
        extras.append("AVX512-FP16 (not modelled)")
    return matrix, extras


def _nominal_runtime(sources: dict[str, str], caveats: dict[str, str]) -> None:
    """Efficiencies, launch, workspace and price: nominal until `plan calibrate`, and said so."""
    sources["efficiency.compute"] = sources["efficiency.memory"] = "nominal default"
    sources["efficiency.launch_overhead"] = "nominal: ORT CPU per-node dispatch"
    sources["efficiency.workspace"] = "nominal: ORT CPU arena and thread pool"
    for key in ("efficiency.compute", "efficiency.memory", "efficiency.launch_overhead"):
        caveats[key] = _NOMINAL
    sources["price"] = "[S-NABLE] c7i.xlarge $0.1785/h us-east-1, per vCPU x logical CPUs"
    caveats["price"] = "nominal: c7i.xlarge price per vCPU; host has no real price"
