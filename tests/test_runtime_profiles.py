"""Runtime profiles (hwtargets/runtimes/): what each engine changes, with hand-worked times and bytes."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from planner.cli import main
from planner.errors import PlannerError, TargetFileError
from planner.model.analyze import Analyzer
from planner.model.loader import load_model
from planner.predict.predictor import Predictor
from planner.targets.catalog import get_target
from planner.targets.runtime import (
    GRAPH_LAUNCH_S,
    GRAPH_PER_KERNEL_S,
    apply_profile,
    bundled_profiles,
    get_profile,
    load_profile_file,
)

MODELS = Path(__file__).resolve().parent.parent / "models"
PROFILES = ("ort-cuda", "ort-cuda-graph", "tensorrt", "llm-engine", "framework-eager", "framework-graph")


def _save(tmp_path: Path, nodes, inputs, outputs, inits=()) -> Path:
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    p = tmp_path / "m.onnx"
    onnx.save(m, p)
    return p


def _predict(path: Path, target):
    return Predictor().predict(Analyzer(load_model(path)).analyze(batch=1), target)


def _vi(name: str, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def test_every_bundled_profile_loads_with_a_source_for_each_number():
    profiles = bundled_profiles()
    assert set(PROFILES) <= set(profiles)
    for p in profiles.values():
        assert set(p.sources) >= {"host_per_kernel_s", "memory_scale", "compute_scale"}
        assert all(s.strip() for s in p.sources.values())
        assert p.cuda_graphs in ("none", "decode", "all")


def test_a_cuda_target_carries_the_default_engine_and_a_cpu_target_ignores_gpu_profiles():
    a100 = get_target("a100-40gb")
    assert (a100.runtime_profile, a100.cuda_graphs) == ("ort-cuda", "decode")
    cpu = get_target("c7i-xlarge")
    assert cpu.runtime_profile == "" and apply_profile(cpu, get_profile("tensorrt")) is cpu


def test_a_profile_without_a_source_is_refused_naming_the_field(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\ncuda_graphs = "none"\n[overheads]\nhost_per_kernel_s = { value = 1e-6 }\n')
    with pytest.raises(TargetFileError, match="host_per_kernel_s"):
        load_profile_file(bad)
    bad.write_text('name = "x"\ncuda_graphs = "sometimes"\n')
    with pytest.raises(TargetFileError, match="cuda_graphs"):
        load_profile_file(bad)
    with pytest.raises(PlannerError, match="unknown runtime profile"):
        get_profile("pytorch")


def test_a_framework_dispatching_each_op_from_python_sets_the_pace_of_small_kernels(tmp_path):
    # ten Relus on 8 floats: on the GPU each is its 5 us launch plus ~0; the host dispatches each in 7.7 us
    n = 10
    nodes = [helper.make_node("Relu", [f"x{i}"], [f"x{i + 1}"], name=f"r{i}") for i in range(n)]
    path = _save(tmp_path, nodes, [_vi("x0", [1, 8])], [_vi(f"x{n}", [1, 8])])
    a100 = get_target("a100-40gb")
    eager = _predict(path, apply_profile(a100, get_profile("framework-eager")))
    assert len(eager.kernels) == n
    assert eager.latency_s == pytest.approx(n * 7.7e-6)
    default = _predict(path, a100)
    assert default.latency_s == pytest.approx(n * a100.launch_overhead_s, rel=0.01)  # GPU-side launches only


def test_cuda_graphs_for_every_run_replace_launches_by_the_replay_cost(tmp_path):
    n = 10
    nodes = [helper.make_node("Relu", [f"x{i}"], [f"x{i + 1}"], name=f"r{i}") for i in range(n)]
    path = _save(tmp_path, nodes, [_vi("x0", [1, 8])], [_vi(f"x{n}", [1, 8])])
    graph = _predict(path, apply_profile(get_target("a100-40gb"), get_profile("ort-cuda-graph")))
    assert graph.latency_s == pytest.approx(GRAPH_LAUNCH_S + n * GRAPH_PER_KERNEL_S, rel=0.01)


def test_a_fusing_engine_runs_attention_as_one_kernel_that_never_writes_the_scores(tmp_path):
    b, h, s, d = 1, 2, 16, 8  # Q [b,h,s,d] x K^T [b,h,d,s] -> scale -> Softmax -> x V [b,h,s,d]
    scale = numpy_helper.from_array(__import__("numpy").float32(0.125).reshape(()), "scale")
    nodes = [helper.make_node("MatMul", ["q", "kt"], ["s"], name="qk"),
             helper.make_node("Mul", ["s", "scale"], ["ss"], name="scale_mul"),
             helper.make_node("Softmax", ["ss"], ["p"], name="softmax", axis=-1),
             helper.make_node("MatMul", ["p", "v"], ["o"], name="pv")]
    path = _save(tmp_path, nodes, [_vi("q", [b, h, s, d]), _vi("kt", [b, h, d, s]), _vi("v", [b, h, s, d])],
                 [_vi("o", [b, h, s, d])], [scale])
    a100 = get_target("a100-40gb")
    fused = _predict(path, apply_profile(a100, get_profile("tensorrt")))
    assert len(fused.kernels) == 1
    k = fused.kernels[0].kernel
    assert k.op_types == ("MatMul", "Mul", "Softmax", "MatMul")
    q_k_v_o = 4 * (b * h * s * d * 4)  # every byte the kernel moves: its three inputs and its output (4096 B)
    assert k.cost.bytes == q_k_v_o + 4  # + the scale scalar
    assert k.cost.flops == 2 * (2 * b * h * s * s * d) + b * h * s * s + 5 * b * h * s * s
    eager = _predict(path, a100)  # onnxruntime CUDA: Q x K^T with its scale, Softmax, P x V
    assert len(eager.kernels) == 3


def test_a_fusing_engine_keeps_gelu_inside_the_gemm_even_though_it_reads_its_input_twice(tmp_path):
    import numpy as np

    m, k, n = 1, 16, 32  # the first dim is the batch: planned at 1
    w = numpy_helper.from_array(np.zeros((k, n), np.float32), "w")
    c = [numpy_helper.from_array(np.float32(v).reshape(()), name) for name, v in
         (("r2", 2 ** 0.5), ("one", 1.0), ("half", 0.5))]
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm"),
             helper.make_node("Div", ["y", "r2"], ["t0"], name="div"),
             helper.make_node("Erf", ["t0"], ["t1"], name="erf"),
             helper.make_node("Add", ["t1", "one"], ["t2"], name="add"),
             helper.make_node("Mul", ["y", "t2"], ["t3"], name="mul"),
             helper.make_node("Mul", ["t3", "half"], ["out"], name="half_mul")]
    path = _save(tmp_path, nodes, [_vi("x", [m, k])], [_vi("out", [m, n])], [w, *c])
    a100 = get_target("a100-40gb")
    fused = _predict(path, apply_profile(a100, get_profile("tensorrt")))
    assert len(fused.kernels) == 1
    assert fused.kernels[0].kernel.cost.bytes == 4 * (m * k + k * n + m * n) + 3 * 4  # x, w, out, 3 scalars: y never
    assert len(_predict(path, a100).kernels) == 6  # onnxruntime CUDA: y has two readers, so each op is a kernel


def test_plan_states_the_engine_and_refuses_an_unknown_one(capsys):
    code = main([str(MODELS / "cnn.onnx"), "--target", "a10g", "--runtime", "tensorrt", "--json", "--passes", "none"])
    out, err = capsys.readouterr()
    assert code == 0, err
    doc = __import__("json").loads(out)
    assert doc["constraints"]["runtime"] == "tensorrt"
    assert any("tensorrt" in note for note in doc["model"]["notes"])
    code = main([str(MODELS / "cnn.onnx"), "--target", "a10g", "--runtime", "pytorch"])
    out, err = capsys.readouterr()
    assert code == 2 and "unknown runtime profile" in err and len(err.strip().splitlines()) == 1


def test_a_small_gemm_leaves_most_of_a_gpu_idle_by_hand():
    from planner.targets.rates import wave_utilization

    # BERT-base at 384 tokens: [384 x 768] output = 3 x 6 tiles of 128 x 128 on 108 SMs; 64 x 64 tiles
    # (6 x 12 = 72 at half the rate) do better, and K = 768 splits in 2 (>= 256 deep): 144 of 216 slots busy
    rows, cols, k = 384, 768, 768
    flops = 2 * rows * cols * k
    big = 18 / 108
    small = 0.5 * 72 / 108
    split_big = 36 / 108
    split_small = 0.5 * 144 / 216
    assert wave_utilization((rows, cols, 1), 108, flops) == pytest.approx(max(big, small, split_big, split_small))
    # a big GEMM fills whole waves: 32 x 32 = 1024 tiles on 108 SMs run in 10 waves, 1024 / 1080 busy
    assert wave_utilization((4096, 4096, 1), 108, 2 * 4096 ** 3) == pytest.approx(1024 / 1080)
    # no units known (CPU targets, TPUs): the spec sheet's rate as it is
    cpu = get_target("c7i-xlarge")
    assert cpu.compute_units is None


def test_compiled_pytorch_int8_gemv_pays_for_the_bf16_round_trip_by_hand():
    from planner.costs import OpClass, OpCost
    from planner.targets.rates import Work, dequant_seconds

    # torch.compile (gpt-fast, torchao) writes w.to(bf16) and computes in fp32. Triton turns int8 -> bf16 on a
    # pre-Hopper GPU into one cvt.rn.f32.s8 per weight and one prmt per two (f32 -> bf16 by keeping the high
    # half); Inductor then widens bf16 back to fp32 (a shift) for the FMA. In FMA-pipe slots, with a conversion
    # at a quarter of the FMA rate: 4 + 1/2 + 1 + 1 = 6.5 slots, 2 FLOP-equivalents each.
    per_weight = 2 * (4 + 1 / 2 + 1 + 1)
    assert get_profile("llm-engine").dequant_flops_per_weight[8] == per_weight == 13
    a100 = apply_profile(get_target("a100-80gb"), get_profile("llm-engine"))
    # a 4096 x 4096 int8 GEMV (block 128: one fp16 scale per 128 weights) at batch 1
    k = n = 4096
    weight_bytes = k * n * (1 + 2 / 128)
    work = Work(OpCost(2 * k * n, int(weight_bytes) + 2 * k, 2 * n, int(weight_bytes)), OpClass.MATRIX,
                "ms.MatMulNBits:w8", "fp16", a100.matrix_flops_per_s["fp16"], 1.0)
    expected = int(weight_bytes) * 8 / 8 * 13 / 19.5e12
    assert a100.vector_flops_per_s == 19.5e12
    assert dequant_seconds(work, a100) == pytest.approx(expected)
    # on the A100 that (11.4 us), not its 17 MB weight stream (9.9 us at 0.96 x 0.88 x 2039 GB/s), bounds the GEMV
    assert expected > int(weight_bytes) / (a100.mem_bw_bytes_per_s * a100.memory_efficiency)
