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


def _tries(src: str, user: str, passwords: list[str], ok: str = "", t0: float = 0.0) -> list:
    """Password tries on one extension, each answered 403 (200 for `ok`), labelled as the
    recovery labels them: the request and its response carry the password."""
    from storedata import DAY2, _pair

    out = []
    for i, password in enumerate(passwords):
        n = int(t0) * 100 + i + 100
        code, reason = (200, "OK") if password == ok else (403, "Forbidden")
        req, rsp = _pair(DAY2 + t0 + i, src, "REGISTER", "sip:192.0.2.1", user, n, code,
                         reason, "RHJ", auth=user)  # fmt: skip
        req.password = rsp.password = password
        out += [req, rsp]
    return out


@pytest.fixture(scope="module")
def password_store(tmp_path_factory: pytest.TempPathFactory):
    db = Path(tmp_path_factory.mktemp("pw")) / "p.sqlite"
    records = trace()
    records += _tries("198.51.100.7", "102", ["1234", "0000", "1234", "admin", "102", "pw6"], "pw6")
    records += _tries("198.51.100.8", "102", ["1234", "secret"], t0=20)
    records += _tries("198.51.100.8", "200", ["1234", "1234", "1234", "1234"], "1234", t0=40)
    unknown = _tries("198.51.100.9", "300", ["", ""], t0=60)  # not recovered: not counted
    with open_store(db) as s:
        s.add(records + unknown)
    with open_store(db, readonly=True) as s:
        yield s


def test_passwords_per_extension(password_store) -> None:
    table = t.passwords(password_store)
    assert table.columns == [
        "extension", "password", "tries", "sources", "accepted", "first", "last",
    ]  # fmt: skip
    assert [r[:5] for r in table.rows] == [
        ("102", "1234", 3, 2, 0),  # 102 has the most recovered tries: first
        ("102", "0000", 1, 1, 0),
        ("102", "102", 1, 1, 0),
        ("102", "admin", 1, 1, 0),
        ("102", "pw6", 1, 1, 1),  # five per extension: "secret" is cut
        ("200", "1234", 4, 1, 4),  # each of these tries was answered 200
    ]
    assert table.rows[0][5:] == ("2024-03-02 00:00:00Z", "2024-03-02 00:00:20Z")
    assert [r[:2] for r in t.passwords(password_store, limit=2, per_extension=1).rows] == [
        ("102", "1234"),
        ("200", "1234"),
    ]
    assert len(t.all_tables(password_store, ["passwords"], top=3)[0].rows) == 3
