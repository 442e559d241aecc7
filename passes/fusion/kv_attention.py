"""Attention with a KV cache into onnxruntime's fused kernels (own rule): MultiHeadAttention, GroupQueryAttention.

onnxruntime's transformer optimizer fuses the attention of its own exporters' graphs; the decoders people export
with optimum (torch's TorchScript exporter decomposing scaled_dot_product_attention) do not match it (the
reasons, node by node, are in docs/fidelity.md). That decomposition, per layer, is

    K = Concat(past_key, k, axis=2)                   -> present.i.key     [B, kvH, P+S, D]
    K' = K, or repeat_kv(K) = Reshape(Expand(Unsqueeze(K, 2)))             [B, H, P+S, D]   (grouped heads)
    scores = MatMul(Q * a, Transpose(K', 0,1,3,2) * b)                      [B, H, S, P+S]   (a·b: the scale)
    P = Softmax(scores + mask)   [Where(IsNaN(P), 0, P): the guard for fully masked rows]
    O = MatMul(P, V')            (V, V' as K, K')                           [B, H, S, D]

which is exactly what one attention kernel with a cache computes, so it becomes

    MultiHeadAttention(q, k, v, attention_bias=mask, past_key, past_value)        H == kvH
    GroupQueryAttention(q, k, v, past_key, past_value, seqlens_k, total_len,      H  > kvH
                        attention_bias=mask, query_seqlens)
    -> output [B, S, H·D], present_key (the same name as present.i.key), present_value

with q, k, v moved from [B, heads, S, D] to [B, S, heads·D] (the kernels' layout; a Transpose and a Reshape
each, on the new tokens only) and O back to [B, H, S, D] for the nodes after it. The mask goes in as
attention_bias, so padding and causality mean what they meant, expanded to [., ., S, P+S] (the kernels take no
other broadcast; the Add did); it is clamped to float32's lowest value first,
because the export's -inf would turn a fully masked row (a left-padding position) into NaN inside the kernel,
where the guard no longer is, and the NaN would then reach later layers through that position's keys (a row
clamped instead of -inf gets uniform weights; every real row's weights are unchanged). GroupQueryAttention
gets seqlens_k = P+S-1 for every row (the mask, not seqlens_k, says which positions are padding) and
query_seqlens = S (without it the kernel refuses a multi-token step with a past at batch > 1).

Exporters read the shapes of the cache tensors the fusion removes (the mask is sliced to Shape(K')[-2]):
each such Shape node is rewired to the same dims computed from the inputs (past's shape plus the new
tokens' count, times the group size), since reading the fused node's present output would make a cycle
through the mask. Any other reader of a removed tensor is a near-miss with its reason.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from passes.base import Pass, PassContext, PassResult, register_pass
from passes.fusion import GraphView, Rewrite, Rule, apply_rules
from passes.fusion.ort import ensure_ms_opset
from passes.fusion.sort import topological_order
from passes.fusion.values import scalar_value
from planner.model.ort_symbolic import symbolic_infer

MS = "com.microsoft"
# the lowest finite value of the mask's type: what -inf is clamped to
_FLOOR = {onnx.TensorProto.FLOAT: float(np.finfo(np.float32).min), onnx.TensorProto.FLOAT16: -65504.0,
          onnx.TensorProto.BFLOAT16: -3.3895313892515355e38}


def _attr(n: onnx.NodeProto, name: str, default=None):
    for a in n.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _input_dims(g: GraphView, name: str) -> list[int | str] | None:
    vi = g.inputs.get(name)
    if vi is None or not vi.type.HasField("tensor_type"):
        return None
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in vi.type.tensor_type.shape.dim]


class _Match:
    """What a match found: the nodes it removes (indices), the scale, the mask, Q, the output and the caches."""

    def __init__(self) -> None:
        self.remove: list[int] = []
        self.scale = 1.0
        self.mask: str | None = None
        self.q = ""
        self.out = ""  # the ·V MatMul's output name
        self.heads = 0
        self.kv_heads = 0
        self.head_size = 0
        self.cache: dict[str, dict] = {}  # "key" / "value" -> past, new, cat, heads, size, repeated, repeat_nodes


class KvAttention(Rule):
    name = "kv-attention"
    anchor = "Softmax"

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.shapes, self.types = _inferred(model)  # onnx's inferred dims (ints where static) and element types
        self._symbolic = False

    def _heads(self, scores: str) -> int | None:
        """Query heads: dim 1 of the scores. onnx's inference stops at com.microsoft nodes (a fused rotary
        embedding); onnxruntime's symbolic inference, run once and only then, fills in what it left unknown."""
        heads = (self.shapes.get(scores) or [None, None])[1]
        if heads is None and not self._symbolic:
            self._symbolic = True
            _merge(self.shapes, self.types, _symbolic(self.model))
            heads = (self.shapes.get(scores) or [None, None])[1]
        return heads

    # ---- matching ------------------------------------------------------------------------------------------
    def _producer(self, g: GraphView, name: str, op: str) -> tuple[int, onnx.NodeProto] | None:
        i = g.producer.get(name)
        if i is None or g.node(i).op_type != op or g.node(i).domain not in ("", "ai.onnx"):
            return None
        return i, g.node(i)

    def _scaled(self, g: GraphView, name: str, m: _Match) -> str | None:
        """`name` with a constant Mul peeled off (its factor into m.scale); None when the factor is not a scalar
        constant. The input itself when no Mul produces it."""
        p = self._producer(g, name, "Mul")
        if p is None:
            return name
        i, n = p
        for x, other in ((n.input[0], n.input[1]), (n.input[1], n.input[0])):
            v = scalar_value(g, other, self.shapes)
            if v is not None and len(g.readers(n.output[0])) == 1:
                m.scale *= v
                m.remove.append(i)
                return x
        return None

    def _scores(self, g: GraphView, name: str, m: _Match) -> tuple[int, onnx.NodeProto] | None:
        """MatMul(Q, Kᵀ) producing `name`, directly or through a scalar Mul or Div (the scale applied after the
        product: GPT-2's Div by √D, our builders' Mul by 1/√D), the factor taken into m.scale."""
        qk = self._producer(g, name, "MatMul")
        if qk is not None:
            return qk
        for op in ("Mul", "Div"):
            p = self._producer(g, name, op)
            if p is None or len(g.readers(p[1].output[0])) != 1:
                continue
            pairs = ((p[1].input[0], p[1].input[1]),) if op == "Div" else \
                ((p[1].input[0], p[1].input[1]), (p[1].input[1], p[1].input[0]))
            for x, other in pairs:
                v = scalar_value(g, other, self.shapes)
                qk = self._producer(g, x, "MatMul")
                if v is not None and v != 0 and qk is not None:
                    m.scale *= v if op == "Mul" else 1.0 / v
                    m.remove.append(p[0])
                    return qk
        return None

    def _cache(self, g: GraphView, name: str, m: _Match, which: str) -> str | None:
        """Follow K' (or V') back to Concat(past, new) and maybe repeat_kv; record it. A reason when it fails."""
        entry: dict = {"repeated": None}
        rep = self._producer(g, name, "Reshape")
        cat_name = name
        if rep is not None:
            ex = self._producer(g, rep[1].input[0], "Expand")
            un = self._producer(g, ex[1].input[0], "Unsqueeze") if ex else None
            if un is None:
                return f"{which}: a Reshape that is not repeat_kv (Unsqueeze, Expand, Reshape)"
            axes = g.const(un[1].input[1]) if len(un[1].input) > 1 else _attr(un[1], "axes")
            if axes is None or [int(a) for a in np.asarray(axes).reshape(-1)] not in ([2], [-3]):
                return f"{which}: repeat_kv's Unsqueeze is not on axis 2"
            m.remove += [rep[0], ex[0], un[0]]
            entry["repeated"] = name
            entry["repeat_nodes"] = {rep[1].output[0]: "repeated", ex[1].output[0]: "expanded",
                                     un[1].output[0]: "unsqueezed"}
            cat_name = un[1].input[0]
        cat = self._producer(g, cat_name, "Concat")
        if cat is None:
            return f"{which}: not the concatenation of a past input and the new tokens"
        ci, cn = cat
        if len(cn.input) != 2 or _attr(cn, "axis") not in (2, -2):
            return f"{which}: Concat of {len(cn.input)} inputs on axis {_attr(cn, 'axis')}, not (past, new) on axis 2"
        past, new = cn.input
        dims = _input_dims(g, past)
        if dims is None:
            return f"{which}: '{past}' is not a graph input (no past cache to fuse)"
        if len(dims) != 4 or not isinstance(dims[1], int) or not isinstance(dims[3], int) or not dims[1] or \
                not dims[3]:
            return f"{which}: past input '{past}' is not [batch, heads, past, head_size] with static heads and size"
        m.remove.append(ci)
        entry.update(past=past, new=new, cat=cn.output[0], heads=dims[1], size=dims[3])
        m.cache[which] = entry
        return None

    def _match(self, g: GraphView, i: int) -> _Match | str:
        m = _Match()
        sm = g.node(i)
        if _attr(sm, "axis", -1) not in (-1, 3):
            return "Softmax not over the last axis"
        m.remove.append(i)
        x = sm.input[0]
        add = self._producer(g, x, "Add")
        qk = self._scores(g, x, m)
        if add is not None and qk is None:
            a0, a1 = add[1].input
            for s, mask in ((a0, a1), (a1, a0)):
                qk = self._scores(g, s, m)
                if qk is not None:
                    m.mask = mask
                    m.remove.append(add[0])
                    break
        if qk is None:
            return "Softmax input is not MatMul(Q, Kᵀ) [+ mask]"
        m.remove.append(qk[0])
        q = self._scaled(g, qk[1].input[0], m)
        kt = self._scaled(g, qk[1].input[1], m)
        if q is None or kt is None:
            return "the QKᵀ scale is not a constant"
        tr = self._producer(g, kt, "Transpose")
        if tr is None or list(_attr(tr[1], "perm", [])) != [0, 1, 3, 2]:
            return "Kᵀ is not Transpose(K, perm=[0, 1, 3, 2])"
        m.remove.append(tr[0])
        m.q = q
        why = self._cache(g, tr[1].input[0], m, "key")
        if why:
            return why
        # the probabilities: straight to ·V, or through Where(IsNaN(P), 0, P)
        p = sm.output[0]
        readers = [(j, g.node(j)) for j in g.consumers.get(p, [])]
        ops = sorted(n.op_type for _, n in readers)
        if ops == ["IsNaN", "Where"]:
            isnan = next((j, n) for j, n in readers if n.op_type == "IsNaN")
            where = next((j, n) for j, n in readers if n.op_type == "Where")
            zero = g.const(where[1].input[1])
            if where[1].input[0] != isnan[1].output[0] or where[1].input[2] != p or zero is None or \
                    np.any(np.asarray(zero) != 0) or len(g.readers(isnan[1].output[0])) != 1:
                return "Softmax read by IsNaN and Where that are not the NaN guard Where(IsNaN(P), 0, P)"
            m.remove += [isnan[0], where[0]]
            p = where[1].output[0]
            readers = [(j, g.node(j)) for j in g.consumers.get(p, [])]
        if len(readers) != 1 or readers[0][1].op_type != "MatMul" or readers[0][1].input[0] != p:
            return "the attention probabilities are not read by one MatMul(P, V) only"
        pv_i, pv = readers[0]
        m.remove.append(pv_i)
        m.out = pv.output[0]
        why = self._cache(g, pv.input[1], m, "value")
        if why:
            return why
        k, v = m.cache["key"], m.cache["value"]
        if (k["heads"], k["size"]) != (v["heads"], v["size"]):
            return "key and value caches differ in heads or head size"
        if (k["repeated"] is None) != (v["repeated"] is None):
            return "key and value heads repeated differently"
        m.kv_heads, m.head_size = k["heads"], k["size"]
        heads = m.kv_heads if k["repeated"] is None else self._heads(qk[1].output[0])
        if not isinstance(heads, int) or heads <= 0 or heads % m.kv_heads:
            return "the number of query heads is not known from shapes"
        m.heads = heads
        if m.heads != m.kv_heads and m.mask is None:
            return "grouped heads with no mask: GroupQueryAttention is causal, the graph is not"
        return self._check_readers(g, m)

    def _check_readers(self, g: GraphView, m: _Match) -> _Match | str:
        """Every tensor the fusion removes is read only inside it, by Shape nodes (rewired), or is a present
        output the fused node itself produces."""
        removed = set(m.remove)
        produced = {o for j in removed for o in g.node(j).output}
        own = {m.cache[w]["cat"] for w in ("key", "value")} | {m.out}
        for t in produced:
            for j in g.consumers.get(t, []):
                if j in removed or (t in own and g.node(j).op_type != "Shape"):
                    continue  # the fused node produces `own` tensors again under their names
                if g.node(j).op_type == "Shape" and t in self._shape_sources(m):
                    continue
                return f"'{t}' is also read by {g.node(j).op_type} '{g.node(j).name}' outside the attention"
            if t in g.outputs and t not in own:
                return f"'{t}' is a graph output the fused node does not produce"
        return m

    @staticmethod
    def _shape_sources(m: _Match) -> dict[str, tuple[str, str]]:
        """The removed cache tensors whose Shape can be rebuilt: name -> (cache, what it is)."""
        out: dict[str, tuple[str, str]] = {}
        for which in ("key", "value"):
            e = m.cache[which]
            out[e["cat"]] = (which, "cat")
            for name, what in (e.get("repeat_nodes") or {}).items():
                out[name] = (which, what)
        return out

    def check(self, g: GraphView, i: int) -> str | None:
        r = self._match(g, i)
        return r if isinstance(r, str) else None

    # ---- replacement ---------------------------------------------------------------------------------------
    def replace(self, g: GraphView, i: int) -> Rewrite:
        m = self._match(g, i)
        assert isinstance(m, _Match)
        base = g.node(i).name or "attention"
        nodes: list[onnx.NodeProto] = []
        inits: list[onnx.TensorProto] = []
        taken: set[str] = set()

        def fresh(stem: str) -> str:
            n, k = g.fresh(stem), 0
            while n in taken:
                k += 1
                n = g.fresh(f"{stem}_{k}")
            taken.add(n)
            return n

        def const(name: str, value: np.ndarray) -> str:
            n = fresh(f"{base}/{name}")
            inits.append(numpy_helper.from_array(value, n))
            return n

        def node(op: str, inputs: list[str], out: str | None = None, domain: str = "", **attrs) -> str:
            o = out or fresh(f"{base}/{op}_{len(nodes)}")
            nodes.append(helper.make_node(op, inputs, [o], name=fresh(f"{base}/fused_{op}_{len(nodes)}"),
                                          domain=domain, **attrs))
            return o

        def to_bsd(x: str, heads: int) -> str:
            t = node("Transpose", [x], perm=[0, 2, 1, 3])
            return node("Reshape", [t, const("bsd", np.array([0, 0, heads * m.head_size], np.int64))])

        k, v = m.cache["key"], m.cache["value"]
        q3 = to_bsd(m.q, m.heads)
        k3 = to_bsd(k["new"], m.kv_heads)
        v3 = to_bsd(v["new"], m.kv_heads)
        bias = ""
        past_len = node("Shape", [k["past"]], start=2, end=3)
        new_len = node("Shape", [k["new"]], start=2, end=3)
        total = node("Add", [past_len, new_len])
        if m.mask is not None:  # broadcast to [., ., S, T] as the kernels require (an Add broadcast it before)
            elem = self.types.get(m.mask, onnx.TensorProto.FLOAT)
            low = fresh(f"{base}/mask_floor")
            inits.append(helper.make_tensor(low, elem, [], [_FLOOR.get(elem, _FLOOR[onnx.TensorProto.FLOAT])]))
            floor = node("Max", [m.mask, low])
            seq = node("Shape", [m.q], start=2, end=3)
            bias = node("Expand", [floor, node("Concat", [const("ones", np.array([1, 1], np.int64)), seq, total],
                                               axis=0)])
        out3 = fresh(f"{base}/attention_output")
        outs = [out3, k["cat"], v["cat"]]
        name = fresh(f"{base}/{'MultiHeadAttention' if m.heads == m.kv_heads else 'GroupQueryAttention'}")
        if m.heads == m.kv_heads:
            nodes.append(helper.make_node(
                "MultiHeadAttention", [q3, k3, v3, "", "", bias, k["past"], v["past"]], outs, name=name,
                domain=MS, num_heads=m.heads, scale=float(m.scale)))
        else:
            total32 = node("Cast", [total], to=onnx.TensorProto.INT32)
            batch = node("Shape", [k["new"]], start=0, end=1)
            last = node("Sub", [total32, const("one", np.array([1], np.int32))])
            seqlens = node("Expand", [last, batch])
            total_scalar = node("Reshape", [total32, const("scalar", np.array([], np.int64))])
            query_lens = node("Expand", [node("Cast", [new_len], to=onnx.TensorProto.INT32), batch])
            nodes.append(helper.make_node(
                "GroupQueryAttention",
                [q3, k3, v3, k["past"], v["past"], seqlens, total_scalar, "", "", "", bias, "", "", "", "", "",
                 query_lens],
                outs, name=name, domain=MS, num_heads=m.heads, kv_num_heads=m.kv_heads, scale=float(m.scale)))
        heads4 = const("bnsd", np.array([0, 0, m.heads, m.head_size], np.int64))
        node("Transpose", [node("Reshape", [out3, heads4])], out=m.out, perm=[0, 2, 1, 3])
        remove = list(m.remove)
        self._rewire_shapes(g, m, remove, const, node)
        return Rewrite(remove=sorted(set(remove)), add=nodes, initializers=inits)

    def _rewire_shapes(self, g: GraphView, m: _Match, remove: list[int], const, node) -> None:
        """Each Shape of a removed cache tensor becomes the same dims computed from the inputs (through `node`,
        which collects the new nodes); the old Shape nodes are added to `remove`."""
        sources = self._shape_sources(m)
        removed = set(m.remove)
        full: dict[str, str] = {}
        cats: dict[str, str] = {}
        group = m.heads // m.kv_heads

        def cat_dims(which: str) -> str:
            """Concat on axis 2: past's dims with the new tokens' count added on that axis."""
            if which not in cats:
                e = m.cache[which]
                new = node("Mul", [node("Shape", [e["new"]]), const("axis2", np.array([0, 0, 1, 0], np.int64))])
                cats[which] = node("Add", [node("Shape", [e["past"]]), new])
            return cats[which]

        def dims_of(t: str) -> str:
            if t in full:
                return full[t]
            which, what = sources[t]
            cat = cat_dims(which)
            if what == "cat":
                full[t] = cat
            elif what in ("unsqueezed", "expanded"):  # [B, kvH, 1 or group, T, D]
                inserted = const("inserted", np.array([1 if what == "unsqueezed" else group], np.int64))
                full[t] = node("Concat", [node("Slice", [cat, const("s0", np.array([0], np.int64)),
                                                         const("s2", np.array([2], np.int64))]),
                                          inserted,
                                          node("Slice", [cat, const("s2b", np.array([2], np.int64)),
                                                         const("s4", np.array([4], np.int64))])], axis=0)
            else:  # repeated: [B, H, T, D]
                full[t] = node("Mul", [cat, const("heads", np.array([1, group, 1, 1], np.int64))])
            return full[t]

        for t in sources:
            for j in g.consumers.get(t, []):
                if j in removed or g.node(j).op_type != "Shape":
                    continue
                sh = g.node(j)
                start, end = _attr(sh, "start"), _attr(sh, "end")
                dims = dims_of(t)
                if start is None and end is None:
                    node("Identity", [dims], out=sh.output[0])
                else:
                    starts = const("start", np.array([start or 0], np.int64))
                    ends = const("end", np.array([end if end is not None else 2**62], np.int64))
                    node("Slice", [dims, starts, ends], out=sh.output[0])
                remove.append(j)


def _inferred(model: onnx.ModelProto) -> tuple[dict[str, list], dict[str, int]]:
    """onnx's inferred dims (ints where static) and element types, per tensor."""
    dims: dict[str, list] = {}
    types: dict[str, int] = {}
    try:
        _merge(dims, types, onnx.shape_inference.infer_shapes(model, data_prop=True))
    except Exception:  # a graph onnx cannot infer: onnxruntime's may still give the heads (KvAttention._heads)
        pass
    return dims, types


def _symbolic(model: onnx.ModelProto) -> onnx.ModelProto | None:
    try:
        return symbolic_infer(model)
    except Exception:  # onnxruntime's inference gives up on some graphs: the match says the heads are unknown
        return None


def _merge(dims: dict[str, list], types: dict[str, int], inferred: onnx.ModelProto | None) -> None:
    """Add `inferred`'s dims and types where those known so far leave them unknown."""
    if inferred is None:
        return
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output) + list(inferred.graph.input):
        if not vi.type.HasField("tensor_type"):
            continue
        types.setdefault(vi.name, vi.type.tensor_type.elem_type)
        if vi.type.tensor_type.HasField("shape"):
            new = [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]
            old = dims.get(vi.name)
            dims[vi.name] = new if old is None or len(old) != len(new) else \
                [a if a is not None else b for a, b in zip(old, new, strict=True)]


@register_pass
class KvAttentionFusion(Pass):
    name = "kv-attention"
    description = "attention over a KV cache into MultiHeadAttention / GroupQueryAttention (own rule)"
    after = ("cleanup", "ort-fusion")  # onnxruntime's fusions first: they match their own exporters' attention

    def check(self, model: onnx.ModelProto) -> str | None:
        if not any(n.op_type == "Softmax" for n in model.graph.node):
            return "no Softmax: no attention to fuse"
        if not any(vi.name.startswith("past") for vi in model.graph.input):
            return "no past key/value inputs: not a decoder with a cache"
        return None

    def run(self, model: onnx.ModelProto, ctx: PassContext) -> PassResult:
        out, counts, misses = apply_rules(model, [KvAttention(model)])
        if not counts:
            return PassResult(model, False, {}, tuple(misses[:5]))
        order = topological_order(out.graph)
        nodes = [out.graph.node[k] for k in order]
        del out.graph.node[:]
        out.graph.node.extend(nodes)
        read = {x for n in out.graph.node for x in n.input} | {o.name for o in out.graph.output}
        kept = [t for t in out.graph.initializer if t.name in read]  # the scale constants the rule took in
        del out.graph.initializer[:]
        out.graph.initializer.extend(kept)
        ensure_ms_opset(out)
        fused = [n.op_type for n in out.graph.node if n.domain == MS and n.op_type.endswith("Attention")]
        counts = {op: fused.count(op) for op in sorted(set(fused))}
        return PassResult(out, True, counts, tuple(misses[:5]))
