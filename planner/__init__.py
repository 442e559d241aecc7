"""onnx-planner: what an ONNX model costs to serve on each piece of hardware, and the cheapest plan."""

__version__ = "0.1.0"
