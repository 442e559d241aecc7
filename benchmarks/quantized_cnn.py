"""CNNs quantized the way people ship them (onnxruntime's quantize_dynamic: ConvInteger, MatMulInteger and a
DynamicQuantizeLinear before each), predicted and measured here.

    python benchmarks/quantized_cnn.py [--calibration FILE] [--runs 10]

Quantizes, in a temporary folder, onnx's light ResNet-50 and Inception-v2 and the zoo's CNN (u8 weights, as
quantize_dynamic writes by default), predicts each as `plan predict` does twice, with the calibration as it is
and with its int8-convolution curve and DynamicQuantizeLinear figures removed (what the planner did before it
measured them: the u8 GEMM rate for a ConvInteger), then measures it with onnxruntime at one thread.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import tempfile
from pathlib import Path

import onnx
from with_and_without import arguments, report, without

ROOT = Path(__file__).resolve().parent.parent
LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
MODELS = [("resnet50", LIGHT / "light_resnet50.onnx", {}), ("inception_v2", LIGHT / "light_inception_v2.onnx", {}),
          ("zoo cnn, batch 8", ROOT / "models" / "cnn.onnx", {"batch": 8})]


def quantized(src: Path, dst: Path) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(logging.ERROR)  # its advice to pre-process is not ours to print
    with contextlib.redirect_stdout(io.StringIO()):
        quantize_dynamic(str(src), str(dst), op_types_to_quantize=["Conv", "MatMul", "Gemm"],
                         weight_type=QuantType.QUInt8)
    return dst


def _drop_int8_conv(entry: dict) -> None:
    entry["rate_curves"] = {k: v for k, v in entry["rate_curves"].items() if not k.startswith("conv.int8")}
    entry["throughput_curves"].pop("DynamicQuantizeLinear", None)


def main() -> int:
    cal, runs = arguments(__doc__, 10)
    with tempfile.TemporaryDirectory(prefix="planner-quantized-") as tmp:
        d = Path(tmp)
        before = without(cal, d / "without.json", _drop_int8_conv)
        cases = [(label, quantized(src, d / f"model{i}.onnx"), dims) for i, (label, src, dims) in enumerate(MODELS)]
        report(cases, cal, before, runs, title="model (dynamic int8)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
