"""Garbage collection: what crashed or interrupted runs left behind, and docker's 'system prune'.

A container whose runtime was killed while creating or removing it, a detached ``--rm`` container that
exited, a state directory without a readable state, a ``pycontain-*`` cgroup beneath ours that no state
refers to, an index link to a state directory that is gone, networking left by a crashed attach: each is
found from what the kernel and the state root show, and removed.
"""

from __future__ import annotations

import os

from .container import Container
from .errors import ContainerNotFound
from .state import CREATING, INDEX_DIR, STOPPED, StateStore, known_anywhere, rmtree


def collect(root: str | None = None) -> list[str]:
    """Remove crash leftovers; return one line per thing removed (or, starting "could not", not removed)."""
    store = StateStore(root)
    removed: list[str] = []
    known_cgroups: set[str] = set()
    for st in store.all():
        c = Container(st, store)
        status = c.status()
        if st.abandoned():
            why = "abandoned while creating" if st.status == CREATING else "abandoned while being removed"
        elif st.error:
            why = st.error
        elif status == STOPPED and st.config.auto_remove:
            why = "exited --rm"
        else:
            known_cgroups.add("pycontain-" + st.id)
            continue
        try:
            c.remove(force=True)
            removed.append(f"container {st.name} ({st.id[:12]}): {why}")
        except ContainerNotFound:
            pass  # removed meanwhile by someone else
        except Exception as e:
            removed.append(f"could not remove container {st.name} ({st.id[:12]}): {e}")
    if os.path.isdir(store.root):
        with store.lock():
            for path in store.leftovers():
                rmtree(path)
                removed.append(f"state directory {path} (no state file)")
            removed.extend(f"name entry {path} (its container is gone)" for path in store.stale_names())
    removed.extend(_dangling_index_links())
    for path in _orphan_cgroups(known_cgroups, store):
        try:
            os.rmdir(path)
            removed.append(f"cgroup {path}")
        except OSError:
            pass
    if os.geteuid() == 0:  # a rootless user's containers have no networking of pycontain's to collect
        removed.extend(_network_leftovers(store.root))
    return removed


def _dangling_index_links() -> list[str]:
    """Index entries whose state directory is gone (a removal cut before its last step)."""
    out: list[str] = []
    try:
        names = os.listdir(INDEX_DIR)
    except OSError:
        return out
    for n in names:
        path = os.path.join(INDEX_DIR, n)
        # The link is made after its directory and removed before it: dangling means gone for good.
        if os.path.islink(path) and not os.path.exists(path):
            try:
                os.unlink(path)
                out.append(f"index entry {path}")
            except FileNotFoundError:
                pass
    return out


def _network_leftovers(root: str) -> list[str]:
    """Veths, namespaces, addresses and port rules of containers that are gone (networking's own gc)."""
    from .network import settings

    if not os.path.isdir(settings.registry_dir()) and not os.path.isdir(os.path.join(root, "netns")):
        return []  # networking was never used here: no need to load pyroute2 and nft
    try:
        from . import network

        return [f"network: {line}" for line in network.gc(root)]
    except ImportError:
        return []
    except Exception as e:
        return [f"could not collect network leftovers: {e}"]


def _orphan_cgroups(known: set[str], store: StateStore) -> list[str]:
    """``pycontain-<id>`` cgroups beneath our own whose id has no container in this state root."""
    from .cgroups import own_cgroup_dirs

    ids = set(store.ids())
    out = []
    for base in own_cgroup_dirs():
        try:
            names = os.listdir(base)
        except OSError:
            continue
        for n in names:
            cid = n[len("pycontain-") :]
            if (
                n.startswith("pycontain-")
                and len(cid) == 64
                and n not in known
                and cid not in ids
                and not known_anywhere(cid)
            ):
                path = os.path.join(base, n)
                if os.path.isdir(path) and not _has_procs(path):
                    out.append(path)
    return sorted(out)


def _has_procs(path: str) -> bool:
    try:
        with open(os.path.join(path, "cgroup.procs")) as f:
            return bool(f.read().strip())
    except OSError:
        return True


def prune(root: str | None = None) -> list[str]:
    """docker's 'system prune': every stopped container, after the crash leftovers."""
    removed = collect(root)
    store = StateStore(root)
    for st in store.all():
        c = Container(st, store)
        if c.status() == STOPPED:
            try:
                c.remove(force=True)
            except ContainerNotFound:
                continue  # removed meanwhile by someone else
            removed.append(f"container {st.name} ({st.id[:12]}): stopped")
    return removed
