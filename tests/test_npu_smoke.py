"""The NPU smoke script (for Atlas hosts) must at least run: on CPU, with the op spec standing in
for the device, every check it prints passes. This tests the script's plumbing, not an NPU."""
import subprocess
import sys


def test_npu_smoke_runs_with_the_cpu_reference(tmp_path):
    out = subprocess.run([sys.executable, "-m", "mindspore_models.tools.npu_smoke", "--cpu-reference"],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    rows = [ln for ln in out.stdout.splitlines() if ln.startswith(("op ", "tiny "))]
    assert len(rows) == 5 and all("PASS" in r for r in rows), out.stdout
