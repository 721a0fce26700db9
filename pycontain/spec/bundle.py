"""Read and validate an OCI bundle's ``config.json`` into an :class:`~pycontain.spec.model.OciSpec`.

:class:`~pycontain.errors.ConfigError` line that starts with the JSON path of the field at fault
(``config.json: linux.namespaces[2].type: unknown namespace type 'foo' (...)``); a field pycontain
cannot honour (``UNSUPPORTED_FIELDS``) fails with :class:`~pycontain.errors.Unsupported`. Unknown
properties are ignored, as the spec requires of runtimes. Settings pycontain accepts but cannot apply
on this host (an AppArmor profile on a host without AppArmor) are collected in ``OciSpec.warnings``.

No ``dataclasses``, ``typing``, ``re`` or ``json`` (only on the error path): ``pycontain create`` starts
here.
"""

from __future__ import annotations

import os

from .. import SPEC_VERSION, fastjson
from ..config_fields import TimeOffsets
from ..errors import ConfigError, InvalidArgument, NotFound, PermissionDenied, Unsupported
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
from ..security.caps import CAPABILITIES  # one table: security.caps's (its imports are light)
from ..users import MAX_ID
from .model import (
    HOOK_KINDS,
    IGNORED_OPTIONS,
    OciDevice,
    OciHook,
    OciMount,
    OciProcess,
    OciSpec,
)

DOC = "config.json"
_KNOWN_MINOR = int(SPEC_VERSION.split(".")[1])  # newer 1.x documents are read with a warning

UNSUPPORTED_FIELDS = (
    "process.execCPUAffinity",
    "linux.intelRdt",
    "linux.netDevices",
    "windows",
    "solaris",
    "vm",
    "zos",
    "freebsd",
)
_UNSUPPORTED_WHAT = {
    "process.execCPUAffinity": "setting a CPU affinity for exec",
    "linux.intelRdt": "Intel RDT (resctrl)",
    "linux.netDevices": "moving host network devices into the container",
    "windows": "a Windows container",
    "solaris": "a Solaris zone",
    "vm": "a virtual-machine container",
    "zos": "a z/OS container",
    "freebsd": "a FreeBSD jail",
}

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

_CAPS = frozenset(CAPABILITIES)
CAPABILITY_SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")

# RLIMIT_* name -> resource number (asm-generic, as on x86_64 and aarch64)
RLIMITS = {
    "RLIMIT_CPU": 0,
    "RLIMIT_FSIZE": 1,
    "RLIMIT_DATA": 2,
    "RLIMIT_STACK": 3,
    "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5,
    "RLIMIT_NPROC": 6,
    "RLIMIT_NOFILE": 7,
    "RLIMIT_MEMLOCK": 8,
    "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10,
    "RLIMIT_SIGPENDING": 11,
    "RLIMIT_MSGQUEUE": 12,
    "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14,
    "RLIMIT_RTTIME": 15,
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

_U32_MAX = (1 << 32) - 1
_U64_MAX = (1 << 64) - 1
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1


# -- errors ---------------------------------------------------------------------------------------
def _show(value: object) -> str:
    """A value for a one-line message: short, quoted like Python, newlines escaped."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {_show(value)}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _err(path: str, message: str) -> ConfigError:
    return ConfigError(f"{DOC}: {path}: {message}" if path else f"{DOC}: {message}")


def _unsupported(field: str, path: str | None = None) -> Unsupported:
    return Unsupported(
        f"{DOC}: {path or field}: {_UNSUPPORTED_WHAT[field]} is not supported by pycontain "
        f"(remove {path or field} to run without it)"
    )


def _key(parent: str, key: str) -> str:
    """``linux.sysctl["net.ipv4.ip_forward"]``: map keys may hold dots."""
    return f'{parent}["{key}"]'


# -- typed readers: each raises with the JSON path ------------------------------------------------
def _obj(value: object, path: str) -> dict:
    if not isinstance(value, dict):
        raise _err(path, f"must be an object, not {_kind(value)}")
    return value


def _opt_obj(parent: dict, key: str, path: str) -> dict | None:
    value = parent.get(key)
    return None if value is None else _obj(value, path)


def _str(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise _err(path, f"must be a string, not {_kind(value)}")
    if "\0" in value:
        raise _err(path, "must not contain a NUL character")
    return value


def _opt_str(parent: dict, key: str, path: str) -> str | None:
    value = parent.get(key)
    return None if value is None else _str(value, path)


def _bool(parent: dict, key: str, path: str) -> bool:
    value = parent.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _err(path, f"must be true or false, not {_kind(value)}")
    return value


def _int(value: object, path: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise _err(path, f"must be an integer from {lo} to {hi}, not {_kind(value)}")
    return value


def _id(value: object, path: str) -> int:
    return _int(value, path, 0, MAX_ID)


def _list(value: object, path: str) -> list:
    if not isinstance(value, list):
        raise _err(path, f"must be a list, not {_kind(value)}")
    return value


def _opt_list(parent: dict, key: str, path: str) -> list:
    value = parent.get(key)
    return [] if value is None else _list(value, path)


def _str_list(parent: dict, key: str, path: str) -> list[str]:
    return [_str(v, f"{path}[{i}]") for i, v in enumerate(_opt_list(parent, key, path))]


def _abs(value: object, path: str) -> str:
    text = _str(value, path)
    if not text.startswith("/"):
        raise _err(path, f"must be an absolute path, not {_show(text)}")
    return os.path.normpath(text)


def _env(parent: dict, key: str, path: str) -> list[str]:
    out = _str_list(parent, key, path)
    for i, item in enumerate(out):
        name, eq, _ = item.partition("=")
        if not eq or not name:
            raise _err(f"{path}[{i}]", f"must be KEY=VALUE, not {_show(item)}")
    return out


def _str_map(parent: dict, key: str, path: str) -> dict[str, str]:
    value = _opt_obj(parent, key, path) or {}
    for k, v in value.items():
        if not k:
            raise _err(path, "keys must not be empty")
        _str(v, _key(path, k))
    return dict(value)


# -- parsing --------------------------------------------------------------------------------------
def _version(doc: dict) -> tuple[str, list[str]]:
    if "ociVersion" not in doc or doc["ociVersion"] is None:
        raise _err(
            "ociVersion", f'required: the runtime-spec version the file follows, e.g. "{SPEC_VERSION}"'
        )
    version = _str(doc["ociVersion"], "ociVersion")
    core, _, _build = version.partition("+")
    core, dash, pre = core.partition("-")
    parts = core.split(".")
    ok = (
        len(parts) == 3
        and all(p.isdigit() and p.isascii() for p in parts)
        and (
            not dash
            or (
                pre
                and all(i and all(c.isalnum() and c.isascii() or c == "-" for c in i) for i in pre.split("."))
            )
        )
    )
    if not ok:
        raise _err("ociVersion", f"{_show(version)} is not a SemVer version such as {SPEC_VERSION}")
    if int(parts[0]) != 1:
        raise Unsupported(
            f"{DOC}: ociVersion: version {version} is not supported (pycontain reads runtime-spec "
            f"1.x documents, up to {SPEC_VERSION})"
        )
    warnings = []
    if int(parts[1]) > _KNOWN_MINOR:
        warnings.append(
            f"{DOC} follows runtime-spec {version}; pycontain knows fields up to {SPEC_VERSION} "
            "and ignores newer ones"
        )
    return version, warnings


def _refuse_unsupported(doc: dict) -> None:
    for field in UNSUPPORTED_FIELDS:
        if "[]" in field:
            continue
        head, _, tail = field.rpartition(".")
        parent = doc.get(head) if head else doc
        if isinstance(parent, dict) and parent.get(tail) not in (None, {}, [], ""):
            raise _unsupported(field)


def _capabilities(value: object, path: str) -> dict[str, list[str]]:
    if not isinstance(value, dict):
        raise _err(
            path,
            "must be an object with bounding, effective, inheritable, permitted and ambient lists "
            f"of CAP_* names, not {_kind(value)}",
        )
    out = {}
    for name in CAPABILITY_SETS:
        caps = _str_list(value, name, f"{path}.{name}")
        for i, cap in enumerate(caps):
            if cap not in _CAPS:
                hint = (
                    f"did you mean {cap.upper()}?"
                    if cap.upper() in _CAPS
                    else f"did you mean CAP_{cap.upper()}?"
                    if f"CAP_{cap.upper()}" in _CAPS
                    else "use a CAP_* name from capabilities(7), e.g. CAP_NET_BIND_SERVICE"
                )
                raise _err(f"{path}.{name}[{i}]", f"unknown capability {_show(cap)} ({hint})")
        out[name] = caps
    return out


def _rlimits(parent: dict, path: str) -> list[tuple[str, int, int]]:
    out: list[tuple[str, int, int]] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(_opt_list(parent, "rlimits", path)):
        p = f"{path}[{i}]"
        item = _obj(item, p)
        if item.get("type") is None:
            raise _err(f"{p}.type", "required, e.g. RLIMIT_NOFILE")
        kind = _str(item["type"], f"{p}.type")
        if kind not in RLIMITS:
            guess = kind.upper() if kind.upper().startswith("RLIMIT_") else f"RLIMIT_{kind.upper()}"
            hint = (
                f"did you mean {guess}?"
                if guess in RLIMITS
                else f"use an RLIMIT_* name from setrlimit(2): {', '.join(RLIMITS)}"
            )
            raise _err(f"{p}.type", f"unknown rlimit {_show(kind)} ({hint})")
        if kind in seen:
            raise _err(f"{p}.type", f"duplicate rlimit {kind} (already set by {path}[{seen[kind]}])")
        seen[kind] = i
        for key in ("soft", "hard"):
            if item.get(key) is None:
                raise _err(f"{p}.{key}", "required (an integer; 18446744073709551615 is unlimited)")
        soft = _int(item["soft"], f"{p}.soft", 0, _U64_MAX)
        hard = _int(item["hard"], f"{p}.hard", 0, _U64_MAX)
        if soft > hard:
            raise _err(f"{p}.soft", f"{soft} is above the hard limit {hard}")
        out.append((kind, soft, hard))
    return out


def _process(value: object, warnings: list[str]) -> OciProcess:
    proc = _obj(value, "process")
    args = proc.get("args")
    if not isinstance(args, list) or not args:
        raise _err("process.args", "must be a non-empty list of strings")
    args = [_str(a, f"process.args[{i}]") for i, a in enumerate(args)]
    if proc.get("cwd") is None:
        raise _err("process.cwd", 'required: the working directory, an absolute path such as "/"')
    cwd = _str(proc["cwd"], "process.cwd")
    if not cwd.startswith("/"):
        raise _err("process.cwd", f"must be an absolute path, not {_show(cwd)}")
    console = _opt_obj(proc, "consoleSize", "process.consoleSize")
    console_size = None
    if console is not None:
        console_size = tuple(
            _int(console.get(k), f"process.consoleSize.{k}", 0, 65535) for k in ("height", "width")
        )
    user = _opt_obj(proc, "user", "process.user") or {}
    uid = _id(user.get("uid", 0), "process.user.uid")
    gid = _id(user.get("gid", 0), "process.user.gid")
    umask = None if user.get("umask") is None else _int(user["umask"], "process.user.umask", 0, 0o777)
    gids = [
        _id(g, f"process.user.additionalGids[{i}]")
        for i, g in enumerate(_opt_list(user, "additionalGids", "process.user.additionalGids"))
    ]
    caps = proc.get("capabilities")
    oom = proc.get("oomScoreAdj")
    apparmor = _opt_str(proc, "apparmorProfile", "process.apparmorProfile") or None
    selinux = _opt_str(proc, "selinuxLabel", "process.selinuxLabel") or None
    if apparmor and not _apparmor_enabled():
        warnings.append(f"apparmor profile {apparmor!r} ignored: this host has no AppArmor")
    if selinux and not _selinux_enabled():
        warnings.append(f"selinux label {selinux!r} ignored: this host has no SELinux")
    return OciProcess(
        args,
        env=_env(proc, "env", "process.env"),
        cwd=os.path.normpath(cwd),
        terminal=_bool(proc, "terminal", "process.terminal"),
        console_size=console_size,  # type: ignore[arg-type]
        uid=uid,
        gid=gid,
        umask=umask,
        additional_gids=gids,
        capabilities=None if caps is None else _capabilities(caps, "process.capabilities"),
        rlimits=_rlimits(proc, "process.rlimits"),
        no_new_privileges=_bool(proc, "noNewPrivileges", "process.noNewPrivileges"),
        oom_score_adj=None if oom is None else _int(oom, "process.oomScoreAdj", -1000, 1000),
        apparmor_profile=apparmor,
        selinux_label=selinux,
    )


def _mounts(doc: dict, bundle: str, warnings: list[str]) -> list[OciMount]:
    out = []
    for i, item in enumerate(_opt_list(doc, "mounts", "mounts")):
        p = f"mounts[{i}]"
        item = _obj(item, p)
        if item.get("destination") is None:
            raise _err(f"{p}.destination", "required: the absolute path of the mount in the container")
        dest = _abs(item["destination"], f"{p}.destination")
        options = _str_list(item, "options", f"{p}.options")
        for opt in options:
            if opt in IGNORED_OPTIONS:
                warnings.append(f"{p}.options: {opt!r} ignored on {dest}: {IGNORED_OPTIONS[opt]}")
        mount = OciMount(
            dest,
            _opt_str(item, "type", f"{p}.type") or "",
            _opt_str(item, "source", f"{p}.source") or "",
            options,
        )
        mount.uid_mappings = _mappings(item, "uidMappings", p)
        mount.gid_mappings = _mappings(item, "gidMappings", p)
        if mount.id_mapped:
            if not mount.is_bind:
                raise _err(p, f"an id-mapped mount must be a bind mount (add the bind option on {dest})")
            if bool(mount.uid_mappings) != bool(mount.gid_mappings):
                raise _err(p, "an id-mapped mount needs both uidMappings and gidMappings")
        if mount.is_bind:
            if not mount.source:
                raise _err(f"{p}.source", f"required for a bind mount: the host path to mount on {dest}")
            mount.source = os.path.normpath(os.path.join(bundle, mount.source))
        elif not mount.type:
            raise _err(
                f"{p}.type", f'required for a mount that is not a bind mount (e.g. "tmpfs" for {dest})'
            )
        out.append(mount)
    return out


def _hooks(doc: dict) -> dict[str, list[OciHook]]:
    hooks: dict[str, list[OciHook]] = {k: [] for k in HOOK_KINDS}
    section = _opt_obj(doc, "hooks", "hooks") or {}
    for kind in HOOK_KINDS:
        for i, item in enumerate(_opt_list(section, kind, f"hooks.{kind}")):
            p = f"hooks.{kind}[{i}]"
            item = _obj(item, p)
            if item.get("path") is None:
                raise _err(f"{p}.path", "required: the absolute path of the hook's executable on the host")
            path = _str(item["path"], f"{p}.path")
            if not path.startswith("/"):
                raise _err(f"{p}.path", f"must be an absolute path, not {_show(path)}")
            timeout = item.get("timeout")
            if timeout is not None:
                timeout = _int(timeout, f"{p}.timeout", 1, _I64_MAX)
            hooks[kind].append(
                OciHook(path, _str_list(item, "args", f"{p}.args"), _env(item, "env", f"{p}.env"), timeout)
            )
    return hooks


def _namespaces(linux: dict) -> dict[str, str]:
    out: dict[str, str] = {}
    where: dict[str, int] = {}
    for i, item in enumerate(_opt_list(linux, "namespaces", "linux.namespaces")):
        p = f"linux.namespaces[{i}]"
        item = _obj(item, p)
        if item.get("type") is None:
            raise _err(f"{p}.type", f"required (use one of {', '.join(NAMESPACE_TYPES)})")
        kind = _str(item["type"], f"{p}.type")
        if kind not in NAMESPACES:
            raise _err(
                f"{p}.type", f"unknown namespace type {_show(kind)} (use one of {', '.join(NAMESPACE_TYPES)})"
            )
        if kind in out:
            raise _err(
                f"{p}.type", f"duplicate {kind} namespace (already given by linux.namespaces[{where[kind]}])"
            )
        path = _opt_str(item, "path", f"{p}.path") or ""
        if path and not path.startswith("/"):
            raise _err(f"{p}.path", f"must be an absolute path, not {_show(path)}")
        out[kind] = path
        where[kind] = i
    return out


def _mappings(parent: dict, key: str, where: str = "linux") -> list[tuple[int, int, int]]:
    out: list[tuple[int, int, int]] = []
    for i, item in enumerate(_opt_list(parent, key, f"{where}.{key}")):
        p = f"{where}.{key}[{i}]"
        item = _obj(item, p)
        triple = []
        for field in ("containerID", "hostID", "size"):
            if item.get(field) is None:
                raise _err(f"{p}.{field}", "required (an integer)")
            lo = 1 if field == "size" else 0
            triple.append(_int(item[field], f"{p}.{field}", lo, _U32_MAX))
        c, h, s = triple
        for start, what in ((c, "containerID"), (h, "hostID")):
            if start + s > _U32_MAX + 1:
                raise _err(f"{p}.size", f"{what} {start} + size {s} runs past {_U32_MAX}")
        for j, (c2, h2, s2) in enumerate(out):
            if c < c2 + s2 and c2 < c + s:
                raise _err(p, f"container ids {c}-{c + s - 1} overlap {where}.{key}[{j}]")
            if h < h2 + s2 and h2 < h + s:
                raise _err(p, f"host ids {h}-{h + s - 1} overlap {where}.{key}[{j}]")
        out.append((c, h, s))
    return out


def _devices(linux: dict) -> list[OciDevice]:
    out = []
    for i, item in enumerate(_opt_list(linux, "devices", "linux.devices")):
        p = f"linux.devices[{i}]"
        item = _obj(item, p)
        if item.get("path") is None:
            raise _err(f"{p}.path", "required: the device's absolute path in the container")
        path = _abs(item["path"], f"{p}.path")
        if item.get("type") is None:
            raise _err(f"{p}.type", "required (use c, b, u or p)")
        kind = _str(item["type"], f"{p}.type")
        if kind not in DEVICE_TYPES:
            raise _err(f"{p}.type", f"unknown device type {_show(kind)} (use c, b, u or p)")
        numbers = []
        for key in ("major", "minor"):
            if item.get(key) is None:
                if kind != "p":
                    raise _err(f"{p}.{key}", f"required for a device of type {kind}")
                numbers.append(0)
            else:
                numbers.append(_int(item[key], f"{p}.{key}", 0, _U32_MAX))
        mode = item.get("fileMode")
        out.append(
            OciDevice(
                path,
                kind,
                numbers[0],
                numbers[1],
                None if mode is None else _int(mode, f"{p}.fileMode", 0, 0o7777),
                None if item.get("uid") is None else _id(item["uid"], f"{p}.uid"),
                None if item.get("gid") is None else _id(item["gid"], f"{p}.gid"),
            )
        )
    return out


def _resources(linux: dict) -> dict | None:
    resources = _opt_obj(linux, "resources", "linux.resources")
    if resources is None:
        return None
    from ..cgroups.resources import Resources  # checked now, so that a bad limit fails before anything exists

    try:
        Resources.from_oci(resources)
    except InvalidArgument as e:  # worded after docker's flags: put the JSON path in front
        message = str(e).removeprefix("invalid resources: ")
        raise _err("linux.resources", message) from None
    if "devices" in resources:
        from ..cgroups.devices import parse_oci

        try:
            parse_oci(resources["devices"])
        except InvalidArgument as e:
            raise _err("", str(e)) from None
    return resources


def _cgroups_path(linux: dict) -> str | None:
    path = _opt_str(linux, "cgroupsPath", "linux.cgroupsPath") or None
    if path is not None:
        # "/libpod_parent/libpod-ID" (cgroupfs) or "machine.slice:libpod:ID" (systemd): never upwards.
        parts = path.replace(":", "/").split("/")
        if ".." in parts:
            raise _err("linux.cgroupsPath", f"must not contain '..': {_show(path)}")
    return path


def _sysctl(linux: dict, namespaces: dict[str, str]) -> dict[str, str]:
    sysctl = _str_map(linux, "sysctl", "linux.sysctl")
    for key in sysctl:
        # A key becomes a path beneath /proc/sys: no "/", and no empty component (so no ".." either).
        if not key or not _SYSCTL_CHARS.issuperset(key) or "" in key.split("."):
            raise _err(
                _key("linux.sysctl", key),
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
            raise _err(
                _key("linux.sysctl", key),
                "not a namespaced sysctl: setting it would change the host "
                "(allowed: net.*, fs.mqueue.*, kernel.msg*/sem/shm*, kernel.hostname, kernel.domainname)",
            )
        if needs not in namespaces:
            raise _err(
                _key("linux.sysctl", key),
                f'needs a {needs} namespace (add {{"type": "{needs}"}} to '
                "linux.namespaces), or it would change the host",
            )
    return sysctl


def _path_list(linux: dict, key: str) -> list[str] | None:
    if linux.get(key) is None:
        return None
    return [_abs(v, f"linux.{key}[{i}]") for i, v in enumerate(_list(linux[key], f"linux.{key}"))]


def _seccomp(linux: dict) -> dict | None:
    sec = _opt_obj(linux, "seccomp", "linux.seccomp")
    if sec is None:
        return None
    if sec.get("defaultAction") is None:
        raise _err("linux.seccomp.defaultAction", f"required (use one of {', '.join(SECCOMP_ACTIONS)})")
    _seccomp_action(sec["defaultAction"], "linux.seccomp.defaultAction")
    if sec.get("defaultErrnoRet") is not None:
        _int(sec["defaultErrnoRet"], "linux.seccomp.defaultErrnoRet", 0, _U32_MAX)
    for i, arch in enumerate(_str_list(sec, "architectures", "linux.seccomp.architectures")):
        if not arch.startswith("SCMP_ARCH_"):
            raise _err(
                f"linux.seccomp.architectures[{i}]",
                f"unknown architecture {_show(arch)} (use an SCMP_ARCH_* name, e.g. SCMP_ARCH_X86_64)",
            )
    _str_list(sec, "flags", "linux.seccomp.flags")
    listener = _opt_str(sec, "listenerPath", "linux.seccomp.listenerPath")
    if listener and not listener.startswith("/"):
        raise _err("linux.seccomp.listenerPath", f"must be an absolute path, not {_show(listener)}")
    for i, rule in enumerate(_opt_list(sec, "syscalls", "linux.seccomp.syscalls")):
        p = f"linux.seccomp.syscalls[{i}]"
        rule = _obj(rule, p)
        names = rule.get("names")
        if not isinstance(names, list) or not names:
            raise _err(f"{p}.names", "must be a non-empty list of system call names")
        _str_list(rule, "names", f"{p}.names")
        if rule.get("action") is None:
            raise _err(f"{p}.action", f"required (use one of {', '.join(SECCOMP_ACTIONS)})")
        _seccomp_action(rule["action"], f"{p}.action")
        if rule.get("errnoRet") is not None:
            _int(rule["errnoRet"], f"{p}.errnoRet", 0, _U32_MAX)
        for j, arg in enumerate(_opt_list(rule, "args", f"{p}.args")):
            q = f"{p}.args[{j}]"
            arg = _obj(arg, q)
            _int(arg.get("index"), f"{q}.index", 0, 5)
            _int(arg.get("value"), f"{q}.value", 0, _U64_MAX)
            if arg.get("valueTwo") is not None:
                _int(arg["valueTwo"], f"{q}.valueTwo", 0, _U64_MAX)
            op = _str(arg.get("op"), f"{q}.op")
            if op not in SECCOMP_OPERATORS:
                raise _err(
                    f"{q}.op", f"unknown operator {_show(op)} (use one of {', '.join(SECCOMP_OPERATORS)})"
                )
    return sec


def _seccomp_action(value: object, path: str) -> None:
    action = _str(value, path)
    if action not in SECCOMP_ACTIONS:
        raise _err(path, f"unknown action {_show(action)} (use one of {', '.join(SECCOMP_ACTIONS)})")


def _personality(linux: dict) -> dict | None:
    pers = _opt_obj(linux, "personality", "linux.personality")
    if pers is None:
        return None
    domain = _str(pers.get("domain"), "linux.personality.domain")
    if domain not in PERSONALITY_DOMAINS:
        raise _err("linux.personality.domain", f"unknown domain {_show(domain)} (use LINUX or LINUX32)")
    if _str_list(pers, "flags", "linux.personality.flags"):
        raise _err("linux.personality.flags", "no personality flags are defined (leave the list empty)")
    return pers


def _time_offsets(linux: dict, namespaces: dict[str, str]) -> TimeOffsets | None:
    offsets = _opt_obj(linux, "timeOffsets", "linux.timeOffsets")
    if not offsets:
        return None
    if namespaces.get("time") != "":
        raise _err(
            "linux.timeOffsets",
            'needs a new time namespace (add {"type": "time"} to linux.namespaces, without a path)',
        )
    clocks: dict[str, tuple[int, int]] = {}
    for clock, value in offsets.items():
        p = _key("linux.timeOffsets", clock)
        if clock not in TIME_CLOCKS:
            raise _err(p, f"unknown clock {_show(clock)} (use monotonic or boottime)")
        value = _obj(value, p)
        secs, nanosecs = value.get("secs"), value.get("nanosecs")
        if secs is not None:
            _int(secs, f"{p}.secs", _I64_MIN, _I64_MAX)
        if nanosecs is not None:
            _int(nanosecs, f"{p}.nanosecs", 0, 999_999_999)
        clocks[clock] = (secs or 0, nanosecs or 0)
    return TimeOffsets(**clocks)


def parse(doc: dict, bundle: str) -> OciSpec:
    """Validate ``doc`` (a decoded config.json) and build the model; relative paths are taken from ``bundle``.

    Pure: nothing on disk is looked at but, when a profile or label is given, whether the host has
    AppArmor or SELinux (``load_bundle`` also checks that the root filesystem exists).
    """
    if not isinstance(doc, dict):
        raise _err("", f"must be a JSON object, not {_kind(doc)}")
    bundle = os.path.abspath(bundle)
    spec = OciSpec()
    spec.raw = doc
    spec.bundle = bundle
    spec.oci_version, spec.warnings = _version(doc)
    _refuse_unsupported(doc)

    root = _opt_obj(doc, "root", "root")
    if root is None or root.get("path") is None:
        raise _err(
            "root.path", 'required: the root filesystem\'s directory, relative to the bundle (e.g. "rootfs")'
        )
    path = _str(root["path"], "root.path")
    if not path:
        raise _err("root.path", 'must not be empty (e.g. "rootfs")')
    spec.root_path = os.path.normpath(os.path.join(bundle, path))
    spec.root_readonly = _bool(root, "readonly", "root.readonly")

    if doc.get("process") is not None:
        spec.process = _process(doc["process"], spec.warnings)
    spec.mounts = _mounts(doc, bundle, spec.warnings)
    spec.hooks = _hooks(doc)
    spec.annotations = _str_map(doc, "annotations", "annotations")

    linux = _opt_obj(doc, "linux", "linux") or {}
    spec.namespaces = _namespaces(linux)
    for key in ("hostname", "domainname"):
        value = _opt_str(doc, key, key)
        if value is not None:
            if len(value.encode()) > 64:
                raise _err(key, f"at most 64 bytes, not {len(value.encode())}")
            if value and "uts" not in spec.namespaces:
                raise _err(
                    key,
                    'setting one needs a uts namespace (add {"type": "uts"} to linux.namespaces), '
                    "or it would change the host's",
                )
        setattr(spec, key, value)

    spec.uid_mappings = _mappings(linux, "uidMappings")
    spec.gid_mappings = _mappings(linux, "gidMappings")
    mapped = bool(spec.uid_mappings or spec.gid_mappings)
    if "user" not in spec.namespaces:
        if mapped:
            which = "uidMappings" if spec.uid_mappings else "gidMappings"
            raise _err(
                f"linux.{which}",
                'id mappings need a user namespace (add {"type": "user"} to linux.namespaces)',
            )
    elif spec.namespaces["user"]:
        if mapped:
            spec.warnings.append(
                "linux.uidMappings/gidMappings ignored: the user namespace is joined "
                f"({spec.namespaces['user']}), so its own mappings apply"
            )
    elif not spec.uid_mappings or not spec.gid_mappings:
        which = "uidMappings" if not spec.uid_mappings else "gidMappings"
        raise _err(
            f"linux.{which}",
            "a new user namespace needs both uidMappings and gidMappings (e.g. "
            '[{"containerID": 0, "hostID": 1000, "size": 1}]), or a path to join one',
        )

    for i, m in enumerate(spec.mounts):
        if m.id_mapped and not m.uid_mappings:
            if not spec.uid_mappings:
                raise _err(
                    f"mounts[{i}]",
                    f"the idmap option on {m.destination} without uidMappings/gidMappings of the mount "
                    "takes the container's, and it has none (add mappings to the mount, or a new user "
                    "namespace with linux.uidMappings/gidMappings)",
                )
            m.uid_mappings, m.gid_mappings = list(spec.uid_mappings), list(spec.gid_mappings)

    from .. import procattr

    spec.proc_attrs = procattr.check(doc)
    spec.devices = _devices(linux)
    spec.resources = _resources(linux)
    spec.cgroups_path = _cgroups_path(linux)
    spec.sysctl = _sysctl(linux, spec.namespaces)
    spec.masked_paths = _path_list(linux, "maskedPaths")
    spec.readonly_paths = _path_list(linux, "readonlyPaths")
    prop = _opt_str(linux, "rootfsPropagation", "linux.rootfsPropagation") or None
    if prop is not None and prop not in ROOTFS_PROPAGATIONS:
        raise _err(
            "linux.rootfsPropagation",
            f"unknown propagation {_show(prop)} (use shared, slave, private or unbindable)",
        )
    spec.rootfs_propagation = prop
    spec.seccomp = _seccomp(linux)
    spec.personality = _personality(linux)
    spec.time_offsets = _time_offsets(linux, spec.namespaces)
    spec.mount_label = _opt_str(linux, "mountLabel", "linux.mountLabel") or None
    if spec.mount_label and not _selinux_enabled():
        spec.warnings.append(f"selinux mount label {spec.mount_label!r} ignored: this host has no SELinux")
    if "mount" not in spec.namespaces:
        _check_no_mounts(spec)
    return spec


def _check_no_mounts(spec: OciSpec) -> None:
    """A config that inherits the runtime's mount namespace gets a chroot into its root and nothing else
    (as with runc): every mount it asks for would be made in the host's namespace."""
    asked = [
        (key, present)
        for key, present in (
            ("mounts", spec.mounts),
            ("linux.maskedPaths", spec.masked_paths),
            ("linux.readonlyPaths", spec.readonly_paths),
            ("linux.devices", spec.devices),
            ("root.readonly", spec.root_readonly),
            ("linux.rootfsPropagation", spec.rootfs_propagation),
        )
        if present
    ]
    if asked:
        raise _err(
            asked[0][0],
            "needs a mount namespace of the container's own: without one (linux.namespaces has no "
            '"mount") it would be mounted on the host; add {"type": "mount"} or leave it out',
        )


# -- files ----------------------------------------------------------------------------------------
def _apparmor_enabled() -> bool:
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            return f.read().strip() == "Y" and os.path.isdir("/sys/kernel/security/apparmor")
    except OSError:
        return False


def _selinux_enabled() -> bool:
    return os.path.exists("/sys/fs/selinux/enforce")


def decode(data: bytes) -> dict:
    """config.json's bytes -> its document, with a line and column for malformed JSON."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _err("", f"not UTF-8 text (bad byte at offset {e.start})") from None
    try:
        doc = fastjson.loads(text)
    except ValueError:
        import json  # only on the error path: it costs ~5 ms to import

        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise _err("", f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    if not isinstance(doc, dict):
        raise _err("", f"must be a JSON object, not {_kind(doc)}")
    return doc


def load_bundle(bundle: str) -> OciSpec:
    """Read and validate ``<bundle>/config.json``; its root filesystem must be a directory."""
    bundle = os.path.abspath(bundle)
    hint = "run 'pycontain spec' in the bundle directory to write one"
    if not os.path.isdir(bundle):
        raise NotFound(
            f"bundle directory {bundle} does not exist (create it, put the root filesystem in it, and {hint})"
        )
    path = os.path.join(bundle, DOC)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise NotFound(f"no {DOC} in bundle {bundle} ({hint})") from None
    except PermissionError:
        raise PermissionDenied(
            f"cannot read {path}: permission denied (run pycontain as root, or fix its permissions)"
        ) from None
    except OSError as e:
        raise _err("", f"cannot read {path}: {e.strerror}") from None
    spec = parse(decode(data), bundle)
    if not os.path.isdir(spec.root_path):
        raise NotFound(
            f"{DOC}: root.path: no directory at {spec.root_path} (unpack a root filesystem there, or "
            "point root.path at one)"
        )
    return spec


def load_process(path: str) -> OciProcess:
    """An OCI process.json (``exec --process FILE``): the ``process`` object of a config.json on its own."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise NotFound(f"no process file at {path}") from None
    except OSError as e:
        raise _err("", f"cannot read {path}: {e.strerror}") from None
    doc = decode(data)
    proc = _process(doc, [])
    from .. import procattr

    proc.proc_attrs = procattr.check({"process": doc})
    return proc
