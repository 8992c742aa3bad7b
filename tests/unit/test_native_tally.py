"""RunTally (native/tally.c): the run's own count of the summary tables, and its bounds.

That the counted tables equal the store's SQL tables on real runs is checked in
test_native_analyze.py; here: what it counts, and that past a bound it says so instead of
giving tables that are not the store's.
"""

from __future__ import annotations

import pytest

from sipwatch.native import part

RunTally = part("RunTally")
if RunTally is None:
    pytest.skip("the C bulk path (sipwatch._native) is not built", allow_module_level=True)


def test_counts_messages_requests_responses_and_sources() -> None:
    t = RunTally()
    t.add("SS", True, False, "198.51.100.1", 10.0, "sipvicious")
    t.add("SS", False, False, "192.0.2.1", 10.1, "")  # the answer
    t.add("ES", True, False, "198.51.100.1", 5.0, "")
    t.add("ES", True, False, "198.51.100.2", 20.0, "sipvicious")
    t.add("", False, True, "198.51.100.9", 1.0, "")  # unparsable: neither request nor response
    assert t.messages == 5 and t.incomplete is None
    got = t.tables()
    assert sorted(got["stages"]) == [("", 1, 0, 0, 0), ("ES", 2, 2, 0, 2), ("SS", 2, 1, 1, 1)]
    by_src = {row[0]: row for row in got["sources"]}
    assert by_src == {
        "198.51.100.1": ("198.51.100.1", 2, 5.0, 10.0, ("SS", "ES")),
        "198.51.100.2": ("198.51.100.2", 1, 20.0, 20.0, ("ES",)),
    }
    assert got["tools"] == [("sipvicious", 2, 2)]


@pytest.mark.parametrize(
    ("feed", "why"),
    [
        (lambda t: [t.add("SS", True, False, f"10.0.0.{i}", 1.0, "") for i in range(3)],
         "source addresses"),
        (lambda t: [t.add("SS", True, False, "10.0.0.1", 1.0, f"tool{i}") for i in range(65)],
         "tools"),
        (lambda t: t.add("XX", True, False, "10.0.0.1", 1.0, ""), "stage label"),
    ],
    ids=["sources", "tools", "stage"],
)  # fmt: skip
def test_past_a_bound_it_is_incomplete(feed, why: str) -> None:  # noqa: ANN001
    t = RunTally(max_sources=2)
    feed(t)
    assert t.tables() is None
    assert why in t.incomplete
    t.add("SS", True, False, "10.0.0.200", 2.0, "")  # and stays so, still counting
    assert t.tables() is None and t.messages > 1


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError):
        RunTally(max_sources=-1)
    with pytest.raises(TypeError):
        RunTally().add("SS", True, False, "10.0.0.1", "not a time", "")
