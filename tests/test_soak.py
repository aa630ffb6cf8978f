"""The soak script (bench/soak.py) at a small size: every event applied once, memory reported and plotted.

The full run (a million events) is outside CI; its table is in the README.
"""

from __future__ import annotations

import json

import pytest

from bench.soak import main

pytestmark = pytest.mark.integration


def test_soak_applies_every_event_once_and_reports_memory(tmp_path, capsys):
    rc = main(["--events", "3000", "--users", "120", "--items-per-category", "8", "--batch", "128",
               "--checkpoints", "3", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "every event applied once" in out
    report = json.loads((tmp_path / "soak.json").read_text())
    assert report["applied"] == report["answered"] == 3000
    rows = report["rows"]
    assert [r["events"] for r in rows][-1] == 3000 and len(rows) >= 3
    assert all(r["rss_mb"] > 0 and r["redis_mb"] > 0 for r in rows)
    assert rows[-1]["users"] == 120
    assert (tmp_path / "soak.png").stat().st_size > 10_000
