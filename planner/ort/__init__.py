"""onnxruntime on this machine: sessions, the graph it really executes, and timing runs of it.

    session    session options and sessions (one place for the settings predict, validate and calibrate share)
    executed   the graph onnxruntime executes (saved at session build, never run), with its shapes
    clock      wall and CPU time of runs; the share of the CPU a run really had
    quiet      wait for a quiet moment before timing anything
    profile    parse onnxruntime's profiler output into per-node times
    measure    run a model (in a child process): end to end, per node, memory
"""
