"""A warm pool of network namespaces on the default network, made ahead and claimed by ``attach``.

On the default network most of a container's network setup is the same for every container: a namespace,
a veth pair with one end on the bridge, an address and a route, each a netlink round trip, and pyroute2's
message modules to say them in (15-40 ms to import, more than the rest of ``pycontain run``). A pool
entry is all of that made ahead, by ``attach`` itself, for a stand-in container whose state root is the
pool's directory (``<registry>/netpool``): a member of the default network like any other, without a
name (so no hosts file lists it). ``claim``, under the registry's lock, records one entry as the
container's (its id, names, hosts files): JSON and files only, no netlink and no pyroute2, and atomic
between claimers, who each see the registry as the last one left it. The container joins the entry's
namespace by path; ``detach`` removes it like any other. An entry serves one container and is never
reused: a namespace a container had is not handed to the next.

Off until ``pycontain network pool SIZE``, which writes SIZE in the pool's directory (host-wide, like the
registry) and fills the pool. Every claim then starts a background ``python -m pycontain.network.pool
fill`` (detached; one filler at a time, under the pool's lock) to top it up again. ``pycontain network
pool 0`` turns it off and removes every entry. An entry is claimable once its filler marked it ready
(``READY``, after attach made all of it) while its namespace is mounted. One whose namespace is gone (a
reboot) is stale (``upkeep.is_stale``) and pruned with the registry's other leftovers; one a killed
filler left unmarked is removed by ``gc`` (``leftovers``, when no filler is at work).
"""

from __future__ import annotations

import os

from . import netns, settings

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (on the claim path)
if TYPE_CHECKING:
    from collections.abc import Callable


def pool_dir() -> str:
    return os.path.join(settings.registry_dir(), "netpool")


def size(d: str | None = None) -> int:
    """The number of entries the pool keeps ready (0: off)."""
    try:
        with open(os.path.join(d or pool_dir(), "size")) as f:
            return max(0, int(f.read().strip() or 0))
    except (OSError, ValueError):
        return 0


READY = "ready"  # in an entry's directory once attach has made all of it: a filler killed before left none


def entries(reg, ready_only: bool = False) -> list[dict]:
    """The pool's entries in the registry ``reg`` (the default network's members that are entries);
    ``ready_only``: those whose making finished and whose namespace is still mounted."""
    net = reg.load(settings.DEFAULT_NETWORK)
    d = pool_dir()
    members = (net or {}).get("members", {}).values()
    return [m for m in members if m.get("state_root") == d and (not ready_only or _ready(d, m))]


def _ready(d: str, m: dict) -> bool:
    return os.path.exists(os.path.join(d, m["container_id"], READY)) and netns.is_mounted(m["netns_path"])


def claim(reg, container: dict, write: Callable[[dict, dict], None]) -> tuple[dict, dict] | None:
    """Record a ready entry as the container's: ``container`` holds the member's own fields (id, names,
    state root, hosts and DNS options); ``write(net, member)`` writes its files, under the registry's
    lock. (net, member), or None when the pool is off or empty. Starts a refill either way when on."""
    d = pool_dir()
    if not size(d):
        return None
    try:
        with reg.lock():
            net = reg.load(settings.DEFAULT_NETWORK)
            entry = next(iter(entries(reg, ready_only=True)), None)
            if net is None or entry is None:
                return None
            member = {**entry, **container}
            del net["members"][entry["container_id"]]
            net["members"][member["container_id"]] = member
            reg.save(net)
            _remove_entry_dir(d, entry["container_id"])
            write(net, member)
        return net, member
    finally:
        spawn_fill()


def _remove_entry_dir(d: str, entry_id: str) -> None:
    """The stand-in container's state directory: its network files and the ready mark."""
    from . import files

    files.remove(settings.files_dir(d, entry_id))
    try:
        os.unlink(os.path.join(d, entry_id, READY))
    except FileNotFoundError:
        pass
    try:
        os.rmdir(os.path.join(d, entry_id))
    except FileNotFoundError:
        pass


def spawn_fill() -> None:
    """Start ``fill`` in a process of its own, detached (the claimer does not wait for it), unless one is at
    work already: it sees this claim's vacancy before it exits. Started by a short-lived intermediate
    child, so that it is never a child of ours: a long-lived caller (a container's monitor) would keep its
    zombie."""
    import sys

    lock = _lock(pool_dir(), blocking=False)
    if lock is None:
        return
    os.close(lock)
    argv = [sys.executable, "-m", "pycontain.network.pool", "fill"]
    try:
        devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return
    try:
        pid = os.fork()
        if pid == 0:
            try:
                os.setsid()
                stdio = [(os.POSIX_SPAWN_DUP2, devnull, target) for target in (0, 1, 2)]
                os.posix_spawn(sys.executable, argv, os.environ, file_actions=stdio)
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
    except OSError:
        pass  # the pool only runs empty: the next attach makes its namespace itself
    finally:
        os.close(devnull)


def _lock(d: str, blocking: bool) -> int | None:
    """The pool's lock (fill and drain hold it); None when not blocking and someone else holds it."""
    import fcntl

    os.makedirs(d, mode=0o700, exist_ok=True)
    fd = os.open(os.path.join(d, ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


# How long a background filler waits for the next claim once the pool is full: containers started back to
# back then find a filler at work, which imported pyroute2 once (its message modules cost more CPU than
# making an entry).
LINGER_S = 2.0


def fill(linger: float = 0.0) -> int:
    """Make entries until the pool holds its size, and on for ``linger`` seconds after the last vacancy;
    how many were made (0 when another filler runs)."""
    import time

    from . import ipam

    d = pool_dir()
    reg = ipam.Registry()
    made = 0
    while True:
        fd = _lock(d, blocking=False)
        if fd is None:
            return made
        try:
            deadline = time.monotonic() + linger
            while True:
                if len(entries(reg, ready_only=True)) < size(d):
                    _make_entry(d)
                    made += 1
                    deadline = time.monotonic() + linger
                elif time.monotonic() >= deadline:
                    break
                else:
                    time.sleep(0.02)
        finally:
            os.close(fd)
        # Looked at again once the lock is free: a claim that found it held started no filler of its own.
        if len(entries(reg, ready_only=True)) >= size(d):
            return made


def _make_entry(d: str) -> None:
    from .members import attach

    entry_id = os.urandom(32).hex()
    os.mkdir(os.path.join(d, entry_id), 0o700)
    try:
        attach(entry_id, settings.DEFAULT_NETWORK, container_name="", state_root=d)
        os.close(os.open(os.path.join(d, entry_id, READY), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
    except BaseException:
        _remove_entry_dir(d, entry_id)
        raise


def set_size(n: int) -> int:
    """Keep ``n`` entries ready from now on (0: off, every entry removed); how many it holds now."""
    if n < 0:
        from ..errors import InvalidArgument

        raise InvalidArgument(f"invalid pool size {n}: 0 (off) or more")
    d = pool_dir()
    fd = _lock(d, blocking=True)
    try:
        tmp = os.path.join(d, f".size.{os.getpid()}")
        with open(tmp, "w") as f:
            f.write(f"{n}\n")
        os.replace(tmp, os.path.join(d, "size"))
        if n == 0:
            drain_locked(d)
    finally:
        assert fd is not None
        os.close(fd)
    if n:
        fill()
    from . import ipam

    return len(entries(ipam.Registry(), ready_only=True))


def drain_locked(d: str) -> list[str]:
    """Remove every entry (the pool's lock held): its veth, namespace, address and directory."""
    from . import ipam
    from .members import detach

    removed = []
    for m in entries(ipam.Registry()):
        detach(m["container_id"], m, d)
        _remove_entry_dir(d, m["container_id"])
        removed.append(f"pool entry {m['ip']} ({m['veth_host']})")
    return removed


def leftovers(held: set[str], members: set[str]) -> list[str]:
    """What a filler killed half-way left (``gc``): entries recorded but never marked ready (their veth,
    namespace and address), namespace files and entry directories no registry member owns. ``held``: the
    namespace paths members own; ``members``: their ids."""
    from . import ipam
    from .members import detach

    d = pool_dir()
    removed: list[str] = []
    if not os.path.isdir(d):
        return removed
    fd = _lock(d, blocking=False)
    if fd is None:
        return removed  # a filler is at work: what it has not finished is not left over
    try:
        for m in entries(ipam.Registry()):
            if not os.path.exists(os.path.join(d, m["container_id"], READY)):
                detach(m["container_id"], m, d)
                _remove_entry_dir(d, m["container_id"])
                removed.append(f"unfinished pool entry {m['ip']} ({m['veth_host']})")
        for n in sorted(os.listdir(d)):
            if len(n) == 64 and n not in members:
                _remove_entry_dir(d, n)
                removed.append(f"pool entry directory {os.path.join(d, n)}")
        nsdir = os.path.join(d, "netns")
        for n in sorted(os.listdir(nsdir)) if os.path.isdir(nsdir) else []:
            path = os.path.join(nsdir, n)
            if path not in held and netns.remove(path):
                removed.append(f"netns {path}")
    finally:
        os.close(fd)
    return removed


def main(argv: list[str]) -> int:
    if argv != ["fill"]:
        return 2
    try:
        fill(LINGER_S)
    except Exception:
        return 1  # detached, with nowhere to report to: the next claim finds the pool short and tries again
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
