"""`plan report`: a self-contained HTML page (parsed strictly here) whose roofline points and ceilings carry
numbers derived by hand, a markdown twin with its chart beside it, and the decoder split when a plan has it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest
from gate_models import K, build_mlp, pin

from planner.calibration.host import get_target
from planner.cli import main
from planner.output.report import write_report

SVG = "{http://www.w3.org/2000/svg}"
BATCH, H = 256, 1024


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return build_mlp(tmp_path_factory.mktemp("report") / "mlp.onnx", H)


@pytest.fixture(scope="module")
def page(model, tmp_path_factory):
    out = tmp_path_factory.mktemp("html") / "report.html"
    assert main(["report", str(model), "--target", "a10g,t4", "--batch", str(BATCH), "--out", str(out), "-q"]) == 0
    return out


@pytest.fixture(scope="module")
def a10g_page(model, tmp_path_factory):
    """The report of the plan's a10g fp32 configuration, whose numbers the tests derive by hand."""
    d = tmp_path_factory.mktemp("a10g")
    assert main([str(model), "--target", "a10g", "--batch", str(BATCH), "--out", str(d / "plan.json"), "-q"]) == 0
    doc = pin(json.loads((d / "plan.json").read_text()), "a10g")
    return write_report(doc, get_target("a10g"), d / "report.html")[0]


def _circles(root):
    return [c for c in root.iter(f"{SVG}circle") if "kernel" in (c.get("class") or "").split()]


def test_html_is_well_formed_and_has_every_section(page):
    root = ET.parse(page).getroot()  # strict XML parse: every element closed
    assert root.tag == "html"
    ids = [s.get("id") for s in root.iter("section")]
    assert ids == ["summary", "roofline", "op-types", "kernels", "memory", "alternatives"]
    text = page.read_text()
    assert "<script" not in text and 'src="http' not in text and "href=\"http" not in text  # self-contained
    svg = [e for e in root.iter(f"{SVG}svg") if e.get("id") == "roofline"]
    assert len(svg) == 1 and svg[0].find(f"{SVG}title") is not None


def test_roofline_points_and_ceilings_carry_hand_derived_numbers(a10g_page):
    root = ET.parse(a10g_page).getroot()
    t = get_target("a10g")
    peak = t.matrix_flops_per_s["tf32"] * t.compute_efficiency  # ORT CUDA runs fp32 GEMMs on TF32
    bw = t.mem_bw_bytes_per_s * t.memory_efficiency
    ceilings = [ln for ln in root.iter(f"{SVG}line") if ln.get("class") == "ceiling"]
    assert [(c.get("data-key"), float(c.get("data-flops-per-s"))) for c in ceilings] == [("tf32", pytest.approx(peak))]
    roof = next(ln for ln in root.iter(f"{SVG}line") if ln.get("class") == "memory-roof")
    assert float(roof.get("data-bytes-per-s")) == pytest.approx(bw)
    pts = {c.get("data-name"): c for c in _circles(root)}
    assert set(pts) == {"fc1", "fc2"}  # the Relu fused into fc1; nothing else does arithmetic
    # fc1 = MatMul [256, 1024] x [1024, 1024] + Relu epilogue: x and W1 read, r written (h stays in the kernel)
    flops = 2 * BATCH * K * H + BATCH * H
    nbytes = 4 * (BATCH * K + K * H + BATCH * H)
    # compute-bound (intensity 85 > ridge 28e12 / 510e9 = 55), at the share of a10g's 80 SMs its tiles keep
    # busy: [256 x 1024] is 2 x 8 tiles of 128 x 128, K = 1024 split in 4: 64 of 80 = 0.8
    assert t.compute_units == 80
    seconds = flops / (peak * 0.8) + t.launch_overhead_s
    assert float(pts["fc1"].get("data-intensity")) == pytest.approx(flops / nbytes, rel=1e-5)
    assert float(pts["fc1"].get("data-flops-per-s")) == pytest.approx(flops / seconds, rel=1e-5)


@pytest.mark.parametrize("which", ["page", "a10g_page"])
def test_every_point_sits_under_the_roof(request, which):
    """Geometry, independent of the numbers: no kernel is drawn above the memory roof or its ceiling."""
    root = ET.parse(request.getfixturevalue(which)).getroot()
    roof = next(ln for ln in root.iter(f"{SVG}line") if ln.get("class") == "memory-roof")
    x1, y1, x2, y2 = (float(roof.get(a)) for a in ("x1", "y1", "x2", "y2"))
    ceiling_y = min(float(ln.get("y1")) for ln in root.iter(f"{SVG}line") if ln.get("class") == "ceiling")
    for c in _circles(root):
        cx, cy = float(c.get("cx")), float(c.get("cy"))
        assert cy >= ceiling_y - 0.5  # SVG y grows downwards
        if cx <= x2:
            assert cy >= y1 + (y2 - y1) * (cx - x1) / (x2 - x1) - 0.5


def test_markdown_with_sidecar_chart(model, tmp_path, capsys):
    out = tmp_path / "report.md"
    code, stdout, err = _run(capsys, "report", model, "--target", "t4", "--batch", 8, "--out", out)
    assert code == 0, err
    text = out.read_text()
    assert "![roofline](report.roofline.svg)" in text and "## Time by op type" in text
    svg = ET.parse(tmp_path / "report.roofline.svg").getroot()
    assert svg.tag == f"{SVG}svg" and {"fc1", "fc2"} <= {c.get("data-name") for c in _circles(svg)}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md", "report.roofline.svg"]
    assert "wrote" in stdout


def test_decoder_split_rendered_when_present(tmp_path):
    doc = {"schema_version": 1, "model": {"path": "llm.onnx", "sha256": "0" * 64, "dims": {}},
           "chosen": {"target": "l4", "batch": 4, "precision": "fp16", "latency_ms": 100.0, "ttft_ms": 12.5,
                      "tpot_ms": 3.25, "tokens_per_s": 1230.0, "kv_cache_bytes": 2_000_000,
                      "phases": {"prefill": {"latency_ms": 12.5, "bound": "compute"},
                                 "decode": {"latency_ms": 3.25, "bound": "memory"}}},
           "candidates": []}
    out = write_report(doc, get_target("l4"), tmp_path / "r.html")[0]
    root = ET.parse(out).getroot()
    sec = next(s for s in root.iter("section") if s.get("id") == "decoder")
    text = "".join(sec.itertext())
    assert "12.5 ms" in text and "3.25 ms" in text and "2 MB" in text
    assert "prefill" in text and "decode" in text and "compute" in text


def test_no_plan_still_reports_why(model, tmp_path, capsys):
    out = tmp_path / "r.html"
    code, _, _ = _run(capsys, "report", model, "--target", "t4", "--batch", 8, "--max-latency-ms", "1e-6",
                      "--out", out, "-q")
    assert code == 1
    assert "No plan" in out.read_text() and "exceeds --max-latency-ms" in out.read_text()


@pytest.mark.parametrize("argv,needle", [
    (["--out", "{tmp}/r.pdf"], ".html or .md"),
    ([], "--out"),
    (["--out", "{tmp}/nofolder/r.html"], "does not exist"),
])
def test_bad_arguments_one_line(model, tmp_path, capsys, argv, needle):
    code, _, err = _run(capsys, "report", model, *[a.format(tmp=tmp_path) for a in argv])
    assert code == 2 and len(err.strip().splitlines()) == 1 and needle in err, err


@pytest.mark.slow
def test_headless_browser_renders_chart(page, tmp_path):
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if exe is None:
        pytest.skip("no headless browser here")
    r = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync", "--no-first-run",
                        f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.as_uri()],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0
    drawn = len(_circles(ET.parse(page).getroot()))
    assert len(re.findall(r'<circle class="kernel', r.stdout)) == drawn >= 2 and 'id="roofline"' in r.stdout
