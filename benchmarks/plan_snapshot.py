"""Every shipped model's `--json` plan on every bundled target, written to a folder; or diffed against one.

A refactor must not change a single plan. Take a snapshot before, another after, and compare:

    XDG_CACHE_HOME=/tmp/cal plan calibrate                      # one stored calibration for `host`, used by both
    XDG_CACHE_HOME=/tmp/cal python benchmarks/plan_snapshot.py --out /tmp/before
    ... change the code ...
    XDG_CACHE_HOME=/tmp/cal python benchmarks/plan_snapshot.py --out /tmp/after --compare /tmp/before

Per model: `plan MODEL --target all --json` (pass pipelines searched and verified, every bundled target),
`plan MODEL --target host --passes none --json` (the calibrated host plans onnxruntime's optimized graph; no
pipeline timing, which would make the plan depend on this moment's machine) and `plan predict MODEL --json`.
Wall-clock fields (`planning_s`, a pass's `seconds`) are left out of the comparison. Exit 1 when a document
differs from the one compared with, naming it and its first differing line.
"""

from __future__ import annotations

import argparse
import difflib
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Wall-clock figures a plan records about itself (how long planning and each pass took): never compared.
WALL_CLOCK = re.compile(r'^\s*"(planning_s|seconds)": [0-9.e+-]+,?$')
RUNS = {
    "all": ["--target", "all", "--json"],
    "host": ["--target", "host", "--passes", "none", "--json"],
}


def models() -> list[Path]:
    return sorted((ROOT / "models").glob("*.onnx")) + sorted((ROOT / "models" / "hf").glob("*.onnx"))


def snapshot(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for model in models():
        rel = model.relative_to(ROOT)
        jobs = {f"{name}": ["plan", str(rel), *args] for name, args in RUNS.items()}
        jobs["predict"] = ["plan", "predict", str(rel), "--json"]
        for name, cmd in jobs.items():
            r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            dest = out / f"{str(rel).replace('/', '_')}.{name}.json"
            dest.write_text(f"exit {r.returncode}\n{r.stdout}{r.stderr}")
            written.append(dest)
            print(f"{rel} {name}: exit {r.returncode}", file=sys.stderr)
    return written


def compare(written: list[Path], before: Path) -> int:
    differ = 0
    for new in written:
        old = before / new.name
        if not old.exists():
            print(f"{new.name}: not in {before}")
            differ += 1
            continue
        a, b = ([x for x in f.read_text().splitlines() if not WALL_CLOCK.match(x)] for f in (old, new))
        if a != b:
            differ += 1
            diff = list(difflib.unified_diff(a, b, lineterm="", n=0))
            print(f"{new.name}: differs; {diff[2] if len(diff) > 2 else ''} -> {diff[3] if len(diff) > 3 else ''}")
    print(f"{len(written) - differ} of {len(written)} documents identical to {before}")
    return 1 if differ else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="folder to write the documents to")
    ap.add_argument("--compare", type=Path, metavar="DIR", help="a snapshot folder to diff against")
    args = ap.parse_args()
    written = snapshot(args.out)
    return compare(written, args.compare) if args.compare else 0


if __name__ == "__main__":
    sys.exit(main())
