"""README's patch table states each patch's size against upstream: keep it true."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_series_table_line_counts_match_the_patches():
    readme = (ROOT / "README.md").read_text()
    series = [ln for ln in (ROOT / "sglang_patches" / "series").read_text().splitlines()
              if ln and not ln.startswith("#")]
    for name in series:
        text = (ROOT / "sglang_patches" / name).read_text()
        added = sum(1 for ln in text.splitlines() if ln.startswith("+") and not ln.startswith("+++"))
        removed = sum(1 for ln in text.splitlines() if ln.startswith("-") and not ln.startswith("---"))
        row = re.search(rf"^\| {re.escape(name.removesuffix('.patch'))} \| \+(\d+) -(\d+) \|", readme, re.M)
        assert row, f"README's series table has no row for {name}"
        assert (int(row[1]), int(row[2])) == (added, removed), f"{name}: README says {row[0]}, patch has +{added} -{removed}"
