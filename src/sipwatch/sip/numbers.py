"""Dialled-number classification: what kind of number an INVITE tried to reach.

Toll fraud is about where a call goes: abroad, to a premium-rate line, to a mobile or to an
international network (+882/+883, billed like satellite calls). The user part of a request-URI
(or a tel: URI) is cleaned of visual separators, international prefixes (+, 00, 011, 0011, with
an optional one- or two-digit dial-out prefix in front, e.g. 9011... or 900...) are recognised,
and Google's libphonenumber data (`phonenumbers`) tells type and country.

Pure function of the input and the configuration: no I/O, no clock. `phonenumbers` is slow
(tens of microseconds per number), so results sit in a bounded LRU cache.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple
from urllib.parse import unquote

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType

# number types (Record.number_type)
INTERNATIONAL = "international"
PREMIUM = "premium"
MOBILE = "mobile"
FIXED = "fixed"
TOLL_FREE = "toll_free"
SHARED_COST = "shared_cost"
VOIP = "voip"
PERSONAL = "personal"
PAGER = "pager"
UAN = "uan"
VOICEMAIL = "voicemail"
INTL_NETWORK = "satellite/intl_network"
EXTENSION = "extension"
SHORT = "short"
UNKNOWN = "unknown"

# types that cost the called party's operator (and so the victim) money: the TF targets
CHARGEABLE = frozenset({INTERNATIONAL, PREMIUM, MOBILE, INTL_NETWORK, PERSONAL})

# +870 Inmarsat, +881 satellite, +882/+883 international networks: very expensive, a classic
# fraud destination, and `phonenumbers` reports some of them as mere "voip"
_INTL_NETWORK_CC = frozenset({870, 881, 882, 883})

# special tariffs win over "international": a premium line abroad is still premium
_SPECIAL = {
    PhoneNumberType.PREMIUM_RATE: PREMIUM,
    PhoneNumberType.TOLL_FREE: TOLL_FREE,
    PhoneNumberType.SHARED_COST: SHARED_COST,
    PhoneNumberType.PERSONAL_NUMBER: PERSONAL,
    PhoneNumberType.PAGER: PAGER,
    PhoneNumberType.UAN: UAN,
    PhoneNumberType.VOICEMAIL: VOICEMAIL,
}
_PLAIN = {
    PhoneNumberType.MOBILE: MOBILE,
    PhoneNumberType.FIXED_LINE: FIXED,
    PhoneNumberType.FIXED_LINE_OR_MOBILE: FIXED,
    PhoneNumberType.VOIP: VOIP,
}

# tried in this order; the first reading that gives a valid number wins
_INTL_PREFIXES = ("+", "00", "011", "0011")
_SEPARATORS = str.maketrans("", "", " -.()/\t")
_MAX_DIGITS = 32  # longer than any E.164 number plus prefixes: not a phone number
_COUNTRY_CODES = frozenset(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)


class NumberClass(NamedTuple):
    number: str  # E.164 ("+4930...") when it parses, else the cleaned digits
    type: str  # one of the type constants above
    country: str  # ISO 3166 alpha-2, "001" for non-geographic (+882...), "" when unknown

    @property
    def chargeable(self) -> bool:
        return self.type in CHARGEABLE


class _Reading(NamedTuple):
    valid: bool
    typed: NumberClass | None  # valid: the classification
    fallback: NumberClass | None  # not valid but a known country code: the direct reading's


def clean(user: str) -> str:
    """The dialled string without URI decoration: percent-escapes, tel:, parameters, separators."""
    s = unquote(user).strip()
    if s[:4].lower() == "tel:":
        s = s[4:]
    s = s.split(";", 1)[0].split("@", 1)[0]
    return s.translate(_SEPARATORS)


def _known_country_code(digits: str) -> bool:
    """Whether an E.164 number's digits start with a country calling code, read as
    `phonenumbers` reads it: 1 to 3 digits, never a leading 0."""
    if not digits or int(digits[0]) == 0:
        return False
    return any(int(digits[:n]) in _COUNTRY_CODES for n in (1, 2, 3) if len(digits) >= n)


class NumberClassifier:
    """Classify dialled numbers.

    default_region: ISO country of the victim (e.g. "DE"); national numbers (no international
    prefix) are only classified when it is set, and "international" means "not this country".
    Without it every number dialled with an international prefix counts as international
    (unless a special tariff says more) and national numbers are "unknown".
    """

    def __init__(
        self,
        default_region: str | None = None,
        max_extension_digits: int = 6,
        cache_size: int = 8192,
    ) -> None:
        self.default_region = default_region.upper() if default_region else None
        self.home_cc = (
            phonenumbers.country_code_for_region(self.default_region) if self.default_region else 0
        )
        self.max_extension_digits = max_extension_digits
        self._cached = lru_cache(maxsize=cache_size)(self._classify)
        self._reading = lru_cache(maxsize=cache_size)(self._read)

    def classify(self, user: str) -> NumberClass | None:
        """NumberClass for a request-URI user part or tel: URI; None when it is not a number."""
        s = clean(user)
        if not s or len(s) > _MAX_DIGITS + 1:
            return None
        return self._cached(s)

    def cache_info(self) -> tuple[int, int, int, int]:
        """(hits, misses, maxsize, currsize) of the LRU cache."""
        i = self._cached.cache_info()
        return i.hits, i.misses, i.maxsize or 0, i.currsize

    # --- internals ---------------------------------------------------------------------------
    def _classify(self, s: str) -> NumberClass | None:
        if s.startswith("+"):
            if not s[1:].isdigit():
                return None
            return self._international([(s, True)]) or NumberClass(s, UNKNOWN, "")
        if not s.isascii():
            return None
        if not s.isdigit():
            # feature and service codes such as *97 or #31#
            if all(c.isdigit() or c in "*#" for c in s):
                return NumberClass(s, SHORT, "")
            return None
        if len(s) == 1:
            return NumberClass(s, SHORT, "")
        if len(s) <= self.max_extension_digits:
            return NumberClass(s, EXTENSION, "")
        found = self._international(self._intl_readings(s))
        if found:
            return found
        if self.default_region:
            return self._national(s)
        return NumberClass(s, UNKNOWN, "")

    def _intl_readings(self, s: str) -> list[tuple[str, bool]]:
        """E.164 candidates: (number, direct) for an international prefix, optionally behind a
        1-2 digit dial-out prefix (direct False); e.g. 0049..., 011..., 9011..., 900..."""
        out = []
        for skip in (0, 1, 2):
            rest = s[skip:]
            for p in _INTL_PREFIXES[1:]:
                if rest.startswith(p) and len(rest) > len(p):
                    out.append(("+" + rest[len(p) :], skip == 0))
        return out

    def _international(self, candidates: list[tuple[str, bool]]) -> NumberClass | None:
        """The first valid reading; else the first direct reading with a known country code."""
        fallback = None
        for cand, direct in candidates:
            read = self._reading(cand)
            if read is None:
                continue
            if read.valid:
                return read.typed
            # a dial-out reading counts only when valid: too easy to read into random digits
            if fallback is None and direct and read.fallback is not None:
                fallback = read.fallback
        return fallback

    def _read(self, cand: str) -> _Reading | None:
        """One E.164 candidate, parsed once: dialled numbers repeat behind different dial-out
        prefixes (0049..., 90049..., 900049...), so readings have their own cache."""
        if not _known_country_code(cand[1:]):
            return None  # what parse() would reject, without its costly exception
        try:
            num = phonenumbers.parse(cand, None)
        except NumberParseException:
            return None
        kind = phonenumbers.number_type(num)  # UNKNOWN exactly when is_valid_number() is False
        if kind != PhoneNumberType.UNKNOWN:
            return _Reading(True, self._typed(num, kind, international_prefix=True), None)
        region = phonenumbers.region_code_for_country_code(num.country_code)
        if region == "ZZ":
            return _Reading(False, None, None)
        e164 = phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)
        if num.country_code in _INTL_NETWORK_CC:
            fallback = INTL_NETWORK
        elif num.country_code == self.home_cc:
            fallback = UNKNOWN
        else:
            fallback = INTERNATIONAL
        return _Reading(False, None, NumberClass(e164, fallback, region))

    def _national(self, s: str) -> NumberClass:
        try:
            num = phonenumbers.parse(s, self.default_region)
        except NumberParseException:
            return NumberClass(s, UNKNOWN, "")
        kind = phonenumbers.number_type(num)
        if kind == PhoneNumberType.UNKNOWN:  # not a valid number
            return NumberClass(s, UNKNOWN, "")
        return self._typed(num, kind, international_prefix=False)

    def _typed(
        self, num: phonenumbers.PhoneNumber, kind: int, international_prefix: bool
    ) -> NumberClass:
        """A valid number of type `kind` (phonenumbers.number_type) as a NumberClass."""
        e164 = phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)
        region = phonenumbers.region_code_for_number(num) or ""
        if num.country_code in _INTL_NETWORK_CC:
            return NumberClass(e164, INTL_NETWORK, region)
        if kind in _SPECIAL:
            return NumberClass(e164, _SPECIAL[kind], region)
        abroad = num.country_code != self.home_cc  # home_cc 0 (no region): always abroad
        if international_prefix and abroad:
            return NumberClass(e164, INTERNATIONAL, region)
        return NumberClass(e164, _PLAIN.get(kind, UNKNOWN), region)
