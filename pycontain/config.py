"""The container's configuration: a typed model built from CLI flags or Python arguments.

Plain classes with ``__slots__`` rather than dataclasses: this module is on the start path of every
``pycontain run`` and ``import dataclasses`` alone costs more than a whole namespace set-up.
"""

from __future__ import annotations

import os

from .errors import InvalidArgument, NotFound

# Character classes instead of regular expressions: ``re`` (and the ``enum`` it loads) costs ~3 ms.
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


def _word(s: str, first: frozenset, rest: frozenset, max_len: int) -> bool:
    return 0 < len(s) <= max_len and s[0] in first and all(c in rest for c in s[1:])


def _valid_name(s: str) -> bool:
    return _word(s, _ALNUM, _ALNUM | frozenset("_.-"), 128)


def _valid_user_part(s: str) -> bool:
    return (s.isascii() and s.isdigit()) or _word(
        s, _ALNUM - frozenset("0123456789") | {"_"}, _ALNUM | frozenset("_.-"), 32
    )


def _valid_hostname(s: str) -> bool:
    return _word(s, _ALNUM, _ALNUM | frozenset(".-"), 63)


class Mount:
    """One mount on top of the root filesystem.

    ``kind`` is ``bind`` or ``tmpfs`` (docker's -v and --tmpfs: ``readonly`` and ``options`` say the rest), or
    ``oci``: a mount from an OCI bundle, already translated to mount(2)'s ``fstype``, ``flags`` and ``data``,
    with ``propagation`` flags applied after it and ``recursive`` for rbind.
    """

    __slots__ = (
        "kind",
        "source",
        "target",
        "readonly",
        "options",
        "fstype",
        "flags",
        "data",
        "propagation",
        "recursive",
        "attr_set",
        "attr_clr",
        "id_mappings",
    )

    def __init__(
        self,
        kind: str,
        target: str,
        source: str = "",
        readonly: bool = False,
        options: str = "",
        fstype: str = "",
        flags: int = 0,
        data: str = "",
        propagation: list[int] | None = None,
        recursive: bool = False,
        attr_set: int = 0,
        attr_clr: int = 0,
        id_mappings: dict | None = None,
    ) -> None:
        self.kind = kind
        self.source = source
        self.target = target
        self.readonly = readonly
        self.options = options
        self.fstype = fstype
        self.flags = flags
        self.data = data
        self.propagation = list(propagation or [])
        self.recursive = recursive
        # OCI recursive options (rro, rnosuid, ...): mount_setattr(2) attributes for the whole mount tree
        self.attr_set = attr_set
        self.attr_clr = attr_clr
        # An id-mapped bind mount's {"uid": [[container, host, size], ...], "gid": [...]}, or None
        self.id_mappings = id_mappings

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__slots__}

    @classmethod
    def from_dict(cls, d: dict) -> Mount:
        return cls(**{k: d[k] for k in cls.__slots__ if k in d})


# Namespace types as the OCI spec names them → the names under /proc/PID/ns.
NS_PROC_NAMES = {
    "pid": "pid",
    "network": "net",
    "mount": "mnt",
    "ipc": "ipc",
    "uts": "uts",
    "cgroup": "cgroup",
    "user": "user",
    "time": "time",
}
DEFAULT_NAMESPACES = {"pid": "", "mount": "", "uts": "", "ipc": "", "network": "", "cgroup": ""}


class ContainerConfig:
    """Everything needed to start a container's process, and nothing about its runtime state."""

    __slots__ = (
        "rootfs",
        "image",
        "args",
        "env",
        "cwd",
        "user",
        "hostname",
        "mounts",
        "readonly",
        "tty",
        "interactive",
        "init",
        "auto_remove",
        "detach",
        "name",
        "resources",
        "cgroup_parent",
        "cgroup_manager",
        "namespaces",
        "overlay",
        "oci_mounts",
        "devices",
        "extra_gids",
        "umask",
        "oom_score_adj",
        "domainname",
        "sysctl",
        "masked_paths",
        "readonly_paths",
        "security",
        "hooks",
        "cgroup_path",
        "rootfs_propagation",
        "no_pivot",
        "console_size",
        "bundle",
        "annotations",
        "network",
        "publish",
        "layers",
        "image_id",
        "id_mappings",
        "time_offsets",
        "preserve_fds",
        "proc_attrs",
        "restart",
        "stop_signal",
        "labels",
        "extra_hosts",
        "dns",
        "dns_search",
        "healthcheck",
        "log_opts",
    )

    def __init__(
        self,
        rootfs: str,
        args: list[str],
        *,
        image: str = "",
        env: list[str] | None = None,
        cwd: str = "/",
        user: str | None = None,
        hostname: str | None = None,
        mounts: list[Mount] | None = None,
        readonly: bool = False,
        tty: bool = False,
        interactive: bool = False,
        init: bool = False,
        auto_remove: bool = False,
        detach: bool = False,
        name: str | None = None,
        resources: dict | None = None,
        cgroup_parent: str | None = None,
        cgroup_manager: str = "auto",
        namespaces: dict[str, str] | None = None,
        overlay: bool = True,
        oci_mounts: bool = False,
        devices: list[dict] | None = None,
        extra_gids: list[int] | None = None,
        umask: int | None = None,
        oom_score_adj: int | None = None,
        domainname: str | None = None,
        sysctl: dict[str, str] | None = None,
        masked_paths: list[str] | None = None,
        readonly_paths: list[str] | None = None,
        security: dict | None = None,
        hooks: dict | None = None,
        cgroup_path: str | None = None,
        rootfs_propagation: str | None = None,
        no_pivot: bool = False,
        console_size: list[int] | None = None,
        bundle: str = "",
        annotations: dict[str, str] | None = None,
        network: str | None = None,
        publish: list[str] | None = None,
        layers: list[str] | None = None,
        image_id: str = "",
        id_mappings: dict | None = None,
        time_offsets: dict | None = None,
        preserve_fds: int = 0,
        proc_attrs: dict | None = None,
        restart: str = "no",
        stop_signal: str | None = None,
        labels: dict[str, str] | None = None,
        extra_hosts: list[str] | None = None,
        dns: list[str] | None = None,
        dns_search: list[str] | None = None,
        healthcheck: dict | None = None,
        log_opts: dict[str, str] | None = None,
    ) -> None:
        self.rootfs = rootfs
        self.image = image or rootfs
        self.args = list(args)
        self.env = list(env or [])
        self.cwd = cwd
        self.user = user
        self.hostname = hostname
        self.mounts = list(mounts or [])
        self.readonly = readonly
        self.tty = tty
        self.interactive = interactive
        self.init = init
        self.auto_remove = auto_remove
        self.detach = detach
        self.name = name
        self.resources = resources
        self.cgroup_parent = cgroup_parent
        self.cgroup_manager = cgroup_manager
        # Namespace type → "" (a new one) or a path to join; a type left out is shared with the host.
        self.namespaces = dict(DEFAULT_NAMESPACES if namespaces is None else namespaces)
        self.overlay = (
            overlay  # copy-on-write over the root filesystem (docker-style); OCI bundles use it in place
        )
        self.oci_mounts = oci_mounts  # the mounts list replaces the built-in /proc, /sys, /dev set
        self.devices = list(devices or [])
        self.extra_gids = list(extra_gids or [])
        self.umask = umask
        self.oom_score_adj = oom_score_adj
        self.domainname = domainname
        self.sysctl = dict(sysctl or {})
        self.masked_paths = masked_paths
        self.readonly_paths = readonly_paths
        self.security = security
        self.hooks = hooks
        self.cgroup_path = cgroup_path
        self.rootfs_propagation = rootfs_propagation
        self.no_pivot = no_pivot
        self.console_size = console_size
        self.bundle = bundle
        self.annotations = dict(annotations or {})
        self.network = network  # None: the namespaces say it all (OCI bundles, the Python API); the CLI's default is bridge
        self.publish = list(publish or [])
        # An image's layers, lowest first (the overlay's lower directories); [rootfs] when it is one directory.
        self.layers = list(layers or [rootfs])
        self.image_id = image_id
        # A new user namespace's {"uid": [[container, host, size], ...], "gid": [...]} (namespaces["user"] == "").
        self.id_mappings = id_mappings
        # A new time namespace's offsets, as OCI's linux.timeOffsets: {"monotonic": {"secs", "nanosecs"}, ...}.
        self.time_offsets = time_offsets
        # Descriptors 3 .. 3+preserve_fds-1 of the creating process stay open in the container (runc's
        # --preserve-fds: socket activation, an engine's sync pipe).
        self.preserve_fds = preserve_fds
        # OCI ioPriority, scheduler and memoryPolicy as pycontain.procattr.check returns them
        self.proc_attrs = proc_attrs
        self.restart = restart  # docker's --restart: no, on-failure[:N], always, unless-stopped (see monitor)
        self.stop_signal = stop_signal  # what 'stop' sends first (default SIGTERM)
        self.labels = dict(labels or {})
        self.extra_hosts = list(extra_hosts or [])  # NAME:IP lines for /etc/hosts (--add-host)
        self.dns = list(dns or [])  # nameservers replacing the host's in /etc/resolv.conf (--dns)
        self.dns_search = list(dns_search or [])  # search domains (--dns-search)
        # --health-*: {"cmd": [...], "interval": s, "timeout": s, "retries": n, "start_period": s}; see monitor
        self.healthcheck = healthcheck
        # --log-opt: {"max-size": "10m", "max-file": "3"} (docker's), checked by validate; see pycontain.logs
        self.log_opts = dict(log_opts or {})

    def validate(self) -> None:
        if not self.args:
            raise InvalidArgument(
                "no command given: put it after the root filesystem, e.g. "
                "'pycontain run default -- sh -c \"echo hi\"'"
            )
        if not os.path.isdir(self.rootfs):
            raise NotFound(f"root filesystem {self.rootfs!r} is not a directory")
        if not self.cwd.startswith("/"):
            raise InvalidArgument(f"working directory must be an absolute path: {self.cwd!r}")
        if self.name is not None:
            validate_name(self.name)
        # "" keeps the hostname the UTS namespace starts with (an OCI config may leave it out).
        if self.hostname and not _valid_hostname(self.hostname):
            raise InvalidArgument(
                f"invalid hostname {self.hostname!r}: use letters, digits, '-' and '.', at most 63 characters"
            )
        if self.user is not None:
            parse_user(self.user)
        if "mount" not in self.namespaces and (self.mounts or self.overlay or self.readonly or self.devices):
            raise InvalidArgument(
                "mounts need a mount namespace of the container's own (add one to linux.namespaces): "
                "without one the root filesystem is entered by chroot alone"
            )
        if (self.namespaces.get("user") == "") != bool(self.id_mappings):
            raise InvalidArgument("a new user namespace needs uid and gid mappings (and mappings need one)")
        if self.hostname and "uts" not in self.namespaces:
            raise InvalidArgument("a hostname needs a UTS namespace of the container's own")
        if self.network is not None or self.publish:
            from . import network

            mode, _ = network.resolve_mode(self.network or "none")
            for p in self.publish:
                network.parse_publish(p)
            if self.publish and mode != "bridge":
                raise InvalidArgument(
                    f"-p/--publish {self.publish[0]!r} needs a bridge network: add --network bridge "
                    "(or a network's name)"
                )
        if self.extra_hosts or self.dns or self.dns_search:
            self._check_name_service()
        if self.restart != "no":
            from .monitor import parse_restart

            parse_restart(self.restart)
            if self.auto_remove:
                raise InvalidArgument(f"--restart {self.restart} and --rm cannot be combined: choose one")
        if self.stop_signal is not None:
            from .container import parse_signal

            parse_signal(self.stop_signal)
        if self.log_opts:
            from .logs import parse_log_opts

            parse_log_opts(self.log_opts)

    def _check_name_service(self) -> None:
        import ipaddress

        from . import network

        mode, _ = network.resolve_mode(self.network or "none")
        if mode != "bridge":
            raise InvalidArgument(
                "--add-host, --dns and --dns-search write the container's own /etc/hosts and "
                f"/etc/resolv.conf: they need a bridge network, not {self.network or 'none'!r}"
            )
        for entry in self.extra_hosts:
            name, colon, ip = entry.partition(":")
            try:
                ipaddress.ip_address(ip)
                ok = bool(colon) and _valid_hostname(name)
            except ValueError:
                ok = False
            if not ok:
                raise InvalidArgument(f"invalid --add-host {entry!r}: use NAME:IP, e.g. db:10.0.0.5")
        for server in self.dns:
            try:
                ipaddress.ip_address(server)
            except ValueError:
                raise InvalidArgument(f"invalid --dns {server!r}: give a nameserver's IP address") from None
        for domain in self.dns_search:
            if not _valid_hostname(domain.rstrip(".")):
                raise InvalidArgument(
                    f"invalid --dns-search {domain!r}: give a domain name, e.g. example.com"
                )

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__slots__}
        d["mounts"] = [m.to_dict() for m in self.mounts]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ContainerConfig:
        kw = {k: d[k] for k in cls.__slots__ if k in d and k not in ("rootfs", "args", "mounts")}
        return cls(d["rootfs"], d["args"], mounts=[Mount.from_dict(m) for m in d.get("mounts", [])], **kw)


def validate_name(name: str) -> None:
    if not _valid_name(name):
        raise InvalidArgument(
            f"invalid container name {name!r}: use letters, digits, '_', '.' and '-', "
            "starting with a letter or digit, at most 128 characters"
        )


def parse_user(spec: str) -> tuple[str, str | None]:
    """Split ``UID[:GID]`` (numbers or names); names are looked up inside the container later."""
    user, _, group = spec.partition(":")
    if not _valid_user_part(user) or (group and not _valid_user_part(group)) or (_ and not group):
        raise InvalidArgument(
            f"invalid --user {spec!r}: expected UID[:GID] with numbers or names, e.g. 1000:1000"
        )
    for part in (user, group):
        # uid_t is 32 bits and (uid_t)-1 means "unchanged" to the kernel: anything above fails only in the child.
        if part.isdigit() and (len(part) > 10 or int(part) > MAX_ID):
            raise InvalidArgument(
                f"invalid --user {spec!r}: {part} is out of range (ids go from 0 to {MAX_ID})"
            )
    return user, group or None


MAX_ID = (1 << 32) - 2


def parse_volume(spec: str) -> Mount:
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
        from . import volumes

        if not volumes.is_name(host):
            raise InvalidArgument(
                f"invalid volume {spec!r}: the host path must be absolute (or a volume's name: letters, "
                "digits, '_', '.', '-')"
            )
        _check_target(target, spec)
        host = volumes.create(host)["Mountpoint"]
    _check_target(target, spec)
    return Mount("bind", os.path.normpath(target), source=os.path.abspath(host), readonly=mode == "ro")


def _check_target(target: str, spec: str) -> None:
    if not target.startswith("/"):
        raise InvalidArgument(f"invalid volume {spec!r}: the container path must be absolute")
    if not os.path.normpath(target).strip("/"):
        # Over the container's root it would hide the image, and its mount points would be made in the host's
        # directory.
        raise InvalidArgument(f"invalid volume {spec!r}: the container path cannot be '/'")


def parse_mount(spec: str) -> Mount:
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
        return parse_tmpfs(target + (":" + ",".join(opts) if opts else ""))
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
        from . import volumes

        if source.startswith("/") or (source and not volumes.is_name(source)):
            raise InvalidArgument(f"invalid --mount {spec!r}: a volume's source is its name")
        source = source or volumes.create()["Name"]  # anonymous: a new volume of its own
    return parse_volume(f"{source}:{target}{mode}")


def parse_tmpfs(spec: str) -> Mount:
    """``PATH[:OPTIONS]`` → a tmpfs, e.g. ``/run:size=64m,mode=755``."""
    target, _, options = spec.partition(":")
    if not target.startswith("/"):
        raise InvalidArgument(f"invalid --tmpfs {spec!r}: the path must be absolute")
    if not os.path.normpath(target).strip("/"):
        raise InvalidArgument(
            f"invalid --tmpfs {spec!r}: the path cannot be '/' (use --read-only for a read-only root)"
        )
    for opt in filter(None, options.split(",")):
        key, eq, value = opt.partition("=")
        if key not in (
            "size",
            "mode",
            "uid",
            "gid",
            "nr_inodes",
            "ro",
            "rw",
            "noexec",
            "exec",
            "nosuid",
            "suid",
            "nodev",
            "dev",
        ):
            raise InvalidArgument(f"invalid --tmpfs option {opt!r} in {spec!r}")
        # Checked here: the kernel's EINVAL would only come from inside the container, naming no option.
        problem = _tmpfs_option_problem(key, eq, value)
        if problem:
            raise InvalidArgument(f"invalid --tmpfs option {opt!r} in {spec!r}: {problem}")
    return Mount("tmpfs", os.path.normpath(target), options=options)


_TMPFS_VALUED = {
    "size": "a size such as 64m, or a percentage of memory such as 50%",
    "nr_inodes": "a number, optionally with k, m or g",
    "mode": "octal permissions such as 1777",
    "uid": "a numeric user id",
    "gid": "a numeric group id",
}


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


def parse_env(values: list[str], env_files: list[str] | None = None) -> list[str]:
    """``-e K=V`` / ``-e K`` (taken from pycontain's own environment) and ``--env-file`` lines."""
    out: list[str] = []
    for path in env_files or []:
        try:
            with open(path) as f:
                lines = f.read().splitlines()
        except OSError as e:
            raise NotFound(f"cannot read --env-file {path!r}: {e.strerror}") from None
        for line in lines:
            line = line.strip()
            if line and not line.startswith("#"):
                out.extend(_env_item(line, path))
    for v in values:
        out.extend(_env_item(v, "-e"))
    return out


def _env_item(item: str, where: str) -> list[str]:
    key, eq, _ = item.partition("=")
    if not key or "\0" in item:
        raise InvalidArgument(f"invalid environment variable {item!r} in {where}: expected KEY=VALUE")
    if eq:
        return [item]
    return [f"{key}={os.environ[key]}"] if key in os.environ else []


def merge_env(base: list[str], extra: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in (*base, *extra):
        k, _, v = item.partition("=")
        env[k] = v
    return env
