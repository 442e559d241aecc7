"""onnxruntime's symbolic shape inference, without the file it leaves behind, its endless loops, or its
gigabyte arrays.

Three things its public entry point does to a planner fed models by strangers, all found here:

    a stray file   `infer_shapes` saves ./sym_shape_infer_temp.onnx (with external data) whenever a shape
                   stays unknown, into whatever folder `plan` runs from, non-atomically, then raises
    a hang         its driver loop reruns until nothing changes, which on some inputs (a tensor of undefined
                   element type) is never, at the top level and in every If/Loop/Scan body it recurses into
    an OOM kill    ConstantOfShape of a constant int64 shape is materialized as a numpy array of that shape:
                   `ConstantOfShape([2^31])` asks for 16 GB

So this drives the same steps itself (keeping the partial result), with a subclass that caps the passes of
every instance and records ConstantOfShape's shape without its values when they would be huge. Bodies are
inferred by instances the library creates by its module-level class name, so that name points at the guarded
subclass for the duration of the call (and is put back after); other code calling the library meanwhile gets
the same behaviour minus the pathologies.
"""

from __future__ import annotations

import threading

import onnx

from planner.model.limits import bounded_numel
from planner.model.propagation import MAX_PROPAGATED

_STEPS = ("_preprocess", "_infer_impl", "_update_output_from_vi", "_infer_ConstantOfShape",
          "_get_int_or_float_values", "_update_computed_dims")
INT_MAX = 2**31 - 1  # onnxruntime's own default for unbounded Slice ends
MAX_PASSES = 32  # a pass reruns only when it merged new symbols; real models settle in a handful
_LOCK = threading.Lock()  # the module-level swap is process-wide: one guarded run at a time


def _guarded(ssi):
    base = ssi.SymbolicShapeInference

    class Guarded(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.dispatcher_["QLinearConcat"] = self._infer_QLinearConcat
            self.dispatcher_["DynamicQuantizeLSTM"] = self._infer_DynamicQuantizeLSTM
            self.dispatcher_["DynamicQuantizeMatMul"] = self._infer_float_matmul
            self.dispatcher_["MatMulIntegerToFloat"] = self._infer_float_matmul

        def _infer_float_matmul(self, node):  # noqa: N802
            """A·B as MatMul broadcasts it, in the float type of A (DynamicQuantizeMatMul) or of A's scale
            (MatMulIntegerToFloat): the library has no rule for these com.microsoft ops, and a chain of them
            lost every shape after the first (each node then priced at its launch alone)."""
            if self._get_shape(node, 0) is None or self._get_shape(node, 1) is None:
                return
            scaled = node.input[0] if node.op_type == "DynamicQuantizeMatMul" else node.input[2]
            self._compute_matmul_shape(node, self.known_vi_[scaled].type.tensor_type.elem_type)

        def _infer_QLinearConcat(self, node):  # noqa: N802
            """Its tensors are inputs 2, 5, 8, ... (after Y's scale and zero point, each with its own): the
            library has no rule for it, and guessing from input 0 made the output a scalar, and every shape
            after it unknown (a DB text detector's head, QOperator int8, lost its ConvTransposes)."""
            tensors = range(2, len(node.input), 3)
            shapes = [self._get_sympy_shape(node, i) for i in tensors]
            if not shapes or any(s is None or len(s) != len(shapes[0]) for s in shapes):
                return
            out = list(shapes[0])
            axis = ssi.handle_negative_axis(ssi.get_attribute(node, "axis"), len(out))
            for s in shapes[1:]:
                out[axis] = out[axis] + s[axis]
            self._update_computed_dims(out)
            vi = self.known_vi_[node.output[0]]
            vi.CopyFrom(onnx.helper.make_tensor_value_info(
                node.output[0], self.known_vi_[node.input[2]].type.tensor_type.elem_type,
                ssi.get_shape_from_sympy_shape(out)))

        def _infer_DynamicQuantizeLSTM(self, node):  # noqa: N802
            """An LSTM's outputs (Y [seq, directions, batch, hidden], Y_h and Y_c [directions, batch, hidden]):
            neither onnx nor the library knows this com.microsoft op, and an int8 CRNN's head after it went
            unpriced."""
            x = self._get_sympy_shape(node, 0)
            hidden = ssi.get_attribute(node, "hidden_size")
            if x is None or len(x) != 3 or hidden is None:
                return
            dirs = 2 if ssi.get_attribute(node, "direction", b"forward") in (b"bidirectional", "bidirectional") else 1
            shapes = ([x[0], dirs, x[1], hidden], [dirs, x[1], hidden], [dirs, x[1], hidden])
            elem = self.known_vi_[node.input[0]].type.tensor_type.elem_type
            for name, shape in zip(node.output, shapes, strict=False):
                if name:
                    self.known_vi_[name].CopyFrom(onnx.helper.make_tensor_value_info(
                        name, elem, ssi.get_shape_from_sympy_shape(shape)))

        def _infer_impl(self, *args, **kwargs):
            self._planner_passes = getattr(self, "_planner_passes", 0) + 1
            result = super()._infer_impl(*args, **kwargs)
            if self._planner_passes >= MAX_PASSES:
                self.run_ = False
            return result

        def _infer_ConstantOfShape(self, node):  # noqa: N802
            values = self._get_int_or_float_values(node)[0]
            shape = values if isinstance(values, list) else None if values is None else [values]
            if shape is not None and all(ssi.is_literal(x) for x in shape):
                dims = [int(x) for x in shape]
                numel = bounded_numel(abs(d) for d in dims)
                if numel is None or numel > MAX_PROPAGATED:  # the shape is worth knowing; the values are not
                    self._update_computed_dims(shape)
                    vi = self.known_vi_[node.output[0]]
                    vi.CopyFrom(onnx.helper.make_tensor_value_info(node.output[0], vi.type.tensor_type.elem_type,
                                                                   dims))
                    return
            super()._infer_ConstantOfShape(node)

    return base, Guarded


def symbolic_infer(model: onnx.ModelProto, auto_merge: bool = True, guess_output_rank: bool = True
                   ) -> onnx.ModelProto | None:
    """The model with the shapes onnxruntime could infer; None when its version lacks the steps we drive.

    Never writes a file. The input model is not modified (onnxruntime works on a copy).
    """
    from onnxruntime.tools import symbolic_shape_infer as ssi

    cls = getattr(ssi, "SymbolicShapeInference", None)
    get_opset = getattr(ssi, "get_opset", None)
    if cls is None or get_opset is None or not all(hasattr(cls, s) for s in _STEPS) or not hasattr(ssi, "is_literal"):
        return None  # the public call would write its stray file: better no second opinion than that
    opset = get_opset(model)
    if not opset or opset < 7:
        return None
    with _LOCK:
        base, guarded = _guarded(ssi)
        ssi.SymbolicShapeInference = guarded  # bodies are inferred by instances made from this name
        try:
            sym = guarded(INT_MAX, auto_merge, guess_output_rank, 0)
            sym._preprocess(model)
            while sym.run_:
                sym._infer_impl()
            sym._update_output_from_vi()
        finally:
            ssi.SymbolicShapeInference = base
    return sym.out_mp_
