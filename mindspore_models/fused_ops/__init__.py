"""MindSpore's fused Ascend ops outside attention (norms, MoE routing and grouped matmul).

`ascend.AscendFusedOps` wraps the primitives; `reference.ReferenceFusedOps` is their executable
spec with the same interface (tests run whole models through it on CPU and replay each recorded
call against the real primitive). `kernels.py` (the one list of kernels) decides which provider,
if any, a layer's op goes to: on NPU the primitives, on CPU the custom kernels or the
pure-MindSpore fallbacks.
"""
