"""Give up root after the listeners are bound (port 5060 needs root or CAP_NET_BIND_SERVICE).

The switch is one-way: supplementary groups are cleared, then the group, then the user are set
(real, effective and saved ids), and the function checks that root cannot be taken back.
Call it before starting threads that create files, so those files belong to the new user.
"""

from __future__ import annotations

import grp
import os
import pwd
from collections.abc import Iterable
from pathlib import Path


class PrivilegeError(Exception):
    """The switch of user was not possible; the message is one line."""


def _uid_gid(user: str) -> tuple[int, int, str]:
    """(uid, primary gid, name) of a user name or number."""
    try:
        pw = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except KeyError:
        if user.isdigit():  # an id without a passwd entry (containers): its own group
            return int(user), int(user), user
        raise PrivilegeError(f"cannot switch to user {user}: no such user") from None
    return pw.pw_uid, pw.pw_gid, pw.pw_name


def _gid(group: str) -> int:
    if group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise PrivilegeError(f"cannot switch to group {group}: no such group") from None


def drop_privileges(user: str, group: str = "", *, writable: Iterable[str | Path] = ()) -> None:
    """Switch this process from root to `user` (and `group`, default the user's primary group).

    user "" does nothing. Not running as root with a user given is an error, as is a user
    that resolves to root: the caller asked for a drop that cannot happen.
    `writable`: files and folders created as root that the process must still write after the
    switch (the pcap folder, the store and its -wal/-shm files); they are handed to the new
    user first (not recursively). Paths that do not exist are skipped.
    """
    if not user:
        if group:
            raise PrivilegeError(f"cannot switch to group {group} without a user")
        return
    uid, gid, name = _uid_gid(user)
    if group:
        gid = _gid(group)
    if os.geteuid() != 0:
        raise PrivilegeError(f"not running as root: cannot switch to user {name}")
    if uid == 0 or gid == 0:
        what = f"user {name}" if uid == 0 else f"group {group or gid}"
        raise PrivilegeError(f"refusing to switch to {what}: that is root, not an unprivileged id")
    for path in writable:
        try:
            os.chown(path, uid, gid)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise PrivilegeError(
                f"cannot hand {path} to user {name}: {exc.strerror or exc}"
            ) from None
    try:
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    except OSError as exc:  # e.g. root without CAP_SETUID/CAP_SETGID in a container
        raise PrivilegeError(f"cannot switch to user {name}: {exc.strerror or exc}") from None
    _verify(uid, gid, name)


def _verify(uid: int, gid: int, name: str) -> None:
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid) or os.getgroups():
        raise PrivilegeError(f"switched to user {name}, but the process ids did not all change")
    for regain in (lambda: os.setuid(0), lambda: os.seteuid(0), lambda: os.setgid(0)):
        try:
            regain()
        except PermissionError:
            continue
        raise PrivilegeError(f"switched to user {name}, but root could be regained")
