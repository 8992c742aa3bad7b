"""The HTML report as a person sees it: opened from disk in headless Chromium, no network."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PCAPS = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "pcaps"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")


def rendered_dom(page: Path, profile: Path) -> str:
    """The DOM after scripts ran, with every network path switched off."""
    proc = subprocess.run(
        [
            str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={profile}", "--window-size=1300,1000",
            "--virtual-time-budget=10000", "--dump-dom", page.as_uri(),
        ],
        capture_output=True,
        timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    return proc.stdout.decode()


def test_report_draws_every_plot_offline(tmp_path: Path) -> None:
    db = tmp_path / "t.sqlite"
    html = tmp_path / "report.html"
    capture = PCAPS / "zeek" / "wireshark.pcap"
    proc = subprocess.run(
        [sys.executable, "-m", "sipwatch.cli", "analyze", str(capture), "--db", str(db),
         "--report", str(html), "-q"],
        capture_output=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()
    dom = rendered_dom(html, tmp_path / "profile")
    # plotly drew all five plots (each has its own main SVG, sized to its column)
    widths = [float(w) for w in re.findall(r'<svg class="main-svg"[^>]*? width="([\d.]+)"', dom)]
    assert len(widths) >= 5
    assert max(widths) < 700  # two columns on a 1300-pixel window: no plot spills over
    # the per-day plot shows the capture's day, and the stage legend
    assert 'data-unformatted="2005-07-04"' in dom
    for stage in ("ES", "RHJ", "TF"):
        assert f'data-unformatted="{stage}"' in dom
    # the tables are there, with the numbers the store holds
    assert '<section id="totals">' in dom and ">81<" in dom
