"""The OCI resources runc writes and pycontain's ``Resources`` (docker's flags) has no field for:
memory.swappiness, memory.disableOOMKiller, memory.kernelTCP, hugepageLimits, network.classID and
network.priorities. Each is written where this host's hierarchy has its file; where it has not (no v1
hugetlb, net_cls or net_prio here; no swappiness or OOM-killer switch in cgroup v2) the bundle still
starts, with a warning naming what was not applied, as runc does for the settings its host lacks.
"""

from __future__ import annotations

import os

from ..errors import InvalidArgument
from .base import CgroupManager
from .files import write_file

# cgroup v2 has no such files at all: these stay warnings whatever the host mounts.
_NOT_IN_V2 = {
    "memory.swappiness": "cgroup v2 has no per-cgroup swappiness",
    "memory.disableOOMKiller": "cgroup v2 cannot switch the OOM killer off",
    "memory.kernelTCP": "cgroup v2 has no separate TCP buffer limit",
    "network.classID": "cgroup v2 has no net_cls controller",
    "network.priorities": "cgroup v2 has no net_prio controller",
}


def writes(doc: dict) -> list[tuple[str, str, str, str]]:
    """(field, controller, file, value) for every extra setting in an OCI ``linux.resources`` object,
    the files named as in v1 (``_v2_file`` renames the one v2 has)."""
    out = []
    memory = doc.get("memory") or {}
    swappiness = memory.get("swappiness")
    if swappiness is not None:
        if not 0 <= _int(swappiness, "memory.swappiness") <= 100:
            raise InvalidArgument(f"invalid resources: memory.swappiness: {swappiness} (use 0 to 100)")
        out.append(("memory.swappiness", "memory", "memory.swappiness", str(swappiness)))
    if memory.get("disableOOMKiller") is True:
        out.append(("memory.disableOOMKiller", "memory", "memory.oom_control", "1"))
    tcp = memory.get("kernelTCP")
    if tcp is not None and _int(tcp, "memory.kernelTCP") != 0:
        out.append(("memory.kernelTCP", "memory", "memory.kmem.tcp.limit_in_bytes", str(tcp)))
    for i, h in enumerate(doc.get("hugepageLimits") or []):
        if not isinstance(h, dict) or not isinstance(h.get("pageSize"), str) or not h["pageSize"].isalnum():
            raise InvalidArgument(f'invalid resources: hugepageLimits[{i}]: needs a pageSize such as "2MB"')
        limit = _int(h.get("limit"), f"hugepageLimits[{i}].limit")
        out.append((f"hugepageLimits[{i}]", "hugetlb", f"hugetlb.{h['pageSize']}.limit_in_bytes", str(limit)))
    network = doc.get("network") or {}
    if network.get("classID") is not None:
        out.append(
            (
                "network.classID",
                "net_cls",
                "net_cls.classid",
                str(_int(network["classID"], "network.classID")),
            )
        )
    for i, p in enumerate(network.get("priorities") or []):
        if not isinstance(p, dict) or not isinstance(p.get("name"), str) or not p["name"]:
            raise InvalidArgument(f"invalid resources: network.priorities[{i}]: needs an interface name")
        value = f"{p['name']} {_int(p.get('priority'), f'network.priorities[{i}].priority')}"
        out.append(("network.priorities", "net_prio", "net_prio.ifpriomap", value))
    return out


def _int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"invalid resources: {what} must be an integer, not {value!r}")
    return value


def apply(cg: CgroupManager, settings: list[tuple[str, str, str, str]]) -> list[str]:
    """Write ``settings`` (what ``writes`` gave, at the config's conversion) into ``cg``; the warnings for
    those this host cannot take."""
    warnings = []
    for field, controller, name, value in settings:
        if cg.driver == "v2":
            if field in _NOT_IN_V2:
                warnings.append(f"linux.resources.{field} not applied: {_NOT_IN_V2[field]}")
                continue
            path = os.path.join(cg.dir, name.replace(".limit_in_bytes", ".max"))  # type: ignore[attr-defined]
        else:
            base = cg.dir(controller) if controller in cg.dirs else None  # type: ignore[attr-defined]
            path = os.path.join(base, name) if base else ""
        if not path or not os.path.exists(path):
            why = (
                f"this host has no {controller} controller here" if not path else f"the kernel has no {name}"
            )
            warnings.append(f"linux.resources.{field} not applied: {why}")
            continue
        write_file(path, value)
    return warnings
