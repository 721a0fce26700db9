"""User namespaces: root in the container is an unprivileged id range on the host (``--userns``).

How a container gets one (``--userns remap`` or ``CONTAINER:HOST:SIZE``, OCI ``uidMappings``/``gidMappings``):

1. ``create``: the parent makes the user namespace up front in a short-lived helper (``unshare(CLONE_NEWUSER)``),
   writes its ``uid_map``/``gid_map`` (as root it may map any range: no newuidmap needed) and keeps a file
   descriptor to it; the helper exits, the namespace lives on through the descriptor.
2. The container's first process builds its root filesystem as root of the host, as always, but binds the
   image's layers through *idmapped mounts* (``mount_setattr(MOUNT_ATTR_IDMAP)``): files owned by host root in
   the shared layers appear owned by the mapped range, so container root owns its root filesystem while the
   layers on disk stay untouched. Its writable layer is owned by the range's root.
3. Last, just before the capabilities are dropped and the command is exec'd, it joins the user namespace
   (``setns``). From then on its capabilities only count inside that namespace: the mount, pid, uts, ipc,
   network and cgroup namespaces it lives in belong to the host's user namespace, so even a process that
   regained every capability inside could not mount, change the hostname, load modules or reconfigure the
   network. Binding ports below 1024 and ping need no capability there (``ip_unprivileged_port_start`` and
   ``ping_group_range`` are opened in the container's own network namespace, as docker does).

Volumes (``-v``) are not shifted: their files keep the host's owners (shown as ``nobody`` inside when
outside the range), as with docker's userns-remap.
"""

from __future__ import annotations

import os

from .errors import InvalidArgument, NotFound, PycontainError
from .users import MAX_ID

REMAP_USER = "pycontain"  # the /etc/subuid and /etc/subgid entry --userns remap uses (docker's is dockremap)


def parse_mapping(text: str, what: str = "--userns") -> list[tuple[int, int, int]]:
    """``CONTAINER:HOST:SIZE`` -> [(container, host, size)]."""
    parts = text.split(":")
    try:
        c, h, n = (int(p) for p in parts)
    except ValueError:
        raise InvalidArgument(
            f"invalid {what} {text!r}: expected host, remap, or CONTAINER:HOST:SIZE such as 0:100000:65536"
        ) from None
    if c < 0 or h < 0 or n < 1 or c + n - 1 > MAX_ID or h + n - 1 > MAX_ID:
        raise InvalidArgument(
            f"invalid {what} {text!r}: ids go from 0 to {MAX_ID} and SIZE must be at least 1"
        )
    return [(c, h, n)]


def subordinate(user: str, path: str) -> tuple[int, int]:
    """The first range ``user`` owns in /etc/subuid or /etc/subgid: (start, count)."""
    try:
        with open(path) as f:
            for line in f:
                name, _, rest = line.strip().partition(":")
                if name == user:
                    start, _, count = rest.partition(":")
                    return int(start), int(count)
    except FileNotFoundError:
        pass
    except ValueError:
        raise InvalidArgument(
            f"{path} has a malformed line for {user!r} (expected {user}:START:COUNT)"
        ) from None
    raise NotFound(
        f"--userns remap needs a range for {user!r} in {path}: add one, e.g. "
        f"'echo {user}:100000:65536 >> {path}' (and the same in /etc/sub{'gid' if 'uid' in path else 'uid'})"
    )


class IdMappings:
    """A user namespace's mappings: (container id, host id, size) ranges for uids and for gids."""

    __slots__ = ("uid", "gid")

    def __init__(self, uid: list[tuple[int, int, int]], gid: list[tuple[int, int, int]]) -> None:
        # (lists from state.json become tuples)
        self.uid = [(c, h, n) for c, h, n in uid]
        self.gid = [(c, h, n) for c, h, n in gid]

    def host_root(self) -> tuple[int, int]:
        """The host's (uid, gid) of the namespace's root (-1 where unmapped)."""
        return to_host(self.uid, 0), to_host(self.gid, 0)

    def to_dict(self) -> dict:
        return {"uid": [list(m) for m in self.uid], "gid": [list(m) for m in self.gid]}

    @classmethod
    def from_dict(cls, d: dict) -> IdMappings:
        return cls(d["uid"], d["gid"])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMappings) and (other.uid, other.gid) == (self.uid, self.gid)

    __hash__ = None  # type: ignore[assignment]  # compared by value, never a key

    def __repr__(self) -> str:
        return f"IdMappings(uid={self.uid!r}, gid={self.gid!r})"


def resolve(value: str | None) -> IdMappings | None:
    """``--userns`` -> its mappings, or None for the host's user namespace."""
    if value in (None, "", "host"):
        return None
    if value == "remap":
        (us, un), (gs, gn) = subordinate(REMAP_USER, "/etc/subuid"), subordinate(REMAP_USER, "/etc/subgid")
        return IdMappings([(0, us, un)], [(0, gs, gn)])
    m = parse_mapping(value)
    return IdMappings(m, m)


def to_host(maps: list, container_id: int) -> int:
    """The host id that ``container_id`` maps to; -1 when it is outside every range."""
    for c, h, n in maps:
        if c <= container_id < c + n:
            return h + container_id - c
    return -1


def _map_text(maps: list) -> str:
    return "".join(f"{c} {h} {n}\n" for c, h, n in maps)


def create(mappings: IdMappings) -> int:
    """A new user namespace with ``mappings``; returns an O_CLOEXEC descriptor that keeps it alive."""
    from . import libc

    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    go_r, go_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # the helper: make the namespace, say so, wait to be released
        code = 0
        try:
            os.close(ready_r)
            os.close(go_w)
            libc.unshare(libc.CLONE_NEWUSER)
            # Its pid as the mounted /proc numbers it: the caller may sit in a pid namespace of its own
            # with the host's /proc still mounted (a container's process making an id-mapped mount).
            os.write(ready_w, os.readlink("/proc/self").encode())
            os.read(go_r, 1)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(ready_w)
    os.close(go_r)
    try:
        proc_pid = os.read(ready_r, 16)
        if not proc_pid.isdigit():
            raise PycontainError(
                "cannot create a user namespace (see 'pycontain check': user namespaces may be "
                "disabled on this host, e.g. user.max_user_namespaces=0)"
            )
        try:
            for kind, maps in (("uid", mappings.uid), ("gid", mappings.gid)):
                with open(f"/proc/{int(proc_pid)}/{kind}_map", "w") as f:
                    f.write(_map_text(maps))
        except OSError as e:
            raise PycontainError(
                f"cannot write the user namespace's id mappings: {e.strerror} (ranges must not "
                "overlap, at most 340 lines)"
            ) from None
        return os.open(f"/proc/{int(proc_pid)}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(ready_r)
        os.close(go_w)  # releases the helper
        os.waitpid(pid, 0)


def root_ids(proc: str = "self") -> tuple[int, int]:
    """The (uid, gid) a process takes on entering the user namespace of /proc/<proc>: its root's, or its
    lowest mapped ones, from the namespace's own uid_map/gid_map."""
    ids = []
    for kind in ("uid", "gid"):
        with open(f"/proc/{proc}/{kind}_map") as f:
            maps = [tuple(int(x) for x in line.split()) for line in f if line.strip()]
        ids.append(0 if to_host(maps, 0) >= 0 or not maps else min(c for c, _h, _n in maps))
    return ids[0], ids[1]


def setgroups_denied(proc: str = "self") -> bool:
    """Whether setgroups(2) is denied in the user namespace of /proc/<proc> (unprivileged mappings)."""
    with open(f"/proc/{proc}/setgroups") as f:
        return f.read().strip() == "deny"


def become_root(ids: tuple[int, int] | None = None) -> None:
    """Right after joining a user namespace: take ``ids`` (default: ``root_ids()``, read now). Until then
    the process still holds the host's uid 0, which owner checks on host files would honour."""
    uid, gid = ids if ids is not None else root_ids()
    try:
        os.setgroups([])
    except PermissionError:  # a rootless namespace: setgroups is denied there, as unprivileged mappings need
        pass
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
