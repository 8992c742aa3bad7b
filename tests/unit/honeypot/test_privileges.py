"""drop_privileges: the real switch from root, run in a child process (it cannot be undone)."""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from sipwatch.honeypot.privileges import PrivilegeError, drop_privileges

# The child drops, then reports its ids and whether root can be taken back. Everything is
# imported before the drop: the interpreter may live where the new user cannot read.
CHILD = """
import json, os, sys
from sipwatch.honeypot.privileges import PrivilegeError, drop_privileges
try:
    drop_privileges(*sys.argv[1:])
except PrivilegeError as exc:
    print(json.dumps({"error": str(exc)}))
    sys.exit(0)
try:
    os.setuid(0)
    regained = True
except PermissionError:
    regained = False
print(json.dumps({"resuid": os.getresuid(), "resgid": os.getresgid(),
                  "groups": os.getgroups(), "regained": regained}))
"""


def run_child(*args: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(out.stdout)


def need_root() -> None:
    if os.geteuid() != 0:
        print("not running as root: the real privilege drop cannot be tested")
        pytest.skip("needs root (CI runs as root)")


def test_drop_to_nobody() -> None:
    need_root()
    nobody = pwd.getpwnam("nobody")
    got = run_child("nobody")
    assert got["resuid"] == [nobody.pw_uid] * 3
    assert got["resgid"] == [nobody.pw_gid] * 3
    assert got["groups"] == [] and got["regained"] is False


def test_drop_to_user_and_group() -> None:
    need_root()
    group = "nogroup" if _group_exists("nogroup") else "nobody"
    gid = grp.getgrnam(group).gr_gid
    got = run_child("nobody", group)
    assert got["resuid"] == [pwd.getpwnam("nobody").pw_uid] * 3
    assert got["resgid"] == [gid] * 3 and got["groups"] == []


def test_writable_paths_are_handed_over() -> None:
    need_root()
    folder = Path(tempfile.mkdtemp(prefix="sipwatch-priv-"))  # /tmp: traversable by anyone
    try:
        store = folder / "trace.sqlite"
        store.write_bytes(b"")
        code = (
            "import sys\n"
            "from sipwatch.honeypot.privileges import drop_privileges\n"
            "folder, store = sys.argv[1:]\n"
            "drop_privileges('nobody', writable=[folder, store, store + '-wal'])\n"
            "open(folder + '/new.pcap', 'wb').close()\n"
            "open(store, 'ab').close()\n"
        )
        subprocess.run([sys.executable, "-c", code, str(folder), str(store)], check=True,
                       timeout=60)  # fmt: skip
        nobody = pwd.getpwnam("nobody").pw_uid
        assert (folder / "new.pcap").stat().st_uid == nobody
        assert folder.stat().st_uid == store.stat().st_uid == nobody
    finally:
        shutil.rmtree(folder)


def test_numeric_ids() -> None:
    need_root()
    got = run_child("65000", "65001")  # ids without a name are fine (containers)
    assert got["resuid"] == [65000] * 3 and got["resgid"] == [65001] * 3


def test_not_root_is_a_clear_error() -> None:
    message = "not running as root: cannot switch to user nobody"
    if os.geteuid() != 0:
        with pytest.raises(PrivilegeError) as info:
            drop_privileges("nobody")
        assert str(info.value) == message
        return
    # as root: drop once in a child, then ask again; the second call runs without root
    code = (
        "from sipwatch.honeypot.privileges import drop_privileges, PrivilegeError\n"
        "drop_privileges('nobody')\n"
        "try:\n"
        "    drop_privileges('nobody')\n"
        "except PrivilegeError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == message


def test_unknown_user_and_group() -> None:
    with pytest.raises(
        PrivilegeError, match="^cannot switch to user no-such-user-x: no such user$"
    ):
        drop_privileges("no-such-user-x")
    with pytest.raises(PrivilegeError, match="^cannot switch to group no-such-group-x: no such"):
        drop_privileges("nobody", "no-such-group-x")


def test_root_is_not_a_target() -> None:
    need_root()
    assert run_child("root") == {
        "error": "refusing to switch to user root: that is root, not an unprivileged id"
    }


def test_empty_user_is_a_no_op() -> None:
    before = (os.getresuid(), os.getresgid())
    drop_privileges("")
    assert (os.getresuid(), os.getresgid()) == before
    with pytest.raises(PrivilegeError, match="without a user"):
        drop_privileges("", "nogroup")


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True
