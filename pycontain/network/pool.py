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

On by default (``DEFAULT_SIZE`` entries; docker users expect ``run`` to be fast without tuning): the first
container on the default network finds the pool empty, makes its own namespace as without a pool, and
starts the filler. ``pycontain network pool SIZE`` writes SIZE in the pool's directory (host-wide, like
the registry) and fills the pool (``filler``). Every claim starts a background ``python -m
pycontain.network.filler`` (detached; one filler at a time, under the pool's lock) to top it up again.
``pycontain network pool 0`` turns it off for good and removes every entry. An entry is claimable once its filler
marked it ready (``READY``, after attach made all of it) while its namespace is mounted and its veth is on
the bridge.
One whose namespace is gone (a reboot) is stale (``upkeep.is_stale``) and pruned with the registry's
other leftovers; one a killed filler left unmarked, or whose veth left the bridge, is removed by ``gc``
(``filler.leftovers``, when no filler is at work).

This module is the claiming half, which ``members.attach`` uses; ``filler`` makes and removes entries
through ``members`` (attach, detach), above it.
"""

from __future__ import annotations

import os

from . import netns, settings
from .settings import pool_dir

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (on the claim path)
if TYPE_CHECKING:
    from collections.abc import Callable


# Entries kept ready unless ``pycontain network pool SIZE`` said otherwise: one for the next ``run`` and one
# for a second started before the filler has made the next. Each costs ~150 KB of kernel memory, a veth on
# the bridge and an address, idle; without them a run imports pyroute2 and makes its own (~50 ms here).
DEFAULT_SIZE = 2


def size(d: str | None = None) -> int:
    """The number of entries the pool keeps ready (0: off; ``DEFAULT_SIZE`` until a size is set)."""
    try:
        with open(os.path.join(d or pool_dir(), "size")) as f:
            return max(0, int(f.read().strip() or 0))
    except FileNotFoundError:
        return DEFAULT_SIZE
    except (OSError, ValueError):
        return 0


READY = "ready"  # in an entry's directory once attach has made all of it: a filler killed before left none


def entries(reg, ready_only: bool = False, net: dict | None = None) -> list[dict]:
    """The pool's entries in the registry ``reg`` (the default network's members that are entries), or in
    ``net``, the default network's record already read; ``ready_only``: those that can serve a container
    (``ready``)."""
    if net is None:
        net = reg.load(settings.DEFAULT_NETWORK) or {}
    d = pool_dir()
    members = net.get("members", {}).values()
    return [m for m in members if m.get("state_root") == d and (not ready_only or ready(d, net, m))]


def ready(d: str, net: dict, m: dict) -> bool:
    """Its making finished, its namespace is mounted and its veth is still a port of the bridge (stats
    only, no netlink: a bridge or veth deleted by hand since leaves an entry that would give no network)."""
    return (
        os.path.exists(os.path.join(d, m["container_id"], READY))
        and netns.is_mounted(m["netns_path"])
        and os.path.exists(f"/sys/class/net/{net['bridge']}/brif/{m['veth_host']}")
    )


def claim(
    reg,
    container: dict,
    write: Callable[[dict, dict], None],
    publish: Callable[[list[dict]], list[dict]] | None = None,
) -> tuple[dict, dict] | None:
    """Record a ready entry as the container's: ``container`` holds the member's own fields (id, names,
    state root, hosts and DNS options); ``write(net, member)`` writes its files, under the registry's
    lock. ``publish(nets)``: its published ports (checked against every network's, host ports picked),
    DNATed by the nftables table once it is recorded. (net, member), or None when the pool is off or
    empty. Starts a refill either way when on."""
    d = pool_dir()
    if not size(d):
        return None
    try:
        with reg.lock():
            # Every network's record only for published ports (checked against all of them): a plain
            # claim reads the default network's alone.
            nets = reg.all() if publish is not None else None
            net = (
                next((n for n in nets if n["name"] == settings.DEFAULT_NETWORK), None)
                if nets is not None
                else reg.load(settings.DEFAULT_NETWORK)
            )
            entry = next(iter(entries(reg, ready_only=True, net=net)), None) if net else None
            if net is None or entry is None:
                return None
            member = {**entry, **container}
            if publish is not None:
                assert nets is not None
                member["ports"] = publish(nets)  # refused before anything changes: the entry stays
            del net["members"][entry["container_id"]]
            net["members"][member["container_id"]] = member
            reg.save(net)
            if member["ports"]:
                # Recorded first: killed before the rules, the record leads rm -f to its container's rules.
                from .upkeep import sync_nft

                sync_nft(reg, nets=nets)
            # The entry's directory (its ready mark) is left for the filler this claim starts: a directory
            # no member owns is swept (``filler.sweep``), off the claimer's path (ext4 unlinks and rmdirs
            # right after the registry's rename cost milliseconds).
            write(net, member)
        return net, member
    finally:
        spawn_fill()


# How long a filler started by a claim waits before it starts Python while the pool still has a ready entry:
# the claimer's container starts meanwhile, on CPUs the filler would take (a Python start, pyroute2's
# import, netlink under the RTNL lock, the registry's lock: a run of /bin/true took ~40 ms longer beside it
# on 2 CPUs). Runs back to back empty the pool sooner, and the filler starts then.
FILL_DELAY_S = 1.0


def spawn_fill() -> None:
    """Start ``fill`` in a process of its own, detached (``netns.detached``: the claimer waits only for a
    fork, ~0.25 ms), unless one is at work already: it sees this claim's vacancy before it exits. The
    filler takes the pool's lock at once (claims meanwhile start no other), waits up to ``FILL_DELAY_S``
    while an entry is ready, then execs Python, which inherits the lock."""
    d = pool_dir()
    lock = lock_pool(d, blocking=False)
    if lock is None:
        return
    os.close(lock)
    netns.detached(lambda: _become_filler(d))  # not started: the next attach makes its namespace itself


def _become_filler(d: str) -> None:
    """The detached process of ``spawn_fill``: the pool's lock, the delay, then Python's filler."""
    import sys

    held = lock_pool(d, blocking=False)
    if held is None:
        return
    os.set_inheritable(held, True)
    _delay()
    # -P: not the claimer's working directory first on sys.path (python -m puts it there, and a directory
    # another user can write would give them this root process).
    os.execv(sys.executable, [sys.executable, "-P", "-m", "pycontain.network.filler", str(held)])


def _delay() -> None:
    """Up to ``FILL_DELAY_S``, while the pool has a ready entry (a registry that cannot be read: none)."""
    import time

    from ..errors import PycontainError
    from .ipam import Registry

    deadline = time.monotonic() + FILL_DELAY_S
    try:
        while time.monotonic() < deadline and entries(Registry(), ready_only=True):
            time.sleep(0.05)
    except (OSError, PycontainError):
        pass


def lock_pool(d: str, blocking: bool) -> int | None:
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
