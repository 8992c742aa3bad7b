"""Dialled-number classification: what a toll-fraud report shows for each dialled string."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipwatch.sip.numbers import CHARGEABLE, NumberClassifier, _known_country_code, clean


@pytest.fixture(scope="module")
def nowhere() -> NumberClassifier:
    return NumberClassifier()


@pytest.mark.parametrize(
    "dialled, number, kind, country",
    [
        # international networks: a classic fraud destination, however it is dialled
        ("+88216123456", "+88216123456", "satellite/intl_network", "001"),
        ("0088216123456", "+88216123456", "satellite/intl_network", "001"),
        ("01188216123456", "+88216123456", "satellite/intl_network", "001"),
        ("+8816123456789", "+8816123456789", "satellite/intl_network", "001"),
        # valid abroad: international, with its country
        ("00442079460000", "+442079460000", "international", "GB"),
        ("011442079460000", "+442079460000", "international", "GB"),
        ("0011442079460000", "+442079460000", "international", "GB"),
        ("+1 (201) 555-0123", "+12015550123", "international", "US"),
        ("%2B972592123456", "+972592123456", "international", "IL"),
        # dial-out digit(s) before the international prefix, as attackers try them
        ("900972592123456", "+972592123456", "international", "IL"),
        ("9011442079460000", "+442079460000", "international", "GB"),
        # premium rate abroad stays premium
        ("+4990012345678", "+4990012345678", "international", "DE"),
        ("+499001234567", "+499001234567", "premium", "DE"),
        ("tel:+31-900-123456;phone-context=example.com", "+31900123456", "premium", "NL"),
        # internal extensions and service codes
        ("101", "101", "extension", ""),
        ("100200", "100200", "extension", ""),
        ("*97", "*97", "short", ""),
        ("7", "7", "short", ""),
        # national numbers need a default region
        ("07400123456", "07400123456", "unknown", ""),
        ("0900123456", "0900123456", "unknown", ""),
        # international prefix but no such country code
        ("00999123456", "00999123456", "unknown", ""),
    ],
)
def test_without_region(nowhere: NumberClassifier, dialled, number, kind, country) -> None:
    got = nowhere.classify(dialled)
    assert got is not None
    assert (got.number, got.type, got.country) == (number, kind, country)


@pytest.mark.parametrize(
    "region, dialled, number, kind, country",
    [
        ("DE", "09001234567", "+499001234567", "premium", "DE"),
        ("NL", "0900123456", "+31900123456", "premium", "NL"),
        ("NL", "09001234", "+319001234", "premium", "NL"),
        ("GB", "07400123456", "+447400123456", "mobile", "GB"),
        ("GB", "+447400123456", "+447400123456", "mobile", "GB"),  # home country: not abroad
        ("GB", "0800 123 4567", "+448001234567", "toll_free", "GB"),
        ("DE", "030 1234567", "+49301234567", "fixed", "DE"),
        ("US", "011442079460000", "+442079460000", "international", "GB"),
        ("US", "12015550123", "+12015550123", "fixed", "US"),
        ("DE", "0301", "0301", "extension", ""),  # short: an extension even with a region
        ("DE", "01000000000", "01000000000", "unknown", ""),  # not a valid German number
    ],
)
def test_with_region(region, dialled, number, kind, country) -> None:
    got = NumberClassifier(region).classify(dialled)
    assert got is not None
    assert (got.number, got.type, got.country) == (number, kind, country)


@pytest.mark.parametrize("user", ["", "alice", "sipvicious", "+", "+49abc", "1" * 40, "١٢٣٤"])
def test_not_a_number(nowhere: NumberClassifier, user: str) -> None:
    assert nowhere.classify(user) is None


def test_chargeable_types(nowhere: NumberClassifier) -> None:
    assert nowhere.classify("+88216123456").chargeable
    assert nowhere.classify("00442079460000").chargeable
    assert NumberClassifier("GB").classify("07400123456").chargeable
    assert not nowhere.classify("101").chargeable
    assert not NumberClassifier("GB").classify("08001234567").chargeable
    assert {"international", "premium", "mobile", "satellite/intl_network"} <= CHARGEABLE


def test_extension_length_is_configurable() -> None:
    assert NumberClassifier(max_extension_digits=3).classify("1000").type == "unknown"
    assert NumberClassifier(max_extension_digits=4).classify("1000").type == "extension"


def test_cache_is_bounded_and_used() -> None:
    c = NumberClassifier(cache_size=4)
    for n in range(10):
        c.classify(f"+4930123456{n}")
    c.classify("+49301234569")
    hits, misses, maxsize, size = c.cache_info()
    assert (hits, misses, maxsize, size) == (1, 10, 4, 4)


def test_clean_strips_uri_decoration() -> None:
    assert clean("tel:+1-201-555-0123;phone-context=x") == "+12015550123"
    assert clean(" 0049 (30) 123.456 ") == "004930123456"


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="0123456789٠١٢٣", min_size=0, max_size=18))
def test_country_code_precheck_skips_only_what_phonenumbers_rejects(digits: str) -> None:
    # the pre-check saves parse()'s exception: it may only say no where parse() raises
    if _known_country_code(digits):
        return
    with pytest.raises(phonenumbers.NumberParseException):
        phonenumbers.parse("+" + digits, None)


def test_validity_is_read_from_the_number_type() -> None:
    # _read and _national take number_type() != UNKNOWN for is_valid_number(): hold them equal
    for text in ("+442079460000", "+12015550123", "+88216123456", "+4930123", "+999123456",
                 "+19005550123", "+4915112345678", "+861012345678", "+3912", "+7"):  # fmt: skip
        try:
            num = phonenumbers.parse(text, None)
        except phonenumbers.NumberParseException:
            continue
        valid = phonenumbers.number_type(num) != phonenumbers.PhoneNumberType.UNKNOWN
        assert valid == phonenumbers.is_valid_number(num), text
