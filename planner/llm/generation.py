"""Verify a rewritten decoder the way decoders are judged: by generating, not by one forward pass.

A quantized decoder can match the original's logits to a cosine of 0.999 on one random batch and still drift
off after a few tokens, or break the cache it hands back to itself. So the rewritten model is checked in three
ways, all on this machine with onnxruntime, against the original's own run:

    cache contract   for every past input and its present output, after a step that reads a seeded past of
                     length p and S new tokens: present has p + S positions and its first p repeat the past
                     (to 1% of the past's scale). A rewrite that drops, swaps or rescales a present is refused
                     with the name of the tensor that broke.
    generation       from PROMPTS seeded prompts of PROMPT_LEN tokens (one batch), the original decodes N tokens
                     greedily (default 32), its KV cache fed back step by step. The rewritten model is then fed
                     the same tokens (teacher-forced), with its own cache fed back, and at each of the N steps
                         agreement   its argmax equals the original's token
                         cosine      <l', l> / (|l'| |l|) of the two steps' logits (min and mean reported)
                     and it also decodes on its own (greedy_agreement: share of the N positions whose token
                     equals the original's; after a first divergence the sequences rarely meet again).
    perplexity       exp(mean negative log-likelihood) of a small text (bundled EVAL_TEXT, or --eval-text), each
                     byte a token id (byte mod vocab: these checks need no tokenizer), one prefill.

`--max-drift X` applies to: 1 - agreement, 1 - min cosine, and the relative perplexity increase, each <= X.
The result is a passes.verify.Drift (top1 = agreement, cosine = min step cosine) carrying these figures in
its `generation` field, so that the pass runner and the search treat decoders and other models alike.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import onnx

from passes.verify import ContractBroken, Drift, session
from planner.errors import PlannerError
from planner.llm.decoder import DecoderInfo, recognise

PROMPTS = 4
PROMPT_LEN = 8
GEN_TOKENS = 32
SEED = 0
CACHE_PAST_LEN = 3  # the seeded past the cache-contract step reads
CACHE_TOLERANCE = 1e-2  # of the past's largest magnitude: float16 caches round to ~1e-3
EVAL_TOKENS = 64  # at most this many tokens of the text are scored (tiny decoders have 128 positions)

# Written for this project (no licence question): plain English prose, every byte a token.
EVAL_TEXT = (
    "The river ran slowly past the old mill, where the miller kept his accounts in a small book bound in "
    "leather. Each morning he weighed the grain that the farmers brought, wrote the weight beside their names, "
    "and paid them at the end of the month. When the water was low in summer the wheel turned only in the "
    "afternoon, and the village learned to bring its corn after lunch."
)

_NP = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
       "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(bool)": np.bool_}


@dataclass(frozen=True)
class GenerationDrift:
    agreement: float  # teacher-forced: share of steps whose argmax is the original's token
    greedy_agreement: float  # free-running: share of positions with the original's token
    cosine_min: float
    cosine_mean: float
    max_rel_err: float  # max over steps of max |l' - l| / max |l|
    max_abs_err: float
    perplexity: float
    perplexity_original: float
    prompts: int
    tokens: int
    eval_tokens: int

    @property
    def perplexity_change(self) -> float:
        """Relative: ppl' / ppl - 1."""
        return self.perplexity / self.perplexity_original - 1 if self.perplexity_original else math.inf

    def to_dict(self) -> dict:
        return {"agreement": self.agreement, "greedy_agreement": self.greedy_agreement,
                "cosine_min": self.cosine_min, "cosine_mean": self.cosine_mean, "perplexity": self.perplexity,
                "perplexity_original": self.perplexity_original, "perplexity_change": self.perplexity_change,
                "prompts": self.prompts, "tokens": self.tokens, "eval_tokens": self.eval_tokens}

    def as_drift(self) -> Drift:
        how = (f"generation: {self.prompts} seeded prompts x {self.tokens} greedy tokens, KV cache fed back; "
               f"perplexity on {self.eval_tokens} tokens of text")
        return Drift(self.max_abs_err, self.max_rel_err, self.cosine_min, self.agreement, self.prompts, how,
                     generation=self.to_dict())


def pair_cache(info: DecoderInfo) -> list[tuple[str, str, int]]:
    """(past input, present output, past axis) per cache tensor: the present named like its past
    (past_key_values.0.key -> present.0.key, past_0 -> present_0), else the same position in the lists."""
    present = list(info.present)
    out = []
    for i, p in enumerate(info.past):
        guesses = [p.name.replace("past_key_values", "present"), p.name.replace("past", "present", 1)]
        name = next((g for g in guesses if g in present), present[i] if i < len(present) else None)
        if name is None:
            raise PlannerError(f"decoder: no present output for past input '{p.name}'")
        out.append((p.name, name, p.past_axis))
    return out


class _Decoder:
    """One onnxruntime session of a decoder, fed like a generation loop feeds it."""

    def __init__(self, model: onnx.ModelProto | os.PathLike, info: DecoderInfo) -> None:
        self.s = session(model)
        self.inputs = {i.name: i for i in self.s.get_inputs()}
        self.outputs = [o.name for o in self.s.get_outputs()]
        self.pairs = pair_cache(info)
        missing = [pr for _, pr, _ in self.pairs if pr not in self.outputs]
        if missing:
            raise ContractBroken(f"KV cache broken: present output '{missing[0]}' is gone")
        self.logits = "logits" if "logits" in self.outputs else self.outputs[0]

    def _dtype(self, name: str):
        return _NP.get(self.inputs[name].type, np.float32)

    def empty_past(self, batch: int) -> dict[str, np.ndarray]:
        out = {}
        for past, _, axis in self.pairs:
            shape = [d if isinstance(d, int) else batch for d in self.inputs[past].shape]  # symbolic: the batch
            shape[axis] = 0
            out[past] = np.zeros(shape, dtype=self._dtype(past))
        return out

    def step(self, ids: np.ndarray, past: dict[str, np.ndarray], past_len: int
             ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Logits [batch, seq, vocab] (float32) and the next past, from ids [batch, seq] after past_len tokens."""
        batch, seq = ids.shape
        feeds: dict[str, np.ndarray] = dict(past)
        for name in self.inputs:
            if name in feeds:
                continue
            dt = self._dtype(name)
            if name == "input_ids":
                feeds[name] = ids.astype(dt)
            elif name == "attention_mask":
                feeds[name] = np.ones((batch, past_len + seq), dtype=dt)
            elif name == "position_ids":
                feeds[name] = np.broadcast_to(np.arange(past_len, past_len + seq), (batch, seq)).astype(dt)
            else:
                raise PlannerError(f"decoder input '{name}': generation does not know how to feed it")
        feeds = {k: v.astype(self._dtype(k)) if k in self.inputs else v for k, v in feeds.items()}
        outs = dict(zip(self.outputs, self.s.run(None, feeds), strict=True))
        nxt = {past: np.asarray(outs[present]) for past, present, _ in self.pairs}
        return np.asarray(outs[self.logits]).astype(np.float32), nxt


def _check_cache(dec: _Decoder, vocab: int) -> str | None:
    """Why the present outputs do not continue the past inputs (see the module docstring), or None."""
    rng = np.random.default_rng(SEED + 7)
    past = {}
    for name, arr in dec.empty_past(1).items():
        axis = next(a for p, _, a in dec.pairs if p == name)
        shape = list(arr.shape)
        shape[axis] = CACHE_PAST_LEN
        past[name] = (rng.standard_normal(shape) * 0.5).astype(arr.dtype)
    ids = rng.integers(0, vocab, size=(1, 2))
    _, present = dec.step(ids, past, CACHE_PAST_LEN)
    for name, p, axis in dec.pairs:
        got = present[name]
        if got.shape[axis] != CACHE_PAST_LEN + ids.shape[1]:
            return (f"KV cache broken: '{p}' has {got.shape[axis]} positions on axis {axis}, expected past "
                    f"{CACHE_PAST_LEN} + {ids.shape[1]} new")
        head = np.take(got.astype(np.float32), range(CACHE_PAST_LEN), axis=axis)
        want = past[name].astype(np.float32)
        if head.shape != want.shape:
            return f"KV cache broken: '{p}' is {list(got.shape)}, its past '{name}' {list(want.shape)}"
        diff = float(np.max(np.abs(head - want)))
        if diff > CACHE_TOLERANCE * float(np.max(np.abs(want))):
            return (f"KV cache broken: '{p}' does not repeat its past input '{name}' in its first "
                    f"{CACHE_PAST_LEN} positions (max diff {diff:.3g})")
    return None


def _greedy(dec: _Decoder, prompts: np.ndarray, n: int, forced: np.ndarray | None = None
            ) -> tuple[np.ndarray, list[np.ndarray]]:
    """Tokens [batch, n] and the logits of each step [batch, vocab]; `forced`: feed these tokens instead."""
    logits, past = dec.step(prompts, dec.empty_past(prompts.shape[0]), 0)
    steps, tokens = [logits[:, -1, :]], []
    length = prompts.shape[1]
    for t in range(n):
        tok = np.argmax(steps[-1], axis=-1) if forced is None else forced[:, t]
        tokens.append(tok)
        if t == n - 1:
            break
        logits, past = dec.step(tok[:, None].astype(np.int64), past, length)
        length += 1
        steps.append(logits[:, -1, :])
    return np.stack(tokens, axis=1), steps


def text_ids(text: str, vocab: int, limit: int) -> np.ndarray:
    """Each UTF-8 byte a token id (mod vocab), at most `limit` of them."""
    data = text.encode("utf-8")[:limit]
    return np.frombuffer(data, dtype=np.uint8).astype(np.int64) % vocab


def perplexity(dec: _Decoder, ids: np.ndarray) -> float:
    """exp(mean NLL of ids[1:] given the prefix), one prefill run (float64 log-softmax)."""
    logits, _ = dec.step(ids[None, :], dec.empty_past(1), 0)
    lg = logits[0, :-1].astype(np.float64)
    lg -= lg.max(axis=-1, keepdims=True)
    logp = lg - np.log(np.exp(lg).sum(axis=-1, keepdims=True))
    return float(np.exp(-np.mean(logp[np.arange(len(ids) - 1), ids[1:]])))


def position_limit(model: onnx.ModelProto) -> int | None:
    """Rows of a position table indexed by position_ids (Gather), if any: contexts must stay below it."""
    inits = {t.name: t for t in model.graph.initializer}
    rows = [int(inits[n.input[0]].dims[0]) for n in model.graph.node
            if n.op_type == "Gather" and len(n.input) > 1 and n.input[1] == "position_ids" and n.input[0] in inits]
    return min(rows) if rows else None


class GenerationReference:
    """The original decoder's generation, computed once; `drift(model)` judges a rewrite against it (the
    interface passes.runner expects of a reference). `source`: the file onnxruntime runs instead of `model`'s
    bytes, for a decoder whose weights are external data (`model` then holds their descriptors only)."""

    def __init__(self, model: onnx.ModelProto, tokens: int = GEN_TOKENS, text: str = EVAL_TEXT,
                 prompts: int = PROMPTS, prompt_len: int = PROMPT_LEN, source: os.PathLike | None = None) -> None:
        info = recognise(model)
        if info is None:
            raise PlannerError("not a decoder: no past key/value inputs and present outputs")
        if tokens < 1:
            raise PlannerError(f"generation: {tokens} tokens: at least 1")
        self.info = info
        dec = _Decoder(model if source is None else source, info)
        probe, _ = dec.step(np.zeros((1, 1), dtype=np.int64), dec.empty_past(1), 0)
        self.vocab = int(probe.shape[-1])
        rows = position_limit(model)
        limit = EVAL_TOKENS if rows is None else min(EVAL_TOKENS, rows)
        if rows is not None and prompt_len + tokens > rows:
            raise PlannerError(f"generation: {prompt_len} + {tokens} tokens pass the model's {rows} positions")
        self.ids = text_ids(text, self.vocab, limit)
        if len(self.ids) < 2:
            raise PlannerError("evaluation text: needs at least 2 bytes")
        rng = np.random.default_rng(SEED)
        self.prompts = rng.integers(0, self.vocab, size=(prompts, prompt_len)).astype(np.int64)
        self.n = tokens
        self.cache_note = _check_cache(dec, self.vocab)  # the original must keep the contract to judge others
        self.tokens, self.steps = _greedy(dec, self.prompts, tokens)
        self.perplexity = perplexity(dec, self.ids)

    def measure(self, model: onnx.ModelProto | os.PathLike) -> GenerationDrift:
        """The rewrite's figures (`model` in memory, or its file); raises ContractBroken when its cache breaks the
        contract."""
        dec = _Decoder(model, self.info)
        if self.cache_note is None and (why := _check_cache(dec, self.vocab)):
            raise ContractBroken(why)
        forced, steps = _greedy(dec, self.prompts, self.n, forced=self.tokens)
        agree = cos_sum = 0.0
        cos_min, rel, absolute = 1.0, 0.0, 0.0
        for ref, got in zip(self.steps, steps, strict=True):
            if not np.all(np.isfinite(got)):
                raise ContractBroken("generation: non-finite logits")
            agree += float(np.mean(np.argmax(got, -1) == np.argmax(ref, -1)))
            a, b = ref.astype(np.float64), got.astype(np.float64)
            cos = np.sum(a * b, -1) / np.maximum(np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1), 1e-300)
            cos_min = min(cos_min, float(cos.min()))
            cos_sum += float(cos.mean())
            d = float(np.max(np.abs(a - b)))
            absolute = max(absolute, d)
            rel = max(rel, d / max(float(np.max(np.abs(a))), 1e-30))
        free, _ = _greedy(dec, self.prompts, self.n)
        n = len(self.steps)
        return GenerationDrift(agree / n, float(np.mean(free == self.tokens)), min(cos_min, 1.0), cos_sum / n, rel,
                               absolute, perplexity(dec, self.ids), self.perplexity, len(self.prompts), self.n,
                               len(self.ids))

    def drift(self, model: onnx.ModelProto | os.PathLike) -> Drift:
        return self.measure(model).as_drift()
