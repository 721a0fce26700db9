"""config.json's ``linux`` object, section by section: namespaces, id mappings, devices, resources, the
cgroups path, sysctls, masked and read-only paths, seccomp, personality and time offsets. ``bundle.parse``
calls each one and checks how they fit together (and with the rest of the document).
"""

from __future__ import annotations

from ..config_fields import TimeOffsets
from ..errors import InvalidArgument
from ..libc import (  # the kernel's numbers, defined once there
    CLONE_NEWCGROUP,
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWTIME,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
)
from .fields import (
    I64_MAX,
    I64_MIN,
    U32_MAX,
    U64_MAX,
    absolute,
    array,
    err,
    ident,
    integer,
    map_key,
    obj,
    opt_array,
    opt_obj,
    opt_string,
    show,
    str_map,
    string,
    strings,
)
from .model import OciDevice

NAMESPACE_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")


# type -> (CLONE_NEW* flag, name under /proc/PID/ns)
NAMESPACES = {
    "pid": (CLONE_NEWPID, "pid"),
    "network": (CLONE_NEWNET, "net"),
    "mount": (CLONE_NEWNS, "mnt"),
    "ipc": (CLONE_NEWIPC, "ipc"),
    "uts": (CLONE_NEWUTS, "uts"),
    "user": (CLONE_NEWUSER, "user"),
    "cgroup": (CLONE_NEWCGROUP, "cgroup"),
    "time": (CLONE_NEWTIME, "time"),
}


ROOTFS_PROPAGATIONS = (
    "shared",
    "slave",
    "private",
    "unbindable",
    "rshared",
    "rslave",
    "rprivate",
    "runbindable",
)


DEVICE_TYPES = ("c", "b", "u", "p")


PERSONALITY_DOMAINS = ("LINUX", "LINUX32")


TIME_CLOCKS = ("monotonic", "boottime")


SECCOMP_ACTIONS = (
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
)


SECCOMP_OPERATORS = (
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
)


# sysctls that live in a namespace (runc's list); any other would change the host.
_IPC_SYSCTLS = frozenset(
    (
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    )
)


_SYSCTL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def namespaces(linux: dict) -> dict[str, str]:
    out: dict[str, str] = {}
    where: dict[str, int] = {}
    for i, item in enumerate(opt_array(linux, "namespaces", "linux.namespaces")):
        p = f"linux.namespaces[{i}]"
        item = obj(item, p)
        if item.get("type") is None:
            raise err(f"{p}.type", f"required (use one of {', '.join(NAMESPACE_TYPES)})")
        kind = string(item["type"], f"{p}.type")
        if kind not in NAMESPACES:
            raise err(
                f"{p}.type", f"unknown namespace type {show(kind)} (use one of {', '.join(NAMESPACE_TYPES)})"
            )
        if kind in out:
            raise err(
                f"{p}.type", f"duplicate {kind} namespace (already given by linux.namespaces[{where[kind]}])"
            )
        path = opt_string(item, "path", f"{p}.path") or ""
        if path and not path.startswith("/"):
            raise err(f"{p}.path", f"must be an absolute path, not {show(path)}")
        out[kind] = path
        where[kind] = i
    return out


def mappings(parent: dict, key: str, where: str = "linux") -> list[tuple[int, int, int]]:
    out: list[tuple[int, int, int]] = []
    for i, item in enumerate(opt_array(parent, key, f"{where}.{key}")):
        p = f"{where}.{key}[{i}]"
        item = obj(item, p)
        triple = []
        for field in ("containerID", "hostID", "size"):
            if item.get(field) is None:
                raise err(f"{p}.{field}", "required (an integer)")
            lo = 1 if field == "size" else 0
            triple.append(integer(item[field], f"{p}.{field}", lo, U32_MAX))
        c, h, s = triple
        for start, what in ((c, "containerID"), (h, "hostID")):
            if start + s > U32_MAX + 1:
                raise err(f"{p}.size", f"{what} {start} + size {s} runs past {U32_MAX}")
        for j, (c2, h2, s2) in enumerate(out):
            if c < c2 + s2 and c2 < c + s:
                raise err(p, f"container ids {c}-{c + s - 1} overlap {where}.{key}[{j}]")
            if h < h2 + s2 and h2 < h + s:
                raise err(p, f"host ids {h}-{h + s - 1} overlap {where}.{key}[{j}]")
        out.append((c, h, s))
    return out


def devices(linux: dict) -> list[OciDevice]:
    out = []
    for i, item in enumerate(opt_array(linux, "devices", "linux.devices")):
        p = f"linux.devices[{i}]"
        item = obj(item, p)
        if item.get("path") is None:
            raise err(f"{p}.path", "required: the device's absolute path in the container")
        path = absolute(item["path"], f"{p}.path")
        if item.get("type") is None:
            raise err(f"{p}.type", "required (use c, b, u or p)")
        kind = string(item["type"], f"{p}.type")
        if kind not in DEVICE_TYPES:
            raise err(f"{p}.type", f"unknown device type {show(kind)} (use c, b, u or p)")
        numbers = []
        for key in ("major", "minor"):
            if item.get(key) is None:
                if kind != "p":
                    raise err(f"{p}.{key}", f"required for a device of type {kind}")
                numbers.append(0)
            else:
                numbers.append(integer(item[key], f"{p}.{key}", 0, U32_MAX))
        mode = item.get("fileMode")
        out.append(
            OciDevice(
                path,
                kind,
                numbers[0],
                numbers[1],
                None if mode is None else integer(mode, f"{p}.fileMode", 0, 0o7777),
                None if item.get("uid") is None else ident(item["uid"], f"{p}.uid"),
                None if item.get("gid") is None else ident(item["gid"], f"{p}.gid"),
            )
        )
    return out


def resources(linux: dict) -> dict | None:
    resources = opt_obj(linux, "resources", "linux.resources")
    if resources is None:
        return None
    from ..cgroups.resources import Resources  # checked now, so that a bad limit fails before anything exists

    try:
        Resources.from_oci(resources)
    except InvalidArgument as e:  # worded after docker's flags: put the JSON path in front
        message = str(e).removeprefix("invalid resources: ")
        raise err("linux.resources", message) from None
    if "devices" in resources:
        from ..cgroups.devices import parse_oci

        try:
            parse_oci(resources["devices"])
        except InvalidArgument as e:
            raise err("", str(e)) from None
    return resources


def cgroups_path(linux: dict) -> str | None:
    path = opt_string(linux, "cgroupsPath", "linux.cgroupsPath") or None
    if path is not None:
        # "/libpod_parent/libpod-ID" (cgroupfs) or "machine.slice:libpod:ID" (systemd): never upwards.
        parts = path.replace(":", "/").split("/")
        if ".." in parts:
            raise err("linux.cgroupsPath", f"must not contain '..': {show(path)}")
    return path


def sysctl(linux: dict, namespaces: dict[str, str]) -> dict[str, str]:
    sysctl = str_map(linux, "sysctl", "linux.sysctl")
    for key in sysctl:
        # A key becomes a path beneath /proc/sys: no "/", and no empty component (so no ".." either).
        if not key or not _SYSCTL_CHARS.issuperset(key) or "" in key.split("."):
            raise err(
                map_key("linux.sysctl", key),
                "not a sysctl name (letters, digits, '_', '-' and single dots between them, e.g. "
                "net.ipv4.ip_forward)",
            )
        if key in _IPC_SYSCTLS or key.startswith("fs.mqueue."):
            needs = "ipc"
        elif key.startswith("net."):
            needs = "network"
        elif key in ("kernel.hostname", "kernel.domainname"):
            needs = "uts"
        else:
            raise err(
                map_key("linux.sysctl", key),
                "not a namespaced sysctl: setting it would change the host "
                "(allowed: net.*, fs.mqueue.*, kernel.msg*/sem/shm*, kernel.hostname, kernel.domainname)",
            )
        if needs not in namespaces:
            raise err(
                map_key("linux.sysctl", key),
                f'needs a {needs} namespace (add {{"type": "{needs}"}} to '
                "linux.namespaces), or it would change the host",
            )
    return sysctl


def path_list(linux: dict, key: str) -> list[str] | None:
    if linux.get(key) is None:
        return None
    return [absolute(v, f"linux.{key}[{i}]") for i, v in enumerate(array(linux[key], f"linux.{key}"))]


def seccomp(linux: dict) -> dict | None:
    sec = opt_obj(linux, "seccomp", "linux.seccomp")
    if sec is None:
        return None
    if sec.get("defaultAction") is None:
        raise err("linux.seccomp.defaultAction", f"required (use one of {', '.join(SECCOMP_ACTIONS)})")
    _seccomp_action(sec["defaultAction"], "linux.seccomp.defaultAction")
    if sec.get("defaultErrnoRet") is not None:
        integer(sec["defaultErrnoRet"], "linux.seccomp.defaultErrnoRet", 0, U32_MAX)
    for i, arch in enumerate(strings(sec, "architectures", "linux.seccomp.architectures")):
        if not arch.startswith("SCMP_ARCH_"):
            raise err(
                f"linux.seccomp.architectures[{i}]",
                f"unknown architecture {show(arch)} (use an SCMP_ARCH_* name, e.g. SCMP_ARCH_X86_64)",
            )
    strings(sec, "flags", "linux.seccomp.flags")
    listener = opt_string(sec, "listenerPath", "linux.seccomp.listenerPath")
    if listener and not listener.startswith("/"):
        raise err("linux.seccomp.listenerPath", f"must be an absolute path, not {show(listener)}")
    for i, rule in enumerate(opt_array(sec, "syscalls", "linux.seccomp.syscalls")):
        p = f"linux.seccomp.syscalls[{i}]"
        rule = obj(rule, p)
        names = rule.get("names")
        if not isinstance(names, list) or not names:
            raise err(f"{p}.names", "must be a non-empty list of system call names")
        strings(rule, "names", f"{p}.names")
        if rule.get("action") is None:
            raise err(f"{p}.action", f"required (use one of {', '.join(SECCOMP_ACTIONS)})")
        _seccomp_action(rule["action"], f"{p}.action")
        if rule.get("errnoRet") is not None:
            integer(rule["errnoRet"], f"{p}.errnoRet", 0, U32_MAX)
        for j, arg in enumerate(opt_array(rule, "args", f"{p}.args")):
            q = f"{p}.args[{j}]"
            arg = obj(arg, q)
            integer(arg.get("index"), f"{q}.index", 0, 5)
            integer(arg.get("value"), f"{q}.value", 0, U64_MAX)
            if arg.get("valueTwo") is not None:
                integer(arg["valueTwo"], f"{q}.valueTwo", 0, U64_MAX)
            op = string(arg.get("op"), f"{q}.op")
            if op not in SECCOMP_OPERATORS:
                raise err(
                    f"{q}.op", f"unknown operator {show(op)} (use one of {', '.join(SECCOMP_OPERATORS)})"
                )
    return sec


def _seccomp_action(value: object, path: str) -> None:
    action = string(value, path)
    if action not in SECCOMP_ACTIONS:
        raise err(path, f"unknown action {show(action)} (use one of {', '.join(SECCOMP_ACTIONS)})")


def personality(linux: dict) -> dict | None:
    pers = opt_obj(linux, "personality", "linux.personality")
    if pers is None:
        return None
    domain = string(pers.get("domain"), "linux.personality.domain")
    if domain not in PERSONALITY_DOMAINS:
        raise err("linux.personality.domain", f"unknown domain {show(domain)} (use LINUX or LINUX32)")
    if strings(pers, "flags", "linux.personality.flags"):
        raise err("linux.personality.flags", "no personality flags are defined (leave the list empty)")
    return pers


def time_offsets(linux: dict, namespaces: dict[str, str]) -> TimeOffsets | None:
    offsets = opt_obj(linux, "timeOffsets", "linux.timeOffsets")
    if not offsets:
        return None
    if namespaces.get("time") != "":
        raise err(
            "linux.timeOffsets",
            'needs a new time namespace (add {"type": "time"} to linux.namespaces, without a path)',
        )
    clocks: dict[str, tuple[int, int]] = {}
    for clock, value in offsets.items():
        p = map_key("linux.timeOffsets", clock)
        if clock not in TIME_CLOCKS:
            raise err(p, f"unknown clock {show(clock)} (use monotonic or boottime)")
        value = obj(value, p)
        secs, nanosecs = value.get("secs"), value.get("nanosecs")
        if secs is not None:
            integer(secs, f"{p}.secs", I64_MIN, I64_MAX)
        if nanosecs is not None:
            integer(nanosecs, f"{p}.nanosecs", 0, 999_999_999)
        clocks[clock] = (secs or 0, nanosecs or 0)
    return TimeOffsets(**clocks)
