"""Linux capabilities: their names and numbers, docker's default set, and the masks a container gets.

Resolved in the parent (``resolve_capabilities``); the child only hands the masks to the kernel
(``security.apply``).
"""

from __future__ import annotations

from ..errors import InvalidArgument, PermissionDenied

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .options import SecurityOptions

# Linux capabilities in kernel order: CAP_NUMBER[name] is the capability's number.
CAPABILITIES = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)
CAP_NUMBER = {name: i for i, name in enumerate(CAPABILITIES)}

# docker's default set (moby's oci/caps/defaults.go).
DEFAULT_CAPABILITIES = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)


def cap_name(name: str, where: str) -> str:
    n = str(name).strip().upper()
    if n == "ALL":
        return n
    if not n.startswith("CAP_"):
        n = "CAP_" + n
    if n not in CAP_NUMBER:
        raise InvalidArgument(
            f"invalid {where} {name!r}: not a capability (use a name from capabilities(7), "
            "with or without CAP_, e.g. NET_ADMIN, or ALL)"
        )
    return n


def mask(names: list[str] | tuple[str, ...], where: str) -> int:
    m = 0
    for n in names:
        m |= 1 << CAP_NUMBER[cap_name(n, where)]
    return m


def own_set(field: str = "CapBnd") -> int:
    """One of pycontain's own capability sets, from /proc/self/status: ``CapBnd`` (the bounding set:
    what it can hand out), ``CapEff``, ``CapPrm``..."""
    key = field.encode() + b":"
    with open("/proc/self/status", "rb") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1], 16)
    return (1 << len(CAPABILITIES)) - 1  # pragma: no cover - every Linux since 2.6.25 shows them


def own_bounding_set() -> int:
    """The capabilities pycontain itself can hand out: its bounding set (CapBnd)."""
    return own_set("CapBnd")


def resolve_capabilities(opts: SecurityOptions, available: int) -> tuple[int, int, int, int, int]:
    """(bounding, permitted, effective, inheritable, ambient) masks, docker's way.

    --privileged or --cap-add ALL: every capability in ``available``; --cap-drop ALL: only --cap-add;
    otherwise docker's default set less --cap-drop plus --cap-add (an add wins over a drop). A
    capability pycontain itself lacks cannot be added (PermissionDenied); OCI's exact sets are cut down
    to what is available, silently, as the kernel would refuse them anyway.
    """
    if opts.capabilities is not None:
        c = opts.capabilities
        sets = [
            mask(c.get(k) or [], f"process.capabilities.{k}") & available
            for k in ("bounding", "permitted", "effective", "inheritable", "ambient")
        ]
        return sets[0], sets[1], sets[2], sets[3], sets[4]
    add = [cap_name(c, "--cap-add") for c in opts.cap_add]
    drop = [cap_name(c, "--cap-drop") for c in opts.cap_drop]
    if opts.privileged or "ALL" in add:
        caps = available & ~(0 if opts.privileged else mask([d for d in drop if d != "ALL"], "--cap-drop"))
    else:
        base = (
            0
            if "ALL" in drop
            else mask(DEFAULT_CAPABILITIES, "default") & available & ~mask(drop, "--cap-drop")
        )
        wanted = mask(add, "--cap-add")
        missing = wanted & ~available
        if missing:
            names = ", ".join(n for i, n in enumerate(CAPABILITIES) if missing >> i & 1)
            raise PermissionDenied(
                f"cannot add {names}: pycontain itself does not hold it (its bounding set, "
                "CapBnd in /proc/self/status, lacks it), so no container can have it"
            )
        caps = base | wanted
    return caps, caps, caps, 0, 0
