"""Personalities: how the honeypot presents itself (product string, capabilities, replies).

A personality is a small TOML file. The built-in ones live in ``personalities/`` next to this
module (``asterisk``, ``freeswitch``, ``kamailio``, ``grandstream``); a user can point at a file
of their own, written from scratch or starting from a built-in with ``base = "asterisk"``.
The keys are the fields of ``Personality`` below (their comments say what each means; ``_KEYS``
says which are required). Unknown keys are errors, so a typo cannot silently fall back to a
default. Errors are one line: ``FILE: key: what is wrong``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = [
    "BUILTIN_PERSONALITIES",
    "TO_TAG_STYLES",
    "format_to_tag",
    "Personality",
    "PersonalityError",
    "load_personality",
    "personality_from_dict",
]

BUILTIN_PERSONALITIES = ("asterisk", "freeswitch", "kamailio", "grandstream")
# how a product writes the tag it adds to To (see uas.py for the shapes)
TO_TAG_STYLES = ("uuid", "as-hex", "alnum", "md5-crc", "digits")
# header names a personality may not add: the responder writes these itself
_RESERVED = frozenset(
    {"via", "from", "to", "call-id", "cseq", "content-length", "content-type", "contact"}
)
_TOKEN = re.compile(r"[!%*+.0-9A-Za-z_`~'-]+")
_METHOD = re.compile(r"[A-Z]+")
_MAX_TEXT = 200


class PersonalityError(ValueError):
    """A personality that cannot be loaded; the message is one line."""


@dataclass(frozen=True, slots=True)
class Personality:
    name: str
    server: str  # product string, e.g. "Asterisk PBX 18.16.0"
    header: str  # "Server" or "User-Agent": where the product sends it in responses
    realm: str  # digest realm; "{dst}" = the local address the request arrived on
    allow: tuple[str, ...]  # methods answered (others known to SIP get 405)
    supported: tuple[str, ...]  # option tags (Supported header; none when empty)
    accept: tuple[str, ...]  # body types (Accept on OPTIONS 200)
    events: tuple[str, ...]  # SUBSCRIBE event packages (others get 489)
    invite_challenge: int  # 401 or 407: challenge for INVITE/MESSAGE/SUBSCRIBE
    invite_final: tuple[int, ...]  # after 100 Trying for an authenticated INVITE
    register_expires: int  # longest registration granted (and the default)
    min_expires: int  # shorter requested registrations get 423
    to_tag: str  # one of TO_TAG_STYLES
    opaque: bool  # challenges carry an opaque parameter
    date: bool  # REGISTER 200 carries a Date header
    options_headers: tuple[tuple[str, str], ...]  # extra headers of the OPTIONS 200
    reasons: tuple[tuple[int, str], ...]  # reason phrases that differ from RFC 3261's

    def with_realm(self, realm: str) -> Personality:
        """The same personality with another digest realm ("{dst}": the local address)."""
        try:
            return replace(self, realm=_realm(realm))
        except _Bad as e:
            raise PersonalityError(f"realm: {e}") from None

    def reason(self, status: int) -> str | None:
        """The product's reason phrase for a status, or None for the standard one."""
        for code, text in self.reasons:
            if code == status:
                return text
        return None


# key -> (checker, required); checkers return the typed value or raise _Bad(message)
class _Bad(Exception):
    pass


def _text(value: Any, *, empty: bool = False) -> str:
    if not isinstance(value, str):
        raise _Bad(f"must be a string, not {type(value).__name__}")
    if not value and not empty:
        raise _Bad("must not be empty")
    if len(value) > _MAX_TEXT:
        raise _Bad(f"is longer than {_MAX_TEXT} characters")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise _Bad("must not contain control characters (CR, LF, TAB, ...)")
    return value


def _server(value: Any) -> str:
    value = _text(value)
    if "," in value:  # scanners split Server at commas and would show half the product
        raise _Bad("must not contain a comma")
    return value


def _realm(value: Any) -> str:
    value = _text(value)
    if '"' in value or "\\" in value:  # scanners read the realm with a naive regex
        raise _Bad("must not contain quotes or backslashes")
    return value


def _header(value: Any) -> str:
    value = _text(value)
    for choice in ("Server", "User-Agent"):
        if value.lower() == choice.lower():
            return choice
    raise _Bad(f"must be 'Server' or 'User-Agent', not {value!r}")


def _list(value: Any, pattern: re.Pattern[str] | None = None, what: str = "a token") -> tuple:
    if not isinstance(value, list):
        raise _Bad(f"must be a list of strings, not {type(value).__name__}")
    out = []
    for item in value:
        item = _text(item)
        if pattern is not None and pattern.fullmatch(item) is None:
            raise _Bad(f"{item!r} is not {what}")
        out.append(item)
    return tuple(out)


def _methods(value: Any) -> tuple[str, ...]:
    methods = _list(value, _METHOD, "an upper-case SIP method name")
    if not methods:
        raise _Bad("must list at least one method")
    return methods


def _tokens(value: Any) -> tuple[str, ...]:
    return _list(value, _TOKEN)


def _media_types(value: Any) -> tuple[str, ...]:
    return _list(value, re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+/[^ ,;]+(;[^,]*)?"), "a media type")


def _int(value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Bad(f"must be a whole number, not {type(value).__name__}")
    if not lo <= value <= hi:
        raise _Bad(f"must be between {lo} and {hi}, not {value}")
    return value


def _challenge(value: Any) -> int:
    if value not in (401, 407) or isinstance(value, bool):
        raise _Bad(f"must be 401 or 407, not {value!r}")
    return int(value)


def _finals(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or not value:
        raise _Bad("must be a non-empty list of status codes, e.g. [183, 486]")
    codes = tuple(_int(v, 101, 699) for v in value)
    if any(c >= 200 for c in codes[:-1]):
        raise _Bad("only the last status may be final (>= 200); the others are 101..199")
    if codes[-1] < 300:  # a 2xx would start a call we cannot carry (no media)
        raise _Bad(f"must end with a failure status 300..699, not {codes[-1]}")
    return codes


def _tag_style(value: Any) -> str:
    value = _text(value)
    if value not in TO_TAG_STYLES:
        raise _Bad(f"must be one of {', '.join(TO_TAG_STYLES)}, not {value!r}")
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Bad(f"must be true or false, not {value!r}")
    return value


def _options_headers(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        raise _Bad("must be a table of header = value")
    out = []
    for name, text in value.items():
        if _TOKEN.fullmatch(name) is None:
            raise _Bad(f"{name!r} is not a header name")
        if name.lower() in _RESERVED:
            raise _Bad(f"{name!r} is written by the responder itself")
        try:
            out.append((name, _text(text, empty=True)))
        except _Bad as e:
            raise _Bad(f"{name}: {e}") from None
    return tuple(out)


def _reasons(value: Any) -> tuple[tuple[int, str], ...]:
    if not isinstance(value, dict):
        raise _Bad('must be a table of "code" = "reason phrase"')
    out = []
    for code, text in value.items():
        if not (code.isdigit() and code.isascii() and len(code) == 3 and 100 <= int(code) <= 699):
            raise _Bad(f"{code!r} is not a status code 100..699")
        try:
            out.append((int(code), _text(text)))
        except _Bad as e:
            raise _Bad(f"{code}: {e}") from None
    return tuple(out)


_KEYS: dict[str, tuple[Any, bool]] = {
    "name": (lambda v: _list([v], _TOKEN, "a short word")[0], False),
    "server": (_server, True),
    "header": (_header, True),
    "realm": (_realm, True),
    "allow": (_methods, True),
    "supported": (_tokens, False),
    "accept": (_media_types, False),
    "events": (_tokens, False),
    "invite_challenge": (_challenge, True),
    "invite_final": (_finals, True),
    "register_expires": (lambda v: _int(v, 60, 604800), True),
    "min_expires": (lambda v: _int(v, 0, 604800), False),
    "to_tag": (_tag_style, True),
    "opaque": (_bool, False),
    "date": (_bool, False),
    "options_headers": (_options_headers, False),
    "reasons": (_reasons, False),
}
_DEFAULTS: dict[str, Any] = {
    "supported": (),
    "accept": ("application/sdp",),
    "events": (),
    "min_expires": 0,
    "opaque": False,
    "date": False,
    "options_headers": (),
    "reasons": (),
}


def personality_from_dict(data: Mapping[str, Any], name: str, origin: str) -> Personality:
    """Check a parsed TOML table and build the Personality; origin names it in errors."""
    unknown = [k for k in data if k not in _KEYS]
    if unknown:
        raise PersonalityError(f"{origin}: {unknown[0]}: unknown key (known: {', '.join(_KEYS)})")
    values: dict[str, Any] = {"name": name}
    for key, (check, required) in _KEYS.items():
        if key not in data:
            if required:
                raise PersonalityError(f"{origin}: {key}: missing (it is required)")
            if key in _DEFAULTS:
                values[key] = _DEFAULTS[key]
            continue
        try:
            values[key] = check(data[key])
        except _Bad as e:
            raise PersonalityError(f"{origin}: {key}: {e}") from None
    if values["min_expires"] > values["register_expires"]:
        raise PersonalityError(
            f"{origin}: min_expires: {values['min_expires']} is more than "
            f"register_expires ({values['register_expires']})"
        )
    if "REGISTER" not in values["allow"] or "INVITE" not in values["allow"]:
        raise PersonalityError(f"{origin}: allow: must include REGISTER and INVITE")
    return Personality(**values)


def _read_toml(data: bytes, origin: str) -> dict[str, Any]:
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise PersonalityError(f"{origin}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise PersonalityError(f"{origin}: not valid TOML: {e}") from None


def _builtin_table(name: str) -> dict[str, Any]:
    res = resources.files(__package__).joinpath("personalities", f"{name}.toml")
    return _read_toml(res.read_bytes(), f"built-in personality {name}")


def load_personality(name_or_path: str | Path) -> Personality:
    """A built-in personality by name, or one from a TOML file (a path).

    A file may start from a built-in with ``base = "NAME"`` and override any key.
    Raises PersonalityError with a one-line message.
    """
    if isinstance(name_or_path, str) and name_or_path in BUILTIN_PERSONALITIES:
        table = _builtin_table(name_or_path)
        return personality_from_dict(table, table.get("name", name_or_path), name_or_path)
    path = Path(name_or_path)
    origin = str(path)
    if not path.is_file():
        raise PersonalityError(
            f"{origin}: no such personality: not a built-in "
            f"({', '.join(BUILTIN_PERSONALITIES)}) and not a file"
        )
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise PersonalityError(f"{origin}: cannot read: {e.strerror or e}") from None
    table = _read_toml(raw, origin)
    base = table.pop("base", None)
    if base is not None:
        if base not in BUILTIN_PERSONALITIES:
            raise PersonalityError(
                f"{origin}: base: must be one of {', '.join(BUILTIN_PERSONALITIES)}, not {base!r}"
            )
        merged = _builtin_table(base)
        merged.pop("name", None)
        merged.update(table)
        table = merged
    name = table.get("name", path.stem)
    if not isinstance(name, str) or _TOKEN.fullmatch(name) is None:
        raise PersonalityError(f"{origin}: name: must be a short word, not {name!r}")
    return personality_from_dict(table, name, origin)


_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def format_to_tag(style: str, digest: bytes, process_hex: str) -> str:
    """A To-tag in the shape a product writes it, from 16 bytes (the responder takes them from
    a keyed hash of the dialog, so a retransmission gets the same tag); process_hex is the
    32-hex-digit part that Kamailio keeps for its whole process."""
    hexd = digest.hex()
    if style == "as-hex":  # Asterisk chan_sip: "as" and 8 hex digits
        return "as" + hexd[:8]
    if style == "alnum":  # FreeSWITCH (sofia-sip): 13 letters and digits
        n = int.from_bytes(digest, "big")
        chars = []
        for _ in range(13):
            n, r = divmod(n, 62)
            chars.append(_ALNUM[r])
        return "".join(chars)
    if style == "md5-crc":  # Kamailio: a per-process MD5 and a per-dialog suffix
        return f"{process_hex}-{hexd[:4]}"
    if style == "digits":  # many phones and appliances: a 32-bit decimal number
        return str(int.from_bytes(digest[:4], "big"))
    return f"{hexd[:8]}-{hexd[8:12]}-{hexd[12:16]}-{hexd[16:20]}-{hexd[20:32]}"  # uuid (pjsip)
