"""What onnxruntime's CPU arena makes resident for a model's activations: more than their live peak.

onnxruntime hands every activation out of a best-fit arena (BFCArena, the TensorFlow allocator) that grows by
regions and never gives one back. A region is `curr` bytes; a request larger than `curr` doubles it until the
request fits, and a region made at `curr` without doubling doubles it for the next (kNextPowerOfTwo; `curr`
starts at 1 MiB, and stops doubling at 1 GiB). A free chunk is taken whole unless it is at least twice the request
(or 128 MiB more), then split. The first run allocates tensor by tensor; from the second on, all intermediate
tensors share one block of the memory pattern onnxruntime traced in the first (their live peak), taken from the
same arena: where no freed chunk is that large, the arena grows again. A page is resident once written, so what
counts is the bytes of each region a tensor ever covered, not the regions' sizes.

Measured here (benchmarks/arena_residency.py, fresh processes, 1 thread): a chain of six Sin over 8 MiB tensors
(a live peak of 24 MiB with its input) kept 41 MiB resident beyond a session's own memory, four times 32 MiB
164 MiB; what this walk gives is 40 and 160.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

MIN_ALLOCATION = 256  # BFCArena rounds every request up to a multiple of this
INITIAL_REGION = 1 << 20  # OrtArenaCfg's default initial chunk
MAX_DOUBLING = 1 << 30  # OrtArenaCfg's default max_power_of_two_extend_bytes
MAX_DEAD = 128 << 20  # OrtArenaCfg's default max_dead_bytes_per_chunk


@dataclass
class _Chunk:
    region: int
    start: int
    size: int
    used: bool = False


class Arena:
    """A BFC arena: regions made as onnxruntime makes them, best-fit chunks, and the bytes ever written."""

    def __init__(self, initial: int = INITIAL_REGION) -> None:
        self.curr = initial
        self.regions: list[int] = []
        self.chunks: list[_Chunk] = []  # every chunk, in region and address order
        self.touched: list[list[tuple[int, int]]] = []  # per region, (start, end) of every write

    def alloc(self, nbytes: int) -> _Chunk:
        rounded = max(MIN_ALLOCATION, -(-nbytes // MIN_ALLOCATION) * MIN_ALLOCATION)
        free = [c for c in self.chunks if not c.used and c.size >= rounded]
        if not free:
            self._extend(rounded)
            free = [c for c in self.chunks if not c.used and c.size >= rounded]
        chunk = min(free, key=lambda c: (c.size, c.region, c.start))
        if chunk.size >= 2 * rounded or chunk.size - rounded >= MAX_DEAD:
            rest = _Chunk(chunk.region, chunk.start + rounded, chunk.size - rounded)
            chunk.size = rounded
            self.chunks.insert(self.chunks.index(chunk) + 1, rest)
        chunk.used = True
        self.touched[chunk.region].append((chunk.start, chunk.start + nbytes))
        return chunk

    def free(self, chunk: _Chunk) -> None:
        chunk.used = False
        i = self.chunks.index(chunk)
        nxt = self.chunks[i + 1] if i + 1 < len(self.chunks) else None
        if nxt is not None and not nxt.used and nxt.region == chunk.region:
            chunk.size += nxt.size
            del self.chunks[i + 1]
        prev = self.chunks[i - 1] if i > 0 else None
        if prev is not None and not prev.used and prev.region == chunk.region:
            prev.size += chunk.size
            del self.chunks[i]

    def _extend(self, rounded: int) -> None:
        doubled = False
        while rounded > self.curr:
            self.curr *= 2
            doubled = True
        self.regions.append(self.curr)
        self.touched.append([])
        self.chunks.append(_Chunk(len(self.regions) - 1, 0, self.curr))
        if not doubled:
            self.curr = min(self.curr * 2, MAX_DOUBLING)

    def resident_bytes(self) -> int:
        """Bytes of the regions that some tensor wrote: the union of the writes, region by region."""
        total = 0
        for writes in self.touched:
            end = 0
            for a, b in sorted(writes):
                if b > end:
                    total += b - max(a, end)
                    end = b
        return total


@dataclass(frozen=True)
class Lifetime:
    """An activation the arena holds: its bytes, the step that writes it and the last step that reads it."""

    nbytes: int
    birth: int
    death: int
    output: bool = False  # a graph output: allocated on its own in every run, outside the memory pattern


def resident_bytes(lifetimes: Iterable[Lifetime], pattern_bytes: int) -> int:
    """The arena's resident bytes after a first run tensor by tensor (each freed after the last step that reads
    it) and a second with the intermediates in one block of `pattern_bytes` (the graph outputs again on their
    own). Later runs repeat the second."""
    lifetimes = list(lifetimes)
    arena = Arena()
    steps = max((t.death for t in lifetimes), default=-1) + 1
    born: dict[int, list[Lifetime]] = {}
    dies: dict[int, list[Lifetime]] = {}
    for t in lifetimes:
        born.setdefault(t.birth, []).append(t)
        dies.setdefault(t.death, []).append(t)
    held = {}
    for step in range(-1, steps + 1):
        for t in born.get(step, ()):
            held[id(t)] = arena.alloc(t.nbytes)
        for t in dies.get(step, ()):
            if not t.output:
                arena.free(held.pop(id(t)))
    for chunk in held.values():  # the run returns: its outputs are copied out and freed
        arena.free(chunk)
    block = arena.alloc(pattern_bytes) if pattern_bytes else None
    outputs = [arena.alloc(t.nbytes) for t in lifetimes if t.output]
    for chunk in outputs:
        arena.free(chunk)
    if block is not None:
        arena.free(block)
    return arena.resident_bytes()
