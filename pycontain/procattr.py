"""Per-process kernel attributes from an OCI bundle: ``process.ioPriority``, ``process.scheduler`` and
``linux.memoryPolicy``.

``check(doc)`` validates the three fields of a config.json (called by pycontain.spec, so a bad value fails
before anything is created) and returns them in the form ``apply`` takes; ``apply(attrs)`` sets them on
the container's first process before it executes the command. All three are inherited across fork and
execve, which is how they reach the command and its children. Light imports only: this runs in the child.
"""

from __future__ import annotations

import os

from . import libc
from .errors import ConfigError, PycontainError

# typing.TYPE_CHECKING without importing typing; type checkers know the idiom.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from .config_fields import ProcAttrs

IOPRIO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}
_IOPRIO_CLASS_SHIFT = 13

SCHED_POLICIES = {
    "SCHED_OTHER": 0,
    "SCHED_FIFO": 1,
    "SCHED_RR": 2,
    "SCHED_BATCH": 3,
    "SCHED_ISO": 4,
    "SCHED_IDLE": 5,
    "SCHED_DEADLINE": 6,
}
SCHED_FLAGS = {
    "SCHED_FLAG_RESET_ON_FORK": 0x01,
    "SCHED_FLAG_RECLAIM": 0x02,
    "SCHED_FLAG_DL_OVERRUN": 0x04,
    "SCHED_FLAG_KEEP_POLICY": 0x08,
    "SCHED_FLAG_KEEP_PARAMS": 0x10,
    "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20,
    "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40,
}
MPOL_MODES = {
    "MPOL_DEFAULT": 0,
    "MPOL_PREFERRED": 1,
    "MPOL_BIND": 2,
    "MPOL_INTERLEAVE": 3,
    "MPOL_LOCAL": 4,
    "MPOL_PREFERRED_MANY": 5,
    "MPOL_WEIGHTED_INTERLEAVE": 6,
}
MPOL_FLAGS = {
    "MPOL_F_NUMA_BALANCING": 1 << 13,
    "MPOL_F_RELATIVE_NODES": 1 << 14,
    "MPOL_F_STATIC_NODES": 1 << 15,
}
_U64_MAX = (1 << 64) - 1


def _err(path: str, message: str) -> ConfigError:
    return ConfigError(f"config.json: {path}: {message}")


def _name(obj: dict, key: str, path: str, table: dict[str, int]) -> int:
    value = obj.get(key)
    if value not in table:
        raise _err(f"{path}.{key}", f"{value!r} is not one of {', '.join(table)}")
    return table[value]


def _int(obj: dict, key: str, path: str, lo: int, hi: int, default: int = 0) -> int:
    value = obj.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise _err(f"{path}.{key}", f"must be an integer from {lo} to {hi}, not {value!r}")
    return value


def _flags(obj: dict, path: str, table: dict[str, int]) -> int:
    value = obj.get("flags") or []
    if not isinstance(value, list):
        raise _err(f"{path}.flags", f"must be a list of {', '.join(table)}")
    out = 0
    for i, flag in enumerate(value):
        if flag not in table:
            raise _err(f"{path}.flags[{i}]", f"{flag!r} is not one of {', '.join(table)}")
        out |= table[flag]
    return out


def _obj(value: object, path: str) -> dict:
    if not isinstance(value, dict):
        raise _err(path, f"must be an object, not {type(value).__name__}")
    return value


def parse_nodes(text: str, path: str = "linux.memoryPolicy.nodes") -> list[int]:
    """A NUMA node list in cpuset syntax ("0-3,7") as node numbers."""
    nodes: list[int] = []
    for part in text.split(","):
        lo, dash, hi = part.strip().partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()):
            raise _err(path, f"{text!r} is not a node list such as 0-3,7")
        first, last = int(lo), int(hi) if dash else int(lo)
        if last < first or last > 1023:
            raise _err(path, f"{text!r}: a range runs backwards or past node 1023")
        nodes.extend(range(first, last + 1))
    return nodes


def check(doc: dict) -> ProcAttrs | None:
    """The three fields of config.json ``doc``, validated; None when there is none."""
    # Here, not at the top: every exec applies the attributes, only an OCI create or exec checks them
    from .config_fields import ProcAttrs, Sched

    out: dict = {}
    proc = doc.get("process") if isinstance(doc.get("process"), dict) else {}
    linux = doc.get("linux") if isinstance(doc.get("linux"), dict) else {}
    io = proc.get("ioPriority")  # type: ignore[union-attr]
    if io is not None:
        io = _obj(io, "process.ioPriority")
        cls = _name(io, "class", "process.ioPriority", IOPRIO_CLASSES)
        out["ioprio"] = cls << _IOPRIO_CLASS_SHIFT | _int(io, "priority", "process.ioPriority", 0, 7)
    sched = proc.get("scheduler")  # type: ignore[union-attr]
    if sched is not None:
        p = "process.scheduler"
        sched = _obj(sched, p)
        out["sched"] = Sched(
            sched_policy=_name(sched, "policy", p, SCHED_POLICIES),
            sched_flags=_flags(sched, p, SCHED_FLAGS),
            sched_nice=_int(sched, "nice", p, -20, 19),
            sched_priority=_int(sched, "priority", p, 0, 99),
            sched_runtime=_int(sched, "runtime", p, 0, _U64_MAX),
            sched_deadline=_int(sched, "deadline", p, 0, _U64_MAX),
            sched_period=_int(sched, "period", p, 0, _U64_MAX),
        )
    mpol = linux.get("memoryPolicy")  # type: ignore[union-attr]
    if mpol is not None:
        p = "linux.memoryPolicy"
        mpol = _obj(mpol, p)
        mode = _name(mpol, "mode", p, MPOL_MODES)
        nodes_text = mpol.get("nodes") or ""
        if not isinstance(nodes_text, str):
            raise _err(f"{p}.nodes", "must be a string such as 0-3,7")
        nodes = parse_nodes(nodes_text) if nodes_text else []
        if mode in (MPOL_MODES["MPOL_DEFAULT"], MPOL_MODES["MPOL_LOCAL"]) and nodes:
            raise _err(f"{p}.nodes", f"must be empty with {mpol['mode']} (it names no nodes)")
        if mode not in (MPOL_MODES["MPOL_DEFAULT"], MPOL_MODES["MPOL_LOCAL"]) and not nodes:
            raise _err(f"{p}.nodes", f'required with {mpol["mode"]}: the NUMA nodes, e.g. "0"')
        out["mempolicy"] = (mode | _flags(mpol, p, MPOL_FLAGS), nodes)
    return ProcAttrs(**out) if out else None


def apply(attrs: ProcAttrs | None) -> None:
    """Set what ``check`` returned on the calling process (the container's, before it executes)."""
    if attrs is None:
        return
    if attrs.ioprio is not None:
        try:
            libc.ioprio_set(attrs.ioprio)
        except OSError as e:
            raise PycontainError(f"cannot set process.ioPriority: {os.strerror(e.errno or 0)}") from None
    if attrs.sched is not None:
        try:
            libc.sched_setattr(libc.SchedAttr(**attrs.sched.to_dict()))
        except OSError as e:
            raise PycontainError(
                f"cannot set process.scheduler: {os.strerror(e.errno or 0)} (a real-time or deadline policy needs "
                "CAP_SYS_NICE and, for SCHED_DEADLINE, runtime <= deadline <= period)"
            ) from None
    if attrs.mempolicy is not None:
        mode, nodes = attrs.mempolicy
        try:
            libc.set_mempolicy(mode, nodes)
        except OSError as e:
            online = _online_nodes()
            raise PycontainError(
                f"cannot set linux.memoryPolicy: {os.strerror(e.errno or 0)} (this host's NUMA nodes: {online})"
            ) from None


def _online_nodes() -> str:
    try:
        with open("/sys/devices/system/node/online") as f:
            return f.read().strip()
    except OSError:
        return "unknown"
