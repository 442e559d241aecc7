"""`plan calibrate`: measure this machine so that `--target host` predicts from data (planner.calibration.run)."""

from __future__ import annotations

import argparse
import json
import sys

from planner.calibration.fit import fit
from planner.calibration.noise import fastest_gemm, warnings
from planner.calibration.run import calibrate
from planner.calibration.store import CalibrationFileError, default_path, read_file, save
from planner.commands.args import threads
from planner.output.progress import Progress

NAME = "calibrate"
HELP = "measure this machine with onnxruntime microbenchmarks; host predictions then use the result"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=threads, default=1,
                   help="onnxruntime intra-op threads to calibrate for (default 1; calibrations are per count)")
    p.add_argument("--out", metavar="FILE",
                   help="calibration file to write (default: the user cache, which --target host reads)")
    p.add_argument("--quick", action="store_true", help="a few microbenchmarks only (seconds; for smoke tests)")
    p.add_argument("--json", action="store_true", help="print the calibration entry as JSON")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress output")


def _fmt_bw(bps: float) -> str:
    return f"{bps / 1e9:.1f} GB/s"


def summary(cal, path) -> str:
    lines = [f"calibrated {cal.fingerprint}, {cal.threads} thread(s){' (quick)' if cal.quick else ''} "
             f"in {cal.seconds:.0f} s -> {path}",
             f"  per run {cal.run_overhead_s * 1e6:.1f} us (+{cal.run_overhead_per_io_s * 1e6:.2f} us per input/output"
             " beyond one of each)"
             f", per kernel {cal.launch_overhead_s * 1e6:.2f} us, profiler bias {cal.profiler_bias_s * 1e6:.1f} us"]
    bw = ", ".join(f"{ws / 2**10:.0f} KiB {_fmt_bw(b)}" if ws < 2**20 else f"{ws / 2**20:.0f} MiB {_fmt_bw(b)}"
                   for ws, b in cal.bandwidth_curve)
    lines.append(f"  streaming: {bw}")
    for key in sorted(cal.rate_curves):
        if key.startswith(("matrix.", "vector.")):
            continue
        best = max(y for _, y in cal.rate_curves[key])
        lines.append(f"  {key:<22} up to {best / 1e9:7.1f} GFLOP/s ({len(cal.rate_curves[key])} points)")
    lines.append(f"  {len(cal.throughput_curves)} vector/data op families measured")
    if cal.noise:
        n = cal.noise
        lines.append(f"  noise: {int(n.get('unconfirmed', 0))} of {int(n.get('benches', 0))} microbenchmarks "
                     f"unconfirmed; passes apart by {n.get('median_spread', 0):.1%} (median), "
                     f"{n.get('p90_spread', 0):.1%} (90th percentile)")
    lines += [f"  note: {n}" for n in cal.notes]
    return "\n".join(lines)


def _previous(key: str, out: str | None):
    """This machine's calibration for these threads before this one, if the file holds one and can be read."""
    try:
        return read_file(out or default_path()).get(key)
    except CalibrationFileError:
        return None


def run(args: argparse.Namespace) -> int:

    with Progress("calibrating", enabled=not args.quiet, delay_s=0.0) as bar:
        m = calibrate(args.threads, quick=args.quick, progress=bar.update)
    cal = fit(m)
    previous = _previous(cal.key, args.out)
    path = save(cal, args.out)
    if m.busy:
        print(f"plan calibrate: warning: the machine was busy for {m.busy} microbenchmarks (planner.ort.quiet); "
              "its figures may run slow: calibrate again when the machine is quiet", file=sys.stderr)
    for line in warnings(m.noise, m.probe_s, previous.probe_s if previous else None,
                         fastest_gemm(cal), fastest_gemm(previous) if previous else None):
        print(f"plan calibrate: warning: {line}", file=sys.stderr)
    if args.json:
        print(json.dumps(cal.to_dict(), indent=1))
    else:
        print(summary(cal, path))
        if args.out and path != default_path():
            print(f"  (--target host reads {default_path()}; "
                  f"plan predict / validate --calibration {path} read this one)")
    return 0
