"""Target files load, validate and carry the spec-sheet numbers of docs/hwtargets-reference.md.

Hand-checked numbers are the ones a roofline is most sensitive to and easiest to get wrong (dense vs sparse,
GB vs GiB, instance vs per-GPU price). Every broken-file case must fail with one line naming the file.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hwtargets import TARGET_DIR, bundled_files
from planner.calibration.host import get_target, resolve_targets
from planner.errors import TargetFileError, UnknownTargetError
from planner.targets.catalog import bundled_targets, known_target_names, load_target_file
from planner.targets.host import detect_host, host_fingerprint
from planner.targets.target import MATRIX_DTYPES, Target

EXPECTED = {
    "a10g", "t4", "l4", "l40", "l40s", "a10", "a100-40gb", "a100-80gb", "a100-pcie-80gb", "h100-sxm", "h100-pcie",
    "h200", "b200",
    "mi300x", "inf2", "tpu-v5e", "c7i-xlarge", "c7i-2xlarge", "c7g-xlarge",
}

# Every number a GPU file must give, by its key in Target.sources.
GPU_REQUIRED_SOURCES = {
    "vector.fp32", "memory.capacity", "memory.bandwidth", "efficiency.compute", "efficiency.memory",
    "efficiency.launch_overhead", "efficiency.workspace", "price",
}

GOOD = """\
name = "toy"
full_name = "Toy accelerator"
kind = "gpu"
[matrix_peak_flops_per_s]
fp16 = { value = 100e12, source = "test" }
[vector]
fp32_flops_per_s = { value = 10e12, source = "test" }
[memory]
capacity_bytes = { value = 16e9, source = "test" }
bandwidth_bytes_per_s = { value = 500e9, source = "test" }
[efficiency]
compute = { value = 0.8, source = "test" }
memory = { value = 0.9, source = "test" }
launch_overhead_s = { value = 5e-6, source = "test" }
workspace_bytes = { value = 1e8, source = "test" }
[price]
usd_per_hour = { value = 1.0, source = "test" }
[runtime]
name = "onnxruntime-cuda"
"""


def write(tmp_path: Path, text: str, name: str = "toy.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- bundled files ---------------------------------------------------------------------------------------


def test_every_expected_target_is_bundled() -> None:
    assert {p.stem for p in bundled_files()} == EXPECTED
    assert all(p.parent == TARGET_DIR for p in bundled_files())


@pytest.mark.parametrize("path", bundled_files(), ids=lambda p: p.stem)
def test_bundled_file_loads_and_validates(path: Path) -> None:
    target = load_target_file(path)
    assert target.name == path.stem
    assert target.path == str(path)
    assert target.matrix_flops_per_s and set(target.matrix_flops_per_s) <= set(MATRIX_DTYPES)
    for key, peak in target.matrix_flops_per_s.items():
        assert peak > 0
        assert target.sources[f"matrix.{key}"].strip()
    assert 0 < target.compute_efficiency <= 1 and 0 < target.memory_efficiency <= 1
    assert target.price_usd_per_hour is not None and target.price_usd_per_hour > 0
    assert target.max_devices >= 1
    assert target.fp32_matmul_peak in MATRIX_DTYPES
    assert all(text.startswith(("derived", "unconfirmed")) for text in target.caveats.values())


@pytest.mark.parametrize("target", [t for t in bundled_targets().values() if t.kind == "gpu"],
                         ids=lambda t: t.name)
def test_every_gpu_number_has_a_source(target: Target) -> None:
    numbered = GPU_REQUIRED_SOURCES | {f"matrix.{k}" for k in target.matrix_flops_per_s}
    if target.cache_bytes is not None:
        numbered.add("memory.cache")
    if target.interconnect_bytes_per_s is not None:
        numbered.add("interconnect.bandwidth")
    assert numbered <= set(target.sources)
    assert all(target.sources[key].strip() for key in numbered)


def test_a10g_matches_the_reference() -> None:
    a10g = get_target("a10g")
    assert a10g.matrix_flops_per_s["fp16"] == 70e12
    assert a10g.mem_bw_bytes_per_s == 600e9
    assert a10g.mem_capacity_bytes == 24e9
    assert a10g.price_usd_per_hour == 1.006
    assert "g5.xlarge" in a10g.price_instance
    assert a10g.interconnect_bytes_per_s == 32e9  # 64 GB/s bidirectional, one direction
    assert "derived" in a10g.caveats["matrix.int8"]  # 140 TOPS is 2x FP16, not a datasheet figure


def test_h100_sxm_peaks_are_dense_not_sparse() -> None:
    h100 = get_target("h100-sxm")
    sparse_fp16 = 1979e12
    assert h100.matrix_flops_per_s["fp16"] == 989.5e12 == sparse_fp16 / 2
    assert h100.matrix_flops_per_s["fp8"] == 1979e12
    assert h100.mem_bw_bytes_per_s == 3350e9
    assert h100.price_usd_per_hour == 6.88  # p5.48xlarge $55.04 / 8
    assert h100.max_devices == 8
    assert "int4" not in h100.matrix_flops_per_s


def test_spot_values_from_the_reference() -> None:
    t4 = get_target("t4")
    assert "bf16" not in t4.matrix_flops_per_s and "tf32" not in t4.matrix_flops_per_s
    assert t4.matrix_flops_per_s["fp16"] == 65e12
    assert get_target("l4").matrix_flops_per_s["fp16"] == 121e12  # 242 "with sparsity", halved
    assert get_target("mi300x").matrix_flops_per_s["bf16"] == 1307.4e12  # not the sparse 2,614.9
    assert get_target("b200").matrix_flops_per_s["fp8"] == 4500e12
    assert get_target("inf2").mem_capacity_bytes == 32 * 2**30
    assert get_target("c7i-xlarge").matrix_flops_per_s["fp32"] == pytest.approx(2 * 3.2e9 * 64)
    assert get_target("c7g-xlarge").matrix_flops_per_s["fp32"] == pytest.approx(4 * 2.6e9 * 32)
    assert "unconfirmed" in get_target("c7i-xlarge").caveats["memory.bandwidth"]


# --- Target.matrix_peak fallback --------------------------------------------------------------------------


def test_int4_falls_back_to_int8_where_hardware_lacks_it() -> None:
    assert get_target("h100-sxm").matrix_peak("int4") == (1979e12, "int8")


def test_fp32_gemm_runs_at_tf32_where_the_runtime_allows_it() -> None:
    a10g = get_target("a10g")
    assert a10g.fp32_matmul_peak == "tf32"
    assert a10g.matrix_peak("float32") == (35e12, "tf32")
    assert get_target("a100-40gb").matrix_peak("float32") == (156e12, "tf32")


def test_fp32_gemm_on_turing_uses_the_cuda_cores() -> None:
    t4 = get_target("t4")
    assert t4.matrix_peak("float32") == (8.1e12, "vector")
    assert t4.matrix_peak("bfloat16") == (65e12, "fp16")


# --- validation errors ------------------------------------------------------------------------------------


def test_good_minimal_file_loads(tmp_path: Path) -> None:
    target = load_target_file(write(tmp_path, GOOD))
    assert target.name == "toy" and target.runtime == "onnxruntime-cuda"
    assert target.max_devices == 1 and target.cache_bytes is None
    assert target.sources["memory.bandwidth"] == "test"


@pytest.mark.parametrize(
    ("old", "new", "expect"),
    [
        ('kind = "gpu"', 'kind = "gpu', "invalid TOML"),
        ("value = 500e9", "value = -500e9", "bandwidth_bytes_per_s value must be a positive number"),
        ('value = 500e9, source = "test"', "value = 500e9", "bandwidth_bytes_per_s has no source"),
        ('value = 500e9, source = "test"', 'value = 500e9, source = " "',
         "bandwidth_bytes_per_s has no source"),
        ("bandwidth_bytes_per_s = { value = 500e9, source = \"test\" }", "bandwidth_bytes_per_s = 500e9",
         "bandwidth_bytes_per_s must be a table"),
        ("fp16 = {", "fp17 = {", "unknown matrix dtype 'fp17'"),
        ("compute = { value = 0.8", "compute = { value = 1.5", "compute value must be in (0, 1]"),
        ("value = 16e9", 'value = "16e9"', "capacity_bytes value must be a number"),
        ("value = 16e9", "value = true", "capacity_bytes value must be a number"),
        ('kind = "gpu"', 'kind = "fpga"', "unknown kind 'fpga'"),
        ('name = "onnxruntime-cuda"', 'name = "tensorrt"', "unknown runtime 'tensorrt'"),
        ('name = "toy"\n', "", "missing required field name"),
        ("[vector]\nfp32_flops_per_s = { value = 10e12, source = \"test\" }\n", "",
         "missing required section [vector]"),
        ("workspace_bytes = { value = 1e8, source = \"test\" }\n", "",
         "missing required field [efficiency] workspace_bytes"),
        ("bandwidth_bytes_per_s", "bandwith_bytes_per_s", "unknown key [memory] bandwith_bytes_per_s"),
        ('name = "toy"', 'name = "host"', "name 'host'"),
        ('name = "onnxruntime-cuda"', 'name = "onnxruntime-cuda"\nfp32_matmul_peak = "fp33"',
         "fp32_matmul_peak 'fp33'"),
    ],
)
def test_broken_file_raises_one_line_naming_file(tmp_path: Path, old: str, new: str, expect: str) -> None:
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(TargetFileError) as info:
        load_target_file(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    assert expect in message


def test_missing_file_is_a_target_file_error(tmp_path: Path) -> None:
    with pytest.raises(TargetFileError, match="cannot read"):
        load_target_file(tmp_path / "nope.toml")


def test_binary_file_is_invalid_toml(tmp_path: Path) -> None:
    path = tmp_path / "bin.toml"
    path.write_bytes(b"\xff\xfe\x00name")
    with pytest.raises(TargetFileError, match="invalid TOML"):
        load_target_file(path)


def test_device_count_may_be_a_bare_integer(tmp_path: Path) -> None:
    text = GOOD + '[interconnect]\ndescription = "NVLink"\nmax_devices = 4\n'
    target = load_target_file(write(tmp_path, text))
    assert target.max_devices == 4 and target.interconnect == "NVLink"
    with pytest.raises(TargetFileError, match="max_devices must be a positive whole number"):
        load_target_file(write(tmp_path, text.replace("max_devices = 4", "max_devices = 0")))


# --- names, lookup and resolution -------------------------------------------------------------------------


def test_unknown_target_lists_known_names() -> None:
    with pytest.raises(UnknownTargetError) as info:
        get_target("a10x")
    message = str(info.value)
    assert "'a10x'" in message and "\n" not in message
    for name in ("a10g", "h100-sxm", "host"):
        assert name in message


def test_known_names_include_host_and_every_bundled_target() -> None:
    names = known_target_names()
    assert set(names) == EXPECTED | {"host"}


def test_resolve_keeps_order_and_tolerates_whitespace() -> None:
    assert [t.name for t in resolve_targets("a10g, t4")] == ["a10g", "t4"]
    assert [t.name for t in resolve_targets(" T4 ,a10g,,t4 ")] == ["t4", "a10g"]


def test_resolve_all_is_every_bundled_target_but_not_host() -> None:
    targets = resolve_targets("all")
    assert len(targets) == len(EXPECTED)
    assert "host" not in {t.name for t in targets}


def test_resolve_empty_spec_is_an_error() -> None:
    with pytest.raises(UnknownTargetError, match="no target given"):
        resolve_targets(" , ")


def test_target_file_shadows_a_bundled_target(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace('name = "toy"', 'name = "a10g"').replace("500e9", "650e9"),
                 "my-a10g.toml")
    [target] = resolve_targets("a10g", [str(path)])
    assert target.mem_bw_bytes_per_s == 650e9 and target.path == str(path)
    assert get_target("a10g").mem_bw_bytes_per_s == 600e9  # the bundled one is untouched
    everything = resolve_targets("all", [str(path)])
    assert len(everything) == len(EXPECTED)
    assert next(t for t in everything if t.name == "a10g").mem_bw_bytes_per_s == 650e9


def test_target_file_adds_a_new_name(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    toy = load_target_file(path)
    assert "toy" in known_target_names([toy])
    assert get_target("toy", [toy]) is toy
    assert [t.name for t in resolve_targets("toy,a10g", [str(path)])] == ["toy", "a10g"]
    assert len(resolve_targets("all", [str(path)])) == len(EXPECTED) + 1


# --- host -------------------------------------------------------------------------------------------------


def test_detect_host_gives_positive_nominal_numbers() -> None:
    host = detect_host()
    assert host.name == "host" and host.kind == "cpu" and host.runtime == "onnxruntime-cpu"
    assert host.matrix_flops_per_s["fp32"] > 0 and host.vector_flops_per_s > 0
    assert all(v > 0 for v in host.matrix_flops_per_s.values())
    assert host.mem_bw_bytes_per_s > 0 and host.mem_capacity_bytes > 0
    assert host.price_usd_per_hour is not None and host.price_usd_per_hour > 0
    assert 0 < host.compute_efficiency <= 1 and 0 < host.memory_efficiency <= 1
    assert "nominal" in host.caveats["price"]
    assert host.cache_bytes is None or host.cache_bytes > 0
    assert get_target("host").name == "host"
    assert host_fingerprint()


def test_detect_host_survives_a_machine_without_proc(monkeypatch: pytest.MonkeyPatch) -> None:
    import planner.targets.host as host_module

    monkeypatch.setattr(host_module, "_read", lambda path: None)
    host = detect_host()
    assert host.matrix_flops_per_s["fp32"] > 0
    assert host.mem_capacity_bytes > 0
    assert "2.5 GHz" in host.sources["matrix.fp32"]


def test_a_calibration_fingerprint_tells_cpus_apart_that_share_a_model_name() -> None:
    from planner.targets.host import fingerprint_of

    zen3 = [{"model name": "AMD EPYC", "cpu family": "25", "model": "1", "flags": "sse avx2 fma f16c"}]
    zen4 = [{"model name": "AMD EPYC", "cpu family": "25", "model": "17",
             "flags": "avx2 fma f16c avx512f avx512bw avx512_vnni avx512_bf16"}]
    a = fingerprint_of(zen3, 2, 32 * 2**20)
    assert a == "AMD EPYC (cpu family 25 model 1) / 2 logical CPUs / avx2+fma+f16c / LLC 32 MiB"
    isa = "avx2+fma+f16c+avx512f+avx512bw+avx512_vnni+avx512_bf16"
    b = fingerprint_of(zen4, 2, 32 * 2**20)
    assert b == f"AMD EPYC (cpu family 25 model 17) / 2 logical CPUs / {isa} / LLC 32 MiB"
    graviton = [{"processor": "0", "features": "fp asimd asimddp sve i8mm bf16"}]
    assert fingerprint_of(graviton, 4, None).endswith("/ 4 logical CPUs / asimd+asimddp+sve+i8mm+bf16")
    assert fingerprint_of([], 1, None).endswith("/ 1 logical CPUs / no SIMD extensions listed")
