"""Every report table on the known trace of storedata.py, with exact numbers."""

from __future__ import annotations

from pathlib import Path

import pytest
from storedata import EVIL_UA, trace

from sipwatch.report import tables as t
from sipwatch.store.base import open_store


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    db = Path(tmp_path_factory.mktemp("report")) / "t.sqlite"
    with open_store(db) as s:
        run = s.start_ingest(["day1.pcap", "day2.pcap"])
        s.add(trace())
        s.finish_ingest(run, messages=14, inserted=s.flush(), dropped=0)
    with open_store(db, readonly=True) as s:
        yield s


def test_totals(store) -> None:
    assert t.totals(store).rows == [
        ("messages", 14),
        ("requests", 7),
        ("responses", 6),
        ("sources", 4),
        ("destinations", 3),
        ("first", "2024-03-01 00:00:10Z"),
        ("last", "2024-03-02 00:00:50Z"),
        ("parse errors", 1),
        ("fuzz", 1),
    ]


def test_packets_per_day_by_stage(store) -> None:
    table = t.per_day(store)
    assert table.columns == ["day", "SS", "ES", "RHJ", "TF", "none", "total"]
    assert table.rows == [("2024-03-01", 2, 4, 0, 0, 0, 6), ("2024-03-02", 0, 0, 4, 2, 2, 8)]


def test_stages(store) -> None:
    assert t.stages(store).rows == [
        ("SS", 2, 1, 1, 1),
        ("ES", 4, 2, 2, 1),
        ("RHJ", 4, 2, 2, 1),
        ("TF", 2, 1, 1, 1),
        ("none", 2, 1, 0, 1),
    ]


def test_top_sources_with_country_and_as(store) -> None:
    rows = t.top_sources(store).rows
    assert [r[:5] for r in rows] == [
        ("198.51.100.7", 3, "RHJ TF", "private", ""),  # documentation range: not looked up
        ("8.8.8.8", 3, "SS ES", "US", "GOOGLE"),
        ("203.0.113.9", 1, "", "private", ""),
    ]
    assert rows[1][5:] == ("2024-03-01 00:00:10Z", "2024-03-01 00:00:30Z")


def test_user_agents_and_tools(store) -> None:
    assert t.user_agents(store).rows == [(EVIL_UA, 3, 1), ("friendly-scanner", 3, 1)]
    assert t.tools(store).rows == [("sipvicious", 3, 1)]


def test_targeted_extensions(store) -> None:
    # REGISTER's request-URI has no user: the To user is the extension
    assert t.extensions(store).rows == [("102", 3, 2, 1, 2), ("101", 1, 1, 1, 0)]


def test_dialled_numbers(store) -> None:
    assert t.numbers(store).rows == [("+46701234567", "mobile", "SE", 1, 1)]


def test_methods_and_codes(store) -> None:
    assert t.methods(store).rows == [
        ("REGISTER", 4, 2),
        ("FOO", 1, 1),
        ("INVITE", 1, 1),
        ("OPTIONS", 1, 1),
    ]
    assert t.codes(store).rows == [
        (200, "OPTIONS", 1),
        (200, "REGISTER", 1),
        (401, "INVITE", 1),
        (401, "REGISTER", 1),
        (403, "REGISTER", 1),
        (404, "REGISTER", 1),
    ]


def test_ingest_runs(store) -> None:
    (row,) = t.ingest_runs(store).rows
    assert (row[0], row[1], row[4], row[5], row[6]) == (1, "day1.pcap day2.pcap", 14, 14, 0)


def test_all_tables_and_limits(store) -> None:
    names = [x.name for x in t.all_tables(store)]
    assert names == list(t.REPORTS)
    assert [x.name for x in t.all_tables(store, ["stages", "totals"])] == ["stages", "totals"]
    assert len(t.top_sources(store, limit=1).rows) == 1


def test_empty_store(tmp_path: Path) -> None:
    with open_store(tmp_path / "e.sqlite") as s:
        tables = {x.name: x for x in t.all_tables(s)}
    assert tables["totals"].rows[0] == ("messages", 0)
    assert all(not x.rows for n, x in tables.items() if n != "totals")
