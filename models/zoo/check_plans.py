"""Does every zoo model get a plan?  (issue #16: "Every model in the zoo gets a plan; none is refused that
onnxruntime runs.")

    python -m models.zoo.check_plans [--zoo DIR] [--only TEXT ...] [--passes none]

Runs, per manifest model at its dims, `plan MODEL --target host --dim ... [--batch N] [--passes P]` and
`plan predict MODEL --target host --dim ... [--batch N]` (planner.cli.main in this process: a child process
per command spent most of its time importing), and prints and writes DIR/plans.json: exit code and the last
line of stderr of each. Neither times the model (`--passes none` keeps `plan` from running pass pipelines in
onnxruntime; without it `plan` verifies and times the variants it searches, a minute a model here). A decoder
with a KV cache is planned by its phases: `plan` takes --prompt-len / --gen-len instead of its sequence and past
dims (it refuses those by design), so for a decoder the check passes --prompt-len (sequence + past of the
binding) and --gen-len 16; `plan predict` takes the dims as they are. Exit 1 when a model onnxruntime runs gets
no plan.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
from pathlib import Path

from models.zoo import manifest
from planner import cli


def dim_args(record: dict) -> list[str]:
    """The manifest's binding as plan's arguments."""
    out = []
    for k, v in record["dims"].items():
        out += ["--dim", f"{k}={v}"]
    if record.get("batch"):
        out += ["--batch", str(record["batch"])]
    return out


DECODER_REFUSAL = "a decoder's phases bind"


def _run(argv: list[str]) -> dict:
    """planner.cli.main(argv) with its output captured: exit code, last line of stderr (or the exception)."""
    t0 = time.time()
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = cli.main(argv)
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else 2
    except Exception as e:  # noqa: BLE001 - a crash is the finding: recorded with its type and message
        rc, err = 99, io.StringIO(f"{type(e).__name__}: {e}")
    lines = [ln for ln in err.getvalue().splitlines() if ln.strip()]
    return {"rc": rc, "error": lines[-1][:400] if rc and lines else "", "seconds": round(time.time() - t0, 1)}


def plan_argv(record: dict, passes: list[str]) -> list[str]:
    """`plan` on this record: its dims, or for a decoder its phases' lengths (see the module's docstring)."""
    return [record["path"], "--target", "host", *dim_args(record), *passes]


def decoder_plan_argv(record: dict, passes: list[str]) -> list[str]:
    """The decoder's sequence and past dims (its own, not an encoder's) as one prompt length."""
    phase = [k for k in record["dims"] if "sequence" in k and not k.startswith("encoder")]
    dims = {k: v for k, v in record["dims"].items() if k not in phase}
    prompt = sum(record["dims"][k] for k in phase if "total" not in k)
    return [record["path"], "--target", "host", *dim_args({**record, "dims": dims}), "--prompt-len",
            str(max(prompt, 1)), "--gen-len", "16", *passes]


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
    ap.add_argument("--out", default="plans.json", help="results file in the zoo folder (default %(default)s)")
    args = ap.parse_args(argv)
    folder = Path(args.zoo).expanduser()
    records = [r for r in manifest.load(folder) if not args.only or any(s in r["name"] for s in args.only)]
    passes = [] if args.passes == "default" else ["--passes", args.passes]
    results, bad = [], []
    for r in records:
        planned = _run(plan_argv(r, passes))
        if planned["rc"] and DECODER_REFUSAL in planned["error"]:
            planned = {**_run(decoder_plan_argv(r, passes)), "as_decoder": True}
        res = {"name": r["name"], "ort_runs": r.get("ort_runs"), "dims": r["dims"], "batch": r.get("batch"),
               "plan": planned, "predict": _run(["predict", r["path"], "--target", "host", *dim_args(r)])}
        results.append(res)
        _report(res, bad)
    out = folder / args.out
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps({"passes": args.passes, "results": results}, indent=1) + "\n")
    tmp.replace(out)
    refused = [b for b in bad if b["ort_runs"]]
    print(f"{len(records) - len(bad)} of {len(records)} models planned and predicted; {len(refused)} that "
          f"onnxruntime runs failed; {out}")
    return 1 if refused else 0


if __name__ == "__main__":
    sys.exit(main())
