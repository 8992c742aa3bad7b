"""Report tables (JSON and CSV), the per-attacker view and the blocklist feed."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from storedata import DAY1, DAY2, trace

from centralapp import CentralApp, central_app
from sipwatch.central.batchcodec import encode
from sipwatch.report import correlation
from sipwatch.report import tables as report_tables
from sipwatch.store.rows import message_row
from sipwatch.store.schema import EVENT_COLUMNS

ROWS = [message_row(r) for r in trace()]


def event(eid: int, src: str, severity: str, first: float, node: str = "bergen") -> tuple:
    e = dict.fromkeys(EVENT_COLUMNS, "")
    e.update(id=eid, rule="t.rule", kind="threshold", severity=severity, stage="ES", src=src,
             targets="[]", node=node, first=first, last=first + 1, count=1, evidence="[]",
             data="{}")  # fmt: skip
    return tuple(e[c] for c in EVENT_COLUMNS)


@pytest.fixture
def c(tmp_path: Path):
    config = {"allow": ("192.0.2.0/24",), "deployments": {"east": ("oslo",)}}
    with central_app(tmp_path, **config) as app:
        events = [
            event(1, "8.8.8.8", "medium", DAY1 + 10),
            event(2, "198.51.100.7", "critical", DAY2 + 10),
            event(3, "203.0.113.9", "low", DAY2 + 40),
            event(4, "192.0.2.77", "high", DAY1),  # allowlisted
            event(5, "not-an-address", "high", DAY1),
            event(6, "8.8.8.8", "high", DAY2),  # a second event of 8.8.8.8: worst severity counts
        ]
        assert app.ingest(app.oslo, encode(1, ROWS, [])).status_code == 200
        assert app.ingest(app.bergen, encode(1, [], events)).status_code == 200
        yield app


def test_every_report_in_json_and_csv(c: CentralApp) -> None:
    names = c.client.get("/api/v1/reports", auth=c.viewer).json()
    assert names == [*report_tables.REPORTS, *correlation.CORRELATION]
    for name in names:
        r = c.client.get(f"/api/v1/reports/{name}", auth=c.viewer)
        assert r.status_code == 200, name
        table = r.json()
        assert table["name"] == name
        assert set(table) == {"name", "title", "columns", "rows", "note"}
        assert all(list(row) == table["columns"] for row in table["rows"])
        r = c.client.get(f"/api/v1/reports/{name}?format=csv", auth=c.viewer)
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/csv")
        lines = list(csv.reader(io.StringIO(r.text)))
        assert lines[0] == table["columns"] and len(lines) == len(table["rows"]) + 1


def test_report_contents(c: CentralApp) -> None:
    totals = c.client.get("/api/v1/reports/totals", auth=c.viewer).json()
    assert {"metric": "messages", "value": 14} in totals["rows"]
    nodes = c.client.get("/api/v1/reports/nodes?format=csv", auth=c.viewer).text
    assert nodes.splitlines()[1].startswith("oslo,")
    deployments = c.client.get("/api/v1/reports/deployments", auth=c.viewer).json()
    assert deployments["rows"][0]["group"] == "east"  # the config's groups, not the registry's


def test_unknown_report_and_top_bounds(c: CentralApp) -> None:
    r = c.client.get("/api/v1/reports/nothing", auth=c.viewer)
    assert r.status_code == 404
    assert r.json()["detail"].startswith("no report 'nothing'; reports: totals, per_day")
    for top in (0, -1, 100_001, "x"):
        r = c.client.get(f"/api/v1/reports/top_sources?top={top}", auth=c.viewer)
        assert r.status_code == 422, top
    one = c.client.get("/api/v1/reports/top_sources?top=1", auth=c.viewer).json()["rows"]
    assert [r["source"] for r in one] == ["198.51.100.7"]
    assert len(c.client.get("/api/v1/reports/top_sources", auth=c.viewer).json()["rows"]) == 3
    # a table without a top-N ignores it
    assert c.client.get("/api/v1/reports/totals?top=1", auth=c.viewer).status_code == 200
    assert c.client.get("/api/v1/reports/totals?format=xml", auth=c.viewer).status_code == 422


def test_attacker_view(c: CentralApp) -> None:
    r = c.client.get("/api/v1/attackers/198.51.100.7", auth=c.viewer)
    assert r.status_code == 200
    tables = {t["name"]: t for t in r.json()}
    assert len(tables["attacker_timeline"]["rows"]) > 0
    assert tables["attacker"]["rows"]  # the summary
    assert c.client.get("/api/v1/attackers/192.0.2.200", auth=c.viewer).status_code == 404
    assert c.client.get("/api/v1/attackers/not-ip", auth=c.viewer).status_code == 422


# --- blocklist -----------------------------------------------------------------------------------
def test_blocklist_formats_and_severity(c: CentralApp) -> None:
    text = c.client.get("/api/v1/blocklist", auth=c.viewer)  # default: medium and up
    assert text.headers["content-type"].startswith("text/plain")
    assert text.text == "8.8.8.8\n198.51.100.7\n"
    rows = c.client.get("/api/v1/blocklist?format=json&min_severity=info", auth=c.viewer).json()
    assert rows == [
        {"address": "8.8.8.8", "first": DAY1 + 10, "severity": "high", "events": 2},
        {"address": "198.51.100.7", "first": DAY2 + 10, "severity": "critical", "events": 1},
        {"address": "203.0.113.9", "first": DAY2 + 40, "severity": "low", "events": 1},
    ]
    high = c.client.get("/api/v1/blocklist?min_severity=high", auth=c.viewer).text
    assert high == "8.8.8.8\n198.51.100.7\n"
    assert c.client.get("/api/v1/blocklist?min_severity=critical", auth=c.viewer).text == (
        "198.51.100.7\n"
    )
    since = c.client.get(f"/api/v1/blocklist?since={DAY2 + 10}", auth=c.viewer).text
    assert since == "198.51.100.7\n"  # first seen at or after
    assert c.client.get("/api/v1/blocklist?min_severity=bad", auth=c.viewer).status_code == 422
    assert c.client.get("/api/v1/blocklist?format=xml", auth=c.viewer).status_code == 422


def test_the_configured_minimum_severity(tmp_path: Path) -> None:
    with central_app(tmp_path, min_severity="critical") as c:
        events = [event(1, "8.8.8.8", "high", DAY1), event(2, "9.9.9.9", "critical", DAY1)]
        c.ingest(c.bergen, encode(1, [], events))
        assert c.client.get("/api/v1/blocklist", auth=c.viewer).text == "9.9.9.9\n"


def _pages(c: CentralApp, start: str = "100") -> tuple[list[str], str]:
    got: list[str] = []
    page_id = start
    for _ in range(50):
        r = c.client.get(f"/api/v1/blocklist?format=apiban&id={page_id}", auth=c.viewer)
        assert r.status_code == 200
        body = r.json()
        if body["ID"] == page_id:
            assert body["ipaddress"] == []
            return got, page_id
        got += body["ipaddress"]
        page_id = body["ID"]
    raise AssertionError("paging did not end")


def test_apiban_paging_lists_each_address_exactly_once(tmp_path: Path) -> None:
    with central_app(tmp_path, allow=("10.0.1.0/24",)) as c:
        # 700 sources, 100 per first-seen time: page boundaries (250, 500) fall inside a group
        # of equal times; 10.0.1.x (30 of them) are allowlisted
        sources = [f"10.0.{i // 250}.{i % 250}" for i in range(700)]
        events = [event(i + 1, s, "high", DAY1 + i // 100) for i, s in enumerate(sources)]
        assert c.ingest(c.bergen, encode(1, [], events)).status_code == 200
        got, last = _pages(c)
        expected = [s for s in sources if not s.startswith("10.0.1.")]
        assert sorted(got) == sorted(expected) and len(got) == len(set(got))
        # nothing new: the same ID comes back, again and again
        assert _pages(c, last) == ([], last)
        # something new: only that on the next page, even with an older first time
        later = [event(1000, "10.9.0.1", "high", DAY2), event(1001, "10.0.0.1", "high", DAY2)]
        c.ingest(c.bergen, encode(2, [], later))
        assert _pages(c, last)[0] == ["10.9.0.1"]


def test_a_page_of_allowlisted_sources_does_not_stop_the_paging(tmp_path: Path) -> None:
    with central_app(tmp_path, allow=("10.0.0.0/8",)) as c:
        sources = [f"10.1.{i // 250}.{i % 250}" for i in range(1200)] + ["8.8.4.4"]
        events = [event(i + 1, s, "high", DAY1 + i) for i, s in enumerate(sources)]
        c.ingest(c.bergen, encode(1, [], events))
        assert _pages(c)[0] == ["8.8.4.4"]


def test_apiban_bad_ids(c: CentralApp) -> None:
    for bad in ("abc", "123", "nan_1.2.3.4", "inf_1.2.3.4", "1.5_", "1.5_x", "1.5_%00", "x" * 101):
        r = c.client.get(f"/api/v1/blocklist?format=apiban&id={bad}", auth=c.viewer)
        assert r.status_code == 422, bad
    first = c.client.get("/api/v1/blocklist?format=apiban", auth=c.viewer).json()
    assert first["ipaddress"] == ["8.8.8.8", "198.51.100.7"]
    # the source that is no address is passed over and never ends up in an ID
    got, last = _pages(c)
    assert got == ["8.8.8.8", "198.51.100.7"] and last.endswith("_198.51.100.7")
