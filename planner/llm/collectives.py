"""What a tensor-parallel collective costs: a bandwidth term and a latency term that grows with the devices.

A 70B decoder at batch 1 sends two all-reduces of one token's hidden state (16 KB in fp16) per layer: 160 per
step, each far too small for bandwidth to matter. What they cost is latency: launching the collective and the
hops its algorithm takes. NCCL picks, by size, a ring (2 (N - 1) steps, each carrying 1/N of the message: the
best bandwidth) or a tree (2 log2 N steps over the whole message: the least latency), so

    ring      = 2 (N - 1) / N x bytes / link + 2 (N - 1) x hop
    tree      = 2 x bytes / link             + 2 log2(N) x hop
    all-reduce = COLLECTIVE_BASE_S + min(ring, tree)
    all-gather = COLLECTIVE_BASE_S + (N - 1) / N x bytes / link + (N - 1) x hop

The two constants come from one published measurement and the launch figure of the reference:
[M-NCCL-1259] github.com/NVIDIA/nccl/issues/1259: a small all-reduce on 2 x H100 over NVLink takes about 6 us;
the launch of a kernel is 4-6 us [M-LAUNCH-PEGA] (hwtargets-reference.md). So COLLECTIVE_BASE_S = 4 us and
the two hops of N = 2 take the remaining 2 us: 1 us a hop over NVLink (a target file may say otherwise with
[interconnect] hop_latency_s). Not overlapped with compute: an upper bound on their cost.
"""

from __future__ import annotations

import math

COLLECTIVE_BASE_S = 4e-6


def allreduce_seconds(nbytes: float, devices: int, link_bytes_per_s: float, hop_s: float) -> float:
    n = devices
    if n <= 1:
        return 0.0
    ring = 2 * (n - 1) / n * nbytes / link_bytes_per_s + 2 * (n - 1) * hop_s
    tree = 2 * nbytes / link_bytes_per_s + 2 * math.log2(n) * hop_s
    return COLLECTIVE_BASE_S + min(ring, tree)


def allgather_seconds(nbytes: float, devices: int, link_bytes_per_s: float, hop_s: float) -> float:
    n = devices
    if n <= 1:
        return 0.0
    return COLLECTIVE_BASE_S + (n - 1) / n * nbytes / link_bytes_per_s + (n - 1) * hop_s
