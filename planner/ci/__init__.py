"""Plans in CI: compare two plans, and gate a change on a baseline (`plan check`, `plan diff`).

    compare        two configurations from plan dicts: headline changes, kernels matched by node name
    compare_text   comparisons and check results as text and markdown
    gate           re-plan under a baseline's settings, pin its configuration, judge the metric
    github         GitHub Actions annotations and the job summary
    fleet_gate     `plan check --metric monthly-cost`: the cheapest fleet's $ a month at a stated traffic
"""
