"""What int4 would make of a model whose weights we will not read: the MatMulNBits layout, from shapes alone.

A 7B decoder stored as external data is planned from its declarations (planner.model.loader never reads the
weights), so the int4 pass, which must read every weight to quantize it, does not run on it at planning time.
Its result's *shape* is known without the values, though: onnxruntime's MatMulNBitsQuantizer turns a MatMul
whose weight B is a constant [K, N] float tensor into

    MatMulNBits(A, B_Q4: uint8 [N, ceil(K / bs), bs / 2], scales: float [N x ceil(K / bs)]
                [, zero_points: uint8 [N x ceil(ceil(K / bs) / 2)]]   (asymmetric only)
                ; K, N, bits = 4, block_size = bs)

so weight bytes per projection = N x ceil(K / bs) x (bs / 2 + scale bytes) (+ zero points), e.g. 7B fp16 at
bs 32: K N (1/2 + 2/32) bytes = 0.5625 bytes per parameter against 2.

`project_int4` writes that graph with external-data descriptors in place of the values: enough for the cost
model (bytes per kernel, memory), never for a runtime. The planner marks such a variant as projected: it is
not emitted, and its drift is not measured (the weights were never read).
"""

from __future__ import annotations

import math

import onnx
from onnx import TensorProto, helper

from passes.base import copy_model

MS_DOMAIN = "com.microsoft"
_FLOATS = (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16)
_ELEM_BYTES = {TensorProto.FLOAT: 4, TensorProto.FLOAT16: 2, TensorProto.BFLOAT16: 2}


def _descriptor(name: str, dtype: int, dims: list[int], location: str) -> TensorProto:
    """An initializer declared as external data of the right length: its bytes exist nowhere."""
    t = TensorProto()
    t.name, t.data_type = name, dtype
    t.dims.extend(dims)
    t.data_location = TensorProto.EXTERNAL
    nbytes = math.prod(dims) * (1 if dtype == TensorProto.UINT8 else _ELEM_BYTES[dtype])
    for key, value in (("location", location), ("offset", "0"), ("length", str(nbytes))):
        entry = t.external_data.add()
        entry.key, entry.value = key, value
    return t


def int4_weight_bytes(k: int, n: int, block: int, scale_bytes: int, symmetric: bool = True) -> int:
    """Bytes MatMulNBits stores for a [K, N] weight: packed nibbles, one scale per block, zero points if asymmetric."""
    blocks = -(-k // block)
    zero_points = 0 if symmetric else n * -(-blocks // 2)
    return n * blocks * (block // 2) + n * blocks * scale_bytes + zero_points


def project_int4(model: onnx.ModelProto, block: int = 32, symmetric: bool = True, min_k: int = 16
                 ) -> tuple[onnx.ModelProto, int]:
    """(a copy of `model` with each eligible MatMul as MatMulNBits over weight descriptors, MatMuls rewritten).

    Eligible, as for the int4 pass: a MatMul whose input 1 is a 2-D float initializer with K >= min_k."""
    out = copy_model(model)
    g = out.graph
    inits = {t.name: t for t in g.initializer}
    readers: dict[str, int] = {}
    for n in g.node:
        for i in n.input:
            readers[i] = readers.get(i, 0) + 1
    new_nodes, added, dropped, rewritten = [], [], set(), 0
    for node in g.node:
        w = inits.get(node.input[1]) if node.op_type == "MatMul" and len(node.input) > 1 else None
        if w is None or w.data_type not in _FLOATS or len(w.dims) != 2 or w.dims[0] < min_k:
            new_nodes.append(node)
            continue
        k, n = int(w.dims[0]), int(w.dims[1])
        blocks = -(-k // block)
        loc = next((e.value for e in w.external_data if e.key == "location"), "projected.data")
        base = f"{w.name}_Q4_{rewritten}"
        tensors = [_descriptor(f"{base}_B", TensorProto.UINT8, [n, blocks, block // 2], loc),
                   _descriptor(f"{base}_scales", w.data_type, [n * blocks], loc)]
        if not symmetric:
            tensors.append(_descriptor(f"{base}_zero_points", TensorProto.UINT8, [n * -(-blocks // 2)], loc))
        added += tensors
        new_nodes.append(helper.make_node(
            "MatMulNBits", [node.input[0]] + [t.name for t in tensors], list(node.output),
            name=(node.name or f"matmul_{rewritten}") + "_Q4", domain=MS_DOMAIN, K=k, N=n, bits=4,
            block_size=block, accuracy_level=4))
        readers[w.name] -= 1
        if readers[w.name] == 0:
            dropped.add(w.name)
        rewritten += 1
    del g.node[:]
    g.node.extend(new_nodes)
    kept = [t for t in g.initializer if t.name not in dropped]
    del g.initializer[:]
    g.initializer.extend(kept + added)
    kept_inputs = [i for i in g.input if i.name not in dropped]
    del g.input[:]
    g.input.extend(kept_inputs)
    if rewritten and not any(o.domain == MS_DOMAIN for o in out.opset_import):
        out.opset_import.add(domain=MS_DOMAIN, version=1)
    return out, rewritten
