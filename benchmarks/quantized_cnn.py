"""CNNs quantized the way people ship them (onnxruntime's quantize_dynamic: ConvInteger, MatMulInteger and a
DynamicQuantizeLinear before each), predicted and measured here.

    python benchmarks/quantized_cnn.py [--calibration FILE] [--runs 10]

Quantizes, in a temporary folder, onnx's light ResNet-50 and Inception-v2 and the zoo's CNN (u8 weights, as
quantize_dynamic writes by default), predicts each as `plan predict` does twice, with the calibration as it is
and with its int8-convolution curve and DynamicQuantizeLinear figures removed (what the planner did before it
measured them: the u8 GEMM rate for a ConvInteger), then measures it with onnxruntime at one thread.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import sys
import tempfile
from pathlib import Path

import onnx

from planner.calibration.host import predict_ort
from planner.calibration.store import default_path
from planner.model.loader import load_model
from planner.ort.measure import measure

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


def without_int8_conv(src: Path, dst: Path) -> Path:
    doc = json.loads(src.read_text())
    for entry in doc["calibrations"].values():
        entry["rate_curves"] = {k: v for k, v in entry["rate_curves"].items() if not k.startswith("conv.int8")}
        entry["throughput_curves"].pop("DynamicQuantizeLinear", None)
    dst.write_text(json.dumps(doc))
    return dst


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calibration", type=Path, default=None, help="calibration file (default: the user cache)")
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    cal = args.calibration or default_path()
    with tempfile.TemporaryDirectory(prefix="planner-quantized-") as tmp:
        d = Path(tmp)
        before = without_int8_conv(cal, d / "without.json")
        print(f"{'model (dynamic int8)':22} {'measured':>11} {'predicted':>11} {'error':>7}   "
              f"{'without':>11} {'error':>7}")
        for i, (label, src, dims) in enumerate(MODELS):
            path = quantized(src, d / f"model{i}.onnx")
            loaded = load_model(path)
            now = predict_ort(loaded, 1, dims, None, cal).prediction.latency_s
            old = predict_ort(loaded, 1, dims, None, before).prediction.latency_s
            measured = measure(path, dims, threads=1, runs=args.runs).latency_s
            print(f"{label:22} {measured * 1e3:8.3f} ms {now * 1e3:8.3f} ms {now / measured - 1:+7.1%}   "
                  f"{old * 1e3:8.3f} ms {old / measured - 1:+7.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
