"""Build the fidelity zoo of issue #16 into a cache outside the repository, and write its manifest.

    python -m models.zoo.build [--out DIR] [--only FAMILY ...] [--force] [--no-run]

Needs the optional `export` extra (torch CPU, optimum-onnx, transformers) for the exported families; the
onnx.helper ones need nothing beyond the planner's own dependencies. Offline: configs are built in code.

Per family (models/zoo/families.toml): the fp32 file of each part (optimum export, torch.onnx.export or
onnx.helper), its dims rewritten to -1 where the family says so, then each precision variant from the fp32 file
(models/zoo/variants.py). A file already in DIR is kept (delete it, or --force, to rebuild); every file is
written to a temporary name and moved into place with os.replace. Then one onnxruntime run per model entry at
its binding (1 thread; a check that it runs, not a timing) and DIR/manifest.json, one record per entry: name,
file and path, family, class (the scoring class), family_class, variant, split, dims (`plan --dim`), batch
(`plan --batch`, for a -1 batch), ort_runs, ort_error and ort_run_s (that one run's wall time on whatever
else the machine does: a size check, not a measurement), a variant's note (what its build did differently),
and for each fp32 model the smallest median |x| of its activations (models/zoo/scale.py: a randomly
initialised CNN can decay to denormals, which no trained model computes on; the build warns below scale.FLOOR).
A family that fails to build is reported and left out of the manifest; the rest still builds.
Default DIR: ${XDG_CACHE_HOME:-~/.cache}/onnx-planner/zoo.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import onnx

from models.zoo import catalog, controlflow, feeds, hf, scale, torch_nets, variants
from models.zoo.manifest import MANIFEST, MANIFEST_VERSION, default_dir

SEED = 0


def _tmp(dst: Path) -> Path:
    return dst.with_name(f".{dst.name}.{os.getpid()}.tmp")


def build_fp32(family: catalog.Family, out: Path, force: bool) -> dict[str, Path]:
    """The fp32 file of each part (built unless present): part -> path."""
    paths = {p.name: out / catalog.file_name(family.name, p.name, "fp32") for p in family.parts}
    todo = {k: v for k, v in paths.items() if force or not v.exists()}
    if not todo:
        return paths
    tmps = {k: _tmp(v) for k, v in todo.items()}
    next(iter(tmps.values())).parent.mkdir(parents=True, exist_ok=True)
    try:
        if family.source == "onnx-helper":
            onnx.save(controlflow.build(family.model, family.config, SEED), str(tmps["model"]))
        elif family.source in ("torch-nn", "db-text"):
            torch_nets.export(family.model, family.config, tmps["model"], SEED)
        else:
            hf.export(family.model, family.config, family.task or "", list(tmps), tmps, SEED, family.init)
        for part, tmp in tmps.items():
            model = onnx.load(str(tmp))
            if family.minus_one:
                variants.minus_one(model, family.minus_one)
            variants.save_model(model, todo[part])
    finally:
        for tmp in tmps.values():
            tmp.unlink(missing_ok=True)
    return paths


def model_dims(model: onnx.ModelProto, binding: dict[str, int]) -> tuple[dict[str, int], int | None, list[str]]:
    """The binding as `plan` takes it: the dims the model names, a --batch for a -1 batch, and the dims the
    binding names that the model does not have (reported, not passed)."""
    names = feeds.symbolic_dims(model)
    dims = {k: v for k, v in binding.items() if k in names}
    dropped = [k for k in binding if k not in names]
    anonymous = any(d.HasField("dim_value") and d.dim_value == -1 or not (d.dim_param or d.HasField("dim_value"))
                    for vi in feeds.graph_inputs(model) for d in vi.type.tensor_type.shape.dim)
    return dims, (1 if anonymous else None), dropped


def _previous(out: Path) -> dict[str, dict]:
    try:
        return {r["name"]: r for r in json.loads((out / MANIFEST).read_text())["models"]}
    except (OSError, ValueError, KeyError):
        return {}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(default_dir()), help="the zoo folder (default: %(default)s)")
    ap.add_argument("--only", nargs="*", help="build only these families")
    ap.add_argument("--force", action="store_true", help="rebuild files that exist")
    ap.add_argument("--no-run", action="store_true", help="skip the onnxruntime run of each model")
    args = ap.parse_args(argv)
    logging.getLogger().setLevel(logging.ERROR)  # the quantizers warn about every tensor they leave float
    out = Path(args.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    families = catalog.load_families()
    if args.only:
        unknown = set(args.only) - {f.name for f in families}
        if unknown:
            print(f"build: unknown families {sorted(unknown)}", file=sys.stderr)
            return 2
        families = [f for f in families if f.name in args.only]
    previous = _previous(out)
    records: dict[str, dict] = {k: v for k, v in previous.items()
                                if args.only and v["family"] not in args.only}  # other families' records stay
    failed: list[str] = []
    started = time.time()
    for fam in families:
        t0 = time.time()
        try:
            fp32 = build_fp32(fam, out, args.force)
        except Exception as e:  # noqa: BLE001 - one family's failure must not stop the zoo
            failed.append(f"{fam.name}: {type(e).__name__}: {str(e)[:300]}")
            print(f"FAILED {fam.name}: {failed[-1]}", file=sys.stderr, flush=True)
            continue
        built: set[str] = set()
        for entry in catalog.entries([fam]):
            path = out / entry.file
            if entry.variant != "fp32" and entry.file not in built and (args.force or not path.exists()):
                built.add(entry.file)
                try:
                    part = next(p for p in fam.parts if p.name == entry.part)
                    variants.make_variant(entry.variant, fp32[entry.part], path, next(iter(part.dims.values())))
                except Exception as e:  # noqa: BLE001 - recorded; the variant is left out
                    failed.append(f"{entry.name}: {type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}")
                    print(f"FAILED {failed[-1]}", file=sys.stderr, flush=True)
                    continue
            if not path.exists():
                continue  # its build failed (reported above)
            model = onnx.load(str(path), load_external_data=False)
            dims, batch, dropped = model_dims(model, entry.dims)
            st = path.stat()
            stamp = [st.st_size, st.st_mtime_ns]
            old = previous.get(entry.name)
            floor = None
            if old and old.get("stamp") == stamp and old.get("dims") == dims and "ort_run_s" in old:
                runs, why, seconds = old["ort_runs"], old.get("ort_error", ""), old["ort_run_s"]
                floor = old.get("activation_floor")
            elif args.no_run:
                runs, why, seconds = None, "not run (--no-run)", None
            else:
                runs, why, seconds = feeds.run_once(str(path), {**entry.dims, **dims})
                if runs and entry.variant == "fp32":
                    try:
                        floor, where = scale.smallest_median(str(path), {**entry.dims, **dims})
                    except Exception as e:  # noqa: BLE001 - a check that cannot run is reported, not fatal
                        floor, where = None, ""
                        print(f"  activation scale of {entry.name} not checked: {type(e).__name__}", flush=True)
                    if floor is not None and floor < scale.FLOOR:
                        print(f"  DECAYED {entry.name}: median |x| {floor:.1e} at {where} (families.toml: "
                              f"init = \"{hf.CNN_INIT}\")", flush=True)
            records[entry.name] = {
                "name": entry.name, "file": entry.file, "path": str(path), "family": entry.family,
                "class": entry.scoring_class, "family_class": entry.family_class, "part": entry.part,
                "variant": entry.variant, "binding": entry.binding, "split": entry.split, "dims": dims,
                "batch": batch, "dims_not_in_model": dropped, "ort_runs": runs, "ort_error": why,
                "ort_run_s": round(seconds, 4) if seconds is not None else None,
                "bytes": st.st_size, "nodes": len(model.graph.node),
                "activation_floor": None if floor is None or floor == float("inf") else float(f"{floor:.3g}"),
                "note": next((p.value for p in model.metadata_props if p.key == variants.NOTE_KEY), ""),
                "source": fam.source, "stamp": stamp}
            flag = "ok " if runs else "ORT-REFUSED " if runs is False else ""
            took = f", one run {1e3 * seconds:.0f} ms" if seconds else ""
            print(f"  {flag}{entry.name}: {st.st_size / 1e6:.1f} MB, {len(model.graph.node)} nodes{took}"
                  f"{'; ' + why if why else ''}", flush=True)
        print(f"{fam.name}: {time.time() - t0:.0f} s", flush=True)
    order = {e.name: i for i, e in enumerate(catalog.entries(catalog.load_families()))}
    models = sorted(records.values(), key=lambda r: order.get(r["name"], len(order)))
    doc = {"version": MANIFEST_VERSION, "built_by": "python -m models.zoo.build", "seed": SEED,
           "families_file": str(catalog.FAMILIES_FILE), "models": models, "failed": failed}
    variants.replace_into(out / MANIFEST, lambda p: p.write_text(json.dumps(doc, indent=1) + "\n"))
    runs = sum(bool(r["ort_runs"]) for r in models)
    print(f"zoo: {len(models)} models ({runs} run in onnxruntime), {len(failed)} failures, "
          f"{time.time() - started:.0f} s; {out / MANIFEST}")
    for f in failed:
        print(f"  failed: {f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
