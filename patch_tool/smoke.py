"""The default bisect/matrix test: serve a tiny Qwen3 through the probed, patched SGLang tree
with model_impl="mindspore" on CPU and generate a few tokens.

Runs with PATCH_TOOL_TREE (the probed tree) first on PYTHONPATH. Exit codes follow
`git bisect run`: 0 good, 1 bad, 125 skip; 200 means the harness is broken (abort).
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path


def main() -> int:
    tree = os.environ.get("PATCH_TOOL_TREE")
    import sglang

    if tree and not Path(sglang.__file__).resolve().is_relative_to(Path(tree).resolve()):
        print(f"harness error: imported sglang from {sglang.__file__}, not from the probed tree {tree}")
        return 200
    from mindspore_models.tools.make_tiny_checkpoint import make_qwen3

    with tempfile.TemporaryDirectory(prefix="smoke-") as tmp:
        ckpt = make_qwen3(Path(tmp) / "tiny-qwen3")
        engine = sglang.Engine(model_path=str(ckpt), model_impl="mindspore", device="cpu",
                               attention_backend="torch_native", dtype="float32", disable_cuda_graph=True,
                               max_total_tokens=2048, log_level="error")
        try:
            out = engine.generate(input_ids=[[5, 17, 33, 2, 99]], sampling_params={
                "temperature": 0, "max_new_tokens": 4, "ignore_eos": True})
        finally:
            engine.shutdown()
    tokens = out[0]["output_ids"]
    print(f"sglang {sglang.__version__}: generated {tokens}")
    return 0 if len(tokens) == 4 else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # any failure of the patched engine is a bad release
        print(f"smoke test failed: {type(e).__name__}: {e}")
        sys.exit(1)
