"""Fuzzing the central API with schemathesis, from its own OpenAPI schema: no request gives a 5xx.

Every operation runs as an admin (HTTP Basic) and as a sensor (Bearer token), so both the user
endpoints and the sensor endpoints see generated input past their login, on SQLite and on
PostgreSQL (which refuses some text SQLite takes, e.g. NUL characters). The store holds a known
trace and some events first, so reports and the blocklist have rows to work on.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from storedata import DAY2, trace
from storeengines import fresh_store_url

from centralapp import CentralApp, basic, bearer, central_app
from sipwatch.central.batchcodec import encode
from sipwatch.store.rows import message_row

# per operation and run: reaches every validation branch with the file in about a minute;
# SIPWATCH_FUZZ_EXAMPLES=500 for a longer hunt
EXAMPLES = int(os.environ.get("SIPWATCH_FUZZ_EXAMPLES", "30"))


@schemathesis.serializer("application/msgpack")
def _msgpack(ctx, value):  # noqa: ANN001, ANN202 - schemathesis' serializer signature
    """Generated msgpack bodies are arbitrary bytes (the schema says binary)."""
    return value if isinstance(value, bytes) else str(value).encode()


@schemathesis.serializer("application/yaml")
def _yaml(ctx, value):  # noqa: ANN001, ANN202
    return value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogatepass")


def _seed(c: CentralApp) -> None:
    rows = [message_row(r) for r in trace()]
    event = (
        7, "es.extension-scan", "threshold", "high", "ES", "8.8.8.8", '["192.0.2.1"]', "oslo",
        "x", DAY2, DAY2 + 5, 3, "scan", "[1, 2]", '{"users": 3}', "",
    )  # fmt: skip
    assert c.ingest(c.oslo, encode(1, rows, [event])).status_code == 200


@pytest.fixture(
    params=[("sqlite", "admin"), ("sqlite", "sensor"), ("postgresql", "admin"),
            ("postgresql", "sensor")],
    ids="-".join,
)  # fmt: skip
def fuzzed(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[CentralApp, dict]]:
    engine, who = request.param
    with fresh_store_url(engine, tmp_path) as url, central_app(tmp_path, url=url) as c:
        _seed(c)
        yield c, basic(c.admin) if who == "admin" else bearer(c.oslo)


@pytest.fixture
def api_schema(fuzzed: tuple[CentralApp, dict]):  # noqa: ANN201 - a schemathesis schema
    c, _ = fuzzed
    return schemathesis.openapi.from_asgi("/api/v1/openapi.json", c.app, headers=basic(c.admin))


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_server_errors(case: schemathesis.Case, fuzzed: tuple[CentralApp, dict]) -> None:
    _, headers = fuzzed
    case.call_and_validate(headers=headers, checks=[not_a_server_error])
