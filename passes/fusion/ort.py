"""onnxruntime's transformer optimizer as a pass: the well-kept fusions for transformer graphs.

optimize_model(model_type="bert", opt_level=0) fuses, where the subgraphs match:
    Attention            Q/K/V MatMul + Add, Reshape/Transpose to heads, QKᵀ, scale, mask, Softmax, ·V, merge
    SkipLayerNormalization   LayerNormalization(x + skip [+ bias])
    LayerNormalization   the ReduceMean/Sub/Pow/Sqrt/Div form
    Gelu / BiasGelu      x · ½ (1 + erf(x / √2))  [+ the MatMul bias]
    FastGelu             the tanh approximation
    EmbedLayerNormalization, SkipSimplifiedLayerNormalization, RotaryEmbedding, ...
opt_level=0 keeps the graph portable: onnxruntime's own session-time optimizations stay for the runtime.
The raw 2-D attention mask is kept (use_raw_attention_mask), so masks with holes still mean what they meant;
a mask index (sequence lengths) would silently assume right padding.
"""

from __future__ import annotations

import contextlib
import io
import logging

import onnx

from passes.base import Pass, PassContext, PassResult, register_pass


def ensure_ms_opset(model: onnx.ModelProto) -> None:
    if any(n.domain == "com.microsoft" for n in model.graph.node) and not any(
            o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.add(domain="com.microsoft", version=1)


@register_pass
class OrtFusion(Pass):
    name = "ort-fusion"
    description = "onnxruntime transformers optimizer: Attention, SkipLayerNormalization, (Bias/Fast)Gelu, ..."
    after = ("cleanup", "attention-mask")

    # Every fusion of the transformer optimizer starts from one of these (Softmax for attention, LayerNormalization
    # or ReduceMean for the norms, Erf / Tanh / Sigmoid for the GELU family): without any, it would only spend time.
    STARTS = frozenset({"Softmax", "LayerNormalization", "ReduceMean", "Erf", "Tanh", "Sigmoid",
                        "SimplifiedLayerNormalization", "Gelu"})

    def check(self, model: onnx.ModelProto) -> str | None:
        if not any(n.op_type in self.STARTS for n in model.graph.node):
            return "no Softmax, normalization or GELU-family node for the transformer fusions to start from"
        return None

    def run(self, model: onnx.ModelProto, ctx: PassContext) -> PassResult:
        from onnxruntime.transformers.fusion_options import FusionOptions
        from onnxruntime.transformers.optimizer import optimize_model

        model_before = onnx.ModelProto()
        model_before.CopyFrom(model)
        model_type = ctx.options.get("model_type", "bert")
        options = FusionOptions(model_type)
        options.use_raw_attention_mask = True
        loggers = [logging.getLogger(n) for n in ("onnxruntime.transformers", "fusion_base", "onnx_model",
                                                   "fusion_utils", "fusion_attention", "fusion_constant_fold")]
        levels = [lg.level for lg in loggers]
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        root = logging.getLogger()
        root_level = root.level
        root.setLevel(logging.ERROR)
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                opt = optimize_model(model, model_type=model_type, num_heads=0, hidden_size=0,
                                     optimization_options=options, opt_level=0)
                stats = opt.get_fused_operator_statistics()
        finally:
            for lg, lv in zip(loggers, levels, strict=True):
                lg.setLevel(lv)
            root.setLevel(root_level)
        out = opt.model  # optimize_model edits the proto it is given (our private copy)
        ensure_ms_opset(out)
        counts = {k: int(v) for k, v in stats.items() if isinstance(v, int) and v}
        if not counts:  # nothing fused: keep the input bytes (the optimizer still renames and re-sorts)
            return PassResult(model_before, False, {})
        return PassResult(out, True, counts)
