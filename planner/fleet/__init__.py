"""Traffic in, fleet out: replicas, batching policy, latency percentiles and $ a month per target.

    traffic   --qps / --traffic (Poisson, bursty, diurnal, a CSV trace) as seeded arrival streams
    slo       limits on percentiles of latency, TTFT, TPOT
    batcher   dynamic batching (max batch, max queue delay) over model instances: a SimPy simulation
    search    per target, replicas x batching policy, the cheapest meeting the SLO, every loser's reason
    llm       decoders: continuous batching with the KV cache as the capacity limit (SimPy)
    block     the plan's `fleet` block: service curves from the plan's candidates, sized, the choice
"""
