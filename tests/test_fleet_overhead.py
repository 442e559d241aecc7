"""The serving stack's own cost in the fleet (planner.fleet.overhead, overhead_store, its use by search and block),
against numbers worked out by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from planner.errors import PlannerError
from planner.fleet.block import decoder_curves
from planner.fleet.overhead import OverheadError, ServingOverhead, fit_line, published
from planner.fleet.overhead_store import find, for_target, save
from planner.fleet.search import Policy, ServiceCurve, policies
from planner.fleet.traffic import poisson
from planner.search.plan_types import CandidateReport, ModelSummary, Plan

MS = 1e-3
US = 1e-6


def _curve(overhead: ServingOverhead) -> ServiceCurve:
    # the model: 1 ms at batch 1, 4 ms at batch 8 (straight between)
    return ServiceCurve("host", "none", (1, 8), (1 * MS, 4 * MS), None, overhead=overhead)


def test_capacity_counts_the_server_per_batch_and_per_request():
    a, per_request = 0.5 * MS, 0.25 * MS
    curve = _curve(ServingOverhead(per_batch_s=a, per_request_s=per_request))
    big_b = 8
    # capacity = B / (lat(B) + a + b x B) = 8 / (4 + 0.5 + 2) ms = 1230.77 req/s; without the server 2000 req/s
    assert curve.capacity_per_s(big_b) == pytest.approx(8 / 6.5e-3)
    assert curve.capacity_per_s(big_b) == pytest.approx(1230.769, rel=1e-6)
    assert _curve(ServingOverhead()).capacity_per_s(big_b) == pytest.approx(2000)
    assert curve.service_s(1) == pytest.approx((1 + 0.5 + 0.25) * MS)
    assert curve.model_s(1) == pytest.approx(1 * MS)


def test_md1_with_the_server_in_the_service_time():
    # batch 1: D = model 1 ms + 0.2 ms a batch + 0.3 ms a request = 1.5 ms; rho = 400/s x 1.5 ms = 0.6;
    # mean wait W = rho D / (2 (1 - rho)) = 0.6 x 1.5 / 0.8 = 1.125 ms; latency = W + D + 0.4 ms outside = 3.025 ms
    d = 1.5 * MS
    rho = 0.6
    w = rho * d / (2 * (1 - rho))
    curve = _curve(ServingOverhead(per_batch_s=0.2 * MS, per_request_s=0.3 * MS, latency_s=0.4 * MS))
    arrivals, _ = poisson(rho / d).arrivals(1, 40_000, seed=1)
    stats = curve.simulate(arrivals, Policy(1, 0.0))
    assert w == pytest.approx(1.125 * MS)
    assert stats.mean_wait_s == pytest.approx(w, rel=0.08)
    assert stats.mean_s == pytest.approx(w + d + 0.4 * MS, rel=0.05)
    assert stats.utilization == pytest.approx(rho, rel=0.03)


def test_a_lone_request_pays_the_delay_the_late_timer_and_the_server():
    # requests 100 ms apart, max batch 8, max delay 3 ms: each leaves alone on the delay, 0.5 ms late, then is
    # served 1 ms (model) + 0.1 ms (batch) + 0.05 ms (request), and spends 0.2 ms outside: 4.85 ms every time
    curve = _curve(ServingOverhead(per_batch_s=0.1 * MS, per_request_s=0.05 * MS, latency_s=0.2 * MS,
                                   timer_late_s=0.5 * MS))
    stats = curve.simulate(np.arange(1, 201) * 0.1, Policy(8, 3 * MS))
    assert (stats.p50_s, stats.p99_s) == (pytest.approx(4.85 * MS), pytest.approx(4.85 * MS))
    # no max delay, no timer: 1.15 + 0.2 = 1.35 ms
    assert curve.simulate(np.arange(1, 201) * 0.1, Policy(8, 0.0)).p99_s == pytest.approx(1.35 * MS)


def test_a_batch_too_slow_for_the_limit_counts_the_server():
    # batch 8: 4 ms model + 1 ms server + 0.5 ms outside = 5.5 ms, over a 5 ms limit; batch 1: 1 + 0.25 + 0.5
    curve = _curve(ServingOverhead(per_batch_s=0.125 * MS, per_request_s=0.109375 * MS, latency_s=0.5 * MS))
    tried, skipped = policies(curve, 5 * MS)
    assert [p.max_batch for p in tried] == [1]
    assert "5.5 ms" in skipped[0]["rejected"]


def test_fit_line_recovers_a_line_and_never_a_negative_cost():
    batches = [1, 2, 4, 8]
    assert fit_line(batches, [(20 + 5 * b) * US for b in batches]) == (pytest.approx(20 * US), pytest.approx(5 * US))
    # a line through (1, 1) and (8, 15) us has intercept -1: refitted through the origin,
    # b = sum(x y) / sum(x^2) = (1 + 2 x 3 + 4 x 7 + 8 x 15) / (1 + 4 + 16 + 64) = 155 / 85 us
    a, b = fit_line(batches, [1 * US, 3 * US, 7 * US, 15 * US])
    assert (a, b) == (0.0, pytest.approx(155 / 85 * US))
    with pytest.raises(ValueError):
        fit_line([4, 4], [1.0, 2.0])


def test_tritons_published_figures_load_with_their_sources():
    o = published()
    assert (o.per_request_s, o.per_batch_s, o.latency_s) == (pytest.approx(36 * US), pytest.approx(15 * US),
                                                           pytest.approx(710 * US))
    assert "triton.toml" in o.source and "unconfirmed" in o.source


def test_a_published_figure_without_a_source_is_refused(tmp_path):
    (tmp_path / "bare.toml").write_text('per_batch_s = { value = 1e-5 }\n')
    with pytest.raises(OverheadError, match="per_batch_s needs a table with a value and its source"):
        published("bare", tmp_path)
    with pytest.raises(OverheadError, match="no serving stack 'nope' \\(known: bare\\)"):
        published("nope", tmp_path)


def test_the_measured_host_overhead_round_trips_and_only_host_uses_it(tmp_path):
    path = tmp_path / "serving.json"
    assert find(1, path) is None
    assert for_target("host", 1, path) == published()  # not measured: the published default
    measured = ServingOverhead(14 * US, 9 * US, 290 * US, 120 * US, "measured here")
    save(measured, 1, path, extra={"samples": [[1, 23e-6]]})
    assert find(1, path) == measured
    assert find(2, path) is None  # another thread count
    assert for_target("host", 1, path) == measured
    assert for_target("a10g", 1, path) == published()


@pytest.mark.parametrize("text, match", [("{", "not JSON"), ('{"schema_version": 2, "overheads": {}}', "not an"),
                                         ])
def test_a_bad_overhead_file_is_one_line(tmp_path, text, match):
    path = tmp_path / "serving.json"
    path.write_text(text)
    with pytest.raises(PlannerError, match=match) as e:
        find(1, path)
    assert "\n" not in str(e.value)


def test_a_negative_overhead_is_refused():
    with pytest.raises(OverheadError, match="per_request_s must be between 0 and 1 s"):
        ServingOverhead.from_dict({"per_request_s": -1e-6})
    assert json.loads(json.dumps(ServingOverhead(1e-6).to_dict()))["per_batch_s"] == 1e-6


def test_the_time_outside_the_server_follows_its_measured_distribution():
    # quantiles 0.1, 0.2, 1.1 ms at p0, p50, p100: half the draws fall in [0.1, 0.2] ms, half in [0.2, 1.1] ms;
    # the mean of the straight-line inverse CDF is (0.15 + 0.65) / 2 = 0.4 ms; the p99 is 0.2 + 0.98 x 0.9 ms
    o = ServingOverhead(latency_s=0.4 * MS, latency_quantiles_s=(0.1 * MS, 0.2 * MS, 1.1 * MS))
    draws = o.outside_s(100_000, seed=3)
    assert np.mean(draws) == pytest.approx(0.4 * MS, rel=0.01)
    assert np.percentile(draws, 99) == pytest.approx((0.2 + 0.98 * 0.9) * MS, rel=0.01)
    assert np.array_equal(draws, o.outside_s(100_000, seed=3))  # seeded: a search is repeatable
    assert ServingOverhead(latency_s=0.4 * MS).outside_s(5) == 0.4 * MS
    assert ServingOverhead.from_dict(o.to_dict()) == o
    with pytest.raises(OverheadError, match="ascending"):
        ServingOverhead.from_dict({"latency_quantiles_s": [2e-4, 1e-4]})


def test_a_batch_after_idle_pays_the_wake_up():
    # a request every 10 ms, batch 1, model 1 ms; waking after a gap g costs w(g), straight through (0, 0),
    # (5 ms, 0.2 ms), (20 ms, 0.4 ms). Steady state: g = 10 - (1 + w) ms and w = 0.2 + (g - 5) / 15 x 0.2 ms
    # give w = 0.2 + (4 - w) / 75, w = (0.2 + 4/75) / (1 + 1/75) = 0.25 ms: every latency 1.25 ms
    wake = ServingOverhead(wake_curve=((5 * MS, 0.2 * MS), (20 * MS, 0.4 * MS)))
    assert wake.wake_s(10 * MS) == pytest.approx((0.2 + 5 / 15 * 0.2) * MS)
    assert wake.wake_s(1.0) == pytest.approx(0.4 * MS) and wake.wake_s(0.0) == 0.0
    stats = _curve(wake).simulate(np.arange(1, 401) * 10 * MS, Policy(1, 0.0))
    assert (stats.p50_s, stats.p99_s) == (pytest.approx(1.25 * MS, rel=1e-6), pytest.approx(1.25 * MS, rel=1e-6))
    # back to back (a backlog), no gap, no wake-up: 100 requests at once take 100 x 1 ms
    assert _curve(wake).simulate(np.zeros(100), Policy(1, 0.0)).utilization == pytest.approx(1.0)


def test_a_longer_run_pays_more_of_the_wake_up():
    # do-nothing model: 0.2 ms after 10 ms idle; a 0.4 ms probe: 0.4 ms extra at 10 ms; a 1.6 ms probe: 0.5 ms.
    # A 1 ms run after 10 ms: straight between the probes, 0.4 + (1 - 0.4) / 1.2 x 0.1 = 0.45 ms; after 5 ms every
    # curve is at half its 10 ms point (straight from (0, 0)): 0.225 ms; a 3 ms run takes the longest probe's
    o = ServingOverhead(wake_curve=((10 * MS, 0.2 * MS),),
                        wake_runs=((0.4 * MS, ((10 * MS, 0.4 * MS),)), (1.6 * MS, ((10 * MS, 0.5 * MS),))))
    assert o.wake_s(10 * MS, 1.0 * MS) == pytest.approx(0.45 * MS)
    assert o.wake_s(5 * MS, 1.0 * MS) == pytest.approx(0.225 * MS)
    assert o.wake_s(10 * MS, 3.0 * MS) == pytest.approx(0.5 * MS)
    assert o.wake_s(10 * MS) == pytest.approx(0.2 * MS)  # no run length: the do-nothing curve
    assert ServingOverhead.from_dict(o.to_dict()) == o
    with pytest.raises(OverheadError, match="wake_runs"):
        ServingOverhead.from_dict({"wake_runs": [[2e-3, [[0.01, 1e-4]]], [1e-3, [[0.01, 1e-4]]]]})
    # in the simulator: one request every 20 ms (idle 19 ms, past the curves' last gap), batch 1, model 1 ms:
    # every latency 1 + 0.45 ms
    stats = _curve(o).simulate(np.arange(1, 101) * 20 * MS, Policy(1, 0.0))
    assert (stats.p50_s, stats.p99_s) == (pytest.approx(1.45 * MS, rel=1e-6), pytest.approx(1.45 * MS, rel=1e-6))


def test_runs_spread_around_their_median():
    # Runs at 1x their median half the time and 1x-3x (straight) the other half: a mean of 0.5 + 0.5 x 2 = 1.5.
    # A backlog of 4000 requests at batch 1 on a 1 ms model drains in about 4000 x 1.5 ms; the median request
    # (the 2200th: the first 10% are the warm-up) waits for about 2200 x 1.5 ms
    o = ServingOverhead(run_spread_quantiles=(1.0, 1.0, 3.0))
    factor = o.spread(100_000)
    draws = [factor(k, 0.0) for k in range(100_000)]
    assert np.mean(draws) == pytest.approx(1.5, rel=0.01)
    assert draws[:100] == [o.spread(100_000)(k, 0.0) for k in range(100)]  # seeded: a search is repeatable
    stats = _curve(o).simulate(np.zeros(4000), Policy(1, 0.0))
    assert stats.p50_s == pytest.approx(2200 * 1.5 * MS, rel=0.03)
    assert ServingOverhead.from_dict(o.to_dict()) == o
    assert ServingOverhead().spread(5) is None
    with pytest.raises(OverheadError, match="run_spread"):
        ServingOverhead.from_dict({"run_spread_quantiles": [1.2, 1.0]})


def test_a_run_after_idle_draws_from_the_idle_spread():
    # back to back Runs never spread; after 0.5 ms idle or more they are 2x or 4x their median, evenly: a mean of
    # 3x. One request every 20 ms on a 1 ms model: every batch after idle, latencies 2 or 4 ms, mean 3 ms; a
    # backlog (no gap but the first) is 1 ms a request
    o = ServingOverhead(run_spread_quantiles=(1.0, 1.0), idle_spread_quantiles=(2.0, 2.0, 4.0, 4.0))
    stats = _curve(o).simulate(np.arange(1, 2001) * 20 * MS, Policy(1, 0.0))
    assert stats.mean_s == pytest.approx(3 * MS, rel=0.03)
    assert stats.p99_s == pytest.approx(4 * MS)
    backlog = _curve(o).simulate(np.zeros(1000), Policy(1, 0.0))
    assert backlog.p50_s == pytest.approx((1 + 550) * MS, rel=0.01)  # the 550th after the warm-up, 1 ms each
    assert ServingOverhead.from_dict(o.to_dict()) == o
    with pytest.raises(OverheadError, match="idle_spread"):
        ServingOverhead.from_dict({"idle_spread_quantiles": [0.0, 1.0]})


def test_a_measured_overhead_is_what_the_plan_schema_describes():
    jsonschema = pytest.importorskip("jsonschema")
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "planner" / "schema" / "plan.schema.json"
    schema = json.loads(path.read_text())
    entry = schema["properties"]["fleet"]["properties"]["serving_overhead"]["additionalProperties"]
    o = ServingOverhead(1e-5, 1e-6, 2e-4, 1e-4, "measured", latency_quantiles_s=(1e-4, 3e-4),
                        wake_curve=((0.01, 2e-4),), wake_runs=((3e-4, ((0.01, 3e-4),)),),
                        run_spread_quantiles=(0.9, 1.0, 2.5), idle_spread_quantiles=(0.8, 1.0, 3.0))
    jsonschema.Draft202012Validator(entry).validate(o.to_dict())


def _candidate(pipeline: str, batch: int, ttft_ms: float, rejected: str | None) -> CandidateReport:
    return CandidateReport("host", "fp32", [], batch, ttft_ms, 1.0, 1, True, None, "memory", None, [], {}, None, 0, 0,
                           {}, rejected=rejected, ttft_ms=ttft_ms, tpot_ms=ttft_ms / 10, devices=1,
                           max_batch_fits=8, pipeline=pipeline)


def test_a_decoder_curve_follows_the_pipeline_that_won_on_its_target():
    # two pipelines planned at batches 1 and 8: the curve is the winner's (fused: 0.11 and 0.70 ms), never both
    # mixed at equal batches
    none = [_candidate("none", 1, 0.125, "lost: 43% more"), _candidate("none", 8, 0.731, "lost: 4% more")]
    fused = [_candidate("fused", 1, 0.11, "lost: 30% more"), _candidate("fused", 8, 0.70, None)]
    model = ModelSummary("m.onnx", "", {}, [], 0, 0, [], 0, 17, None, None, decoder={"kv_bytes_per_token": 0})
    plan = Plan(model, fused[1], none + fused, {}, {"host": fused[1]})
    (curve,) = decoder_curves(plan, 32, 1)
    assert curve.batches == (1, 8)
    assert curve.prefill_s == (pytest.approx(0.11 * MS), pytest.approx(0.70 * MS))
