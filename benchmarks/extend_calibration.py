"""Time some of the calibration suite's microbenchmarks now and fit a stored calibration again with them.

A change to the cost model that adds microbenchmarks (a kernel family of its own) has to be scored against the
measurements a fidelity run already holds, which were taken beside one calibration; a whole new calibration,
minutes later on a shared machine, moves every other figure too (docs/fidelity.md: the calibration moment
dominates). This times only the benches whose labels start with one of the --only prefixes (the quickest of
--passes passes, as `plan calibrate` keeps), swaps their samples into the stored calibration's own, fits the
result with this checkout's fit, and writes it to --out (the input is not modified):

    python benchmarks/extend_calibration.py --calibration CAL --only "Resize " --out NEW.json

It says which families gained or changed a curve. The merged file mixes two moments; `plan calibrate` stays
the way to make a calibration, this the way to score one cost-model change at a time.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.refit_calibration import measurements_of  # noqa: E402
from planner.calibration.benches import weight_chain, weight_chain_label  # noqa: E402
from planner.calibration.cold import COLD_STREAMS, cold_label, cold_sample  # noqa: E402
from planner.calibration.fit import fit  # noqa: E402
from planner.calibration.run import quickest  # noqa: E402
from planner.calibration.store import default_path, read_file, save  # noqa: E402
from planner.calibration.suite import suite, weight_chains  # noqa: E402
from planner.calibration.timing import (  # noqa: E402
    Overheads,
    e2e_seconds,
    profiled,
    samples_of,
    weight_chain_sample,
)
from planner.errors import PlannerError  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calibration", type=Path, default=None, help="calibration file (default: the user cache)")
    ap.add_argument("--only", action="append", required=True, help="bench label prefix (repeatable)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    try:
        entries = {k: c for k, c in read_file(args.calibration or default_path()).items()
                   if c.threads == args.threads}
    except PlannerError as e:
        print(f"extend_calibration: {e}", file=sys.stderr)
        return 2
    if not entries:
        print(f"no {args.threads}-thread calibration in {args.calibration}", file=sys.stderr)
        return 2
    stored = next(iter(entries.values()))
    wanted = tuple(args.only)
    benches = [b for b in suite() if b.label.startswith(wanted)]
    chains = [(weight_chain(*spec), spec) for spec in weight_chains(False)
              if weight_chain_label(*spec).startswith(wanted)]  # only the wanted chains' weights are built
    colds = [(s, blocks) for s, blocks in COLD_STREAMS if cold_label(blocks, s).startswith(wanted)]
    if not benches and not chains and not colds:
        print(f"no bench label starts with {args.only}", file=sys.stderr)
        return 2
    o = Overheads(stored.launch_overhead_s, stored.run_overhead_s, stored.run_overhead_per_io_s,
                  stored.profiler_bias_s)
    passes = []
    with tempfile.TemporaryDirectory(prefix="planner-extend-") as tmp:
        for _ in range(args.passes):
            one = [s for b in benches for s in samples_of(
                profiled(b, args.threads, 30, 0.15, Path(tmp), e2e=True), o, b.label)]
            for b, (k, n, t, r, q) in chains:  # end to end, as plan calibrate times weight chains
                e2e = e2e_seconds(b, args.threads, 200, 0.2)
                one.append(weight_chain_sample(b, k, n, t, e2e, o, rows=r, int8=q))
            one += [cold_sample(s, blocks, args.threads, 40, Path(tmp)) for s, blocks in colds]
            passes.append(one)
    new = quickest(passes)
    labels = {b.label for b in benches} | {b.label for b, _ in chains} | {cold_label(b, s) for s, b in colds}
    m = measurements_of(stored)
    m.samples = [s for s in m.samples if s.label not in labels] + new
    cal = fit(m)
    for s in sorted(new, key=lambda s: s.label):
        rate = f"{s.bytes / s.seconds / 1e9:7.2f} GB/s" if s.seconds else ""
        print(f"{s.label:<44} {s.family:<32} {s.seconds * 1e6:9.2f} us  {rate}")
    if cal.cold_kind_curve != stored.cold_kind_curve:
        print("  cold kind curve: " + ", ".join(f"{nbytes / 2**20:g} MiB {s * 1e6:.2f} us"
                                               for nbytes, s in cal.cold_kind_curve))
    for name in ("int8_rows_weight_curve", "fp32_rows_weight_curve"):
        if getattr(cal, name) != getattr(stored, name):
            print(f"  {name.replace('_', ' ')}: " + ", ".join(f"{ws / 2**20:g} MiB {bw / 1e9:.1f} GB/s"
                                                            for ws, bw in getattr(cal, name)))
    for fam in sorted({s.family for s in new}):
        before, after = stored.throughput_curves.get(fam), cal.throughput_curves.get(fam)
        if before is not None or after is not None:
            print(f"  {fam}: {'new curve' if before is None else 'changed' if before != after else 'unchanged'}")
    path = save(dataclasses.replace(cal, created=stored.created), args.out)  # the moment the rest was measured
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
