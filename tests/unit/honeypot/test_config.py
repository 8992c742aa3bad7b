"""Sensor configuration: the safe default, the example file, and one clear line per problem."""

from __future__ import annotations

import re
import socket
from dataclasses import fields
from pathlib import Path

import pytest

from sipwatch.honeypot.config import (
    EXAMPLE_CONFIG,
    ConfigError,
    SensorConfig,
    check_config,
    load_config,
)
from sipwatch.honeypot.listen import Listen


def config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sensor.toml"
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    path = config_file(tmp_path, text)
    found = check_config(path)
    prefix = f"{path}: "
    assert all(p.startswith(prefix) for p in found), found
    return [p[len(prefix) :] for p in found]


def test_default_is_safe() -> None:
    cfg = load_config(None)
    assert cfg.sensor.store == "sipwatch.sqlite"
    assert cfg.sensor.name == socket.gethostname()
    assert cfg.listen == (Listen("udp", "127.0.0.1", 5060), Listen("tcp", "127.0.0.1", 5060))
    assert cfg.personality.name == "asterisk"
    assert cfg.accounts.extensions == ("100-199",)
    assert cfg.accounts.passwords["101"] == "1234"
    assert cfg.accounts.passwords["100"] == "100"
    strong = cfg.accounts.passwords["102"]
    assert len(strong) >= 12 and not strong.isdigit()
    assert cfg.auth.algorithms == ("MD5",) and cfg.auth.nonce_ttl == 300
    assert cfg.safety.amplification_factor == 3 and cfg.safety.reply_rate == 20
    assert cfg.sensor.pcap_dir == "" and cfg.sensor.user == ""
    assert cfg.pcap_rotate_bytes == 100 * 1024 * 1024
    assert cfg.listens == cfg.listen and cfg.tls_state_dir == "sipwatch-tls"
    assert cfg.tls_files() == (
        Path("sipwatch-tls/cert.pem"),
        Path("sipwatch-tls/key.pem"),
        True,
    )


def test_example_config_is_the_default(tmp_path: Path) -> None:
    path = config_file(tmp_path, EXAMPLE_CONFIG)
    assert check_config(path) == []
    cfg = load_config(path)
    assert cfg == load_config(None)
    assert cfg.source == str(path)


def test_example_config_shows_every_key() -> None:
    cfg = SensorConfig()
    for section in fields(cfg):
        if section.name in ("source", "listen", "actions"):
            continue
        assert f"\n[{section.name}]\n" in EXAMPLE_CONFIG
        for key in fields(getattr(cfg, section.name)):
            if (section.name, key.name) == ("accounts", "passwords"):
                assert "\n[accounts.passwords]\n" in EXAMPLE_CONFIG
                continue
            if section.name == "detection" and key.name in ("overrides", "watchlists"):
                assert f"\n[detection.{key.name}]\n" in EXAMPLE_CONFIG
                continue
            assert re.search(rf"^(# )?{key.name} = ", EXAMPLE_CONFIG, re.M), key.name
    assert "\n[actions]\n" in EXAMPLE_CONFIG
    assert "[[listen]]\ntransport = " in EXAMPLE_CONFIG
    assert '# transport = "tls"' in EXAMPLE_CONFIG  # listed, commented out
    for line in EXAMPLE_CONFIG.splitlines():
        assert len(line) <= 100


def test_a_full_config(tmp_path: Path) -> None:
    wordlist = tmp_path / "words.txt"
    wordlist.write_text("1234\n")
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("x")
    key.write_text("x")
    path = config_file(
        tmp_path,
        f"""
[sensor]
name = "hp-1"
store = "sqlite:////var/lib/sipwatch/trace.sqlite"
region = "de"
log_interval = 5.5
user = "nobody"
pcap_dir = "pcaps"
pcap_rotate_mb = 5
pcap_keep = 3

[[listen]]
transport = "UDP"
address = "0.0.0.0"

[[listen]]
transport = "tls"
address = "::0"

[[listen]]
transport = "udp"
address = "127.0.0.2"
port = 0

[[listen]]
transport = "udp"
address = "127.0.0.2"
port = 0

[tls]
cert = "{cert}"
key = "{key}"

[personality]
name = "freeswitch"
realm = "pbx.example.com"

[accounts]
extensions = ["100-199", 1000, "0200-0299", "alice"]
[accounts.passwords]
101 = 1234
1000 = "secret"
0250 = "x"
alice = "wonderland"

[auth]
algorithms = ["sha-256", "MD5", "SHA-256"]
nonce_ttl = 60

[safety]
reply_rate = 2.5
reply_burst = 5
amplification_factor = 1.5

[tcp]
max_buffer = 8192

[passwords]
wordlist = "{wordlist}"
max_candidates = 0
""",
    )
    cfg = load_config(path)
    assert cfg.sensor.name == "hp-1" and cfg.sensor.region == "DE"
    assert cfg.sensor.log_interval == 5.5 and cfg.pcap_rotate_bytes == 5 * 1024 * 1024
    assert cfg.state_dir == Path("/var/lib/sipwatch/sipwatch-tls")
    assert cfg.listen == (
        Listen("udp", "0.0.0.0", 5060),
        Listen("tls", "::", 5061),
        Listen("udp", "127.0.0.2", 0),
        Listen("udp", "127.0.0.2", 0),  # port 0: two sockets on any free port
    )
    assert cfg.tls_files() == (cert, key, False)
    assert cfg.accounts.extensions == ("100-199", "1000", "0200-0299", "alice")
    assert cfg.accounts.passwords == {"101": "1234", "1000": "secret", "0250": "x",
                                      "alice": "wonderland"}  # fmt: skip
    assert cfg.auth.algorithms == ("SHA-256", "MD5") and cfg.auth.nonce_ttl == 60
    assert cfg.safety.amplification_factor == 1.5 and cfg.safety.max_sources == 100_000
    assert cfg.tcp.max_buffer == 8192 and cfg.tcp.idle_timeout == 60
    assert cfg.passwords.max_candidates == 0


def test_a_given_accounts_section_replaces_the_demo_accounts(tmp_path: Path) -> None:
    cfg = load_config(config_file(tmp_path, '[accounts]\nextensions = ["2000-2099"]\n'))
    assert cfg.accounts.extensions == ("2000-2099",) and cfg.accounts.passwords == {}
    cfg = load_config(config_file(tmp_path, "[accounts.passwords]\n150 = 'pw'\n"))
    assert cfg.accounts.extensions == ("100-199",) and cfg.accounts.passwords == {"150": "pw"}


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
[sensor]
nmae = "x"
log_interval = "60"
pcap_keep = 0
region = "zz"

[[listen]]
transport = "udp"
address = "127.0.0.300"

[[listen]]
transport = "tcp"
address = "::1"
port = 70000

[[listen]]
transport = "udp"
address = "127.0.0.1"

[[listen]]
transport = "udp"
address = "127.0.0.1"
port = 5060

[[listen]]
transport = "sctp"
address = "[::1]"
prot = 1

[personality]
name = "personalities/missing.toml"

[accounts]
extensions = ["200-100", "100-199", "12-ab", true]

[accounts.passwords]
101 = 1234
500 = "x"

[auth]
algorithms = ["md5", "SHA256"]

[safety]
amplification_factor = 5
reply_burst = true

[colour]
x = 1
""",
    )
    expected = [
        "[colour]: unknown section",
        "[sensor] nmae: unknown key (did you mean 'name'?)",
        '[sensor] log_interval: expected a number (got "60")',
        "[sensor] pcap_keep: must be at least 1 (got 0)",
        "[auth] algorithms: unknown digest algorithm 'SHA256' (did you mean 'SHA-256'?)",
        "[safety] amplification_factor: must be at most 3: a UDP reply may never be more than "
        "3x the request (got 5)",
        "[safety] reply_burst: expected an integer (got true)",
        '[sensor] region: not a dialling region (an ISO 3166 code such as DE or US) (got "zz")',
        '[[listen]] #1 address: not an IP address (got "127.0.0.300")',
        "[[listen]] #2 port: must be a port number 0-65535 (got 70000)",
        "[[listen]] #4: udp 127.0.0.1:5060 clashes with [[listen]] #3 (udp on the same address "
        "and port)",
        "[[listen]] #5 prot: unknown key (did you mean 'port'?)",
        '[[listen]] #5 transport: must be one of udp, tcp, tls (got "sctp")',
        '[[listen]] #5 address: not an IP address (write IPv6 without brackets) (got "[::1]")',
        '[accounts] extensions: range runs backwards (LOW must not be above HIGH) (got "200-100")',
        '[accounts] extensions: malformed range (use LOW-HIGH, e.g. "100-199") (got "12-ab")',
        "[accounts] extensions: expected an extension or a range (got true)",
        "[accounts.passwords] 500: password for an extension that does not exist (add it to "
        "[accounts] extensions)",
        '[personality] name: no such personality file (got "personalities/missing.toml")',
    ]
    assert found == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[safety]\namplification_factor = 3.5\n", "[safety] amplification_factor: must be at "
         "most 3: a UDP reply may never be more than 3x the request (got 3.5)"),
        ("[safety]\namplification_factor = 0\n",
         "[safety] amplification_factor: must be greater than 0 (got 0)"),
        ("[tcp]\nidle_timeout = inf\n", "[tcp] idle_timeout: expected a finite number (got inf)"),
        ("[auth]\nalgorithms = []\n", '[auth] algorithms: needs at least one algorithm, e.g. ["MD5"]'),
        ("[auth]\nalgorithms = 'MD5'\n",
         '[auth] algorithms: expected a list of strings, e.g. ["MD5"] (got "MD5")'),
        ("[auth]\nnonce_ttl = 1\n", "[auth] nonce_ttl: must be at least 10 (got 1)"),
        ("listen = []\n", "[[listen]]: no listeners: give at least one [[listen]] table"),
        ("[listen]\ntransport = 'udp'\n", "[[listen]]: expected [[listen]] tables (got a table)"),
        ("[[listen]]\naddress = '::1'\n", "[[listen]] #1 transport: missing (one of udp, tcp, tls)"),
        ("[[listen]]\ntransport = 'tcp'\naddress = '::1'\n[[listen]]\ntransport = 'tls'\n"
         "address = '::1'\nport = 5060\n",
         "[[listen]] #2: tls [::1]:5060 clashes with [[listen]] #1 (tcp on the same address and "
         "port)"),
        ("[sensor]\ngroup = 'nogroup'\n",
         "[sensor] group: set, but [sensor] user is not (the group goes with it)"),
        ("[sensor]\nuser = 'no-such-user-here'\n",
         '[sensor] user: no such user on this system (got "no-such-user-here")'),
        ("[sensor]\nstore = 'redis://db'\n", '[sensor] store: unknown store URL scheme (got "redis://db")'),
        ("[sensor]\nname = ''\n", "[sensor] name: must not be empty"),
        ("[sensor]\nname = \"a\\nb\"\n",
         '[sensor] name: control characters (line breaks) are not allowed (got "a\\nb")'),
        ("[personality]\nrealm = 'a\"b'\n", '[personality] realm: must not contain " or \\ (got "a\\"b")'),
        ("[accounts]\nextensions = '100-199'\n",
         '[accounts] extensions: expected a list, e.g. ["100-199", 1000] (got "100-199")'),
        ("[accounts]\nextensions = ['10 0']\n",
         "[accounts] extensions: not an extension (digits, letters and . _ + - * # only) "
         '(got "10 0")'),
        ("[accounts]\nextensions = ['100-199']\n[accounts.passwords]\n0150 = 'x'\n",
         "[accounts.passwords] 0150: password for an extension that does not exist (add it to "
         "[accounts] extensions)"),
        ("[accounts.passwords]\n101 = ''\n", "[accounts.passwords] 101: empty password"),
        ("[accounts.passwords]\n101 = true\n", "[accounts.passwords] 101: expected a string (got true)"),
        ("[passwords]\nwordlist = 'missing.txt'\n", '[passwords] wordlist: no such file (got "missing.txt")'),
        ("[detection]\nmax_sources = 10\n",
         "[detection] max_sources: expected a whole number from 1024 to 100,000,000 (got 10)"),
        ("[detection]\nmax_sources = 1e6\n",
         "[detection] max_sources: expected a whole number from 1024 to 100,000,000 (got 1000000.0)"),
        ("sensor = 1\n", "[sensor]: expected a table (got 1)"),
        ("[sensors]\n", "[sensors]: unknown section (did you mean 'sensor'?)"),
    ],
)  # fmt: skip
def test_one_problem(tmp_path: Path, text: str, problem: str) -> None:
    assert problems(tmp_path, text) == [problem]


def test_tls_needs_both_files(tmp_path: Path) -> None:
    assert problems(tmp_path, "[tls]\nkey = 'k.pem'\n") == [
        "[tls] cert: key is set but cert is not (set both, or neither for a generated "
        "self-signed certificate)",
        '[tls] key: no such file (got "k.pem")',
    ]


def test_toml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    assert problems(tmp_path, "[sensor]\nname = 'x'\n[tcp\n") == [
        "line 3, column 5: TOML syntax error: expected ']' at the end of a table declaration"
    ]
    assert problems(tmp_path, "[sensor]\nname = ") == [
        "end of file (line 2): TOML syntax error: invalid value"
    ]


def test_unreadable_files(tmp_path: Path) -> None:
    assert check_config(tmp_path / "missing.toml") == [f"{tmp_path / 'missing.toml'}: no such file"]
    assert check_config(tmp_path) == [f"{tmp_path}: is a folder, not a config file"]
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b"[sensor]\nname = '\xe9'\n")
    assert check_config(bad) == [f"{bad}: not UTF-8 text (byte 17)"]


def test_config_error_carries_the_problems(tmp_path: Path) -> None:
    path = config_file(tmp_path, "[tcp]\nmax_buffer = 10\nmax_connections = 0\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert len(info.value.problems) == 2
    assert str(info.value) == "\n".join(info.value.problems)


def test_personality_path_that_exists_is_accepted(tmp_path: Path) -> None:
    persona = tmp_path / "mypbx.toml"
    persona.write_text("")
    cfg = load_config(config_file(tmp_path, f"[personality]\nname = '{persona}'\n"))
    assert cfg.personality.name == str(persona)
    # a name is checked by the sensor when it loads the personality, not here
    cfg = load_config(config_file(tmp_path, "[personality]\nname = 'no-such-builtin'\n"))
    assert cfg.personality.name == "no-such-builtin"
