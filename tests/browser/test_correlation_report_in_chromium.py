"""The HTML report of a multi-node store in headless Chromium: the correlation charts are drawn."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from corrplan import events, plan, records
from sipwatch.report import correlation
from sipwatch.report.html import write_html
from sipwatch.report.tables import all_tables
from sipwatch.store.base import open_store

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")


def test_correlation_section_draws_offline(tmp_path: Path) -> None:
    with open_store(tmp_path / "t.sqlite") as s:
        s.add(records(plan()))
        s.flush()
        s.add_events(events())
        page = write_html(all_tables(s) + correlation.correlation_tables(s), tmp_path / "r.html")
    proc = subprocess.run(
        [
            str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1300,1000",
            "--virtual-time-budget=10000", "--dump-dom", page.as_uri(),
        ],
        capture_output=True,
        timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    dom = proc.stdout.decode()
    # five report plots and four correlation plots, each with its own main SVG
    assert len(re.findall(r'<svg class="main-svg"', dom)) >= 9
    assert 'class="hm"' in dom  # the node matrix heatmap was drawn
    assert '<section id="matrix">' in dom and 'id="correlation"' in dom
    for label in ("(none)", "essen", "oslo", "tromso", "&lt; 10 s"):
        assert f'data-unformatted="{label}"' in dom
