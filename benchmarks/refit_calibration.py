"""Re-fit a stored calibration's own samples with this checkout's fit, and say whether the result changed.

A change to planner.calibration.fit (or to what it reads) must be checked against real measurements without
waiting for a new calibration, whose samples would differ anyway. A calibration file keeps every sample it was
fitted from; this rebuilds the measurements from them, fits again and compares every fitted field (all but
`created`) with what the file holds:

    python benchmarks/refit_calibration.py [--calibration FILE] [--json OUT]

Exit 1 when any entry's fit differs, naming the fields.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from planner.calibration.fit import fit
from planner.calibration.samples import Measurements, Sample
from planner.calibration.store import Calibration, default_path, read_file


def measurements_of(c: Calibration) -> Measurements:
    samples = [Sample(*s[:11], tuple(s[11]), *s[12:]) for s in c.samples]  # older files have no runs
    return Measurements(threads=c.threads, launch_overhead_s=c.launch_overhead_s, run_overhead_s=c.run_overhead_s,
                        run_overhead_per_io_s=c.run_overhead_per_io_s, profiler_bias_s=c.profiler_bias_s,
                        samples=samples, workspace_bytes=c.workspace_bytes, weight_residency=dict(c.weight_residency),
                        seconds=c.seconds, notes=list(c.notes), quick=c.quick, probe_s=c.probe_s)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calibration", type=Path, default=None, help="calibration file (default: the user cache)")
    ap.add_argument("--json", type=Path, help="write the refitted entries here")
    args = ap.parse_args()
    path = args.calibration or default_path()
    entries = read_file(path)
    if not entries:
        print(f"{path}: no calibration entries (run: plan calibrate)", file=sys.stderr)
        return 2
    refitted, changed = {}, 0
    for key, stored in entries.items():
        new = fit(measurements_of(stored)).to_dict()
        old = stored.to_dict()
        fields = sorted(k for k in new if k != "created" and new[k] != old.get(k))
        refitted[key] = new
        changed += bool(fields)
        print(f"{key}: {'differs in ' + ', '.join(fields) if fields else 'identical'}")
    if args.json:
        args.json.write_text(json.dumps(refitted, indent=1) + "\n")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
