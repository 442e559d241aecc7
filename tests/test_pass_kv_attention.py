"""kv-attention: the exporters' attention over a KV cache into MultiHeadAttention / GroupQueryAttention.

Each graph below is one attention layer written the way optimum's exports and our builders write it (Concat of
past and new keys, repeat_kv for grouped heads, the scale before or after QKᵀ, an additive mask with -inf, the
NaN guard, a mask sliced to Shape(K')). The expected outputs are computed with numpy from the formula
softmax(Q·Kᵀ·scale + mask)·V, not by either model; onnxruntime then runs the original and the fused graph.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import passes  # noqa: F401  (registers the passes)
from passes.base import PassContext, PassRejected, get_pass

E_HEAD = 8
RNG = np.random.default_rng(7)


def _c(name: str, v) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(v), name)


def attention_layer(heads: int, kv_heads: int, scale_style: str = "split", guard: bool = True,
                    shape_mask: bool = False, softmax_also_output: bool = False, past_through_relu: bool = False,
                    dtype=np.float32) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    d = E_HEAD
    e, ekv, group = heads * d, kv_heads * d, heads // kv_heads
    w = {n: (RNG.standard_normal((e, c)) * 0.3).astype(dtype) for n, c in (("wq", e), ("wk", ekv), ("wv", ekv))}
    inits = [_c(k, v) for k, v in w.items()] + [
        _c("q_shape", np.array([0, 0, heads, d], np.int64)), _c("kv_shape", np.array([0, 0, kv_heads, d], np.int64)),
        _c("merge", np.array([0, 0, e], np.int64)), _c("axis2", np.array([2], np.int64)),
        _c("groups", np.array([1, 1, group, 1, 1], np.int64)), _c("rep_shape", np.array([0, heads, -1, d], np.int64)),
        _c("s4", np.array(d ** -0.25, dtype)), _c("sqrt_d", np.array(d ** 0.5, dtype)),
        _c("zero", np.array(0.0, dtype)), _c("ax3", np.array([3], np.int64)), _c("st0", np.array([0], np.int64))]
    nodes = []
    past_k, past_v = "past_key", "past_value"
    if past_through_relu:
        nodes.append(helper.make_node("Relu", [past_k], ["past_k_relu"]))
        past_k = "past_k_relu"
    for name, wname, shape in (("q", "wq", "q_shape"), ("k", "wk", "kv_shape"), ("v", "wv", "kv_shape")):
        nodes += [helper.make_node("MatMul", ["x", wname], [f"{name}_p"]),
                  helper.make_node("Reshape", [f"{name}_p", shape], [f"{name}_r"]),
                  helper.make_node("Transpose", [f"{name}_r"], [f"{name}_h"], perm=[0, 2, 1, 3])]
    nodes += [helper.make_node("Concat", [past_k, "k_h"], ["present_key"], axis=2),
              helper.make_node("Concat", [past_v, "v_h"], ["present_value"], axis=-2)]
    k_all, v_all = "present_key", "present_value"
    if group > 1:
        for t in ("key", "value"):
            nodes += [helper.make_node("Unsqueeze", [f"present_{t}", "axis2"], [f"{t}_u"]),
                      helper.make_node("Expand", [f"{t}_u", "groups"], [f"{t}_e"]),
                      helper.make_node("Reshape", [f"{t}_e", "rep_shape"], [f"{t}_rep"])]
        k_all, v_all = "key_rep", "value_rep"
    nodes.append(helper.make_node("Transpose", [k_all], ["kt"], perm=[0, 1, 3, 2]))
    if scale_style == "split":
        nodes += [helper.make_node("Mul", ["q_h", "s4"], ["q_s"]), helper.make_node("Mul", ["kt", "s4"], ["kt_s"]),
                  helper.make_node("MatMul", ["q_s", "kt_s"], ["scores"])]
    else:
        nodes += [helper.make_node("MatMul", ["q_h", "kt"], ["qk"]),
                  helper.make_node("Div", ["qk", "sqrt_d"], ["scores"])]
    mask = "mask"
    if shape_mask:  # the mask cut to the keys' length, read off the repeated keys' shape as exporters do
        nodes += [helper.make_node("Shape", [k_all], ["k_len"], start=2, end=3),
                  helper.make_node("Slice", ["mask", "st0", "k_len", "ax3"], ["mask_cut"])]
        mask = "mask_cut"
    nodes += [helper.make_node("Add", ["scores", mask], ["biased"]),
              helper.make_node("Softmax", ["biased"], ["probs"], axis=-1)]
    probs = "probs"
    if guard:
        nodes += [helper.make_node("IsNaN", ["probs"], ["nan"]),
                  helper.make_node("Where", ["nan", "zero", "probs"], ["probs_g"])]
        probs = "probs_g"
    nodes += [helper.make_node("MatMul", [probs, v_all], ["o_h"]),
              helper.make_node("Transpose", ["o_h"], ["o_t"], perm=[0, 2, 1, 3]),
              helper.make_node("Reshape", ["o_t", "merge"], ["out"])]
    f = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    inputs = [helper.make_tensor_value_info("x", f, ["batch", "seq", e]),
              helper.make_tensor_value_info("past_key", f, ["batch", kv_heads, "past", d]),
              helper.make_tensor_value_info("past_value", f, ["batch", kv_heads, "past", d]),
              helper.make_tensor_value_info("mask", f, ["batch", 1, "seq", "keys"])]
    outputs = [helper.make_tensor_value_info(n, f, None) for n in ("out", "present_key", "present_value")]
    if softmax_also_output:
        outputs.append(helper.make_tensor_value_info("probs", f, None))
    model = helper.make_model(helper.make_graph(nodes, "attention", inputs, outputs, inits),
                              opset_imports=[helper.make_opsetid("", 18)])
    return model, w


def by_hand(w: dict, heads: int, kv_heads: int, x, past_k, past_v, mask):
    """softmax(Q Kᵀ / √d + mask) V per head, query head h reading kv head h // group, in numpy."""
    d, group = E_HEAD, heads // kv_heads
    b, s, _ = x.shape

    def split(t, n):
        return t.reshape(b, s, n, d).transpose(0, 2, 1, 3)

    q, k, v = split(x @ w["wq"], heads), split(x @ w["wk"], kv_heads), split(x @ w["wv"], kv_heads)
    k_all, v_all = np.concatenate([past_k, k], 2), np.concatenate([past_v, v], 2)
    out = np.empty((b, heads, s, d), np.float64)
    for h in range(heads):
        scores = q[:, h] @ k_all[:, h // group].transpose(0, 2, 1) / np.sqrt(d) + mask[:, 0, :, :k_all.shape[2]]
        p = np.exp(scores - scores.max(-1, keepdims=True))
        out[:, h] = (p / p.sum(-1, keepdims=True)) @ v_all[:, h // group]
    return out.transpose(0, 2, 1, 3).reshape(b, s, heads * d), k_all, v_all


def feeds(heads: int, kv_heads: int, b: int, s: int, past: int, extra_keys: int = 0, mask_keys: int | None = None
          ) -> dict[str, np.ndarray]:
    """A causal mask with -inf over the future and over the first key of batch row 1 (left padding); with
    `mask_keys` (1), a mask that broadcasts over the keys instead (finite: no causality)."""
    t = past + s
    if mask_keys is not None:
        wide = RNG.standard_normal((b, 1, s, mask_keys)).astype(np.float32)
        return {**feeds(heads, kv_heads, b, s, past), "mask": wide}
    mask = np.zeros((b, 1, s, t + extra_keys), np.float32)
    for i in range(s):
        mask[:, :, i, past + i + 1:] = -np.inf
    if b > 1:
        mask[1, :, :, 0] = -np.inf
    return {"x": RNG.standard_normal((b, s, heads * E_HEAD)).astype(np.float32),
            "past_key": RNG.standard_normal((b, kv_heads, past, E_HEAD)).astype(np.float32),
            "past_value": RNG.standard_normal((b, kv_heads, past, E_HEAD)).astype(np.float32), "mask": mask}


def run(model: onnx.ModelProto, f: dict) -> list[np.ndarray]:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, f)


def fuse(model: onnx.ModelProto):
    return get_pass("kv-attention").apply(model, PassContext())


CASES = [  # heads, kv heads, scale style, guard, mask sliced by shape; the fused op
    (4, 4, "split", True, False, "MultiHeadAttention"),
    (4, 4, "div", False, True, "MultiHeadAttention"),
    (4, 2, "split", True, True, "GroupQueryAttention"),
    (6, 2, "div", True, False, "GroupQueryAttention"),
]


@pytest.mark.parametrize("heads,kv_heads,style,guard,shape_mask,op", CASES)
@pytest.mark.parametrize("b,s,past", [(1, 1, 5), (1, 6, 0), (2, 1, 7), (2, 3, 4)])
def test_fused_attention_computes_the_formula(heads, kv_heads, style, guard, shape_mask, op, b, s, past):
    model, w = attention_layer(heads, kv_heads, style, guard, shape_mask)
    r = fuse(model)
    ops = [n.op_type for n in r.model.graph.node]
    assert r.counts == {op: 1} and ops.count(op) == 1
    assert not {"Softmax", "IsNaN"} & set(ops)
    readers = {n.op_type for n in r.model.graph.node for x in n.input if x in ("past_key", "past_value")}
    assert readers <= {op, "Shape"}  # the cache is no longer copied by a Concat or repeated by an Expand
    f = feeds(heads, kv_heads, b, s, past, extra_keys=3 if shape_mask else 0)
    expect = by_hand(w, heads, kv_heads, f["x"], f["past_key"], f["past_value"], f["mask"])
    for got in (run(model, f), run(r.model, f)):
        for g, e in zip(got, expect, strict=True):
            np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("heads,kv_heads", [(4, 4), (4, 2)])
def test_a_mask_that_broadcasts_over_the_keys_is_expanded_for_the_kernel(heads, kv_heads):
    """The Add broadcast a [B, 1, S, 1] mask over the keys; the kernels take only [., ., S, T]."""
    model, w = attention_layer(heads, kv_heads)
    f = feeds(heads, kv_heads, 2, 1, 6, mask_keys=1)
    expect = by_hand(w, heads, kv_heads, f["x"], f["past_key"], f["past_value"], f["mask"])
    for g, e in zip(run(fuse(model).model, f), expect, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)


def test_a_float16_layer_gets_a_float16_mask_floor():
    """float16 end to end (GroupQueryAttention has a float16 CPU kernel): the mask's -inf is clamped to float16's
    lowest, -65504, a constant of the mask's own type; outputs match the formula to float16's precision."""
    model, w = attention_layer(4, 2, dtype=np.float16)
    r = fuse(model)
    assert r.counts == {"GroupQueryAttention": 1}
    floor = next(t for t in r.model.graph.initializer if "mask_floor" in t.name)
    assert floor.data_type == TensorProto.FLOAT16 and float(numpy_helper.to_array(floor)) == -65504.0
    f = {k: v.astype(np.float16) if v.dtype == np.float32 else v for k, v in feeds(4, 2, 2, 3, 4).items()}
    expect = by_hand({k: v.astype(np.float32) for k, v in w.items()}, 4, 2,
                     *(f[k].astype(np.float32) for k in ("x", "past_key", "past_value", "mask")))
    for g, e in zip(run(r.model, f), expect, strict=True):
        np.testing.assert_allclose(g.astype(np.float32), e, rtol=2e-2, atol=2e-2)


def test_the_input_model_is_not_modified():
    model, _ = attention_layer(4, 2)
    before = model.SerializeToString()
    fuse(model)
    assert model.SerializeToString() == before


@pytest.mark.parametrize("kwargs,reason", [
    ({"softmax_also_output": True}, "'probs' is a graph output the fused node does not produce"),
    ({"past_through_relu": True}, "'past_k_relu' is not a graph input"),
])
def test_near_misses_say_why(kwargs, reason):
    model, _ = attention_layer(4, 4, **kwargs)
    r = fuse(model)
    assert not r.changed and any(reason in n for n in r.notes), r.notes


def test_a_model_without_a_cache_is_refused_with_the_reason():
    model, _ = attention_layer(4, 4)
    for i in model.graph.input:
        i.name = i.name.replace("past_", "old_")
    for n in model.graph.node:
        n.input[:] = [x.replace("past_", "old_") for x in n.input]
    with pytest.raises(PassRejected, match="no past key/value inputs"):
        fuse(model)


def test_decoder_fused_pipeline_fuses_every_layer_and_generates_the_same_tokens():
    """models/decoder.onnx (2 layers, 4 query heads over 2 KV heads): `fused` turns both attentions into
    GroupQueryAttention and greedy generation with the cache fed back agrees on every token."""
    from planner.api import plan
    from planner.search.variants import PassOptions

    p = plan("models/decoder.onnx", targets=["a10g"], passes=PassOptions("fused"), prompt_len=16, gen_len=16)
    report = next(r for r in p.pipelines if r["pipeline"] == "fused")
    step = next(s for s in report["steps"] if s["name"] == "kv-attention")
    assert step["applied"] and step["counts"] == {"GroupQueryAttention": 2}
    assert report["drift"]["generation"]["agreement"] == 1.0


def test_heads_behind_a_fused_rotary_embedding_come_from_onnxruntimes_inference():
    """onnxruntime's optimizer on optimum's Llama export as written fuses its rotary embedding (4: Q and K of 2
    layers); onnx's shape inference stops at that com.microsoft node, so the query heads are read from
    onnxruntime's symbolic inference; both layers fuse and the outputs are the export's."""
    from planner.llm.decoder import phase_feeds

    m = onnx.load("models/hf/llama-gqa.onnx")
    rotary = get_pass("ort-fusion").apply(m)
    assert rotary.counts.get("RotaryEmbedding") == 4
    r = fuse(get_pass("cleanup").apply(rotary.model).model)
    assert r.counts == {"GroupQueryAttention": 2}, r.notes
    f = phase_feeds(m, {"batch_size": 2, "sequence_length": 3, "past_sequence_length": 5,
                        "past_sequence_length + sequence_length": 8}, 2)
    for got, want in zip(run(r.model, f), run(m, f), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
