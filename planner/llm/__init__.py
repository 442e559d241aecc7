"""LLM decoders: prefill and decode phases, KV cache, token economics and tensor parallelism.

    decoder   recognise a decoder; the dims of its two phases (also what `plan validate` binds)
    phases    a phase as kernel groups affine in the batch; roofline time per target and TP degree
    plan      the search over precision x target x devices x batch and the plan document (output.decoder_text)
    variants  the pass pipelines on a decoder, verified by generation, timed per phase on host
    generation  greedy decoding with the cache fed back: agreement, step cosine, perplexity, the cache contract
"""

from planner.llm.plan import DEFAULT_GEN_LEN, DEFAULT_PROMPT_LEN, TP_DEGREES, DecoderPlanner, plan_decoder

__all__ = ["DEFAULT_GEN_LEN", "DEFAULT_PROMPT_LEN", "TP_DEGREES", "DecoderPlanner", "plan_decoder"]
