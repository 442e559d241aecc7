"""Which loop onnxruntime runs for a plain Resize or a Transpose decides its time per element far more than
its bytes do (planner.predict.families.RESIZE_COPY, ELEMENT_RUNS): the families, worked out by hand from the
shapes, modes and types, and each family the calibration suite times with a bench of its own."""

from __future__ import annotations

from planner.costs import OpClass
from planner.model.ir import NodeInfo, TensorInfo
from planner.predict.families import kernel_family, written_rows


def _node(op: str, x: tuple, y: tuple, dtype: str = "float32", **attrs) -> NodeInfo:
    return NodeInfo("n", op, "", (TensorInfo("x", x, dtype),), (TensorInfo("y", y, dtype),), attrs)


def _resize(x, y, dtype="float32", **attrs) -> str:
    return kernel_family(_node("Resize", x, y, dtype, **attrs), OpClass.VECTOR)


def _transpose(x, perm, dtype="float32") -> str:
    y = tuple(x[p] for p in perm)
    return kernel_family(_node("Transpose", x, y, dtype, perm=perm), OpClass.DATA)


def test_resize_families_follow_onnxruntimes_loops():
    img, up = (1, 64, 80, 80), (1, 64, 160, 160)
    # a resize to its own shape copies, whatever its mode
    assert _resize(img, img, mode=b"linear") == "Resize:copy"
    assert _resize(img, img, "uint8") == "Resize:copy"
    # nearest 2x of H and W with asymmetric coordinates and floor rounding: the 2x loop
    assert _resize(img, up, coordinate_transformation_mode=b"asymmetric", nearest_mode=b"floor") == "Resize:nearest2x"
    # ... not with another rounding, another scale or other axes
    assert _resize(img, up, coordinate_transformation_mode=b"asymmetric") == "Resize"
    assert _resize((1, 16, 40, 40), (1, 16, 160, 160), coordinate_transformation_mode="asymmetric",
                   nearest_mode="floor") == "Resize"
    nhwc, nhwc_up = (1, 80, 80, 64), (1, 160, 160, 64)
    assert _resize(nhwc, nhwc_up, "uint8", coordinate_transformation_mode="asymmetric",
                   nearest_mode="floor") == "Resize:u8"
    # an Upsample (before opset 11) always takes the 2x loop at 2x
    assert kernel_family(_node("Upsample", img, up), OpClass.VECTOR) == "Upsample:nearest2x"
    # linear: NCHW or channels last, fp32 or 8-bit
    assert _resize(img, up, mode="linear") == "Resize:interpolated"
    assert _resize(img, up, "uint8", mode="linear") == "Resize:interpolated:u8"
    assert _resize(nhwc, nhwc_up, mode="linear") == "Resize:interpolated:nhwc"
    assert _resize(nhwc, nhwc_up, "int8", mode="linear") == "Resize:interpolated:u8:nhwc"
    # the blocked layout's Upsample keeps its own families
    blocked = NodeInfo("n", "Upsample", "com.microsoft.nchwc", (TensorInfo("x", img, "float32"),),
                       (TensorInfo("y", up, "float32"),), {"mode": "linear"})
    assert kernel_family(blocked, OpClass.VECTOR) == "nchwc.Upsample:interpolated"


def test_transpose_families_by_run_rows_and_type():
    # rows of C written while stepping along W: NCHW -> NHWC writes rows of 64
    assert written_rows(_node("Transpose", (1, 64, 32, 32), (1, 32, 32, 64), perm=[0, 2, 3, 1])) == 64
    # NHWC -> NCHW writes H·W = 1024 in order
    assert written_rows(_node("Transpose", (1, 32, 32, 64), (1, 64, 32, 32), perm=[0, 3, 1, 2])) == 1024
    assert _transpose((1, 64, 32, 32), [0, 2, 3, 1]) == "Transpose:element:narrow"
    assert _transpose((1, 64, 32, 32), [0, 2, 3, 1], "uint8") == "Transpose:element:narrow:u8"
    assert _transpose((1, 32, 32, 64), [0, 3, 1, 2]) == "Transpose:element"
    assert _transpose((1, 32, 32, 64), [0, 3, 1, 2], "uint8") == "Transpose:element:u8"
    # [b, m, n] -> [b, n, m] writes rows of m
    assert _transpose((1, 128, 16384), [0, 2, 1]) == "Transpose:element:narrow"
    assert _transpose((1, 16384, 128), [0, 2, 1]) == "Transpose:element"
    # runs of 32 move together: neither element family; runs of 64 or more: a copy of long runs
    assert _transpose((1, 128, 4, 32), [0, 2, 1, 3]) == "Transpose"
    assert _transpose((1, 128, 4, 32), [0, 2, 1, 3], "uint8") == "Transpose:u8"
    assert _transpose((1, 128, 4, 64), [0, 2, 1, 3], "uint8") == "Transpose:long"


def test_the_suite_times_every_new_family(tmp_path):
    """Each family above that a model can meet has benches of its own, so no calibration borrows another
    loop's speed for it (the bench graphs are costed as `plan calibrate` costs them)."""
    from planner.calibration.suite import suite
    from planner.costs import node_cost
    from planner.model.analyze import Analyzer
    from planner.model.loader import load_model

    families = set()
    for i, b in enumerate(suite()):
        if not b.label.startswith(("Resize", "Transpose")):
            continue
        path = tmp_path / f"b{i}.onnx"
        path.write_bytes(b.model)
        a = Analyzer(load_model(path)).analyze()
        families |= {kernel_family(n, node_cost(n).op_class) for n in a.graph.nodes}
    assert {"Resize", "Resize:copy", "Resize:nearest2x", "Resize:u8", "Resize:interpolated",
            "Resize:interpolated:u8", "Resize:interpolated:nhwc", "Resize:interpolated:u8:nhwc",
            "Transpose", "Transpose:u8", "Transpose:long", "Transpose:element", "Transpose:element:u8",
            "Transpose:element:narrow", "Transpose:element:narrow:u8"} <= families
