"""docker-style options → an OCI spec: where a ``pycontain run`` flag becomes an OCI field.

``api.make_config`` (the CLI and the Python API) and the image builder come here; bundles come through
``spec.bundle``; both then go through the one conversion ``config_check.from_spec``. What docker gives every
container and a bundle lists itself becomes OCI mounts here (``builtin_mounts``): /proc, /sys,
/sys/fs/cgroup, /dev with devpts, shm and mqueue, and a /tmp where the image has none; ``-v``, ``--mount``
and ``--tmpfs`` become OCI mounts too (``volume``, ``mount``, ``tmpfs``), limits ``linux.resources``,
the image's layers and defaults the process and the root. The rootless policy is decided here as well:
a rootless container gets tmpfs scratch directories (its image's owners are unmapped) and no cgroup view
without a delegated cgroup.

Plain functions over ``spec.model``'s ``__slots__`` classes: this module is on ``pycontain run``'s start path.
"""

from __future__ import annotations

import os

from .. import SPEC_VERSION
from ..errors import InvalidArgument, NotFound, PermissionDenied
from ..users import MAX_ID
from .model import OciDevice, OciMount, OciProcess, OciSpec

# typing.TYPE_CHECKING without importing typing; type checkers know the idiom.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..config import ContainerConfig
    from ..userns import IdMappings

_PROC_SYS_OPTIONS = ["nosuid", "nodev", "noexec"]
# docker's --tmpfs takes these as the kernel's flags: suid, dev and exec leave the defaults (nosuid, nodev) as
# they are, and the rest go to the tmpfs as its data
_TMPFS_FLAG_OPTIONS = ("ro", "rw", "noexec", "exec", "nosuid", "suid", "nodev", "dev")
_TMPFS_OPTIONS = ("size", "mode", "uid", "gid", "nr_inodes", *_TMPFS_FLAG_OPTIONS)
_TMPFS_VALUED = {
    "size": "a size such as 64m, or a percentage of memory such as 50%",
    "nr_inodes": "a number, optionally with k, m or g",
    "mode": "octal permissions such as 1777",
    "uid": "a numeric user id",
    "gid": "a numeric group id",
}
# Where a rootless container gets a tmpfs: the image's directories belong to host ids its user namespace
# does not map, and overlayfs cannot copy them up under an owner it cannot map (EOVERFLOW).
_ROOTLESS_SCRATCH = (("/tmp", "1777"), ("/var/tmp", "1777"), ("/run", "755"), ("/root", "700"))


# docker's default: a network namespace of the container's own, on a bridge, with NAT out. Not for OCI
# bundles (their config.json says which namespaces they get) nor for the Python API's run, start and
# Sandbox (network None: only lo).
DEFAULT_NETWORK = "bridge"


def network_for(requested: str | None, *, rootless: bool) -> str:
    """``pycontain run``'s network: the one asked for, else docker's bridge; a rootless container gets none
    (its default) or host: bridges, veths and NAT need root."""
    if not rootless:
        return requested or DEFAULT_NETWORK
    if requested not in (None, "none", "host"):
        raise PermissionDenied(
            f"--network {requested}: rootless containers get none (loopback only) or host; bridges, "
            "veths and NAT need root"
        )
    return requested or "none"


# -- -v, --mount, --tmpfs ----------------------------------------------------------------------------
def bind(source: str, target: str, readonly: bool = False) -> OciMount:
    """A recursive bind mount of a host path (docker's -v)."""
    return OciMount(target, "bind", source, ["rbind", "ro"] if readonly else ["rbind"])


def volume(spec: str) -> OciMount:
    """``HOST:CTR[:ro|rw]`` → a bind mount. Host paths must be absolute, as with docker's bind mounts; a
    source that is a name (``data:/var/lib/db``) is a named volume, created on first use."""
    parts = spec.split(":")
    mode = ""
    if len(parts) == 3:
        mode = parts.pop()
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise InvalidArgument(f"invalid volume {spec!r}: expected HOST:CONTAINER[:ro]")
    host, target = parts
    if mode not in ("", "ro", "rw"):
        raise InvalidArgument(f"invalid volume mode {mode!r} in {spec!r}: use 'ro' or 'rw'")
    if not host.startswith("/"):
        from .. import volumes

        if not volumes.is_name(host):
            raise InvalidArgument(
                f"invalid volume {spec!r}: the host path must be absolute (or a volume's name: letters, "
                "digits, '_', '.', '-')"
            )
        _check_target(target, spec)
        host = volumes.create(host)["Mountpoint"]
    _check_target(target, spec)
    return bind(os.path.abspath(host), os.path.normpath(target), readonly=mode == "ro")


def _check_target(target: str, spec: str) -> None:
    if not target.startswith("/"):
        raise InvalidArgument(f"invalid volume {spec!r}: the container path must be absolute")
    if not os.path.normpath(target).strip("/"):
        # Over the container's root it would hide the image, and its mount points would be made in the host's
        # directory.
        raise InvalidArgument(f"invalid volume {spec!r}: the container path cannot be '/'")


def mount(spec: str) -> OciMount:
    """docker's ``--mount type=bind|volume|tmpfs,source=...,target=...[,readonly][,tmpfs-size=64m]``."""
    fields: dict[str, str] = {}
    for item in spec.split(","):
        key, eq, value = item.partition("=")
        key = key.strip()
        if key in ("readonly", "ro") and not eq:
            value = "true"
        elif not eq:
            raise InvalidArgument(f"invalid --mount {spec!r}: {item!r} is not KEY=VALUE")
        key = {"src": "source", "dst": "target", "destination": "target", "ro": "readonly"}.get(key, key)
        if key not in ("type", "source", "target", "readonly", "tmpfs-size", "tmpfs-mode"):
            raise InvalidArgument(
                f"invalid --mount {spec!r}: unknown field {key!r} (type, source, target, readonly, "
                "tmpfs-size, tmpfs-mode)"
            )
        fields[key] = value
    kind = fields.get("type", "volume")
    target = fields.get("target")
    if not target:
        raise InvalidArgument(f"invalid --mount {spec!r}: target=PATH is required")
    readonly = fields.get("readonly", "false").lower()
    if readonly not in ("true", "false", "1", "0"):
        raise InvalidArgument(f"invalid --mount {spec!r}: readonly is true or false")
    mode = ":ro" if readonly in ("true", "1") else ""
    if kind == "tmpfs":
        if "source" in fields or mode:
            raise InvalidArgument(f"invalid --mount {spec!r}: a tmpfs has no source and is writable")
        opts = [f"size={fields['tmpfs-size']}"] if "tmpfs-size" in fields else []
        opts += [f"mode={fields['tmpfs-mode']}"] if "tmpfs-mode" in fields else []
        return tmpfs(target + (":" + ",".join(opts) if opts else ""))
    if kind not in ("bind", "volume"):
        raise InvalidArgument(f"invalid --mount {spec!r}: type is bind, volume or tmpfs, not {kind!r}")
    if any(k.startswith("tmpfs-") for k in fields):
        raise InvalidArgument(f"invalid --mount {spec!r}: tmpfs-* fields go with type=tmpfs")
    source = fields.get("source", "")
    if kind == "bind":
        if not source.startswith("/"):
            raise InvalidArgument(f"invalid --mount {spec!r}: a bind mount's source must be an absolute path")
        if not os.path.exists(source):
            raise NotFound(f"invalid --mount {spec!r}: the bind source {source} does not exist")
    else:
        from .. import volumes

        if source.startswith("/") or (source and not volumes.is_name(source)):
            raise InvalidArgument(f"invalid --mount {spec!r}: a volume's source is its name")
        source = source or volumes.create()["Name"]  # anonymous: a new volume of its own
    return volume(f"{source}:{target}{mode}")


def tmpfs(spec: str) -> OciMount:
    """``PATH[:OPTIONS]`` → a tmpfs, e.g. ``/run:size=64m,mode=755``: nosuid and nodev, mode 1777 unless
    a mode is given."""
    target, _, options = spec.partition(":")
    if not target.startswith("/"):
        raise InvalidArgument(f"invalid --tmpfs {spec!r}: the path must be absolute")
    if not os.path.normpath(target).strip("/"):
        raise InvalidArgument(
            f"invalid --tmpfs {spec!r}: the path cannot be '/' (use --read-only for a read-only root)"
        )
    flags = ["nosuid", "nodev"]
    data = []
    for opt in filter(None, options.split(",")):
        key, eq, value = opt.partition("=")
        if key not in _TMPFS_OPTIONS:
            raise InvalidArgument(f"invalid --tmpfs option {opt!r} in {spec!r}")
        # Checked here: the kernel's EINVAL would only come from inside the container, naming no option.
        problem = _tmpfs_option_problem(key, eq, value)
        if problem:
            raise InvalidArgument(f"invalid --tmpfs option {opt!r} in {spec!r}: {problem}")
        if key in ("ro", "noexec"):
            flags.append(key)
        elif key not in _TMPFS_FLAG_OPTIONS:
            data.append(opt)
    if not any(o.startswith("mode=") for o in data):
        data.append("mode=1777")
    return OciMount(os.path.normpath(target), "tmpfs", "tmpfs", flags + data)


def _tmpfs_option_problem(key: str, eq: str, value: str) -> str | None:
    """What is wrong with a known --tmpfs option's value, or None."""
    if key not in _TMPFS_VALUED:
        return "this flag takes no value" if eq else None
    hint = f"use {_TMPFS_VALUED[key]}"
    if not value or not value.isascii():
        return hint
    if key == "mode":
        ok = len(value) <= 4 and all(c in "01234567" for c in value)
    elif key in ("uid", "gid"):
        ok = value.isdigit() and len(value) <= 10 and int(value) <= MAX_ID
    else:
        number = value[:-1] if value[-1] in ("kKmMgGtTpPeE%" if key == "size" else "kKmMgG") else value
        ok = number.isdigit() and len(number) <= 18
    return None if ok else hint


# -- what every docker-style container gets ----------------------------------------------------------
def builtin_mounts(
    user_mounts: list[OciMount], layers: list[str], *, rootless: bool, cgroup: bool
) -> list[OciMount]:
    """docker's own mounts, after the user's binds and before the user's tmpfs mounts: /proc, /sys, the
    container's cgroups at /sys/fs/cgroup (``cgroup``: it will have one), /dev unless a bind mount brings
    one, and tmpfs scratch directories (rootless) or a /tmp where the image has none."""
    out = [
        OciMount("/proc", "proc", "proc", list(_PROC_SYS_OPTIONS)),
        OciMount("/sys", "sysfs", "sysfs", [*_PROC_SYS_OPTIONS, "ro"]),
    ]
    if cgroup:
        out.append(OciMount("/sys/fs/cgroup", "cgroup", "cgroup", [*_PROC_SYS_OPTIONS, "ro"]))
    # docker's -v /dev:/dev shows the host's /dev, not a tmpfs over it
    if not any(m.is_bind and os.path.normpath(m.destination) == "/dev" for m in user_mounts):
        out += dev_mounts(rootless)
    if rootless:
        for d, mode in _ROOTLESS_SCRATCH:
            if d == "/tmp" or _in_image(layers, d):
                out.append(OciMount(d, "tmpfs", "tmpfs", ["nosuid", "nodev", f"mode={mode}"]))
    elif not _in_image(layers, "/tmp"):
        out.append(OciMount("/tmp", "tmpfs", "tmpfs", ["nosuid", "nodev", "mode=1777"]))
    return out


def dev_mounts(rootless: bool) -> list[OciMount]:
    """A private /dev (its nodes are made by rootfs.build), a fresh devpts, shm and mqueue."""
    # gid=5 (tty) must be mapped in the mount's user namespace: a rootless one maps only the user's own group
    devpts = ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"] + (
        [] if rootless else ["gid=5"]
    )
    return [
        OciMount("/dev", "tmpfs", "tmpfs", ["nosuid", "strictatime", "mode=755", "size=65536k"]),
        OciMount("/dev/pts", "devpts", "devpts", devpts),
        OciMount("/dev/shm", "tmpfs", "shm", [*_PROC_SYS_OPTIONS, "mode=1777", "size=65536k"]),
        OciMount("/dev/mqueue", "mqueue", "mqueue", list(_PROC_SYS_OPTIONS)),
    ]


def network_mounts(files_dir: str) -> list[OciMount]:
    """The container's own hosts, resolv.conf and hostname (a bridge network writes them) over /etc's."""
    return [
        bind(os.path.join(files_dir, name), "/etc/" + name) for name in ("hosts", "resolv.conf", "hostname")
    ]


def make_bind_sources(mounts: list[OciMount]) -> None:
    """docker's -v creates a missing host directory (once the container's config is valid)."""
    for m in mounts:
        if m.is_bind and not os.path.exists(m.source):
            os.makedirs(m.source, mode=0o755, exist_ok=True)


def _in_image(layers: list[str], path: str) -> bool:
    """Whether some layer of the image holds the directory ``path``."""
    return any(os.path.isdir(os.path.join(layer, path.lstrip("/"))) for layer in layers)


# -- the spec ------------------------------------------------------------------------------------------
def to_spec(
    layers: list[str],
    args: list[str],
    *,
    env: list[str],
    cwd: str,
    user: str | None,
    hostname: str | None,
    mounts: list[OciMount],
    read_only: bool,
    resources: dict | None,
    network: str | None,
    id_mappings: IdMappings | None,
) -> OciSpec:
    """The OCI spec of a docker-style container of ``layers`` (lowest first): the user's binds, docker's own
    mounts, the user's tmpfs mounts, in that order; ``resources`` (an OCI ``linux.resources``) with
    docker's device rules (deny all, then the defaults ``cgroups.devices`` adds); docker's masked and
    read-only paths. docker's namespaces, less the network's with ``network`` "host"."""
    from .. import rootless
    from ..config import DEFAULT_NAMESPACES
    from ..security.options import DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS

    spec = OciSpec()
    spec.oci_version = SPEC_VERSION
    spec.root_path = layers[-1]
    spec.root_readonly = read_only
    spec.hostname = hostname
    process = OciProcess(args, env=env, cwd=cwd)
    # root by default, with the groups /etc/group gives it (a numeric uid:gid would give none)
    process.user = user or "0"
    spec.process = process
    binds = [m for m in mounts if m.is_bind]
    is_rootless = rootless.active()
    cgroup = not is_rootless or rootless.cgroup_delegated()
    spec.mounts = binds + builtin_mounts(binds, layers, rootless=is_rootless, cgroup=cgroup)
    spec.mounts += [m for m in mounts if not m.is_bind]
    # Without a terminal /dev/console is a null device, so nothing written to it reaches the host's console.
    spec.devices = [OciDevice("/dev/console", "c", 1, 3, file_mode=0o666)]
    spec.resources = {**(resources or {}), "devices": [{"allow": False, "access": "rwm"}]}
    spec.namespaces = dict(DEFAULT_NAMESPACES)
    if network == "host":
        del spec.namespaces["network"]
    if id_mappings is not None:
        spec.namespaces["user"] = ""
        spec.uid_mappings, spec.gid_mappings = id_mappings.uid, id_mappings.gid
    spec.masked_paths = list(DEFAULT_MASKED_PATHS)
    spec.readonly_paths = list(DEFAULT_READONLY_PATHS)
    return spec


def to_config(
    layers: list[str],
    args: list[str],
    *,
    name: str | None,
    image: str,
    env: list[str],
    cwd: str = "/",
    user: str | None = None,
    hostname: str | None = None,
    mounts: list[OciMount] | None = None,
    read_only: bool = False,
    resources: dict | None = None,
    security: dict | None = None,
    network: str | None = None,
    id_mappings: IdMappings | None = None,
    **engine: object,
) -> ContainerConfig:
    """The docker road: ``to_spec``, then the one conversion (``config_check.from_spec``), validated; missing
    bind sources are made once it is valid. ``engine``: the rest of ``ContainerConfig``'s keywords."""
    from ..config_check import from_spec

    spec = to_spec(
        layers,
        args,
        env=env,
        cwd=cwd,
        user=user,
        hostname=hostname,
        mounts=mounts or [],
        read_only=read_only,
        resources=resources,
        network=network,
        id_mappings=id_mappings,
    )
    config = from_spec(
        spec,
        name,
        image=image,
        layers=layers,
        security=security,
        network=network,
        # /proc read-only once set up: only --privileged keeps the kernel's writable knobs there
        proc_readonly=not (security or {}).get("privileged"),
        **engine,
    )
    make_bind_sources(spec.mounts)
    return config
