"""Test and benchmark harnesses: the fuzzer's seeds and mutants, and running the CLI in-process on one model.

Not shipped with the package (pyproject includes planner*, passes*, hwtargets* only); tests and benchmarks
import it from the repository root.
"""
