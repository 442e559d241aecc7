"""LLM decoders: prefill and decode phases, KV cache, token economics and tensor parallelism.

    planner.llm.decoder      recognise a decoder; the dims of its two phases (also what `plan validate` binds)
    planner.llm.phases   a phase as kernel groups affine in the batch; roofline time per target and TP degree
    planner.llm.plan     the search over target x devices x batch and the plan document
    planner.output.decoder_text   the plan as text
"""

from planner.llm.plan import DEFAULT_GEN_LEN, DEFAULT_PROMPT_LEN, TP_DEGREES, DecoderPlanner, plan_decoder

__all__ = ["DEFAULT_GEN_LEN", "DEFAULT_PROMPT_LEN", "TP_DEGREES", "DecoderPlanner", "plan_decoder"]
