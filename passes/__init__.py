"""Graph rewrites behind one contract (passes.base): cleanup, fusion, quantization; named pipelines of them
(passes.pipelines) and a runner that verifies after every pass (passes.runner)."""

from passes import cleanup, quantize  # noqa: F401  (registers the passes)
from passes import pipelines as _pipelines  # noqa: F401
from passes.base import (  # noqa: F401
    Pass,
    PassContext,
    PassRejected,
    PassResult,
    Pipeline,
    get_pass,
    get_pipeline,
    registered_passes,
    registered_pipelines,
)
from passes.fusion import attention_mask, conv_affine, gemm, ort  # noqa: F401
from passes.runner import PipelineResult, run_pipeline  # noqa: F401
