"""central.toml: a good file loads; each problem is one clear line naming file, place and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from sipwatch.central.config import CentralConfig, NodeSite, load_central_config
from sipwatch.honeypot.config import ConfigError

GOOD = """
[central]
listen = "0.0.0.0"
port = 8443
db = "postgresql://postgres@127.0.0.1/sipwatch"
retention_days = 30
stale_after = 90
max_body_mb = 8
metrics_public = true

[deployments]
distributed = ["oslo", "essen"]
central = ["tunnel-a"]

[nodes.oslo]
latitude = 59.91
longitude = 10.75
label = "Oslo"

[blocklist]
min_severity = "high"
allow = ["192.0.2.0/24", "2001:db8::1"]
"""


def problems(tmp_path: Path, text: str, **overrides: object) -> list[str]:
    path = tmp_path / "central.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_central_config(path, **overrides)
    prefix = f"{path}: "
    assert all(p.startswith(prefix) for p in err.value.problems)
    return [p[len(prefix) :] for p in err.value.problems]


def test_a_good_file(tmp_path: Path) -> None:
    path = tmp_path / "central.toml"
    path.write_text(GOOD)
    config = load_central_config(path, port=9000, db=None)  # None: not given on the command line
    assert (config.listen, config.port, config.retention_days) == ("0.0.0.0", 9000, 30.0)
    assert config.db == "postgresql://postgres@127.0.0.1/sipwatch"
    assert config.max_body == 8 * 1024 * 1024 and config.metrics_public
    assert config.deployments == {"distributed": ("oslo", "essen"), "central": ("tunnel-a",)}
    assert config.nodes == {"oslo": NodeSite(59.91, 10.75, "Oslo")}
    assert config.min_severity == "high"
    assert config.allowed("192.0.2.200") and config.allowed("2001:db8::1")
    assert not config.allowed("192.0.3.1") and not config.allowed("not an address")
    assert config.source == str(path)


def test_defaults() -> None:
    config = load_central_config(None)
    assert config == CentralConfig()
    assert (config.port, config.stale_after, config.min_severity) == (8080, 120.0, "medium")
    assert config.secret_path == Path("central-secret.key")
    assert CentralConfig(db="/var/lib/sw/c.sqlite").secret_path == Path(
        "/var/lib/sw/central-secret.key"
    )
    assert CentralConfig(db="postgresql://h/db").secret_path == Path("central-secret.key")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[centrl]\nport = 1\n", "[centrl]: unknown section (sections: central, deployments, nodes, blocklist)"),
        ("[central]\nprot = 1\n", "[central] prot: unknown key (keys: listen, port, db, tls_cert, tls_key, retention_days, stale_after, max_body_mb, secret_file, metrics_public, ingest_connections)"),
        ("central = 5\n", "[central]: expected a table"),
        ("[central]\nport = \"8080\"\n", "[central] port: expected a number (got '8080')"),
        ("[central]\nport = 8080.5\n", "[central] port: expected an integer (got 8080.5)"),
        ("[central]\nport = 70000\n", "[central] port: must be between 1 and 65535 (got 70000)"),
        ("[central]\nport = true\n", "[central] port: expected a number (got True)"),
        ("[central]\nstale_after = 0\n", "[central] stale_after: must be between 1 and 2592000 (got 0)"),
        ("[central]\nretention_days = -1\n", "[central] retention_days: must be between 0 and 36500 (got -1)"),
        ("[central]\nmax_body_mb = nan\n", "[central] max_body_mb: must be between 0.001 and 1024 (got nan)"),
        ("[central]\nmetrics_public = \"yes\"\n", "[central] metrics_public: expected true or false (got 'yes')"),
        ("[central]\nlisten = 127\n", "[central] listen: expected a string (got 127)"),
        ("[central]\ndb = \"\"\n", "[central] db: must name a SQLite file or a postgresql:// URL"),
        ("[deployments]\n\"a b\" = [\"x\"]\n", "[deployments] a b: bad deployment name"),
        ("[deployments]\ng = \"oslo\"\n", "[deployments] g: expected a list of node names"),
        ("[deployments]\ng = []\n", "[deployments] g: expected a list of node names"),
        ("[deployments]\ng = [\"ok\", \"not ok\"]\n", "[deployments] g: expected a list of node names"),
        ("[nodes]\noslo = 5\n", "[nodes.oslo]: expected a table with latitude and longitude"),
        ("[nodes.oslo]\nlatitude = 91\nlongitude = 0\n", "[nodes.oslo]: latitude (-90..90) and longitude (-180..180) are needed as numbers"),
        ("[nodes.oslo]\nlatitude = 1\n", "[nodes.oslo]: latitude (-90..90) and longitude (-180..180) are needed as numbers"),
        ("[nodes.oslo]\nlatitude = 1\nlongitude = 2\nlabel = 3\n", "[nodes.oslo] label: expected a string (got 3)"),
        ("[nodes.\"a b\"]\nlatitude = 1\nlongitude = 2\n", "[nodes.a b]: bad node name (1-63 letters, digits, '.', '_' or '-')"),
        ("[blocklist]\nmin_severity = \"severe\"\n", "[blocklist] min_severity: expected one of info, low, medium, high, critical"),
        ("[blocklist]\nallow = \"10.0.0.0/8\"\n", "[blocklist] allow: expected a list of addresses or networks"),
        ("[blocklist]\nallow = [\"10.0.0.300\"]\n", "[blocklist] allow: not an address or network: '10.0.0.300'"),
        ("[blocklist]\nallow = [5]\n", "[blocklist] allow: not an address or network: 5"),
        ("[blocklist]\ndeny = []\n", "[blocklist] deny: unknown key (keys: min_severity, allow)"),
    ],
)  # fmt: skip
def test_each_problem_is_one_line(tmp_path: Path, text: str, expected: str) -> None:
    assert problems(tmp_path, text) == [expected]


def test_tls_files_must_exist(tmp_path: Path) -> None:
    text = '[central]\ntls_cert = "/nonexistent/c.pem"\ntls_key = "/nonexistent/k.pem"\n'
    assert problems(tmp_path, text) == [
        "[central] tls_cert: no such file: /nonexistent/c.pem",
        "[central] tls_key: no such file: /nonexistent/k.pem",
    ]
    (tmp_path / "c.pem").write_text("x")
    (tmp_path / "k.pem").write_text("x")
    assert problems(tmp_path, f'[central]\ntls_cert = "{tmp_path}/c.pem"\n') == [
        "[central] tls_cert/tls_key: give both or neither"
    ]
    path = tmp_path / "ok.toml"
    path.write_text(f'[central]\ntls_cert = "{tmp_path}/c.pem"\ntls_key = "{tmp_path}/k.pem"\n')
    assert load_central_config(path).tls


def test_all_problems_at_once(tmp_path: Path) -> None:
    text = "[central]\nport = 0\nfoo = 1\n[blocklist]\nmin_severity = 3\n"
    assert len(problems(tmp_path, text)) == 3


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_central_config(tmp_path / "missing.toml")
    assert err.value.problems == [f"{tmp_path / 'missing.toml'}: no such file"]
    bad = tmp_path / "bad.toml"
    bad.write_text("[central\n")
    with pytest.raises(ConfigError) as err:
        load_central_config(bad)
    assert err.value.problems[0].startswith(f"{bad}: TOML syntax error: ")
