"""Do two calibrations of this machine predict the same? (issue #16: a calibration taken on a busy machine)

    python benchmarks/calibration_agreement.py REFERENCE.json OTHER.json [MORE.json ...] [--threads 1]
                                               [--only NAME ...]

Predicts every model of benchmarks/fidelity.py's zoo with each calibration (nothing is run, so this can be done
at any time, on a busy machine too) and prints each prediction against the first file's, then per file the
median and largest |ratio - 1|. Take the reference on a quiet machine and the others while neighbours run:
the spread is what a busy calibration would cost every later prediction. Each file must hold an entry for this
machine at --threads.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from fidelity import zoo  # noqa: E402

from planner.calibration.host import predict_ort  # noqa: E402
from planner.calibration.store import find  # noqa: E402
from planner.model.loader import load_model  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("calibrations", nargs="+", help="calibration files; the first is the reference")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", nargs="*", help="the models whose name contains one of these")
    args = ap.parse_args(argv)
    if len(args.calibrations) < 2:
        print("calibration_agreement: give a reference and at least one other calibration", file=sys.stderr)
        return 2
    for path in args.calibrations:
        found = find(args.threads, path)
        if found.calibration is None:
            print(f"calibration_agreement: {found.why}", file=sys.stderr)
            return 2
        noise = found.calibration.noise
        unsure = f", {int(noise['unconfirmed'])} of {int(noise['benches'])} unconfirmed" if noise else ""
        print(f"{path}: created {found.calibration.created}{unsure}")
    with tempfile.TemporaryDirectory(prefix="planner-agreement-") as tmp:
        cases = [c for c in zoo(Path(tmp)) if not args.only or any(s in c.name for s in args.only)]
        ratios: list[list[float]] = [[] for _ in args.calibrations[1:]]
        print(f"\n{'model':<24}{'reference ms':>13}" + "".join(f"{'#' + str(i + 1):>9}" for i in range(len(ratios))))
        for c in cases:
            loaded = load_model(c.path)
            ms = [predict_ort(loaded, args.threads, c.dims, c.batch, p).prediction.latency_s * 1e3
                  for p in args.calibrations]
            for r, m in zip(ratios, ms[1:], strict=True):
                r.append(m / ms[0])
            print(f"{c.name:<24}{ms[0]:>13.3f}" + "".join(f"{m / ms[0] - 1:>+9.1%}" for m in ms[1:]))
    print()
    for i, r in enumerate(ratios):
        dev = [abs(x - 1) for x in r]
        print(f"#{i + 1} {args.calibrations[i + 1]}: median |ratio - 1| {statistics.median(dev):.1%}, "
              f"largest {max(dev):.1%}, mean ratio {statistics.fmean(r):.3f} over {len(r)} models")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
