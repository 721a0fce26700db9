"""Resolve ``--user`` against the container's own /etc/passwd and /etc/group (never the host's)."""

from __future__ import annotations

import os
import stat

from .errors import InvalidArgument

# The highest user or group id: uid_t is 32 bits, and (uid_t)-1 means "unchanged" to the kernel.
MAX_ID = (1 << 32) - 2
# The most of a database read (pycontain-init.c's MAX_DB too): an image's file is read as root before any
# limit of its container but the cgroup's, and a sparse file of a terabyte costs the image nothing.
MAX_DB = 64 << 20


def _read_db(path: str) -> list[list[str]]:
    """The lines of ``path`` split on ':'; none when it is missing, unreadable or not a regular file (a
    FIFO would block the process starting the container)."""
    try:
        with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC), "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                return []
            data = f.read(MAX_DB + 1)
    except OSError:
        return []
    if len(data) > MAX_DB:
        raise InvalidArgument(f"the container's {path} is larger than {MAX_DB >> 20} MiB")
    # Lines as pycontain-init.c splits them: at "\n" (a "\r" before it dropped), ending at a NUL (C strings):
    # the same entries on exec's two paths, and no NUL for execve to refuse in HOME.
    text = data.decode(errors="surrogateescape")
    lines = (line.removesuffix("\r").partition("\0")[0] for line in text.split("\n"))
    return [line.split(":") for line in lines if line and not line.startswith("#")]


def _id(s: str, path: str) -> int:
    """A matched entry's id field (pycontain-init.c's db_num: the same message on exec's C path)."""
    if not (s.isascii() and s.isdigit()) or int(s) > MAX_ID:
        raise InvalidArgument(f"invalid entry in the container's {path}: {s} is not an id")
    return int(s)


class ResolvedUser:
    __slots__ = ("uid", "gid", "groups", "home")

    def __init__(self, uid: int, gid: int, groups: list[int], home: str) -> None:
        self.uid = uid
        self.gid = gid
        self.groups = groups
        self.home = home


def resolve(spec: str | None) -> ResolvedUser:
    """``UID[:GID]`` with numbers or names, looked up in the current root (call it after pivot_root)."""
    if not spec:
        spec = "0"
    user, _, group = spec.partition(":")
    passwd = _read_db("/etc/passwd")
    name = None
    home = "/"
    gid = None
    if user.isdigit():
        uid = int(user)
        for e in passwd:
            if len(e) >= 6 and e[2] == user:
                name, gid, home = e[0], _id(e[3], "/etc/passwd"), e[5] or "/"
                break
        if uid == 0 and name is None:
            home = "/root"
    else:
        for e in passwd:
            if len(e) >= 6 and e[0] == user:
                name, uid, gid, home = user, _id(e[2], "/etc/passwd"), _id(e[3], "/etc/passwd"), e[5] or "/"
                break
        else:
            raise InvalidArgument(
                f"unable to find user {user!r}: no matching entries in the container's /etc/passwd "
                "(use a numeric UID[:GID])"
            )
    groups_db = _read_db("/etc/group")
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            for e in groups_db:
                if len(e) >= 3 and e[0] == group:
                    gid = _id(e[2], "/etc/group")
                    break
            else:
                raise InvalidArgument(
                    f"unable to find group {group!r}: no matching entries in the container's "
                    "/etc/group (use a numeric GID)"
                )
    if gid is None:
        gid = 0 if uid == 0 else uid
    # Supplementary groups are the memberships /etc/group lists, not the primary group (runc's rule).
    groups: list[int] = []
    if name is not None and not group:
        for e in groups_db:
            # (a group whose id is not one is passed over, as by exec's C path)
            if len(e) >= 4 and name in e[3].split(",") and e[2].isascii() and e[2].isdigit():
                g = int(e[2])
                if g <= MAX_ID and g not in groups:
                    groups.append(g)
    return ResolvedUser(uid, gid, groups, home)
