"""The fleet search and the traffic it reads: hand-worked capacities, costs and the directions answers must move."""

from __future__ import annotations

import math

import pytest

from planner.fleet.llm import DecoderCurve, size_decoder
from planner.fleet.search import ServiceCurve, choose, size_target, smallest_fleet
from planner.fleet.slo import Slo, SloError
from planner.fleet.traffic import HOURS_PER_MONTH, TrafficError, diurnal, parse_traffic, poisson

MS = 1e-3


def _curve(base_ms: float, per_request_ms: float, batches=(1, 2, 4, 8, 16, 32), price=1.0, name="x") -> ServiceCurve:
    return ServiceCurve(name, "none", tuple(batches), tuple((base_ms + per_request_ms * b) * MS for b in batches),
                        price)


def _p99(ms: float) -> Slo:
    return Slo.of({("latency", 99): ms})


def test_smallest_fleet_grows_by_a_quarter_then_bisects():
    # passes from 7 replicas: tries 1, 2, 3, 4, 5, 7 (5 x 1.25 = 6.25 -> 7), then bisects 6: 7 evaluations
    tried = []

    def evaluate(n):
        tried.append(n)
        return (None if n >= 7 else "too slow"), n

    n, result, why, calls = smallest_fleet(evaluate, 1)
    assert (n, result, calls) == (7, 7, 7)
    assert tried == [1, 2, 3, 4, 5, 7, 6] and why == "too slow"


def test_replicas_grow_with_the_traffic():
    # s(b) = 5 ms + 1 ms x b: at batch 32 a replica serves at most 32 / 37 ms = 865 req/s, so 3000 req/s needs
    # at least floor(3000 / 865) + 1 = 4 replicas; a month of each costs $1/h x 730 h
    curve = _curve(5, 1)
    sizes = [size_target(curve, poisson(q), _p99(60)) for q in (100, 1000, 3000)]
    replicas = [o.replicas for o in sizes]
    assert replicas == sorted(replicas) and replicas[0] < replicas[-1]
    assert replicas[-1] >= math.floor(3000 / (32 / 0.037)) + 1 == 4
    for o in sizes:
        assert o.monthly_cost_usd == pytest.approx(o.replicas * HOURS_PER_MONTH)
        assert o.latency_ms["p99"] <= 60 and o.rejected is None


def test_a_tighter_p99_takes_a_smaller_max_batch():
    # s(b) = 2 ms + 2 ms x b: batch 16 alone takes 34 ms and 32 takes 66 ms, so under a 25 ms p99 the largest
    # usable batch is 8 (18 ms); under 200 ms every batch is usable
    curve = _curve(2, 2)
    loose = size_target(curve, poisson(500), _p99(200))
    tight = size_target(curve, poisson(500), _p99(25))
    assert tight.max_batch <= 8 < loose.max_batch
    assert tight.replicas >= loose.replicas
    skipped = {p["max_batch"]: p["rejected"] for p in tight.policies if p.get("replicas") is None}
    assert skipped[16] == "batch 16 alone takes 34 ms, over the tightest limit 25 ms"


def test_no_fleet_when_one_request_alone_breaks_the_slo():
    o = size_target(_curve(30, 1), poisson(10), _p99(20))
    assert o.replicas is None and o.rejected == "batch 1 alone takes 31 ms, over the tightest limit 20 ms"


def test_the_cheapest_target_wins_and_the_rest_say_why():
    cheap = size_target(_curve(5, 1, price=1.0, name="cheap"), poisson(300), _p99(60))
    dear = size_target(_curve(5, 1, price=3.0, name="dear"), poisson(300), _p99(60))
    assert choose([dear, cheap]) is cheap
    assert dear.rejected == "lost: $2,190/month, 200% more than the chosen fleet"  # 1 replica x $3 x 730 h


def test_diurnal_traffic_scales_the_fleet_by_the_hour():
    # peak 100 at 16:00, trough 25 at 04:00: the cosine averages (100 + 25) / 2 over the day; 4 replicas at the
    # peak keep at most 25 req/s each, so 04:00 needs ceil(4 x 25 / 100) = 1
    t = diurnal(100, 25)
    assert t.rate_per_s == pytest.approx(62.5)
    hourly = t.replicas_by_hour(4)
    assert hourly[16] == 4 and hourly[4] == 1 and len(hourly) == 24
    assert poisson(100).replicas_by_hour(4) == [4]


def test_poisson_streams_stretch_with_the_share():
    # the same seed at twice the replicas: the same arrivals, twice as far apart (smooth, repeatable search)
    a1, _ = poisson(100).arrivals(1, 1000, seed=3)
    a2, _ = poisson(100).arrivals(2, 1000, seed=3)
    assert a2 == pytest.approx(2 * a1)
    assert len(a1) / a1[-1] == pytest.approx(100, rel=0.1)


def test_traffic_specs():
    assert parse_traffic(300.0) == poisson(300)
    assert parse_traffic(None, "bursty:50:3").cv == 3
    assert parse_traffic(None, "diurnal:80").hourly_per_s[4] == pytest.approx(20)
    assert parse_traffic(None, None) is None


def test_a_csv_trace(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text("arrival_s,prompt_tokens,output_tokens\n2.0,100,10\n0.0,50,5\n1.0,70,7\n")
    t = parse_traffic(None, str(f))
    assert t.rate_per_s == pytest.approx(1.0)  # 2 gaps over 2 s
    assert list(t.trace.arrivals_s) == [0, 1, 2] and list(t.trace.prompt_tokens) == [50, 70, 100]


@pytest.mark.parametrize("qps, spec, message", [
    ("abc", None, "--qps: 'abc' is not a number"),
    ("-3", None, "--qps: '-3' must be a positive number"),
    (None, "poisson:0", "must be a positive number"),
    (None, "weibull:3", "expected poisson:RATE"),
    (None, "diurnal:10:20", "the trough 20 is above the peak 10"),
    (None, "nowhere.csv", "no such file"),
    ("5", "poisson:5", "not both"),
])
def test_bad_traffic(qps, spec, message):
    with pytest.raises(TrafficError, match=message):
        parse_traffic(qps, spec)


def test_bad_trace_rows(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text("arrival_s,output_tokens\n0,5\n1,x\n")
    with pytest.raises(TrafficError, match="line 3: output_tokens 'x' is not a number"):
        parse_traffic(None, str(f))
    f.write_text("when\n1\n2\n")
    with pytest.raises(TrafficError, match="arrival_s column"):
        parse_traffic(None, str(f))


def test_slo_refuses_what_it_cannot_measure():
    with pytest.raises(SloError):
        Slo.of({("latency", 90): 10})
    assert Slo.of({("latency", 99): 80, ("latency", 50): None}).describe() == "latency p99 <= 80 ms"


def _decoder(prefill_ms=(10, 16), decode_ms=(2, 3), fit=8, price=1.0, devices=1):
    return DecoderCurve("x", devices, (1, 2), tuple(p * MS for p in prefill_ms), tuple(d * MS for d in decode_ms),
                        fit, 100, 5, price)


def test_decoder_replicas_grow_with_the_traffic():
    # at 2 in flight a replica finishes 2 requests per 16 + 4 x 3 = 28 ms: at most 71 req/s, so 200 req/s
    # needs at least floor(200 / 71.4) + 1 = 3 replicas
    slo = Slo.of({("ttft", 95): 200, ("tpot", 95): 20})
    small, big = (size_decoder(_decoder(fit=2), poisson(q), slo, requests=400) for q in (5, 200))
    assert small.replicas == 1 and big.replicas >= 3
    assert big.extra["max_seqs_in_flight"] <= 2 and big.latency_ms["ttft_p95"] <= 200
    # $ per 1M output tokens at the traffic: replicas x $1/h over 200 req/s x 5 tokens x 3600 s
    assert big.extra["cost_per_million_output_tokens_usd"] == pytest.approx(big.replicas / (200 * 5 * 3600) * 1e6)


def test_decoder_limits_that_no_fleet_meets():
    o = size_decoder(_decoder(), poisson(1), Slo.of({("ttft", 95): 5}))
    assert o.rejected == "one prefill alone takes 10 ms, over the TTFT limit 5 ms"


def test_without_a_latency_limit_the_fleet_just_keeps_up():
    # no SLO: the largest batch, no delay, and the fewest replicas that keep up: 3000 / (32 / 37 ms) -> 4
    o = size_target(_curve(5, 1), poisson(3000), Slo.of({}))
    assert (o.max_batch, o.max_queue_delay_ms, o.replicas) == (32, 0, 4)
    assert all(p["max_queue_delay_ms"] == 0 for p in o.policies)


def test_a_trace_is_split_among_replicas(tmp_path):
    # 201 requests 10 ms apart: 100 req/s; at batch 32 (37 ms) a replica keeps up with 865 req/s, so one does,
    # and a share of 1/1000 of the trace still holds a request
    f = tmp_path / "t.csv"
    f.write_text("arrival_s\n" + "".join(f"{i / 100}\n" for i in range(201)))
    t = parse_traffic(None, str(f))
    assert t.rate_per_s == pytest.approx(100)
    o = size_target(_curve(5, 1), t, _p99(60))
    assert o.replicas == 1 and o.latency_ms["p99"] == pytest.approx(6)  # nobody waits: s(1) = 6 ms
    assert len(t.arrivals(1000, 0, seed=0)[0]) >= 1
