"""What this installed wheel is built from: upstream pin + sha256, series hash, each patch.

    python -m mindspore_models.provenance
"""
from __future__ import annotations

import json
from pathlib import Path

PATH = Path(__file__).parent / "_provenance.json"


def load() -> dict | None:
    return json.loads(PATH.read_text()) if PATH.exists() else None


if __name__ == "__main__":
    info = load()
    if info is None:
        raise SystemExit("no provenance: this mindspore_models is a source checkout, not a built wheel")
    print(json.dumps(info, indent=2))
