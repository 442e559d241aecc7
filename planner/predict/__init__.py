"""One configuration on one target: kernels, their times, memory. Pure: nothing here runs a model.

    families    what kind of kernel a node runs (the name a calibration measures it under), its precision
    fusion      group nodes into the kernels the target's runtime launches
    roofline    the formula: a kernel's terms from the target's rates -> time and bound
    bodies      If / Loop / Scan timed from their bodies' own kernels
    memory      liveness walk, weights, the runtime's copies, workspace
    support     what each runtime really runs per (op, precision); retime or reject the rest
    predictor   Predictor.predict(analysis, target) -> Prediction
"""
