"""Country and AS of an address, offline (geoip2fast's bundled data), cached.

Private, loopback, link-local, documentation and other non-routable addresses are reported as
"private" without a lookup, so a lab capture does not show misleading countries.
"""

from __future__ import annotations

import ipaddress
import threading
from functools import lru_cache

PRIVATE = "private"
_DATA_FILE = "geoip2fast-asn-ipv6.dat.gz"  # country + ASN, IPv4 and IPv6 (ships with geoip2fast)

_lock = threading.Lock()
_db: object | None = None
_db_failed = False


def _database() -> object | None:
    """Load the geoip2fast database once (about 0.2 s); None when it cannot be loaded."""
    global _db, _db_failed
    if _db is None and not _db_failed:
        with _lock:
            if _db is None and not _db_failed:
                try:
                    from geoip2fast import GeoIP2Fast

                    _db = GeoIP2Fast(geoip2fast_data_file=_DATA_FILE, verbose=False)
                except Exception:  # missing data file or a broken install: reports go on
                    _db_failed = True
    return _db


@lru_cache(maxsize=65536)
def lookup(address: str) -> tuple[str, str]:
    """(country code, AS name) of an address; ('private', '') for non-public, ('', '') unknown."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "", ""
    if not ip.is_global:
        return PRIVATE, ""
    db = _database()
    if db is None:
        return "", ""
    try:
        found = db.lookup(str(ip))  # type: ignore[attr-defined]
    except Exception:
        return "", ""
    if getattr(found, "is_private", False):
        return PRIVATE, ""
    country = getattr(found, "country_code", "") or ""
    if len(country) != 2 or not country.isalpha():
        country = ""  # '--' and error markers mean "not in the database"
    return country, getattr(found, "asn_name", "") or ""
