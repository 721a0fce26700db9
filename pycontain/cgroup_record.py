"""A container's cgroup as its manager's record (``CgroupManager.record()``, kept in state.json) describes
it, read without the drivers: what a process writes to join it. ``exec`` joins a container's cgroup on
every call, and importing the ``pycontain.cgroups`` package with a driver costs it ~1.5 ms.
"""

from __future__ import annotations

from . import fastos


def v1_dirs(dirs: dict[str, str]) -> list[str]:
    """A v1 cgroup's distinct directories (controller -> directory), cpuset's first: it must be filled in
    before a process can join."""
    ordered = sorted(dirs.items(), key=lambda kv: kv[0] != "cpuset")
    return list(dict.fromkeys(d for _c, d in ordered))


def moves_itself(procs_file: str) -> bool:
    """Whether a process joins this hierarchy more cheaply itself than when moved by its parent.

    Writing a pid to ``cgroup.procs`` takes the kernel's global threadgroup lock, and the first time
    after a quiet spell that waits for an RCU grace period (6-16 ms measured on this v1 host, paid by
    every container start and exec, as by runc). A thread writing "0" (itself) to a v1 hierarchy's
    ``tasks`` file is moved without that lock (Linux 6.0 on; before, the same wait): 0.03-0.2 ms per
    hierarchy here. cgroup v2 has no ``tasks`` file, and its ``cgroup.threads`` only moves threads
    within a threaded subtree."""
    return fastos.exists(fastos.join(fastos.dirname(procs_file), "tasks"))


def join_files(record: dict) -> list[str]:
    """The files a process writes "0" to, to move itself into the recorded cgroup: each v1 hierarchy's
    ``tasks`` (``moves_itself``), or cgroup2's ``cgroup.procs``; a hierarchy not made is left out, as
    ``procs_files`` does."""
    if record.get("driver") == "v2" and isinstance(record.get("dir"), str):
        return [fastos.join(record["dir"], "cgroup.procs")]
    if record.get("driver") != "v1" or not isinstance(record.get("dirs"), dict):
        from .errors import InvalidArgument

        raise InvalidArgument(
            f"invalid cgroup record: {record!r} (expected the object manager.record() wrote)"
        )
    found = []
    for d in v1_dirs(record["dirs"]):
        procs = fastos.join(d, "cgroup.procs")
        if moves_itself(procs):
            found.append(fastos.join(d, "tasks"))
        elif fastos.isdir(d):
            found.append(procs)
    return found
