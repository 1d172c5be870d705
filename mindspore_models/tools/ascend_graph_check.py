"""Compile the Ascend forward of models on CPU, as far as a CPU can: up to kernel selection.

    python -m mindspore_models.tools.ascend_graph_check DIR [DIR ...] [--dtype bfloat16 float16]
        [--inject float32-block-tables|float16-caches] [--json]

For each checkpoint, dtype and phase of the Ascend backend's step (prefill: FlashAttention;
paged: PagedAttention), the model is built in that dtype over SGLang's NPU pool class and its
forward is compiled exactly as on the NPU (`runtime.step.CompiledForward`, the real Ascend
primitives, the norms and MoE on the fused Ascend ops, jit_level O0). Compiling runs MindSpore's parse and its type and shape inference over
every op of the graph, Ascend ops included; on CPU it then stops at kernel selection ("Unsupported
op [ReshapeAndCache] on CPU", or "Kernel select failed" at the first bf16 op MindSpore's CPU
kernels lack). A graph that stops earlier has an error an NPU would hit too. `--inject` breaks
one input of the paged phase on purpose, to show that such an error stops the compile before
kernel selection.

Each row names where the compile stopped and the Ascend ops the compiled graph holds (read from
the graph MindSpore saves after validation). Nothing here runs on an NPU.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from collections import Counter
from pathlib import Path

ASCEND_PRIMITIVES = ("ReshapeAndCache", "PagedAttention", "FlashAttentionScore", "Mla", "RmsNorm", "AddRmsNorm",
                     "MoeInitRoutingV2", "GroupedMatmulV4", "InnerMoeTokenUnpermute")  # MoeTokenUnpermute, in a graph
KERNEL_SELECTION = ("Kernel select failed", "Unsupported op [")
INJECTIONS = ("float32-block-tables", "float16-caches")
PHASES = {True: "prefill", False: "paged"}


def phase_plan(prefill: bool, page: int):
    """Two requests: a prefill of 5 + 3 tokens, or one decode token each after 5 and 3 cached."""
    import torch

    from mindspore_models.attention.plan import StepPlan

    table = torch.tensor([[page + i for i in range(6)], [2 * page + i for i in range(4)] + [0, 0]])
    if prefill:
        seq, q, pos = [5, 3], [5, 3], [0, 1, 2, 3, 4, 0, 1, 2]
        slots = [page + i for i in range(5)] + [2 * page + i for i in range(3)]
    else:
        seq, q, pos, slots = [6, 4], [1, 1], [5, 3], [page + 5, 2 * page + 3]
    t = torch.tensor
    return StepPlan.build(t(seq), t(q), table, t(pos), t(slots), page), t(list(range(len(pos))))


def inject(step: tuple, signature: tuple, what: str | None) -> tuple[tuple, tuple]:
    """Break one input of the step (and its declaration) the way a wrong convention would."""
    import mindspore as ms

    if what is None:
        return step, signature
    step, signature = list(step), list(signature)
    if what == "float32-block-tables":  # step = (phase, slots, tables, ...); signature drops the phase
        step[2], signature[1] = step[2].astype(ms.float32), ms.Tensor(shape=[None, None], dtype=ms.float32)
    else:  # float16 caches under a bfloat16 model
        step[6] = ms.mutable([ms.ops.zeros(c.shape, ms.float16) for c in step[6]])
        step[7] = ms.mutable([ms.ops.zeros(c.shape, ms.float16) for c in step[7]])
        signature[5] = ms.mutable([ms.Tensor(shape=s.shape, dtype=ms.float16) for s in signature[5]])
        signature[6] = ms.mutable([ms.Tensor(shape=s.shape, dtype=ms.float16) for s in signature[6]])
    return tuple(step), tuple(signature)


def graph_ops(ir_dir: Path) -> dict[str, int]:
    """Ascend primitives in the last validated graph MindSpore saved, and how often each appears."""
    files = sorted(ir_dir.glob("*validate*.ir"), key=os.path.getmtime)
    if not files:
        return {}
    found = Counter(re.findall(r"PrimFunc_(\w+)\(", files[-1].read_text(errors="replace")))
    for f in ir_dir.iterdir():
        f.unlink() if f.is_file() else None
    return {op: found[op] for op in ASCEND_PRIMITIVES if found[op]}


def check(model_dir: str, dtype_name: str, what: str | None, ir_dir: Path) -> list[dict]:
    """With the norms and MoE on MindSpore's fused Ascend ops, as kernels.py routes them on NPU."""
    from mindspore_models import kernels
    from mindspore_models.fused_ops.ascend import AscendFusedOps

    with kernels.using_fused_ops(AscendFusedOps()):
        return _check(model_dir, dtype_name, what, ir_dir)


def _check(model_dir: str, dtype_name: str, what: str | None, ir_dir: Path) -> list[dict]:
    import torch
    from transformers import AutoConfig

    from mindspore_models.attention.ascend import AscendBackend
    from mindspore_models.attention.pool import sglang_npu_pool
    from mindspore_models.registry import model_class
    from mindspore_models.runtime import step as model_step
    from mindspore_models.weights import iter_safetensors

    dtype, page = getattr(torch, dtype_name), 128
    hf = AutoConfig.from_pretrained(model_dir)
    model = model_class(hf.architectures)(hf)
    model.cast(dtype)
    model.load_weights(iter_safetensors(model_dir))
    backend = AscendBackend(sglang_npu_pool(model.config, 4 * page, page, dtype))
    model.bind(backend)
    # MLA: every step is the mla op's. An injected error is checked in the paged phase, whose ops read
    # both the block tables and the caches (MindSpore's ReshapeAndCache infer does not check cache dtypes).
    phases = (False,) if model.config.mla or what else (True, False)
    rows = []
    for prefill in phases:
        plan, ids = phase_plan(prefill, page)
        run = model_step.CompiledForward(model, backend)
        inputs = model_step.step_inputs(backend, plan)
        step, signature = inject(inputs["step"], backend.step_signature(prefill), what)
        run.backend = _Declared(backend, signature)
        row = {"model": Path(model_dir).name, "arch": hf.architectures[0], "dtype": dtype_name,
               "phase": PHASES[prefill], "inject": what}
        try:
            import mindspore as ms

            run(ms.Tensor(ids.numpy().astype("int32")), inputs["positions"], inputs["logits_index"], step)
            row.update(stopped="ran", message="")
        except Exception as e:  # noqa: BLE001 (where the compile stopped is the result)
            text = str(e)
            stage = "kernel selection" if any(m in text for m in KERNEL_SELECTION) else "before kernel selection"
            row.update(stopped=stage, message=_first_line(text))
        row["ascend_ops"] = graph_ops(ir_dir)
        rows.append(row)
    return rows


class _Declared:
    """The backend with its step declarations replaced (what `--inject` changes)."""

    def __init__(self, backend, signature):
        self._backend, self._signature = backend, signature

    def step_signature(self, phase):
        return self._signature

    def __getattr__(self, name):
        return getattr(self._backend, name)


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not set(ln.strip()) <= set("-")]
    useful = [ln for ln in lines if not ln.startswith("- ")]
    return (useful or lines or [""])[0][:300]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dirs", nargs="+", help="HF checkpoints (config.json + safetensors)")
    ap.add_argument("--dtype", nargs="+", default=["bfloat16", "float16"], choices=["bfloat16", "float16"])
    ap.add_argument("--inject", choices=INJECTIONS, help="break one step input on purpose")
    ap.add_argument("--json", action="store_true", help="one JSON object per row instead of the table")
    args = ap.parse_args(argv)
    ir_dir = Path(tempfile.mkdtemp(prefix="sglms-ir-"))
    os.environ["MS_DEV_SAVE_GRAPHS"] = "1"  # read by MindSpore at each compile: the graph's ops are listed from it
    os.environ["MS_DEV_SAVE_GRAPHS_PATH"] = str(ir_dir)
    os.environ["SGLMS_DISABLE_KERNELS"] = "1"  # the layers' pure-MindSpore paths, as on the NPU
    from mindspore_models import device

    device.init("cpu")
    rows = [row for d in args.model_dirs for dt in args.dtype for row in check(d, dt, args.inject, ir_dir)]
    for row in rows:
        if args.json:
            print(json.dumps(row))
        else:
            ops = ", ".join(f"{k} x{v}" for k, v in row["ascend_ops"].items()) or "-"
            print(f"{row['model']:<24} {row['dtype']:<9} {row['phase']:<8} stopped at {row['stopped']:<24} "
                  f"Ascend ops: {ops}\n    {row['message']}")
    expected = "before kernel selection" if args.inject else "kernel selection"
    return 0 if all(r["stopped"] == expected for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
