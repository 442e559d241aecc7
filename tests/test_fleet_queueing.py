"""The fleet's simulators against queueing results worked out by hand (planner.fleet.batcher, planner.fleet.llm)."""

from __future__ import annotations

import numpy as np
import pytest

from planner.fleet.batcher import simulate
from planner.fleet.llm import DecoderCurve, simulate_continuous
from planner.fleet.traffic import poisson

MS = 1e-3


@pytest.mark.parametrize("rho", [0.5, 0.7])
def test_md1_mean_wait_matches_the_closed_form(rho):
    # M/D/1 (Poisson arrivals, one server, constant service D, batch 1): mean wait W = rho x D / (2 (1 - rho))
    d = 10 * MS
    w = rho * d / (2 * (1 - rho))  # 5 ms at rho 0.5, 11.67 ms at 0.7
    arrivals, _ = poisson(rho / d).arrivals(1, 40_000, seed=1)
    stats = simulate(arrivals, lambda b: d, max_batch=1)
    assert stats.mean_wait_s == pytest.approx(w, rel=0.08)  # sampling error of 36,000 correlated waits
    assert stats.mean_s == pytest.approx(w + d, rel=0.05)
    assert stats.utilization == pytest.approx(rho, rel=0.03)
    assert stats.p50_s >= d and stats.mean_batch == 1


def test_deterministic_arrivals_never_queue():
    # D/D/1: a request every 5 ms, service 3 ms: nobody waits, every latency is 3 ms, the server busy 60%
    arrivals = np.arange(1, 1001) * 5 * MS
    stats = simulate(arrivals, lambda b: 3 * MS, max_batch=8)
    assert (stats.p50_s, stats.p99_s) == (pytest.approx(3 * MS), pytest.approx(3 * MS))
    assert stats.mean_wait_s == pytest.approx(0, abs=1e-12)
    assert stats.utilization == pytest.approx(0.6, rel=1e-3)


def test_a_batch_leaves_when_full():
    # a request every 1 ms, max batch 4, max delay 10 ms, service 2 ms: the 4th arrival fills the batch, so the
    # four wait 3, 2, 1, 0 ms and take 5, 4, 3, 2 ms; one batch every 4 ms, busy 2 of them
    arrivals = np.arange(1, 4001) * MS
    stats = simulate(arrivals, lambda b: 2 * MS, max_batch=4, max_delay_s=10 * MS)
    assert stats.mean_batch == 4
    assert stats.mean_s == pytest.approx(3.5 * MS)
    assert stats.p99_s == pytest.approx(5 * MS)
    assert stats.utilization == pytest.approx(0.5, rel=1e-3)


def test_a_batch_leaves_when_the_oldest_has_waited_max_delay():
    # a request every 10 ms, max batch 4, max delay 3 ms, service 1 ms: each waits the full 3 ms alone
    arrivals = np.arange(1, 501) * 10 * MS
    stats = simulate(arrivals, lambda b: 1 * MS, max_batch=4, max_delay_s=3 * MS)
    assert stats.mean_batch == 1
    assert stats.p50_s == pytest.approx(4 * MS) and stats.p99_s == pytest.approx(4 * MS)


@pytest.mark.parametrize("instances, latencies_ms", [(1, [3, 3, 5]), (2, [3, 3, 2])])
def test_greedy_batching_over_instances(instances, latencies_ms):
    # three requests at once, max batch 2, no delay, service 1 ms + 1 ms per request: one instance runs [0, 1]
    # (3 ms) then [2] (2 ms more); two instances run both batches at once
    stats = simulate(np.zeros(3), lambda b: (1 + b) * MS, max_batch=2, instances=instances)
    assert stats.mean_s == pytest.approx(np.mean(latencies_ms) * MS)
    assert stats.p99_s == pytest.approx(np.percentile(latencies_ms, 99) * MS)


def _curve(max_seqs_fit: int = 8) -> DecoderCurve:
    # prefill of 1 / 2 prompts of 100 tokens: 10 / 16 ms; a decode step with 1 / 2 in flight: 2 / 3 ms
    return DecoderCurve("x", 1, (1, 2), (10 * MS, 16 * MS), (2 * MS, 3 * MS), max_seqs_fit, 100, 5, 1.0)


def _run(arrivals_ms, max_seqs, curve=None):
    n = len(arrivals_ms)
    return simulate_continuous(np.asarray(arrivals_ms) * MS, np.full(n, 100), np.full(n, 5), curve or _curve(),
                               max_seqs)


def test_one_sequence():
    # TTFT = prefill 10 ms; then 4 decode steps of 2 ms: done at 18 ms, TPOT 2 ms
    s = _run([0], 4)
    assert s.percentiles_s[("ttft", 50)] == pytest.approx(10 * MS)
    assert s.percentiles_s[("tpot", 50)] == pytest.approx(2 * MS)
    assert s.percentiles_s[("latency", 50)] == pytest.approx(18 * MS)
    assert s.tokens_per_s == pytest.approx(5 / (18 * MS))


def test_two_sequences_prefill_together_and_decode_together():
    # both prefilled in one 16 ms step, then 4 steps of 3 ms: TTFT 16, TPOT 3, done at 28 ms
    s = _run([0, 0], 4)
    assert s.percentiles_s[("ttft", 99)] == pytest.approx(16 * MS)
    assert s.percentiles_s[("tpot", 99)] == pytest.approx(3 * MS)
    assert s.percentiles_s[("latency", 99)] == pytest.approx(28 * MS)


@pytest.mark.parametrize("limit", ["max_seqs", "kv_cache"])
def test_one_in_flight_makes_the_second_wait(limit):
    # one sequence at a time (by policy, or because the KV cache holds one): the second starts at 18 ms,
    # its first token at 28 ms, done at 36 ms
    s = _run([0, 0], 1) if limit == "max_seqs" else _run([0, 0], 4, _curve(max_seqs_fit=1))
    assert s.percentiles_s[("ttft", 50)] == pytest.approx(19 * MS)  # median of 10 and 28
    assert s.percentiles_s[("latency", 99)] == pytest.approx((18 + 0.99 * 18) * MS)  # 18 and 36 ms


def test_a_prefill_stalls_the_sequences_in_flight():
    # request 0 at 0 ms: prefill to 10 ms, a decode step to 12 ms. Request 1 arrives at 11.5 ms and is admitted
    # at the step boundary (12 ms): its prefill runs 12-22 ms while request 0 waits. Then 3 steps of 3 ms with
    # two in flight finish request 0 at 31 ms, and one more of 2 ms finishes request 1 at 33 ms.
    s = _run([0, 11.5], 4)
    assert s.percentiles_s[("ttft", 50)] == pytest.approx((10 + 10.5) / 2 * MS)  # TTFTs 10 and 10.5 ms
    # TPOT: request 0 (31 - 10) / 4 = 5.25 ms with the stall; request 1 (33 - 22) / 4 = 2.75 ms
    assert s.percentiles_s[("tpot", 50)] == pytest.approx(4 * MS)
    assert s.percentiles_s[("latency", 50)] == pytest.approx((31 + 21.5) / 2 * MS)


def test_a_decode_step_follows_the_contexts_in_flight():
    # the plan timed a step at its mean context 100 + 5 // 2 = 102 tokens (2 ms); each token of context costs
    # 0.01 ms of KV reads. One request: steps at contexts 101, 102, 103, 104 take 1.99, 2.00, 2.01, 2.02 ms,
    # so it finishes at 10 + 8.02 ms with TPOT 2.005 ms
    c = DecoderCurve("x", 1, (1, 2), (10 * MS, 16 * MS), (2 * MS, 3 * MS), 8, 100, 5, 1.0, kv_s_per_token=0.01 * MS)
    assert c.mean_context == 102 and c.decode(2, 2 * 102) == pytest.approx(3 * MS)
    s = _run([0], 4, c)
    assert s.percentiles_s[("latency", 50)] == pytest.approx(18.02 * MS)
    assert s.percentiles_s[("tpot", 50)] == pytest.approx(2.005 * MS)
    # an arrival at 11.5 ms joins at the next step boundary (11.99 ms); its prefill runs to 21.99 ms, then two in
    # flight at contexts 102 + 101: 3 + (203 - 204) x 0.01 = 2.99 ms, then 3.01, 3.03 ms: request 0 is done at
    # 31.02 ms; request 1's last step alone at context 104 takes 2 + 2 x 0.01 = 2.02 ms: done at 33.04 ms
    s = _run([0, 11.5], 4, c)
    assert s.percentiles_s[("ttft", 50)] == pytest.approx((10 + 10.49) / 2 * MS)
    assert s.percentiles_s[("latency", 50)] == pytest.approx((31.02 + (33.04 - 11.5)) / 2 * MS)
    assert s.percentiles_s[("tpot", 50)] == pytest.approx(((31.02 - 10) / 4 + (33.04 - 21.99) / 4) / 2 * MS)


def test_chunked_prefill_iterations_by_hand():
    """Chunked prefill: c = (16 - 10) ms / ((2 - 1) x 100 tokens) = 0.06 ms a prompt token; a prompt-only
    iteration costs 10 - 0.06 x 100 = 4 ms plus c a token (100 tokens alone: 10 ms, the plan's prefill)."""
    c = _curve()
    assert c.prefill_token_s() == pytest.approx(0.06 * MS)
    assert c.iteration(0, 0, 100) == pytest.approx(10 * MS)
    # one request, 60 tokens an iteration: 4 + 3.6 = 7.6 ms, then 4 + 2.4 = 6.4 ms: first token at 14 ms;
    # 4 decode steps of 2 ms: done at 22 ms
    n1 = simulate_continuous(np.zeros(1), np.full(1, 100), np.full(1, 5), c, 4, chunk=60)
    assert n1.percentiles_s[("ttft", 50)] == pytest.approx(14 * MS)
    assert n1.percentiles_s[("latency", 50)] == pytest.approx(22 * MS)
    # two at 0 ms, 150 tokens an iteration: r0's 100 + r1's first 50 (4 + 9 = 13 ms: r0's first token); then
    # r0 decodes while r1's last 50 run: 2 + 3 = 5 ms (r1's first token at 18 ms); then steps of 3 ms with
    # both in flight: r0's last 3 end at 27 ms; r1's last step alone, 2 ms: 29 ms
    s = simulate_continuous(np.zeros(2), np.full(2, 100), np.full(2, 5), c, 4, chunk=150)
    assert s.percentiles_s[("ttft", 50)] == pytest.approx((13 + 18) / 2 * MS)
    assert s.percentiles_s[("latency", 50)] == pytest.approx((27 + 29) / 2 * MS)
    assert s.percentiles_s[("tpot", 50)] == pytest.approx(((27 - 13) / 4 + (29 - 18) / 4) / 2 * MS)


def test_chunked_prefill_does_not_stall_the_sequences_in_flight():
    """The arrivals of test_a_prefill_stalls_the_sequences_in_flight (0 and 11.5 ms), 40 tokens an iteration:
    r0's prompt: 40 tokens (6.4 ms), 40 (to 12.8 ms); r1 is admitted there: r0's last 20 and r1's first 20
    (4 + 2.4 ms: r0's first token at 19.2 ms); r0 decodes while r1's prompt rides along, 39 tokens (2 + 2.34 =
    4.34 ms, to 23.54), 39 more (to 27.88), its last 2 (2 + 0.12 ms: r1's first token at 30 ms); one step of
    both (3 ms): r0 done at 33 ms; r1's last 3 alone (2 ms each): 39 ms. r0's TPOT is 3.45 ms where prefill
    first stalled it to 5.25 ms; the first tokens come later (19.2 and 18.5 ms against 10 and 10.5)."""
    s = simulate_continuous(np.array([0, 11.5]) * MS, np.full(2, 100), np.full(2, 5), _curve(), 4, chunk=40)
    assert s.percentiles_s[("ttft", 50)] == pytest.approx((19.2 + 18.5) / 2 * MS)
    assert s.percentiles_s[("latency", 50)] == pytest.approx((33 + 27.5) / 2 * MS)
    assert s.percentiles_s[("tpot", 50)] == pytest.approx(((33 - 19.2) / 4 + (39 - 30) / 4) / 2 * MS)
