"""Decoders served with continuous batching (vLLM, TensorRT-LLM, onnxruntime-genai), simulated with SimPy.

One replica (a tensor-parallel group of `devices`) runs iterations. Each iteration, in this order:

    admit   waiting requests while sequences in flight < max_seqs and their KV cache fits: each reserves
            prompt + output tokens of the cache (the capacity is the plan's largest batch that fits at its
            prompt + output lengths, in tokens)
    prefill the admitted requests together, if any: prefill(k) x (their prompt tokens / (k x P)); each gets its
            first token at the end of it (TTFT = wait + prefill)
    decode  otherwise one step for every sequence in flight: decode(b); each gets one token, and leaves (its
            cache freed) at its last

prefill(k) and decode(b) are the decoder plan's TTFT and TPOT at batch k and b (planner.llm.plan; straight lines
between the batches it planned). A decode step depends on the contexts in flight too: the plan timed it at its
mean context, and each token of context above or below that adds or saves reading its KV cache,

    decode(b, contexts) = TPOT(b) + (sum of contexts - b x mean context) x kv_bytes_per_token / (bandwidth x eff.)

(per device under tensor parallelism; the memory term of the roofline, exact where attention is memory-bound,
as decode is). Prefill first is vLLM's scheduler without chunked prefill: a prefill stalls the sequences in
flight, which is what TPOT's tail shows.

With chunked prefill (`chunk` tokens an iteration: vLLM's max_num_batched_tokens, Sarathi-Serve's token
budget), every iteration runs one token of each sequence that is decoding and fills the rest of the budget
with prompt tokens, first of the sequences part-way through their prompt, then of newly admitted ones (a
prompt may span iterations; its first token comes at the end of the iteration that finishes it). Such an
iteration reads the weights once for all of it, so it costs

    iteration = decode(b, contexts) + c x prompt tokens          (b >= 1 decoding)
              = prefill(1) - c x P + c x prompt tokens            (prompt tokens only)
    c = (prefill(k) - prefill(1)) / ((k - 1) x P)                 the plan's prefill slope per prompt token
                                                                  between batch 1 and its largest batch k

(from one batch only: (prefill(1) - decode(1)) / (P - 1)). A prompt of P tokens alone costs prefill(1).

Known simplifications: a prefill is scaled by its prompt tokens (linear: attention's quadratic part is not);
the KV cache is reserved whole at admission (vLLM's paged cache grows per block and preempts instead: it
admits somewhat more).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import simpy

from planner.fleet.batcher import WARMUP
from planner.fleet.search import MAX_REPLICAS, FleetOption, monthly, smallest_fleet
from planner.fleet.slo import PERCENTILES, Slo
from planner.fleet.traffic import SECONDS_PER_HOUR, Traffic

DEFAULT_LLM_REQUESTS = 1000


@dataclass(frozen=True)
class DecoderCurve:
    """One target at one tensor-parallel degree, from the decoder plan's candidates that fit."""

    target: str
    devices: int
    batches: tuple[int, ...]
    prefill_s: tuple[float, ...]  # TTFT at each batch: the prefill of that many prompts of prompt_len
    decode_s: tuple[float, ...]  # TPOT at each batch: one decode step at the mean context
    max_seqs_fit: int  # the largest batch whose KV cache fits at prompt_len + gen_len
    prompt_len: int
    gen_len: int
    price_usd_per_hour: float | None  # the replica: all its devices
    # Seconds a decode step spends per token of context of one sequence (per device): reading its KV cache,
    # kv_bytes_per_token / (bandwidth x memory efficiency), split over the devices. 0: steps at the mean context.
    kv_s_per_token: float = 0.0

    @property
    def mean_context(self) -> int:
        """The context the plan timed its decode step at (planner.llm.decoder.mean_context)."""
        return self.prompt_len + max(1, self.gen_len // 2)

    def prefill(self, k: int, tokens: int) -> float:
        return float(np.interp(k, self.batches, self.prefill_s)) * tokens / (k * self.prompt_len)

    def decode(self, b: int, context_sum: int | None = None) -> float:
        """One step with b sequences in flight whose contexts add up to `context_sum` (default: b at the mean
        context): the plan's step, plus or minus the KV cache read for the contexts above or below its mean."""
        t = float(np.interp(b, self.batches, self.decode_s))
        if context_sum is None or not self.kv_s_per_token:
            return t
        return max(t + (context_sum - b * self.mean_context) * self.kv_s_per_token, 0.0)

    def prefill_token_s(self) -> float:
        """c: what one more prompt token adds to an iteration (see the module docstring)."""
        if len(self.batches) > 1 and self.batches[-1] > self.batches[0]:
            k0, k1 = self.batches[0], self.batches[-1]
            return max((self.prefill_s[-1] - self.prefill_s[0]) / ((k1 - k0) * self.prompt_len), 0.0)
        return max((self.prefill_s[0] - self.decode_s[0]) / max(self.prompt_len - 1, 1), 0.0)

    def iteration(self, decoding: int, context_sum: int, prompt_tokens: int) -> float:
        """One chunked-prefill iteration: `decoding` sequences one token each, plus `prompt_tokens` of prompts."""
        c = self.prefill_token_s()
        if decoding:
            return self.decode(decoding, context_sum) + c * prompt_tokens
        return max(self.prefill(1, self.prompt_len) - c * self.prompt_len, 0.0) + c * prompt_tokens

    @property
    def kv_tokens(self) -> int:
        return self.max_seqs_fit * (self.prompt_len + self.gen_len)

    def capacity_per_s(self, b: int) -> float:
        """Requests/s of a replica that runs b sequences at a time, prefill and decode never overlapping."""
        return b / (self.prefill(b, b * self.prompt_len) + (self.gen_len - 1) * self.decode(b))


@dataclass(frozen=True)
class LlmStats:
    percentiles_s: dict[tuple[str, int], float]  # (latency | ttft | tpot, 50 | 95 | 99)
    tokens_per_s: float  # output tokens per second of the replica
    utilization: float  # fraction of time the replica ran prefill or decode
    mean_in_flight: float


def scheduler(chunk: int | None) -> str:
    """How a decoder's replica schedules its iterations, as the plan states it."""
    return "continuous batching, " + (f"chunked prefill of {chunk} tokens an iteration" if chunk else
                                      "prefill first (no chunked prefill)")


def simulate_continuous(arrivals_s: np.ndarray, prompt: np.ndarray, output: np.ndarray, curve: DecoderCurve,
                        max_seqs: int, chunk: int | None = None) -> LlmStats:
    """Run the requests (arrival, prompt tokens, output tokens) through one replica; all complete. `chunk`:
    chunked prefill with that many tokens an iteration (the module docstring), else prefill first."""
    if chunk is not None:
        return _simulate_chunked(arrivals_s, prompt, output, curve, max_seqs, chunk)
    env, waiting, first, done, state = _replica_state(arrivals_s)
    n, need = len(arrivals_s), prompt + output

    def replica():
        running: list[list[int]] = []  # [request, tokens still to generate, context of its next step]
        reserved = 0
        while state["finished"] < n:
            if not running and not waiting:
                yield state["wake"]
                continue
            new = []
            while waiting and len(running) + len(new) < max_seqs and reserved + need[waiting[0]] <= curve.kv_tokens:
                i = waiting.popleft()
                new.append(i)
                reserved += need[i]
            steps = 1
            if new:
                took = curve.prefill(len(new), int(prompt[new].sum()))
            else:
                steps, took = _steps_until_change(running, waiting, max_seqs, curve, env.now, state["arrived"],
                                                  arrivals_s)
            state["busy"] += took
            state["seq_time"] += took * (len(running) + len(new))
            yield env.timeout(took)
            if not new:
                for r in running:
                    r[1] -= steps
                    r[2] += steps
            for i in new:
                first[i] = env.now
                running.append([i, int(output[i]) - 1, int(prompt[i]) + 1])
            reserved -= _retire(running, done, need, state, env.now, lambda r: r[1] <= 0)

    return _run(env, replica(), arrivals_s, waiting, state, output, first, done)


def _simulate_chunked(arrivals_s: np.ndarray, prompt: np.ndarray, output: np.ndarray, curve: DecoderCurve,
                      max_seqs: int, chunk: int) -> LlmStats:
    env, waiting, first, done, state = _replica_state(arrivals_s)
    n, need = len(arrivals_s), prompt + output

    def replica():
        running: list[list[int]] = []  # [request, tokens still to generate, context, prompt tokens still to run]
        reserved = 0
        while state["finished"] < n:
            while waiting and len(running) < max_seqs and reserved + need[waiting[0]] <= curve.kv_tokens:
                i = waiting.popleft()
                running.append([i, int(output[i]), 0, int(prompt[i])])
                reserved += need[i]
            if not running:
                yield state["wake"]
                continue
            decoding = [r for r in running if r[3] == 0]
            budget = max(chunk - len(decoding), 0)
            chunks = []
            for r in running:
                if r[3] and budget:
                    take = min(r[3], budget)
                    chunks.append((r, take))
                    budget -= take
            steps = 1
            if chunks:
                took = curve.iteration(len(decoding), sum(r[2] for r in decoding), sum(t for _, t in chunks))
            else:  # decode only until the batch can change: as prefill first does
                steps, took = _steps_until_change(decoding, waiting, max_seqs, curve, env.now, state["arrived"],
                                                  arrivals_s)
            state["busy"] += took
            state["seq_time"] += took * len(running)
            yield env.timeout(took)
            for r in decoding:
                r[1] -= steps
                r[2] += steps
            for r, take in chunks:
                r[3] -= take
                if r[3] == 0:  # its prompt is done: the first token
                    first[r[0]] = env.now
                    r[1], r[2] = int(output[r[0]]) - 1, int(prompt[r[0]]) + 1
            reserved -= _retire(running, done, need, state, env.now, lambda r: r[3] == 0 and r[1] <= 0)

    return _run(env, replica(), arrivals_s, waiting, state, output, first, done)


def _retire(running: list[list[int]], done: np.ndarray, need: np.ndarray, state: dict, now: float,
            finished: Callable[[list[int]], bool]) -> int:
    """The sequences that have `finished` leave `running` at `now`; returns the KV cache tokens they free."""
    freed = 0
    for r in [r for r in running if finished(r)]:
        done[r[0]] = now
        freed += int(need[r[0]])
        state["finished"] += 1
        running.remove(r)
    return freed


def _replica_state(arrivals_s: np.ndarray) -> tuple[simpy.Environment, deque[int], np.ndarray, np.ndarray, dict]:
    """What both schedulers track: the queue, each request's first and last token times, the replica's state."""
    env = simpy.Environment()
    n = len(arrivals_s)
    state = {"wake": env.event(), "busy": 0.0, "finished": 0, "seq_time": 0.0, "arrived": 0}
    return env, deque(), np.zeros(n), np.zeros(n), state


def _run(env: simpy.Environment, replica, arrivals_s: np.ndarray, waiting: deque[int], state: dict,
         output: np.ndarray, first: np.ndarray, done: np.ndarray) -> LlmStats:
    env.process(_arrive(env, arrivals_s, waiting, state))
    env.run(until=env.process(replica))
    return _stats(arrivals_s, output, first, done, state)


def _arrive(env: simpy.Environment, arrivals_s: np.ndarray, waiting: deque[int], state: dict):
    """The requests join the queue at their arrival times; each arrival wakes an idle replica."""
    for i, t in enumerate(arrivals_s):
        if t > env.now:
            yield env.timeout(t - env.now)
        waiting.append(i)
        state["arrived"] = i + 1
        wake, state["wake"] = state["wake"], env.event()
        wake.succeed()


def _stats(arrivals_s: np.ndarray, output: np.ndarray, first: np.ndarray, done: np.ndarray, state: dict
           ) -> LlmStats:
    n = len(arrivals_s)
    start = int(n * WARMUP)
    ttft = (first - arrivals_s)[start:]
    latency = (done - arrivals_s)[start:]
    decoding = output[start:] > 1
    tpot = ((done - first)[start:][decoding] / (output[start:][decoding] - 1)) if decoding.any() else np.zeros(1)
    pct = {}
    for name, values in (("latency", latency), ("ttft", ttft), ("tpot", tpot)):
        for q, v in zip(PERCENTILES, np.percentile(values, PERCENTILES), strict=True):
            pct[(name, q)] = float(v)
    span = float(done.max() - arrivals_s[0])
    return LlmStats(pct, float(output.sum()) / span, state["busy"] / span, state["seq_time"] / span)


def _steps_until_change(running: list[list[int]], waiting: deque[int], max_seqs: int, curve: DecoderCurve,
                        now: float, arrived: int, arrivals_s: np.ndarray) -> tuple[int, float]:
    """Decode steps that run back to back before the batch can change, and their time: until the first sequence
    in flight finishes, or, when a new arrival could be admitted, until the step boundary at which it would be.
    Running them as one timeout gives the same times as stepping one by one (the simulation's cost is events,
    not steps). Step j of them has every context j tokens longer than the first."""
    b = len(running)
    k = max(1, min(r[1] for r in running))
    context = sum(r[2] for r in running)
    steps = np.arange(k)
    if curve.kv_s_per_token:  # decode(b, context + j x b) for every j at once
        over = context - b * curve.mean_context + steps * b
        ends = np.cumsum(np.maximum(curve.decode(b) + over * curve.kv_s_per_token, 0.0))
    else:
        ends = curve.decode(b) * (steps + 1)
    if not waiting and b < max_seqs and arrived < len(arrivals_s):
        k = min(k, int(np.searchsorted(ends, arrivals_s[arrived] - now - 1e-12)) + 1)
    return k, float(ends[k - 1])


def _lengths(traffic: Traffic, idx: np.ndarray, curve: DecoderCurve) -> tuple[np.ndarray, np.ndarray]:
    """Prompt and output tokens per request: the trace's where it has them, else the plan's."""
    t = traffic.trace
    prompt = t.prompt_tokens[idx] if t is not None and t.prompt_tokens is not None else np.full(len(idx),
                                                                                              curve.prompt_len)
    output = t.output_tokens[idx] if t is not None and t.output_tokens is not None else np.full(len(idx),
                                                                                              curve.gen_len)
    return prompt.astype(np.int64), output.astype(np.int64)


def size_decoder(curve: DecoderCurve, traffic: Traffic, slo: Slo, seed: int = 0,
                 requests: int = DEFAULT_LLM_REQUESTS, chunk: int | None = None) -> FleetOption:
    """The cheapest fleet of this target at this tensor-parallel degree: replicas x max sequences in flight.
    `chunk`: chunked prefill with that token budget an iteration, else prefill first."""
    option = FleetOption(curve.target, "none", curve.devices, None, None, None, None,
                         price_usd_per_hour=curve.price_usd_per_hour)
    _, idx = traffic.arrivals(1, requests, seed)
    prompt, output = _lengths(traffic, idx, curve)
    if int((prompt + output).max()) > curve.kv_tokens:
        option.rejected = (f"a request of {int((prompt + output).max())} tokens exceeds the KV cache of "
                           f"{curve.kv_tokens} tokens over {curve.devices} device(s)")
        return option
    ttft_limit = slo.tightest_ms("ttft")
    best_n, best = None, None
    rows = []
    alone_ms = curve.prefill(1, curve.prompt_len) * 1e3
    if ttft_limit is not None and alone_ms > ttft_limit:
        option.rejected = f"one prefill alone takes {alone_ms:.3g} ms, over the TTFT limit {ttft_limit:g} ms"
        return option
    for b in sorted({x for x in curve.batches if x <= curve.max_seqs_fit}, reverse=True):
        n0 = math.floor(traffic.peak_per_s / curve.capacity_per_s(b)) + 1
        if best_n is not None and n0 >= best_n:
            rows.append({"max_seqs": b, "replicas": None,
                         "rejected": f"lost: needs at least {n0} replicas to keep up, the best needs {best_n}"})
            continue

        def evaluate(n: int, b: int = b) -> tuple[str | None, LlmStats]:
            arrivals, idx = traffic.arrivals(n, requests, seed)
            p, o = _lengths(traffic, idx, curve)
            stats = simulate_continuous(arrivals, p, o, curve, b, chunk)
            return slo.violation(stats.percentiles_s), stats

        n, stats, why, calls = smallest_fleet(evaluate, n0, limit=MAX_REPLICAS)
        rows.append({"max_seqs": b, "replicas": n, "simulations": calls,
                     "rejected": None if n else f"no fleet up to {MAX_REPLICAS} replicas: {why}"})
        if n is not None and (best_n is None or n < best_n):
            best_n, best = n, (b, stats)
    for r in rows:
        if r["rejected"] is None and best is not None and r["max_seqs"] != best[0]:
            r["rejected"] = f"lost: {r['replicas']} replicas, the chosen policy needs {best_n}"
    option.policies = rows
    if best is None:
        option.rejected = next((r["rejected"] for r in rows if r["rejected"]), "no policy meets the SLO")
        return option
    b, s = best
    option.replicas, option.max_batch, option.max_queue_delay_ms = best_n, b, 0.0
    option.utilization = s.utilization
    option.latency_ms = {f"{m}_p{q}" if m != "latency" else f"p{q}": v * 1e3 for (m, q), v in s.percentiles_s.items()}
    option.capacity_per_replica_per_s = curve.capacity_per_s(b)
    option.monthly_cost_usd, option.monthly_cost_at_traffic_usd = monthly(traffic, best_n, curve.price_usd_per_hour)
    out_per_s = traffic.rate_per_s * float(output.mean())
    fleet_price = None if curve.price_usd_per_hour is None else best_n * curve.price_usd_per_hour
    option.extra = {
        "max_seqs_in_flight": b, "kv_capacity_sequences": curve.max_seqs_fit, "kv_capacity_tokens": curve.kv_tokens,
        "tokens_per_s_per_replica": s.tokens_per_s, "mean_sequences_in_flight": s.mean_in_flight,
        "cost_per_million_output_tokens_usd": None if fleet_price is None else
        fleet_price / (out_per_s * SECONDS_PER_HOUR) * 1e6,
        "scheduler": scheduler(chunk),
        "chunked_prefill_tokens": chunk,
    }
    return option
