"""Honeypot accounts: which extensions exist and which of them have a (weak) password.

Extensions come from a config list of single extensions (``1000``, ``"alice"``) and numeric
ranges (``"100-199"``; ``"0100-0199"`` keeps the leading zero, so ``0150`` exists and ``150``
does not). Ranges are kept as ranges, so a large one costs no memory, but sizes are bounded
so a typo such as ``"100-1999999999"`` is caught. An extension exists without a password (the
attacker finds it, every guess fails) unless ``passwords`` gives it one. Errors are one line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

__all__ = ["MAX_EXTENSIONS", "MAX_ENTRIES", "Accounts", "AccountsError"]

MAX_EXTENSIONS = 1_000_000  # in all ranges together
MAX_ENTRIES = 10_000  # list items (each range is one)
_MAX_NAME = 64
_NAME = re.compile(r"[A-Za-z0-9_.!~*'()+$&=-]+")  # a SIP user part, plain characters
_RANGE = re.compile(r"([0-9]+)[ \t]*-[ \t]*([0-9]+)")


class AccountsError(ValueError):
    """Extensions or passwords that cannot be used; the message is one line."""


class _Range:
    __slots__ = ("lo", "hi", "width")

    def __init__(self, lo: int, hi: int, width: int) -> None:
        self.lo = lo
        self.hi = hi
        self.width = width  # 0: written without leading zeros; else the fixed digit count

    def __contains__(self, user: str) -> bool:
        if self.width:
            if len(user) != self.width:
                return False
        elif user[0] == "0" and len(user) > 1:
            return False
        return self.lo <= int(user) <= self.hi

    def __len__(self) -> int:
        return self.hi - self.lo + 1


class Accounts:
    """Extensions and passwords. ``exists``/``password`` never raise on any string."""

    def __init__(
        self,
        names: Iterable[str] = (),
        ranges: Iterable[_Range] = (),
        passwords: Mapping[str, str] | None = None,
    ) -> None:
        self._names = frozenset(names)
        self._ranges = tuple(ranges)
        self._passwords: dict[str, str] = dict(passwords or {})
        self._size = len(self._names) + sum(len(r) for r in self._ranges)

    @classmethod
    def from_config(
        cls,
        extensions: Iterable[str | int],
        passwords: Mapping[str, str] | None = None,
    ) -> Accounts:
        """Build from config values; raises AccountsError naming the first bad entry."""
        if isinstance(extensions, (str, bytes, int)):
            raise AccountsError('extensions: must be a list, e.g. ["100-199", 1000]')
        names: set[str] = set()
        ranges: list[_Range] = []
        total = 0
        for i, item in enumerate(extensions):
            if i >= MAX_ENTRIES:
                raise AccountsError(f"extensions: more than {MAX_ENTRIES} entries; use ranges")
            if isinstance(item, bool) or not isinstance(item, (str, int)):
                raise AccountsError(
                    f'extensions: {item!r} must be an extension or a range such as "100-199"'
                )
            if isinstance(item, int):
                if item < 0:
                    raise AccountsError(f"extensions: {item} is negative")
                item = str(item)
            item = item.strip(" \t")
            m = _RANGE.fullmatch(item)
            if m is not None:
                r = _parse_range(item, m.group(1), m.group(2))
                total += len(r)
                ranges.append(r)
            else:
                _check_name(item, "extensions")
                if item not in names:
                    total += 1
                names.add(item)
            if total > MAX_EXTENSIONS:
                raise AccountsError(
                    f"extensions: more than {MAX_EXTENSIONS:,} extensions in all "
                    f"(at {item!r}); a honeypot needs far fewer"
                )
        accounts = cls(names, ranges)
        for ext, password in (passwords or {}).items():
            if isinstance(ext, int) and not isinstance(ext, bool):
                ext = str(ext)
            if not isinstance(ext, str):
                raise AccountsError(f"passwords: key {ext!r} must be an extension (a string)")
            _check_name(ext, "passwords")
            if not accounts.exists(ext):
                raise AccountsError(f"passwords: {ext!r} is not one of the extensions")
            if isinstance(password, int) and not isinstance(password, bool):
                raise AccountsError(
                    f'passwords: {ext}: must be a string; quote it: "{password}" '
                    "(a number would lose leading zeros)"
                )
            if not isinstance(password, str) or not password:
                raise AccountsError(f"passwords: {ext}: must be a non-empty string")
            if len(password) > 128 or any(ord(ch) < 32 for ch in password):
                raise AccountsError(
                    f"passwords: {ext}: at most 128 characters, no control characters"
                )
            accounts._passwords[ext] = password
        return accounts

    def exists(self, user: str) -> bool:
        if user in self._names:
            return True
        if user and user.isdigit() and user.isascii() and len(user) <= 18:
            for r in self._ranges:
                if user in r:
                    return True
        return False

    __contains__ = exists

    def password(self, user: str) -> str | None:
        """The configured password, or None (no such extension, or none configured)."""
        return self._passwords.get(user)

    def passwords(self) -> dict[str, str]:
        """A copy of extension -> password (e.g. candidates for password recovery)."""
        return dict(self._passwords)

    def __len__(self) -> int:
        return self._size

    def __repr__(self) -> str:
        return f"<Accounts {self._size} extensions, {len(self._passwords)} with a password>"


def _check_name(name: str, key: str) -> None:
    if not name:
        raise AccountsError(f"{key}: an empty extension")
    if len(name) > _MAX_NAME:
        raise AccountsError(f"{key}: {name[:20]!r}...: longer than {_MAX_NAME} characters")
    if _NAME.fullmatch(name) is None:
        raise AccountsError(
            f"{key}: {name!r} is not an extension (letters, digits and -_.!~*'()+$&=) "
            'nor a range such as "100-199"'
        )


def _parse_range(text: str, lo_s: str, hi_s: str) -> _Range:
    if len(lo_s) > 18 or len(hi_s) > 18:
        raise AccountsError(f"extensions: {text!r}: numbers longer than 18 digits")
    lo, hi = int(lo_s), int(hi_s)
    if lo > hi:
        raise AccountsError(f"extensions: {text!r}: start is after end")
    width = 0
    if (lo_s[0] == "0" and len(lo_s) > 1) or (hi_s[0] == "0" and len(hi_s) > 1):
        if len(lo_s) != len(hi_s):
            raise AccountsError(
                f"extensions: {text!r}: with leading zeros both ends need the same digit count"
            )
        width = len(lo_s)
    size = hi - lo + 1
    if size > MAX_EXTENSIONS:
        raise AccountsError(
            f"extensions: {text!r} has {size:,} extensions, more than the limit {MAX_EXTENSIONS:,}"
        )
    return _Range(lo, hi, width)
