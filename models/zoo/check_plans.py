"""Does every zoo model get a plan?  (issue #16: "Every model in the zoo gets a plan; none is refused that
onnxruntime runs.")

    python -m models.zoo.check_plans [--zoo DIR] [--only TEXT ...] [--passes none] [--timeout 600]

Runs, per manifest model at its dims, `plan MODEL --target host --dim ... [--batch N] [--passes P]` and
`plan predict MODEL --target host --dim ... [--batch N]` in child processes, and prints and writes
DIR/plans.json: exit code and the last line of stderr of each. Neither times the model (`--passes none`
keeps `plan` from running pass pipelines in onnxruntime; without it `plan` verifies and times the variants it
searches, a minute a model here). Exit 1 when a model onnxruntime runs gets no plan.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from models.zoo import manifest


def dim_args(record: dict) -> list[str]:
    """The manifest's binding as plan's arguments."""
    out = []
    for k, v in record["dims"].items():
        out += ["--dim", f"{k}={v}"]
    if record.get("batch"):
        out += ["--batch", str(record["batch"])]
    return out


def _run(cmd: list[str], timeout: int) -> dict:
    t0 = time.time()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"rc": None, "error": f"timed out after {timeout} s", "seconds": timeout}
    err = [ln for ln in p.stderr.splitlines() if ln.strip()]
    return {"rc": p.returncode, "error": err[-1][:400] if p.returncode and err else "",
            "seconds": round(time.time() - t0, 1)}


def _report(res: dict, bad: list[dict]) -> None:
    ok = res["plan"]["rc"] == 0 and res["predict"]["rc"] == 0
    if not ok:
        bad.append(res)
    why = f"; {res['plan']['error'] or res['predict']['error']}" if not ok else ""
    print(f"{'ok  ' if ok else 'FAIL'} {res['name']}: plan rc {res['plan']['rc']} ({res['plan']['seconds']} s), "
          f"predict rc {res['predict']['rc']} ({res['predict']['seconds']} s){why}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--zoo", default=str(manifest.default_dir()), help="the zoo folder (default: %(default)s)")
    ap.add_argument("--only", nargs="*", help="models whose name contains one of these")
    ap.add_argument("--passes", default="none", help="plan's --passes (default none; 'default' searches them)")
    ap.add_argument("--timeout", type=int, default=600)
    ap.add_argument("--jobs", type=int, default=1, help="models checked at once")
    args = ap.parse_args(argv)
    folder = Path(args.zoo).expanduser()
    records = [r for r in manifest.load(folder) if not args.only or any(s in r["name"] for s in args.only)]
    plan = [sys.executable, "-m", "planner.cli"]
    passes = [] if args.passes == "default" else ["--passes", args.passes]

    def check(r: dict) -> dict:
        return {"name": r["name"], "ort_runs": r.get("ort_runs"), "dims": r["dims"], "batch": r.get("batch"),
                "plan": _run([*plan, r["path"], "--target", "host", *dim_args(r), *passes], args.timeout),
                "predict": _run([*plan, "predict", r["path"], "--target", "host", *dim_args(r)], args.timeout)}

    results, bad = [], []
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        done = pool.map(check, records)
        for res in done:
            results.append(res)
            _report(res, bad)
    out = folder / "plans.json"
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps({"passes": args.passes, "results": results}, indent=1) + "\n")
    tmp.replace(out)
    refused = [b for b in bad if b["ort_runs"]]
    print(f"{len(records) - len(bad)} of {len(records)} models planned and predicted; {len(refused)} that "
          f"onnxruntime runs failed; {out}")
    return 1 if refused else 0


if __name__ == "__main__":
    sys.exit(main())
