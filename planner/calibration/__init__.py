"""This machine measured: `plan calibrate`, the fit, the calibrated host, and `plan validate`.

    benches     microbenchmark models built in memory
    suite       which microbenchmarks run, at what sizes
    timing      run one: end to end or profiled; the samples its times make
    overheads   the runtime's per-run, per-I/O and per-node costs; each family's fixed cost (tiny chains)
    residency   the session's own memory and its copies of the weights
    samples     Sample and Measurements: what a calibration run hands the fit
    run         calibrate(): the whole run on a quiet machine, twice, keeping each sample's quickest
    fit         Measurements -> Calibration (curves, fixed costs, recurrent costs, graph node overhead)
    recurrent   LSTM / GRU layers as onnxruntime runs them: seven costs, fitted
    store       the calibration file: one entry per machine and thread count
    rates       CalibratedRates (every calibrated special case of the roofline) and apply()
    host        the calibrated host target; get_target / resolve_targets; predictions of the executed graph
    validate    predict, then measure: end to end, per op type, per kernel
"""
