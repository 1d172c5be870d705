"""What this installed wheel is built from: upstream pin + sha256, series hash, each patch, and the
pinned Ascend (NPU) set with the CANN version it needs.

    python -m mindspore_models.provenance          # everything, as JSON
    python -m mindspore_models.provenance --npu    # the NPU set and its CANN version, one per line

The NPU set lives in ONE file, requirements-npu.txt at the repository root: setup.py reads it with
`parse_npu_set` for extras_require["npu"] and writes it into _provenance.json; ci/setup_npu.sh and
tests/test_npu_install.py read the same file.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

PATH = Path(__file__).parent / "_provenance.json"
NPU_REQUIREMENTS_FILE = "requirements-npu.txt"


def load() -> dict | None:
    return json.loads(PATH.read_text()) if PATH.exists() else None


def parse_npu_set(text: str) -> dict:
    """requirements-npu.txt -> {"requirements": [...], "cann": "X.Y.Z", "cann_source": "..."}.

    Requirement lines are the non-comment lines; `# cann: X` names the CANN version the set needs
    and `# cann-source: ...` (continued on `#   ` lines) says where that fact comes from."""
    reqs, cann, source, in_source = [], None, [], False
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            in_source = False
            continue
        if line.startswith("#"):
            body = line[1:].strip()
            if body.startswith("cann:"):
                cann, in_source = body[len("cann:"):].strip(), False
            elif body.startswith("cann-source:"):
                source, in_source = [body[len("cann-source:"):].strip()], True
            elif in_source and raw.lstrip().startswith("#   "):
                source.append(body)
            else:
                in_source = False
            continue
        in_source = False
        reqs.append(line.split("#", 1)[0].strip())
    if not reqs:
        raise ValueError(f"{NPU_REQUIREMENTS_FILE}: no requirements")
    return {"requirements": reqs, "cann": cann or "unknown", "cann_source": " ".join(source) or "unknown"}


def npu_lines(info: dict) -> list[str]:
    npu = info.get("npu")
    if not npu:
        return ["NPU set: not recorded in this wheel's provenance"]
    from mindspore_models import device  # imports MindSpore: only for this report

    return ([f"NPU set ({NPU_REQUIREMENTS_FILE}): " + " ".join(npu["requirements"]),
             f"CANN: {npu['cann']}",
             f"CANN source: {npu['cann_source']}",
             "kernel environment device.init('npu') sets where unset: "
             + " ".join(f"{k}={v}" for k, v in device.ASCEND_KERNEL_ENV.items()),
             "MindSpore context on npu: " + " ".join(f"{k}={v}" for k, v in device.ASCEND_CONTEXT.items())])


if __name__ == "__main__":
    info = load()
    if info is None:
        raise SystemExit("no provenance: this mindspore_models is a source checkout, not a built wheel")
    if "--npu" in sys.argv[1:]:
        print("\n".join(npu_lines(info)))
    else:
        print(json.dumps(info, indent=2))
