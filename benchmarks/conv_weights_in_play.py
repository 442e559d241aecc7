"""How much slower does a blocked convolution run when its weights are one share of many?  (issue #16)

    python benchmarks/conv_weights_in_play.py [--in-play 3 12 48] [--runs 40]

Per shape, a chain of Conv + Relu pairs [1, C, S, S] -> [1, C, S, S] with weights of their own, sized to about
each --in-play MiB of weights in all, against the same chain with one weight shared by every node (so the
same kernels, the same activations, the weights in cache): the median over the chain's convolutions of each
one's quickest-quartile profiled time (1 thread), the difference, and the speed it implies for the weights
(bytes / extra time). On a Zen 4 EPYC (2026-12-07): 3x3 ones 21-28 GB/s once 11 MiB or more are in play, 1x1
ones 44-60; the planner reads a convolution's weights at the GEMV chains' speed (about 34 GB/s at 45 MiB).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.node_profile import node_quartiles_us  # noqa: E402

SHAPES = [(256, 14, 3), (512, 7, 3), (128, 28, 3), (1024, 7, 1), (512, 14, 1)]  # (channels, side, kernel)


def chain(c: int, side: int, k: int, length: int, shared: bool) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    nodes, inits, x = [], [], "x"
    for i in range(length):
        w, b = ("w0", "b0") if shared else (f"w{i}", f"b{i}")
        if not shared or i == 0:
            scaled = (rng.standard_normal((c, c, k, k)) / (c * k * k) ** 0.5).astype(np.float32)
            inits += [numpy_helper.from_array(scaled, w), numpy_helper.from_array(np.zeros(c, np.float32), b)]
        nodes += [helper.make_node("Conv", [x, w, b], [f"c{i}"], name=f"conv{i}", kernel_shape=[k, k],
                                   pads=[k // 2] * 4),
                  helper.make_node("Relu", [f"c{i}"], [f"y{i}"], name=f"relu{i}")]
        x = f"y{i}"
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, c, side, side]) for n in ("x", x)]
    return helper.make_model(helper.make_graph(nodes, "chain", io[:1], io[1:], inits),
                             opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def conv_us(model: onnx.ModelProto, runs: int) -> float:
    """The median over the chain's convolutions of each one's quickest-quartile profiled time, in us."""
    return statistics.median(node_quartiles_us(model, runs, lambda op: "Conv" in op).values())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--in-play", type=float, nargs="+", default=[3.0, 12.0, 48.0], help="MiB of weights in all")
    ap.add_argument("--runs", type=int, default=40)
    args = ap.parse_args()
    if args.runs < 1 or min(args.in_play) <= 0:
        print("conv_weights_in_play: sizes must be positive", file=sys.stderr)
        return 2
    for c, side, k in SHAPES:
        w = 4 * c * c * k * k
        for mib in args.in_play:
            length = max(2, round(mib * 2**20 / w))
            shared, own = conv_us(chain(c, side, k, length, True), args.runs), \
                conv_us(chain(c, side, k, length, False), args.runs)
            extra = own - shared
            speed = f"{w / (extra * 1e-6) / 1e9:6.1f} GB/s" if extra > 0.5 else "   (none)"
            print(f"{c:5} -> {c:<5} {side:3}x{side:<3} k{k}  {w / 2**20:5.2f} MiB x {length:3} = "
                  f"{length * w / 2**20:4.0f} MiB: shared {shared:8.1f} us, own {own:8.1f} ({extra:+7.1f}, {speed})",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
