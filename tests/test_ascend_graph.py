"""The Ascend forward of every tiny architecture, compiled on CPU as on the NPU (real Ascend
primitives, jit_level O0, one graph per phase), in bf16 and fp16: it must get through MindSpore's
parse and type/shape inference of every op and stop only at kernel selection, which a CPU cannot
pass. An input broken on purpose must stop it earlier. Nothing here runs on an NPU."""
import json
import subprocess
import sys

import pytest

ARCHS = ["qwen3", "llama-llama3-rope", "qwen2-tied", "qwen3-moe-unaligned", "deepseek-v3-ascend"]
MOE_ARCHS = {"Qwen3MoeForCausalLM", "DeepseekV3ForCausalLM"}


def graph_check(dirs, *args):
    """Run from the checkpoints' folder: `python -m` from the repo root would import the checkout."""
    out = subprocess.run([sys.executable, "-m", "mindspore_models.tools.ascend_graph_check", *map(str, dirs),
                          "--json", *args], capture_output=True, text=True, timeout=900, cwd=dirs[0].parent)
    rows = [json.loads(ln) for ln in out.stdout.splitlines() if ln.startswith("{")]
    print("\n".join(f"{r['model']} {r['dtype']} {r['phase']}: {r['stopped']}, Ascend ops {r['ascend_ops']}"
                    for r in rows))
    return out, rows


@pytest.mark.slow
def test_every_architecture_compiles_up_to_kernel_selection(make_variant):
    out, rows = graph_check([make_variant(a) for a in ARCHS])
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    dense, mla = [r for r in rows if r["arch"] != "DeepseekV3ForCausalLM"], [
        r for r in rows if r["arch"] == "DeepseekV3ForCausalLM"]
    assert len(dense) == 4 * 2 * 2 and len(mla) == 2, rows  # archs x dtypes x phases; MLA has one phase
    for r in rows:
        assert r["stopped"] == "kernel selection", r
        ops = r["ascend_ops"]
        assert ops.get("ReshapeAndCache"), r  # the KV write survives in every phase (prefill reads no cache)
        want = {"prefill": "FlashAttentionScore", "paged": "Mla" if r in mla else "PagedAttention"}[r["phase"]]
        moe = {"MoeInitRoutingV2", "GroupedMatmulV4", "InnerMoeTokenUnpermute"} if r["arch"] in MOE_ARCHS else set()
        assert set(ops) == {"ReshapeAndCache", want, "RmsNorm", "AddRmsNorm"} | moe, r  # never the every-expert loop
        if moe:
            assert ops["GroupedMatmulV4"] == 2 * ops["MoeInitRoutingV2"] == 2 * ops["InnerMoeTokenUnpermute"], r
    # fp16: MindSpore's CPU kernels cover every other op, so the first op it cannot select is an Ascend one
    assert all("Unsupported op [" in r["message"] for r in rows if r["dtype"] == "float16"), rows


@pytest.mark.slow
@pytest.mark.parametrize("inject, dtype, message", [
    ("float32-block-tables", "float16", "input argument[block_tables] must be a type of"),
    ("float16-caches", "bfloat16", "the input type must be same"),
])
def test_a_type_error_stops_the_compile_before_kernel_selection(make_variant, inject, dtype, message):
    out, rows = graph_check([make_variant("qwen3")], "--dtype", dtype, "--inject", inject)
    assert out.returncode == 0 and len(rows) == 1, out.stdout + out.stderr[-3000:]
    assert rows[0]["stopped"] == "before kernel selection" and message in rows[0]["message"], rows
