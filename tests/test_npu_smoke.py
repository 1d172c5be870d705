"""The NPU smoke script (for Atlas hosts) must at least run: on CPU, with the op spec standing in
for the device, every check it prints passes. This tests the script's plumbing, not an NPU."""
import re
import subprocess
import sys

OPS = ["reshape_and_cache", "paged_attention decode", "paged_attention lookahead", "flash_attention", "mla",
       "rms_norm", "add_rms_norm", "moe_init_routing", "grouped_matmul", "moe_token_unpermute"]
MODELS = ["qwen3", "deepseek-v3-mla"]


def smoke(tmp_path, *args):
    out = subprocess.run([sys.executable, "-m", "mindspore_models.tools.npu_smoke", "--cpu-reference", *args],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path)
    rows = dict(re.split(r"\s{2,}", ln)[:2] for ln in out.stdout.splitlines() if ln.startswith(("op ", "tiny ")))
    return out, rows


def test_npu_smoke_runs_with_the_cpu_reference(tmp_path):
    out, rows = smoke(tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    assert rows == {**{f"op {op}": "PASS" for op in OPS}, **{f"tiny {m} greedy vs HF": "PASS" for m in MODELS}}, \
        out.stdout
    assert "MS_INTERNAL_DISABLE_CUSTOM_KERNEL_LIST=" in out.stdout and "context: infer_boost=" in out.stdout


def test_npu_smoke_in_bf16_runs_the_ops_and_names_what_only_an_npu_can_run(tmp_path):
    out, rows = smoke(tmp_path, "--dtype", "bfloat16")
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    assert rows == {**{f"op {op}": "PASS" for op in OPS}, **{f"tiny {m} greedy vs HF": "SKIP" for m in MODELS}}, \
        out.stdout
    assert out.stdout.count("NPU only") == len(MODELS), out.stdout
