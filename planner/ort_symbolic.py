"""onnxruntime's symbolic shape inference, without the file it leaves in the user's working folder.

`SymbolicShapeInference.infer_shapes` saves its partial model to ./sym_shape_infer_temp.onnx, with external
data, whenever some shape stays unknown (any custom op does that), then raises. Run from CI or a deployment
script, `plan` would drop that file, non-atomically, into whatever folder it was started in and overwrite one
of that name. The planner writes only what it is asked to write, so this drives the same four steps itself and
keeps the partial result instead (every shape it did infer is as good as in a complete run).

Its driver loop also reruns until nothing changes, which on some inputs is never (a graph input whose element
type is undefined made it spin forever, found by the fuzzer): here it stops after MAX_PASSES.
"""

from __future__ import annotations

import onnx

_STEPS = ("_preprocess", "_infer_impl", "_update_output_from_vi")
INT_MAX = 2**31 - 1  # onnxruntime's own default for unbounded Slice ends
MAX_PASSES = 32  # a pass reruns only when it merged new symbols; real models settle in a handful


def symbolic_infer(model: onnx.ModelProto, auto_merge: bool = True, guess_output_rank: bool = True
                   ) -> onnx.ModelProto | None:
    """The model with the shapes onnxruntime could infer; None when its version lacks the steps we drive.

    Never writes a file. The input model is not modified (onnxruntime works on a copy).
    """
    from onnxruntime.tools import symbolic_shape_infer as ssi

    cls = getattr(ssi, "SymbolicShapeInference", None)
    get_opset = getattr(ssi, "get_opset", None)
    if cls is None or get_opset is None or not all(hasattr(cls, s) for s in _STEPS):
        return None  # the public call would write its stray file: better no second opinion than that
    opset = get_opset(model)
    if not opset or opset < 7:
        return None
    sym = cls(INT_MAX, auto_merge, guess_output_rank, 0)
    sym._preprocess(model)
    passes = 0
    while sym.run_ and passes < MAX_PASSES:  # onnxruntime's own loop never ends on some inputs (an untyped one)
        sym._infer_impl()
        passes += 1
    sym._update_output_from_vi()
    return sym.out_mp_
