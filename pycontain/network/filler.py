"""Keeping the warm pool (``pool``) filled, sized and clean: entries made and removed as any member is,
through ``members.attach`` and ``detach``.

``python -m pycontain.network.filler`` is the background filler a claim starts (``pool.spawn_fill``).
"""

from __future__ import annotations

import os

from . import netns, settings
from .pool import READY, entries, lock_pool, pool_dir, ready, size

# How long a background filler waits for the next claim once the pool is full: containers started back to
# back then find a filler at work, which imported pyroute2 once (its message modules cost more CPU than
# making an entry).
LINGER_S = 2.0


def fill(linger: float = 0.0, locked: int | None = None) -> int:
    """Make entries until the pool holds its size, and on for ``linger`` seconds after the last vacancy;
    how many were made (0 when another filler runs). ``locked``: the pool's lock, taken already (by
    ``pool.spawn_fill``'s process before it became this one)."""
    import time

    from . import ipam

    d = pool_dir()
    reg = ipam.Registry()
    made = 0
    while True:
        fd = locked if locked is not None else lock_pool(d, blocking=False)
        locked = None
        if fd is None:
            return made
        try:
            deadline = time.monotonic() + linger
            while True:
                if len(entries(reg, ready_only=True)) < size(d):
                    sweep(d, {cid for n in reg.all() for cid in n["members"]})
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
        remove_entry_dir(d, entry_id)
        raise


def remove_entry_dir(d: str, entry_id: str) -> None:
    """The stand-in container's state directory and its ready mark (and the network files an entry made by
    an older pycontain has)."""
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


def set_size(n: int) -> int:
    """Keep ``n`` entries ready from now on (0: off, every entry removed); how many it holds now."""
    if n < 0:
        from ..errors import InvalidArgument

        raise InvalidArgument(f"invalid pool size {n}: 0 (off) or more")
    d = pool_dir()
    fd = lock_pool(d, blocking=True)
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
        remove_entry_dir(d, m["container_id"])
        removed.append(f"pool entry {m['ip']} ({m['veth_host']})")
    return removed


def sweep(d: str, members: set[str]) -> list[str]:
    """Remove the entry directories no registry member owns (``members``: their ids), under the pool's
    lock: those of claimed entries (their claimers leave them) and a killed filler's. Their names."""
    swept = []
    for n in sorted(os.listdir(d)):
        if len(n) == 64 and n not in members:
            remove_entry_dir(d, n)
            swept.append(n)
    return swept


def leftovers(held: set[str], members: set[str]) -> list[str]:
    """What a filler killed half-way (or a hand) left (``gc``): entries that cannot serve a container
    (``ready``: their veth, namespace and address go), namespace files and entry directories no registry
    member owns. ``held``: the namespace paths members own; ``members``: their ids."""
    from . import ipam
    from .members import detach

    d = pool_dir()
    removed: list[str] = []
    if not os.path.isdir(d):
        return removed
    fd = lock_pool(d, blocking=False)
    if fd is None:
        return removed  # a filler is at work: what it has not finished is not left over
    try:
        reg = ipam.Registry()
        net = reg.load(settings.DEFAULT_NETWORK) or {}
        for m in entries(reg):
            if not ready(d, net, m):
                detach(m["container_id"], m, d)
                remove_entry_dir(d, m["container_id"])
                removed.append(f"unusable pool entry {m['ip']} ({m['veth_host']})")
        removed.extend(f"pool entry directory {os.path.join(d, n)}" for n in sweep(d, members))
        nsdir = os.path.join(d, "netns")
        for n in sorted(os.listdir(nsdir)) if os.path.isdir(nsdir) else []:
            path = os.path.join(nsdir, n)
            if path not in held and netns.remove(path):
                removed.append(f"netns {path}")
    finally:
        os.close(fd)
    return removed


def main(argv: list[str]) -> int:
    """``python -m pycontain.network.filler [LOCK_FD]``: the pool's lock inherited on LOCK_FD."""
    try:
        fill(LINGER_S, int(argv[0]) if argv else None)
    except Exception:
        return 1  # detached, with nowhere to report to: the next claim finds the pool short and tries again
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
