"""Accounts: extensions from lists and ranges, passwords, bounded, one-line errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipwatch.honeypot.accounts import MAX_EXTENSIONS, Accounts, AccountsError


def test_lists_and_ranges():
    a = Accounts.from_config(["100-199", 1000, "2000", "alice", " 300 - 302 "], {"101": "1234"})
    for user in ("100", "150", "199", "1000", "2000", "alice", "300", "302"):
        assert a.exists(user) and user in a, user
    for user in ("99", "200", "0150", "1001", "", "bob", "303", "+100", "1e2", "١٠٠"):
        assert not a.exists(user), user
    assert a.password("101") == "1234"
    assert a.password("100") is None and a.password("555") is None
    assert len(a) == 100 + 3 + 3
    assert a.passwords() == {"101": "1234"}


def test_zero_padded_range_keeps_its_width():
    a = Accounts.from_config(["0100-0199"])
    assert a.exists("0100") and a.exists("0150")
    assert not a.exists("150") and not a.exists("00150")


def test_large_range_costs_nothing():
    a = Accounts.from_config(["100000-999999"])
    assert len(a) == 900_000 and a.exists("555555") and not a.exists("1000000")


@pytest.mark.parametrize(
    "extensions,passwords,message",
    [
        (["199-100"], {}, "extensions: '199-100': start is after end"),
        (["1-9999999999"], {}, "has 9,999,999,999 extensions, more than the limit 1,000,000"),
        (["1-600000", "700000-1300000"], {}, "more than 1,000,000 extensions in all"),
        (["01-100"], {}, "with leading zeros both ends need the same digit count"),
        (["10 0"], {}, "'10 0' is not an extension"),
        ([""], {}, "an empty extension"),
        ([1.5], {}, 'must be an extension or a range such as "100-199"'),
        ([-5], {}, "-5 is negative"),
        ("100-199", {}, "extensions: must be a list"),
        (["100-199"], {"555": "x"}, "passwords: '555' is not one of the extensions"),
        (["100-199"], {"101": 1234}, 'passwords: 101: must be a string; quote it: "1234"'),
        (["100-199"], {"101": ""}, "passwords: 101: must be a non-empty string"),
        (["100-199"], {"101": "a\nb"}, "no control characters"),
        (["100-199"], {"101": "x" * 129}, "at most 128 characters"),
    ],
)
def test_errors_are_one_line(extensions, passwords, message):
    with pytest.raises(AccountsError) as err:
        Accounts.from_config(extensions, passwords)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_limit_is_exact():
    assert len(Accounts.from_config([f"1-{MAX_EXTENSIONS}"])) == MAX_EXTENSIONS
    assert issubclass(AccountsError, ValueError)


@given(st.text(max_size=40))
def test_lookups_never_raise(user):
    a = Accounts.from_config(["100-199", "0100-0199", "alice"], {"101": "1234"})
    assert a.exists(user) in (True, False)
    assert a.password(user) in (None, "1234")
