"""Read and validate an OCI bundle's ``config.json`` into an :class:`~pycontain.spec.model.OciSpec`.

The document, its process, mounts and hooks here; the ``linux`` object in ``linux``; the typed field
readers both use in ``fields``.

A bad field is one :class:`~pycontain.errors.ConfigError` line that starts with the JSON path of the field at fault
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
from ..errors import NotFound, PermissionDenied, Unsupported
from ..security.caps import CAPABILITIES  # one table: security.caps's (its imports are light)
from . import linux as linux_section
from .fields import (
    DOC,
    I64_MAX,
    U64_MAX,
    absolute,
    boolean,
    env_list,
    err,
    ident,
    integer,
    kind_of,
    obj,
    opt_array,
    opt_obj,
    opt_string,
    show,
    str_map,
    string,
    strings,
)
from .model import (
    HOOK_KINDS,
    IGNORED_OPTIONS,
    OciHook,
    OciMount,
    OciProcess,
    OciSpec,
)

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


def _unsupported(field: str, path: str | None = None) -> Unsupported:
    return Unsupported(
        f"{DOC}: {path or field}: {_UNSUPPORTED_WHAT[field]} is not supported by pycontain "
        f"(remove {path or field} to run without it)"
    )


def _version(doc: dict) -> tuple[str, list[str]]:
    if "ociVersion" not in doc or doc["ociVersion"] is None:
        raise err("ociVersion", f'required: the runtime-spec version the file follows, e.g. "{SPEC_VERSION}"')
    version = string(doc["ociVersion"], "ociVersion")
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
        raise err("ociVersion", f"{show(version)} is not a SemVer version such as {SPEC_VERSION}")
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
        raise err(
            path,
            "must be an object with bounding, effective, inheritable, permitted and ambient lists "
            f"of CAP_* names, not {kind_of(value)}",
        )
    out = {}
    for name in CAPABILITY_SETS:
        caps = strings(value, name, f"{path}.{name}")
        for i, cap in enumerate(caps):
            if cap not in _CAPS:
                hint = (
                    f"did you mean {cap.upper()}?"
                    if cap.upper() in _CAPS
                    else f"did you mean CAP_{cap.upper()}?"
                    if f"CAP_{cap.upper()}" in _CAPS
                    else "use a CAP_* name from capabilities(7), e.g. CAP_NET_BIND_SERVICE"
                )
                raise err(f"{path}.{name}[{i}]", f"unknown capability {show(cap)} ({hint})")
        out[name] = caps
    return out


def _rlimits(parent: dict, path: str) -> list[tuple[str, int, int]]:
    out: list[tuple[str, int, int]] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(opt_array(parent, "rlimits", path)):
        p = f"{path}[{i}]"
        item = obj(item, p)
        if item.get("type") is None:
            raise err(f"{p}.type", "required, e.g. RLIMIT_NOFILE")
        kind = string(item["type"], f"{p}.type")
        if kind not in RLIMITS:
            guess = kind.upper() if kind.upper().startswith("RLIMIT_") else f"RLIMIT_{kind.upper()}"
            hint = (
                f"did you mean {guess}?"
                if guess in RLIMITS
                else f"use an RLIMIT_* name from setrlimit(2): {', '.join(RLIMITS)}"
            )
            raise err(f"{p}.type", f"unknown rlimit {show(kind)} ({hint})")
        if kind in seen:
            raise err(f"{p}.type", f"duplicate rlimit {kind} (already set by {path}[{seen[kind]}])")
        seen[kind] = i
        for key in ("soft", "hard"):
            if item.get(key) is None:
                raise err(f"{p}.{key}", "required (an integer; 18446744073709551615 is unlimited)")
        soft = integer(item["soft"], f"{p}.soft", 0, U64_MAX)
        hard = integer(item["hard"], f"{p}.hard", 0, U64_MAX)
        if soft > hard:
            raise err(f"{p}.soft", f"{soft} is above the hard limit {hard}")
        out.append((kind, soft, hard))
    return out


def _process(value: object, warnings: list[str]) -> OciProcess:
    proc = obj(value, "process")
    args = proc.get("args")
    if not isinstance(args, list) or not args:
        raise err("process.args", "must be a non-empty list of strings")
    args = [string(a, f"process.args[{i}]") for i, a in enumerate(args)]
    if proc.get("cwd") is None:
        raise err("process.cwd", 'required: the working directory, an absolute path such as "/"')
    cwd = string(proc["cwd"], "process.cwd")
    if not cwd.startswith("/"):
        raise err("process.cwd", f"must be an absolute path, not {show(cwd)}")
    console = opt_obj(proc, "consoleSize", "process.consoleSize")
    console_size = None
    if console is not None:
        console_size = tuple(
            integer(console.get(k), f"process.consoleSize.{k}", 0, 65535) for k in ("height", "width")
        )
    user = opt_obj(proc, "user", "process.user") or {}
    uid = ident(user.get("uid", 0), "process.user.uid")
    gid = ident(user.get("gid", 0), "process.user.gid")
    umask = None if user.get("umask") is None else integer(user["umask"], "process.user.umask", 0, 0o777)
    gids = [
        ident(g, f"process.user.additionalGids[{i}]")
        for i, g in enumerate(opt_array(user, "additionalGids", "process.user.additionalGids"))
    ]
    caps = proc.get("capabilities")
    oom = proc.get("oomScoreAdj")
    apparmor = opt_string(proc, "apparmorProfile", "process.apparmorProfile") or None
    selinux = opt_string(proc, "selinuxLabel", "process.selinuxLabel") or None
    if apparmor and not _apparmor_enabled():
        warnings.append(f"apparmor profile {apparmor!r} ignored: this host has no AppArmor")
    if selinux and not _selinux_enabled():
        warnings.append(f"selinux label {selinux!r} ignored: this host has no SELinux")
    return OciProcess(
        args,
        env=env_list(proc, "env", "process.env"),
        cwd=os.path.normpath(cwd),
        terminal=boolean(proc, "terminal", "process.terminal"),
        console_size=console_size,  # type: ignore[arg-type]
        uid=uid,
        gid=gid,
        umask=umask,
        additional_gids=gids,
        capabilities=None if caps is None else _capabilities(caps, "process.capabilities"),
        rlimits=_rlimits(proc, "process.rlimits"),
        no_new_privileges=boolean(proc, "noNewPrivileges", "process.noNewPrivileges"),
        oom_score_adj=None if oom is None else integer(oom, "process.oomScoreAdj", -1000, 1000),
        apparmor_profile=apparmor,
        selinux_label=selinux,
    )


def _mounts(doc: dict, bundle: str, warnings: list[str]) -> list[OciMount]:
    out = []
    for i, item in enumerate(opt_array(doc, "mounts", "mounts")):
        p = f"mounts[{i}]"
        item = obj(item, p)
        if item.get("destination") is None:
            raise err(f"{p}.destination", "required: the absolute path of the mount in the container")
        dest = absolute(item["destination"], f"{p}.destination")
        options = strings(item, "options", f"{p}.options")
        for opt in options:
            if opt in IGNORED_OPTIONS:
                warnings.append(f"{p}.options: {opt!r} ignored on {dest}: {IGNORED_OPTIONS[opt]}")
        mount = OciMount(
            dest,
            opt_string(item, "type", f"{p}.type") or "",
            opt_string(item, "source", f"{p}.source") or "",
            options,
        )
        mount.uid_mappings = linux_section.mappings(item, "uidMappings", p)
        mount.gid_mappings = linux_section.mappings(item, "gidMappings", p)
        if mount.id_mapped:
            if not mount.is_bind:
                raise err(p, f"an id-mapped mount must be a bind mount (add the bind option on {dest})")
            if bool(mount.uid_mappings) != bool(mount.gid_mappings):
                raise err(p, "an id-mapped mount needs both uidMappings and gidMappings")
        if mount.is_bind:
            if not mount.source:
                raise err(f"{p}.source", f"required for a bind mount: the host path to mount on {dest}")
            mount.source = os.path.normpath(os.path.join(bundle, mount.source))
        elif not mount.type:
            raise err(f"{p}.type", f'required for a mount that is not a bind mount (e.g. "tmpfs" for {dest})')
        out.append(mount)
    return out


def _hooks(doc: dict) -> dict[str, list[OciHook]]:
    hooks: dict[str, list[OciHook]] = {k: [] for k in HOOK_KINDS}
    section = opt_obj(doc, "hooks", "hooks") or {}
    for kind in HOOK_KINDS:
        for i, item in enumerate(opt_array(section, kind, f"hooks.{kind}")):
            p = f"hooks.{kind}[{i}]"
            item = obj(item, p)
            if item.get("path") is None:
                raise err(f"{p}.path", "required: the absolute path of the hook's executable on the host")
            path = string(item["path"], f"{p}.path")
            if not path.startswith("/"):
                raise err(f"{p}.path", f"must be an absolute path, not {show(path)}")
            timeout = item.get("timeout")
            if timeout is not None:
                timeout = integer(timeout, f"{p}.timeout", 1, I64_MAX)
            hooks[kind].append(
                OciHook(path, strings(item, "args", f"{p}.args"), env_list(item, "env", f"{p}.env"), timeout)
            )
    return hooks


def parse(doc: dict, bundle: str) -> OciSpec:
    """Validate ``doc`` (a decoded config.json) and build the model; relative paths are taken from ``bundle``.

    Pure: nothing on disk is looked at but, when a profile or label is given, whether the host has
    AppArmor or SELinux (``load_bundle`` also checks that the root filesystem exists).
    """
    if not isinstance(doc, dict):
        raise err("", f"must be a JSON object, not {kind_of(doc)}")
    bundle = os.path.abspath(bundle)
    spec = OciSpec()
    spec.raw = doc
    spec.bundle = bundle
    spec.oci_version, spec.warnings = _version(doc)
    _refuse_unsupported(doc)

    root = opt_obj(doc, "root", "root")
    if root is None or root.get("path") is None:
        raise err(
            "root.path", 'required: the root filesystem\'s directory, relative to the bundle (e.g. "rootfs")'
        )
    path = string(root["path"], "root.path")
    if not path:
        raise err("root.path", 'must not be empty (e.g. "rootfs")')
    spec.root_path = os.path.normpath(os.path.join(bundle, path))
    spec.root_readonly = boolean(root, "readonly", "root.readonly")

    if doc.get("process") is not None:
        spec.process = _process(doc["process"], spec.warnings)
    spec.mounts = _mounts(doc, bundle, spec.warnings)
    spec.hooks = _hooks(doc)
    spec.annotations = str_map(doc, "annotations", "annotations")

    linux = opt_obj(doc, "linux", "linux") or {}
    spec.namespaces = linux_section.namespaces(linux)
    for key in ("hostname", "domainname"):
        value = opt_string(doc, key, key)
        if value is not None:
            if len(value.encode()) > 64:
                raise err(key, f"at most 64 bytes, not {len(value.encode())}")
            if value and "uts" not in spec.namespaces:
                raise err(
                    key,
                    'setting one needs a uts namespace (add {"type": "uts"} to linux.namespaces), '
                    "or it would change the host's",
                )
        setattr(spec, key, value)

    spec.uid_mappings = linux_section.mappings(linux, "uidMappings")
    spec.gid_mappings = linux_section.mappings(linux, "gidMappings")
    mapped = bool(spec.uid_mappings or spec.gid_mappings)
    if "user" not in spec.namespaces:
        if mapped:
            which = "uidMappings" if spec.uid_mappings else "gidMappings"
            raise err(
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
        raise err(
            f"linux.{which}",
            "a new user namespace needs both uidMappings and gidMappings (e.g. "
            '[{"containerID": 0, "hostID": 1000, "size": 1}]), or a path to join one',
        )

    for i, m in enumerate(spec.mounts):
        if m.id_mapped and not m.uid_mappings:
            if not spec.uid_mappings:
                raise err(
                    f"mounts[{i}]",
                    f"the idmap option on {m.destination} without uidMappings/gidMappings of the mount "
                    "takes the container's, and it has none (add mappings to the mount, or a new user "
                    "namespace with linux.uidMappings/gidMappings)",
                )
            m.uid_mappings, m.gid_mappings = list(spec.uid_mappings), list(spec.gid_mappings)

    from .. import procattr

    spec.proc_attrs = procattr.check(doc)
    spec.devices = linux_section.devices(linux)
    spec.resources = linux_section.resources(linux)
    spec.cgroups_path = linux_section.cgroups_path(linux)
    spec.sysctl = linux_section.sysctl(linux, spec.namespaces)
    spec.masked_paths = linux_section.path_list(linux, "maskedPaths")
    spec.readonly_paths = linux_section.path_list(linux, "readonlyPaths")
    prop = opt_string(linux, "rootfsPropagation", "linux.rootfsPropagation") or None
    if prop is not None and prop not in linux_section.ROOTFS_PROPAGATIONS:
        raise err(
            "linux.rootfsPropagation",
            f"unknown propagation {show(prop)} (use shared, slave, private or unbindable)",
        )
    spec.rootfs_propagation = prop
    spec.seccomp = linux_section.seccomp(linux)
    spec.personality = linux_section.personality(linux)
    spec.time_offsets = linux_section.time_offsets(linux, spec.namespaces)
    spec.mount_label = opt_string(linux, "mountLabel", "linux.mountLabel") or None
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
        raise err(
            asked[0][0],
            "needs a mount namespace of the container's own: without one (linux.namespaces has no "
            '"mount") it would be mounted on the host; add {"type": "mount"} or leave it out',
        )


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
        raise err("", f"not UTF-8 text (bad byte at offset {e.start})") from None
    try:
        doc = fastjson.loads(text)
    except ValueError as e:
        if str(e) == fastjson.NESTED:
            raise err("", f"invalid JSON: {e}") from None
        import json  # only on the error path: it costs ~5 ms to import

        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise err("", f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    if not isinstance(doc, dict):
        raise err("", f"must be a JSON object, not {kind_of(doc)}")
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
        raise err("", f"cannot read {path}: {e.strerror}") from None
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
        raise err("", f"cannot read {path}: {e.strerror}") from None
    doc = decode(data)
    proc = _process(doc, [])
    from .. import procattr

    proc.proc_attrs = procattr.check({"process": doc})
    return proc
