"""`--emit-deploy DIR`: what the chosen fleet needs to run, checked by parsing it back before anything is written.

    DIR/triton/MODEL/config.pbtxt     Triton model repository entry: the ONNX model on the onnxruntime backend,
                                      max_batch_size and dynamic_batching (max queue delay) from the fleet's
                                      policy, one instance per replica on its GPU (or CPU)
    DIR/triton/MODEL/1/model.onnx     the planned model (as stored; a pass pipeline's model comes from --emit)
    DIR/kubernetes.yaml               a Deployment (replicas, GPUs or CPUs per pod, the instance type) and a Service

The Triton entry is for non-decoders: a decoder's continuous batching is served by an LLM engine (vLLM,
TensorRT-LLM, onnxruntime-genai), so for decoders only the Kubernetes manifest is written, and it says so.
Each file is rendered, parsed back (protobuf text_format against planner.output.triton_proto, yaml.safe_load
plus field checks) and compared with the plan's numbers; only then are the files written, each atomically.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import onnx
import yaml

from planner.atomic import write_atomic
from planner.errors import PlannerError
from planner.output.triton_proto import DATA_TYPES, ModelConfig, parse_config, to_text
from planner.search.plan_types import Plan

TRITON_IMAGE = "nvcr.io/nvidia/tritonserver:24.08-py3"
ONNX_TO_TRITON = {onnx.TensorProto.FLOAT: "TYPE_FP32", onnx.TensorProto.FLOAT16: "TYPE_FP16",
                  onnx.TensorProto.BFLOAT16: "TYPE_BF16", onnx.TensorProto.DOUBLE: "TYPE_FP64",
                  onnx.TensorProto.INT8: "TYPE_INT8", onnx.TensorProto.UINT8: "TYPE_UINT8",
                  onnx.TensorProto.INT16: "TYPE_INT16", onnx.TensorProto.UINT16: "TYPE_UINT16",
                  onnx.TensorProto.INT32: "TYPE_INT32", onnx.TensorProto.UINT32: "TYPE_UINT32",
                  onnx.TensorProto.INT64: "TYPE_INT64", onnx.TensorProto.UINT64: "TYPE_UINT64",
                  onnx.TensorProto.BOOL: "TYPE_BOOL", onnx.TensorProto.STRING: "TYPE_STRING"}


class DeployError(PlannerError):
    """Nothing to deploy, or a deployment file that does not carry the plan's numbers."""


def model_name(path: str) -> str:
    """A name Triton and Kubernetes both accept: lowercase letters, digits and dashes."""
    return re.sub(r"[^a-z0-9]+", "-", Path(path).stem.lower()).strip("-")[:50] or "model"


def _tensors(values, batched: bool, initializers: set[str]) -> list[tuple[str, str, list[int]]]:
    out = []
    for v in values:
        if v.name in initializers:
            continue
        t = v.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim]
        out.append((v.name, ONNX_TO_TRITON.get(t.elem_type, "TYPE_INVALID"), dims[1:] if batched else dims))
    return out


def triton_config(plan: Plan, model_path: str, name: str) -> str:
    """config.pbtxt for the chosen fleet: max_batch_size, dynamic batching, one instance per replica."""
    c = plan.fleet["chosen"]
    m = onnx.load(model_path, load_external_data=False)
    batched = plan.model.batch_dim is not None
    inits = {i.name for i in m.graph.initializer}
    cfg = ModelConfig(name=name, backend="onnxruntime", max_batch_size=c["max_batch"] if batched else 0)
    for tname, dtype, dims in _tensors(m.graph.input, batched, inits):
        cfg.input.add(name=tname, data_type=DATA_TYPES[dtype], dims=dims)
    for tname, dtype, dims in _tensors(m.graph.output, batched, set()):
        cfg.output.add(name=tname, data_type=DATA_TYPES[dtype], dims=dims)
    cfg.instance_group.add(count=1, kind="KIND_GPU" if _is_gpu(plan, c["target"]) else "KIND_CPU")
    if batched:
        cfg.dynamic_batching.max_queue_delay_microseconds = round(c["max_queue_delay_ms"] * 1e3)
    return to_text(cfg)


def _is_gpu(plan: Plan, target: str) -> bool:
    kinds = plan.fleet.get("target_kinds", {})
    return kinds.get(target) == "gpu"


def kubernetes_manifest(plan: Plan, name: str) -> str:
    """A Deployment of the chosen fleet's replicas and the Service in front of them."""
    c = plan.fleet["chosen"]
    gpu = _is_gpu(plan, c["target"])
    instance = plan.fleet.get("instance_types", {}).get(c["target"])
    resources = {"limits": {"nvidia.com/gpu": c["devices_per_replica"]}} if gpu else \
        {"requests": {"cpu": str(plan.constraints.get("threads") or 1)}}
    decoder = plan.model.decoder is not None
    container = {"name": name, "image": TRITON_IMAGE, "resources": resources,
                 "ports": [{"containerPort": 8000, "name": "http"}, {"containerPort": 8001, "name": "grpc"}]}
    if not decoder:
        container["args"] = ["tritonserver", "--model-repository=/models"]
        container["volumeMounts"] = [{"name": "model-repository", "mountPath": "/models"}]
    pod: dict = {"containers": [container]}
    if not decoder:
        pod["volumes"] = [{"name": "model-repository",
                           "persistentVolumeClaim": {"claimName": f"{name}-model-repository"}}]
    if instance:
        pod["nodeSelector"] = {"node.kubernetes.io/instance-type": instance}
    labels = {"app": name}
    notes = {"onnx-planner/target": c["target"], "onnx-planner/max-batch": str(c["max_batch"]),
             "onnx-planner/max-queue-delay-ms": f"{c['max_queue_delay_ms']:g}",
             "onnx-planner/predicted-p99-ms": f"{c['latency_ms']['p99']:.4g}",
             "onnx-planner/planned-dims": ",".join(f"{k}={v}" for k, v in plan.model.dims.items()),
             "onnx-planner/monthly-cost-usd": "" if c["monthly_cost_usd"] is None else f"{c['monthly_cost_usd']:.0f}"}
    if decoder:
        chunk = c.get("chunked_prefill_tokens")
        chunked = (f", chunked prefill of {chunk} tokens an iteration (--enable-chunked-prefill "
                   f"--max-num-batched-tokens {chunk})" if chunk else "")
        notes["onnx-planner/serve-with"] = (f"an LLM engine with continuous batching, max {c['max_batch']} "
                                            f"sequences in flight (vLLM --max-num-seqs){chunked}; set the image "
                                            "and args")
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": {"name": name, "labels": dict(labels), "annotations": notes},
                  "spec": {"replicas": c["replicas"], "selector": {"matchLabels": dict(labels)},
                           "template": {"metadata": {"labels": dict(labels)}, "spec": pod}}}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
               "spec": {"selector": dict(labels), "ports": [{"port": 8000, "targetPort": 8000, "name": "http"},
                                                      {"port": 8001, "targetPort": 8001, "name": "grpc"}]}}
    return yaml.safe_dump_all([deployment, service], sort_keys=False)


def check_triton(text: str, plan: Plan) -> None:
    c = plan.fleet["chosen"]
    cfg = parse_config(text)
    want_batch = c["max_batch"] if plan.model.batch_dim is not None else 0
    if cfg.max_batch_size != want_batch or len(cfg.instance_group) != 1 or not cfg.input:
        raise DeployError("config.pbtxt does not carry the plan's max batch and instance group")
    if want_batch and not cfg.HasField("dynamic_batching"):
        raise DeployError("config.pbtxt has no dynamic_batching")
    if want_batch and cfg.dynamic_batching.max_queue_delay_microseconds != round(c["max_queue_delay_ms"] * 1e3):
        raise DeployError("config.pbtxt does not carry the plan's max queue delay")


def check_kubernetes(text: str, plan: Plan) -> None:
    c = plan.fleet["chosen"]
    docs = list(yaml.safe_load_all(text))
    kinds = [d.get("kind") for d in docs]
    if kinds != ["Deployment", "Service"]:
        raise DeployError(f"kubernetes.yaml holds {kinds}, not a Deployment and a Service")
    dep = docs[0]
    spec = dep["spec"]
    if spec["replicas"] != c["replicas"] or spec["selector"]["matchLabels"] != spec["template"]["metadata"]["labels"]:
        raise DeployError("kubernetes.yaml: replicas or selector do not match the plan")
    container = spec["template"]["spec"]["containers"][0]
    gpus = container["resources"].get("limits", {}).get("nvidia.com/gpu")
    if _is_gpu(plan, c["target"]) and gpus != c["devices_per_replica"]:
        raise DeployError("kubernetes.yaml: the GPU count per pod does not match the plan")


def write_deployment(out_dir: str | os.PathLike, plan: Plan, model_path: str) -> list[str]:
    """Render, check, then write each file atomically; refuse when no fleet was chosen or DIR is not a folder.
    Returns what the user must still do, if anything (a pass pipeline's model is theirs to place)."""
    if plan.fleet is None or plan.fleet["chosen"] is None:
        raise DeployError(f"--emit-deploy {out_dir}: no fleet meets the SLO, nothing to deploy")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DeployError(f"--emit-deploy {out_dir}: exists and is not a folder")
    name = model_name(model_path)
    files: dict[Path, str | bytes] = {}
    todo = []
    if plan.model.decoder is None:
        text = triton_config(plan, model_path, name)
        check_triton(text, plan)
        files[out / "triton" / name / "config.pbtxt"] = text
        pipeline = plan.fleet["chosen"]["pipeline"]
        if pipeline == "none":
            files[out / "triton" / name / "1" / "model.onnx"] = Path(model_path).read_bytes()
        else:
            todo.append(f"the fleet runs the {pipeline} pipeline's model: write it with --emit and put it at "
                        f"{out / 'triton' / name / '1' / 'model.onnx'}")
    manifest = kubernetes_manifest(plan, name)
    check_kubernetes(manifest, plan)
    files[out / "kubernetes.yaml"] = manifest
    for path, data in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data, refuse={Path(model_path)})
    return todo
