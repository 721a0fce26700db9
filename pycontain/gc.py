"""Garbage collection: what crashed or interrupted runs left behind, and docker's 'system prune'.

A container whose runtime was killed while creating it, a detached ``--rm`` container that exited,
a state directory without a readable state, a ``pycontain-*`` cgroup beneath ours that no state
refers to: each is found from what the kernel and the state root show, and removed.
"""

from __future__ import annotations

import os

from .container import Container
from .state import STOPPED, StateStore, known_anywhere


def collect(root: str | None = None) -> list[str]:
    """Remove crash leftovers; return one line per thing removed."""
    store = StateStore(root)
    removed: list[str] = []
    known_cgroups: set[str] = set()
    for st in store.all():
        c = Container(st, store)
        status = c.status()
        leftover = st.abandoned() or st.error or (status == STOPPED and st.config.get("auto_remove"))
        if leftover:
            try:
                c.remove(force=True)
                removed.append(f"container {st.name} ({st.id[:12]}): {'abandoned while creating' if st.abandoned() else 'exited --rm' if not st.error else st.error}")
            except Exception as e:  # noqa: BLE001 - report and go on with the rest
                removed.append(f"container {st.name}: could not remove: {e}")
        else:
            known_cgroups.add("pycontain-" + st.id)
    for path in _orphan_cgroups(known_cgroups, store):
        try:
            os.rmdir(path)
            removed.append(f"cgroup {path}")
        except OSError:
            pass
    return removed


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
            cid = n[len("pycontain-"):]
            if n.startswith("pycontain-") and len(cid) == 64 and n not in known and cid not in ids \
                    and not known_anywhere(cid):
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
            c.remove(force=True)
            removed.append(f"container {st.name} ({st.id[:12]}): stopped")
    return removed
