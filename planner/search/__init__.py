"""Candidates and the choice: pass pipelines as variants, the sweep over target x batch, the plan's types.

    variants     pass pipelines run, verified and measured for drift; each a variant of the model
    sweep        variant x target x batch -> candidates; the cheapest admissible wins, every loser says why
    plan_types   Plan, CandidateReport, KernelReport, ModelSummary: the plan as typed objects and its JSON
"""
