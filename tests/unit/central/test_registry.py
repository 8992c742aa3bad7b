"""The sensor and user registry: hashed tokens, revocation, scrypt passwords, clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from sipwatch.central.credentials import check_password, hash_password, token_hash
from sipwatch.central.registry import Registry, RegistryError, verify_user
from sipwatch.store.base import open_store


@pytest.fixture
def reg(tmp_path: Path):
    with open_store(tmp_path / "r.sqlite") as store:
        yield Registry(store)


def test_sensors_and_tokens(reg: Registry) -> None:
    token = reg.add_sensor("s1", ["oslo", "essen", "oslo"], "distributed")
    assert token.startswith("swt_") and len(token) > 40
    s = reg.sensor("s1")
    assert (s.nodes, s.node, s.deployment, s.revoked) == (
        ("oslo", "essen"),
        "oslo",
        "distributed",
        None,
    )
    assert reg.authenticate(token).name == "s1"
    assert reg.store.query("SELECT token_hash FROM sensors") == [(token_hash(token),)]
    assert reg.authenticate("") is None and reg.authenticate(token + "x") is None
    assert reg.authenticate("x" * 201) is None
    assert reg.add_sensor("s2") and reg.sensor("s2").nodes == ("s2",)
    assert [s.name for s in reg.sensors()] == ["s1", "s2"]


def test_revoke_and_rotate(reg: Registry) -> None:
    old = reg.add_sensor("s1")
    reg.revoke_sensor("s1")
    assert reg.authenticate(old) is None
    assert reg.sensor("s1").revoked is not None  # the row (and its data) stays
    new = reg.rotate_token("s1")
    assert reg.authenticate(new).name == "s1" and reg.authenticate(old) is None
    assert reg.sensor("s1").revoked is None


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda r: r.add_sensor("bad name"), "bad sensor name 'bad name': use 1-63 letters"),
        (lambda r: r.add_sensor("-x"), "bad sensor name '-x'"),
        (lambda r: r.add_sensor("x" * 64), "bad sensor name"),
        (lambda r: r.add_sensor("ok", ["a,b"]), "bad node name 'a,b'"),
        (lambda r: r.add_sensor("ok", ["a"], "d d"), "bad deployment name 'd d'"),
        (lambda r: r.add_sensor("taken"), "sensor 'taken' exists already"),
        (lambda r: r.rotate_token("nobody"), "no sensor 'nobody'"),
        (lambda r: r.revoke_sensor("nobody"), "no sensor 'nobody'"),
        (lambda r: r.add_user("u", "short", "viewer"), "the password must have at least 8 characters"),
        (lambda r: r.add_user("u", "long enough", "root"), "bad role 'root': use admin or viewer"),
        (lambda r: r.add_user("u u", "long enough"), "bad user name 'u u'"),
        (lambda r: r.remove_user("nobody"), "no user 'nobody'"),
    ],
)  # fmt: skip
def test_refusals(reg: Registry, call, message: str) -> None:  # noqa: ANN001
    reg.add_sensor("taken")
    with pytest.raises(RegistryError, match="^" + message.replace("(", r"\(")):
        call(reg)


def test_heartbeat_status(reg: Registry) -> None:
    reg.add_sensor("s1")
    reg.heartbeat("s1", {"version": "1", "spool_batches": 2})
    s = reg.sensor("s1")
    assert s.status == {"spool_batches": 2, "version": "1"} and s.last_seen is not None
    reg.store.execute("UPDATE sensors SET status = 'not json'")
    assert reg.sensor("s1").status == {}  # a damaged row does not break the sensor list


def test_users(reg: Registry) -> None:
    reg.add_user("ann", "first-password", "admin")
    assert reg.check_user("ann", "first-password") == "admin"
    assert reg.check_user("ann", "wrong-password") is None
    assert reg.check_user("bob", "first-password") is None
    reg.add_user("ann", "second-password", "viewer")  # again: new password and role
    assert reg.check_user("ann", "first-password") is None
    assert reg.check_user("ann", "second-password") == "viewer"
    assert [u[:2] for u in reg.users()] == [("ann", "viewer")]
    stored = reg.store.query("SELECT password_hash FROM users")[0][0]
    assert stored.startswith("scrypt$") and "second-password" not in stored
    # the split for checking outside the store lock gives the same answers
    record = reg.user_record("ann")
    assert record[0] == "viewer" and verify_user(record, "second-password") == "viewer"
    assert verify_user(record, "first-password") is None
    assert reg.user_record("bob") is None and verify_user(None, "x") is None
    assert reg.user_record("a\x00b") is None and reg.role("a\x00b") is None
    reg.remove_user("ann")
    assert reg.users() == [] and reg.role("ann") is None


def test_password_hashes() -> None:
    h = hash_password("pässword-ü")
    assert check_password("pässword-ü", h) and not check_password("password-u", h)
    assert hash_password("same-password") != hash_password("same-password")  # salted
    odd = "from-env-\udcff"  # an environment variable that was not UTF-8
    assert check_password(odd, hash_password(odd))
    for broken in ("", "scrypt$", "md5$a$b", "scrypt$!!$!!", "scrypt$AAAA$AAAA$AAAA"):
        assert not check_password("x", broken)
