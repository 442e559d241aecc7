"""Read and understand the model: everything later stages read is built here, once per dim binding.

    loader        read the file (external weights sized, never read); refuse what is not ONNX or unsafe
    wellformed    refuse what protobuf parses but ONNX forbids (names, attribute types)
    limits        refuse tensor sizes no runtime can hold; bounded products
    walk          every graph of a model, subgraphs included
    shapes        classify and bind symbolic dims
    inference     shape inference: onnx's (propagation), then onnxruntime's symbolic pass (ort_symbolic)
    build         the ir.Graph from an inferred model: execution order, roles, constants folded
    controlflow   If / Loop / Scan bodies resolved with the outer shapes, and how often each runs
    analyze       Analyzer: bind, infer, build, resolve, cached per binding
    recurrent     an RNN layer's sizes, for its cost and its timing
    ir            TensorInfo, NodeInfo, Graph: what every later stage reads
"""
