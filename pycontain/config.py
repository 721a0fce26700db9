"""The container's configuration, what the runtime starts: ``from_spec`` makes it from an OCI spec, a
bundle's (``spec.bundle``) or one written from docker-style options (``spec.docker``), on one road.

Plain classes with ``__slots__`` rather than dataclasses: this module is on the start path of every
``pycontain run`` and ``import dataclasses`` alone costs more than a whole namespace set-up.
"""

from __future__ import annotations

import os

from .errors import InvalidArgument, InvalidState, NotFound, Unsupported

# typing.TYPE_CHECKING without importing typing; type checkers know the idiom.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from .cgroups.devices import DeviceRule
    from .cgroups.resources import Resources
    from .security.options import SecurityOptions
    from .spec.model import OciDevice, OciHook, OciMount, OciSpec
    from .userns import IdMappings

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
    """One mount on top of the root filesystem, an OCI mount translated to mount(2)'s ``fstype``,
    ``flags`` and ``data`` (``spec.model.OciMount.flags_and_data``), with ``propagation`` flags applied
    after it and ``recursive`` for rbind. Every container's mounts have this form, docker-style ones
    included: ``spec.docker`` turns -v, --tmpfs and docker's own /proc, /sys and /dev into OCI mounts."""

    __slots__ = (
        "source",
        "target",
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
        target: str,
        source: str = "",
        fstype: str = "",
        flags: int = 0,
        data: str = "",
        propagation: list[int] | None = None,
        recursive: bool = False,
        attr_set: int = 0,
        attr_clr: int = 0,
        id_mappings: IdMappings | None = None,
    ) -> None:
        self.source = source
        self.target = target
        self.fstype = fstype
        self.flags = flags
        self.data = data
        self.propagation = list(propagation or [])
        self.recursive = recursive
        # OCI recursive options (rro, rnosuid, ...): mount_setattr(2) attributes for the whole mount tree
        self.attr_set = attr_set
        self.attr_clr = attr_clr
        # An id-mapped bind mount's own mappings, or None
        self.id_mappings = id_mappings

    @classmethod
    def from_oci(cls, m: OciMount) -> Mount:
        id_mappings = None
        if m.id_mapped:
            from .userns import IdMappings

            id_mappings = IdMappings(m.uid_mappings, m.gid_mappings)
        flags, propagation, data, recursive = m.flags_and_data()
        attr_set, attr_clr = m.recursive_attrs()
        return cls(
            m.destination,
            source=m.source,
            fstype=m.type or "",
            flags=flags,
            data=data,
            propagation=propagation,
            recursive=recursive or "ridmap" in m.options,
            attr_set=attr_set,
            attr_clr=attr_clr,
            id_mappings=id_mappings,
        )

    def to_dict(self) -> dict:
        """The fields that differ from their defaults (state.json is written several times per start)."""
        d = {k: v for k in self.__slots__ if (v := getattr(self, k)) or k == "target"}
        if self.id_mappings is not None:
            d["id_mappings"] = self.id_mappings.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Mount:
        kw = {k: d[k] for k in cls.__slots__ if k in d}
        if kw.get("id_mappings"):
            from .userns import IdMappings

            kw["id_mappings"] = IdMappings.from_dict(kw["id_mappings"])
        return cls(**kw)


class FrozenValue:
    """A config field's typed value: set once by its constructor, compared by value, never changed (a
    config is shared by state.json, the monitor and the child once validated)."""

    __slots__: tuple[str, ...] = ()

    def _init(self, **fields: object) -> None:
        for k, v in fields.items():
            object.__setattr__(self, k, v)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"a {type(self).__name__} is not changed once made")

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and all(
            getattr(self, k) == getattr(other, k) for k in self.__slots__
        )

    __hash__ = None  # type: ignore[assignment]  # compared by value, never a key

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={getattr(self, k)!r}' for k in self.__slots__)})"


class HealthCheck(FrozenValue):
    """docker's --health-*: the command the monitor runs in the container every ``interval`` seconds, which
    fails when it exits non-zero or outlasts ``timeout``; ``retries`` failures in a row (not counting those
    in the first ``start_period``) make the container unhealthy. No ``cmd``: none (--no-healthcheck)."""

    __slots__ = ("cmd", "interval", "timeout", "retries", "start_period")
    cmd: list[str]
    interval: float
    timeout: float
    retries: int
    start_period: float

    def __init__(
        self,
        cmd: list[str],
        interval: float = 30.0,
        timeout: float = 30.0,
        retries: int = 3,
        start_period: float = 0.0,
    ) -> None:
        # The one check of a health check, whoever made it (the CLI's flags, the Python API, a state file).
        if not isinstance(cmd, list) or not all(isinstance(a, str) for a in cmd):
            raise InvalidArgument(f"invalid health check command {cmd!r}: a list of strings")
        for what, v in (("interval", interval), ("timeout", timeout), ("start-period", start_period)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
                raise InvalidArgument(f"invalid --health-{what} {v!r}: a duration such as 30s")
        if cmd and (interval <= 0 or timeout <= 0):
            raise InvalidArgument("--health-interval and --health-timeout must be above zero")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise InvalidArgument(f"invalid --health-retries {retries!r}: a whole number")
        self._init(
            cmd=list(cmd),
            interval=float(interval),
            timeout=float(timeout),
            retries=retries,
            start_period=float(start_period),
        )

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__slots__}

    @classmethod
    def from_dict(cls, d: dict) -> HealthCheck:
        return cls(**d)


class TimeOffsets(FrozenValue):
    """A new time namespace's offsets (OCI ``linux.timeOffsets``): (seconds, nanoseconds) added to the
    monotonic and boot-time clocks, None for a clock left alone. On disk in OCI's form."""

    __slots__ = ("monotonic", "boottime")
    monotonic: tuple[int, int] | None
    boottime: tuple[int, int] | None

    def __init__(
        self, monotonic: tuple[int, int] | None = None, boottime: tuple[int, int] | None = None
    ) -> None:
        self._init(
            monotonic=None if monotonic is None else tuple(monotonic),
            boottime=None if boottime is None else tuple(boottime),
        )

    def lines(self) -> str:
        """What /proc/self/timens_offsets takes: one "CLOCK SECS NANOSECS" line per clock."""
        return "".join(
            f"{clock} {v[0]} {v[1]}\n" for clock in self.__slots__ if (v := getattr(self, clock)) is not None
        )

    def to_dict(self) -> dict:
        return {
            clock: {"secs": v[0], "nanosecs": v[1]}
            for clock in self.__slots__
            if (v := getattr(self, clock)) is not None
        }

    @classmethod
    def from_dict(cls, d: dict) -> TimeOffsets:
        """OCI's form (checked by ``spec.bundle`` for a config.json; a state file's is what to_dict gave)."""
        unknown = set(d) - set(cls.__slots__)
        if unknown:
            raise ValueError(f"unknown clock {min(unknown)!r} (use monotonic or boottime)")
        return cls(
            **{clock: (int(v.get("secs") or 0), int(v.get("nanosecs") or 0)) for clock, v in d.items()}
        )


class Sched(FrozenValue):
    """process.scheduler in the kernel's terms: struct sched_attr's fields (``libc.SchedAttr``)."""

    __slots__ = (
        "sched_policy",
        "sched_flags",
        "sched_nice",
        "sched_priority",
        "sched_runtime",
        "sched_deadline",
        "sched_period",
    )

    def __init__(self, **fields: int) -> None:
        if set(fields) != set(self.__slots__) or not all(type(v) is int for v in fields.values()):
            raise ValueError(f"a scheduler needs the integers {', '.join(self.__slots__)}, not {fields!r}")
        self._init(**fields)

    def to_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}


class ProcAttrs(FrozenValue):
    """OCI process.ioPriority, process.scheduler and linux.memoryPolicy as ``procattr.check`` validated
    them, in the kernel's terms: the I/O priority (ioprio_set's value), the scheduler
    (``Sched``) and the memory policy (mode with its flags, NUMA nodes); None for what config.json left out.
    On disk (state.json) as {"ioprio": int, "sched": {...}, "mempolicy": [mode, nodes]}, those given."""

    __slots__ = ("ioprio", "sched", "mempolicy")
    ioprio: int | None
    sched: Sched | None
    mempolicy: tuple[int, list[int]] | None

    def __init__(
        self,
        ioprio: int | None = None,
        sched: Sched | None = None,
        mempolicy: tuple[int, list[int]] | None = None,
    ) -> None:
        self._init(ioprio=ioprio, sched=sched, mempolicy=None if mempolicy is None else tuple(mempolicy))

    def to_dict(self) -> dict:
        d: dict = {}
        if self.ioprio is not None:
            d["ioprio"] = self.ioprio
        if self.sched is not None:
            d["sched"] = self.sched.to_dict()
        if self.mempolicy is not None:
            d["mempolicy"] = [self.mempolicy[0], list(self.mempolicy[1])]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ProcAttrs:
        """``to_dict``'s form (a state file's), its types checked (ValueError)."""
        ioprio, sched, mpol = d.get("ioprio"), d.get("sched"), d.get("mempolicy")
        if ioprio is not None and type(ioprio) is not int:
            raise ValueError(f"ioprio: {ioprio!r} is not an integer")
        if mpol is not None and not (
            isinstance(mpol, list)
            and len(mpol) == 2
            and type(mpol[0]) is int
            and isinstance(mpol[1], list)
            and all(type(n) is int for n in mpol[1])
        ):
            raise ValueError(f"mempolicy: {mpol!r} is not [mode, [nodes]]")
        return cls(
            ioprio, None if sched is None else Sched(**sched), None if mpol is None else (mpol[0], mpol[1])
        )


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
# linux.resources.memory's fields that Resources has none for (cgroups.extras writes them)
_EXTRA_MEMORY = frozenset(("swappiness", "disableOOMKiller", "kernelTCP"))
DEFAULT_NAMESPACES = {"pid": "", "mount": "", "uts": "", "ipc": "", "network": "", "cgroup": ""}


class ContainerConfig:
    """Everything needed to start a container's process, and nothing about its runtime state.

    Frozen once made (``from_spec`` validates it as a whole): setting a field raises ``AttributeError``;
    ``replace`` makes a changed copy. Its fields are typed objects (``Resources``, ``SecurityOptions``,
    ``OciDevice``, ``OciHook``, ``DeviceRule``); ``to_dict``/``from_dict`` give and read state.json's form.
    """

    FIELDS = (
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
        "device_rules",
        "cgroup_writes",
        "cgroup_parent",
        "cgroup_manager",
        "namespaces",
        "overlay",
        "proc_readonly",
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
    __slots__ = (*FIELDS, "_frozen", "_doc")

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
        resources: Resources | None = None,
        device_rules: list[DeviceRule] | None = None,
        cgroup_writes: list[tuple[str, str, str, str]] | None = None,
        cgroup_parent: str | None = None,
        cgroup_manager: str = "auto",
        namespaces: dict[str, str] | None = None,
        overlay: bool = True,
        proc_readonly: bool = False,
        devices: list[OciDevice] | None = None,
        extra_gids: list[int] | None = None,
        umask: int | None = None,
        oom_score_adj: int | None = None,
        domainname: str | None = None,
        sysctl: dict[str, str] | None = None,
        masked_paths: list[str] | None = None,
        readonly_paths: list[str] | None = None,
        security: SecurityOptions | None = None,
        hooks: dict[str, list[OciHook]] | None = None,
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
        id_mappings: IdMappings | None = None,
        time_offsets: TimeOffsets | None = None,
        preserve_fds: int = 0,
        proc_attrs: ProcAttrs | None = None,
        restart: str = "no",
        stop_signal: str | None = None,
        labels: dict[str, str] | None = None,
        extra_hosts: list[str] | None = None,
        dns: list[str] | None = None,
        dns_search: list[str] | None = None,
        healthcheck: HealthCheck | None = None,
        log_opts: dict[str, str] | None = None,
    ) -> None:
        # Set first, so that __setattr__ finds it without an AttributeError per field (a state's typed
        # load, 'ps' over many containers, makes one config each)
        object.__setattr__(self, "_frozen", False)
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
        self.resources = resources  # the limits; None: none set
        # The cgroup's device rules in order (OCI linux.resources.devices, then linux.devices' nodes and
        # the defaults: cgroups.devices.rules_for); None leaves the rules it inherits (--privileged)
        self.device_rules = device_rules
        # What Resources has no field for (swappiness, hugepages, net_cls...), as cgroups.extras.writes checked
        # it: (OCI field, controller, file, value)
        self.cgroup_writes = list(cgroup_writes or [])
        self.cgroup_parent = cgroup_parent
        self.cgroup_manager = cgroup_manager
        # Namespace type → "" (a new one) or a path to join; a type left out is shared with the host.
        self.namespaces = dict(DEFAULT_NAMESPACES if namespaces is None else namespaces)
        self.overlay = (
            overlay  # copy-on-write over the root filesystem (docker-style); OCI bundles use it in place
        )
        # /proc remounted read-only once set up (docker-style containers, unless privileged)
        self.proc_readonly = proc_readonly
        self.devices = list(devices or [])
        self.extra_gids = list(extra_gids or [])
        self.umask = umask
        self.oom_score_adj = oom_score_adj
        self.domainname = domainname
        self.sysctl = dict(sysctl or {})
        self.masked_paths = masked_paths
        self.readonly_paths = readonly_paths
        self.security = security
        self.hooks = dict(hooks or {})  # kind (prestart, ...) → its hooks, in order
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
        # A new user namespace's mappings (namespaces["user"] == "")
        self.id_mappings = id_mappings
        self.time_offsets = time_offsets  # a new time namespace's
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
        self.healthcheck = healthcheck  # run by the monitor (--health-*)
        # --log-opt: {"max-size": "10m", "max-file": "3"} (docker's), checked by validate; see pycontain.logs
        self.log_opts = dict(log_opts or {})
        self._frozen = True

    def __setattr__(self, name: str, value: object) -> None:
        # A config is validated as a whole and shared (state.json, the monitor, the child): a field changed
        # afterwards would be one nothing checked.
        if self._frozen:
            raise AttributeError(f"a ContainerConfig is not changed once made: use replace({name}=...)")
        object.__setattr__(self, name, value)

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
        # none and host need no checking: a plain 'run --network none' never loads the network package
        if self.network not in (None, "none", "host") or self.publish:
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
            from .restart import parse_restart

            parse_restart(self.restart)
            if self.auto_remove:
                raise InvalidArgument(f"--restart {self.restart} and --rm cannot be combined: choose one")
        if self.stop_signal is not None:
            from .interrupts import parse_signal

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

    def replace(self, **changes: object) -> ContainerConfig:
        """A copy with ``changes`` (a config is never changed in place: ``Container.create`` adds the
        container's hostname and network this way)."""
        new = object.__new__(ContainerConfig)
        for k in self.FIELDS:
            object.__setattr__(new, k, changes.pop(k) if k in changes else getattr(self, k))
        if changes:
            raise TypeError(f"ContainerConfig has no field {next(iter(changes))!r}")
        object.__setattr__(new, "_frozen", True)
        return new

    def to_dict(self) -> dict:
        """state.json's form: plain JSON values (limits, devices and hooks in OCI's spelling)."""
        d = {k: getattr(self, k) for k in self.FIELDS}
        d["mounts"] = [m.to_dict() for m in self.mounts]
        d["resources"] = self.resources.to_dict() if self.resources is not None else None
        d["device_rules"] = (
            None
            if self.device_rules is None
            else [[r.allow, r.type, r.major, r.minor, r.access] for r in self.device_rules]
        )
        d["cgroup_writes"] = [list(w) for w in self.cgroup_writes]
        d["devices"] = [dev.to_dict() for dev in self.devices]
        d["security"] = self.security.to_dict() if self.security is not None else None
        d["hooks"] = {k: [h.to_dict() for h in v] for k, v in self.hooks.items()} or None
        d["id_mappings"] = self.id_mappings.to_dict() if self.id_mappings is not None else None
        for k in ("time_offsets", "proc_attrs", "healthcheck"):
            v = d[k]
            d[k] = v.to_dict() if v is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ContainerConfig:
        """What ``to_dict`` gave (read back from state.json), its JSON types checked: ValueError names a
        field whose type is wrong (a damaged file). Each field is converted when first read: 'ps' reads
        six of every container's, a typed load of all of them would cost it ~60 us per container."""
        check_json_types(d, _FIELD_TYPES, "config: ")
        for k in ("rootfs", "args"):
            if k not in d:
                raise ValueError(f"config: {k}: missing")
        new = object.__new__(cls)
        object.__setattr__(new, "_doc", d)
        object.__setattr__(new, "_frozen", True)
        return new

    if not TYPE_CHECKING:  # hidden from mypy, which would otherwise accept any attribute name

        def __getattr__(self, name: str) -> object:
            # Python calls this only for a slot not set: a field of a config from_dict made, read first now.
            if name not in _FIELD_TYPES:
                raise AttributeError(f"'ContainerConfig' object has no attribute {name!r}")
            try:
                value = _from_doc(name, self._doc)
            except (ValueError, TypeError, KeyError, AttributeError) as e:
                raise InvalidState(f"the container's saved configuration is damaged: {name}: {e}") from None
            object.__setattr__(self, name, value)
            return value


def _from_doc(name: str, d: dict) -> object:
    """Field ``name`` of a config from its state.json form ``d`` (to_dict's), typed."""
    if name not in d:  # a file from before the field: its default
        if name in ("image", "layers"):
            return d["rootfs"] if name == "image" else [d["rootfs"]]
        if not _DEFAULT:
            _DEFAULT.append(ContainerConfig("", []))
        value = getattr(_DEFAULT[0], name)
        return value.copy() if isinstance(value, (list, dict)) else value
    value = d[name]
    convert = _CONVERT.get(name)
    return value if convert is None else convert(value)


_DEFAULT: list[ContainerConfig] = []


def _resources(v: dict | None) -> Resources | None:
    if not v:
        return None
    from .cgroups.resources import Resources

    return Resources.from_oci(v)


def _device_rules(v: list | None) -> list[DeviceRule] | None:
    if v is None:
        return None
    from .cgroups.devices import DeviceRule

    return [DeviceRule(*r) for r in v]


def _id_mappings_of(v: dict | None) -> IdMappings | None:
    if not v:
        return None
    from .userns import IdMappings

    return IdMappings.from_dict(v)


def _security(v: dict | None) -> SecurityOptions | None:
    if not v:
        return None
    from .security.options import SecurityOptions

    return SecurityOptions.from_dict(v)


def _devices(v: list) -> list[OciDevice]:
    if not v:
        return []
    from .spec.model import OciDevice

    return [OciDevice.from_dict(dev) for dev in v]


def _hooks(v: dict | None) -> dict[str, list[OciHook]]:
    if not v:
        return {}
    from .spec.model import OciHook

    return {k: [OciHook.from_dict(h) for h in hooks] for k, hooks in v.items()}


# How the typed fields are read back from state.json (the others are plain JSON values).
_CONVERT: dict[str, Callable[[Any], object]] = {
    "mounts": lambda v: [Mount.from_dict(m) for m in v],
    "resources": _resources,
    "device_rules": _device_rules,
    "cgroup_writes": lambda v: [tuple(w) for w in v],
    "id_mappings": _id_mappings_of,
    "security": _security,
    "devices": _devices,
    "hooks": _hooks,
    "time_offsets": lambda v: None if v is None else TimeOffsets.from_dict(v),
    "proc_attrs": lambda v: None if v is None else ProcAttrs.from_dict(v),
    "healthcheck": lambda v: None if v is None else HealthCheck.from_dict(v),
}


# The JSON type of each field of a config's state.json form (None: null allowed), checked by from_dict
# by exact class (true is no integer here); the typed fields' own from_dict check their items.
_S, _N, _L, _D = (str,), (type(None),), (list,), (dict,)
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    **dict.fromkeys(("rootfs", "image", "cwd", "cgroup_manager", "bundle", "image_id", "restart"), _S),
    **dict.fromkeys(
        (
            "user",
            "hostname",
            "name",
            "cgroup_parent",
            "domainname",
            "cgroup_path",
            "rootfs_propagation",
            "network",
            "stop_signal",
        ),
        _S + _N,
    ),
    **dict.fromkeys(
        (
            "readonly",
            "tty",
            "interactive",
            "init",
            "auto_remove",
            "detach",
            "overlay",
            "proc_readonly",
            "no_pivot",
        ),
        (bool,),
    ),
    **dict.fromkeys(("umask", "oom_score_adj"), (int, type(None))),
    "preserve_fds": (int,),
    **dict.fromkeys(
        (
            "args",
            "env",
            "mounts",
            "cgroup_writes",
            "devices",
            "extra_gids",
            "publish",
            "layers",
            "extra_hosts",
            "dns",
            "dns_search",
        ),
        _L,
    ),
    **dict.fromkeys(("device_rules", "masked_paths", "readonly_paths", "console_size"), _L + _N),
    **dict.fromkeys(("namespaces", "sysctl", "annotations", "labels", "log_opts"), _D),
    **dict.fromkeys(
        ("resources", "security", "hooks", "id_mappings", "time_offsets", "proc_attrs", "healthcheck"),
        _D + _N,
    ),
}
_JSON_NAMES = {str: "a string", bool: "true or false", int: "an integer", float: "a number", list: "a list"}


def check_json_types(d: dict, types_of: dict[str, tuple[type, ...]], where: str) -> None:
    """ValueError naming the first field of ``d`` (a JSON object read from ``where``) whose value's type is
    not one ``types_of`` gives it, by exact class: true is no integer there. Fields it has none for pass."""
    for k, v in d.items():
        types = types_of.get(k)
        if types is not None and v.__class__ not in types:
            wanted = " or ".join(_JSON_NAMES.get(t, "an object" if t is dict else "null") for t in types)
            raise ValueError(f"{where}{k}: {v!r} is not {wanted}")


def from_spec(
    spec: OciSpec,
    name: str | None,
    *,
    image: str = "",
    layers: list[str] | None = None,
    security: SecurityOptions | dict | None = None,
    **engine: object,
) -> ContainerConfig:
    """The one conversion of an OCI spec (a bundle's, or ``spec.docker``'s from docker-style options) into
    the runtime's config, validated.

    ``layers``: an image's layers, lowest first, for a copy-on-write overlay; without them the spec's root
    is used in place (a bundle). ``security``: ``SecurityOptions`` (or its ``to_dict()``: the CLI's flags),
    or a bundle's process as ``oci`` reads it. ``engine``: what the spec has no field for (``--restart``, ``--network``,
    labels, ``detach``, ...) and what a road decides itself (a bundle's missing hostname is "", the UTS
    namespace's own; docker-style containers default to their id), as ``ContainerConfig``'s keywords.
    """
    p = spec.process
    if p is None:
        raise InvalidArgument("config.json: process: needed to create a container")
    if isinstance(security, dict):  # the CLI's and the Python API's SecurityOptions.to_dict()
        from .security.options import SecurityOptions

        security = SecurityOptions.from_dict(security)
    doc = spec.resources or {}
    resources = None
    if any(k != "devices" for k in doc):  # (a plain 'run' has no limits to check)
        from .cgroups.resources import Resources

        resources = Resources.from_oci(doc)
        if resources.is_empty():
            resources = None
    writes: list[tuple[str, str, str, str]] = []
    memory = doc.get("memory")
    if (
        "hugepageLimits" in doc
        or "network" in doc
        or (isinstance(memory, dict) and _EXTRA_MEMORY & set(memory))
    ):
        from .cgroups.extras import writes as extra_writes

        writes = extra_writes(doc)
    from .cgroups.devices import rules_for

    device_rules = rules_for(bool(security and security.privileged), doc.get("devices"), spec.devices)
    cgroup_path = spec.cgroups_path
    if cgroup_path and ":" in cgroup_path:
        raise Unsupported(
            f"config.json: linux.cgroupsPath: {cgroup_path!r} is a systemd slice path, and pycontain "
            "has no systemd cgroup driver (use a cgroupfs path such as /parent/name)"
        )
    fields: dict = dict(
        image=image,
        env=p.env,
        cwd=p.cwd,
        user=p.user if p.user is not None else f"{p.uid}:{p.gid}",
        hostname=spec.hostname,
        mounts=[Mount.from_oci(m) for m in spec.mounts],
        readonly=spec.root_readonly,
        tty=p.terminal,
        name=name,
        resources=resources,
        device_rules=device_rules,
        cgroup_writes=writes,
        namespaces=spec.namespaces,
        overlay=layers is not None,
        layers=layers,
        id_mappings=_id_mappings(spec),
        time_offsets=spec.time_offsets,
        devices=spec.devices,
        extra_gids=p.additional_gids,
        umask=p.umask,
        oom_score_adj=p.oom_score_adj,
        domainname=spec.domainname,
        sysctl=spec.sysctl,
        # A spec that lists no masked or read-only paths gets none (runc's behaviour); spec.docker lists docker's.
        masked_paths=spec.masked_paths or [],
        readonly_paths=spec.readonly_paths or [],
        security=security,
        hooks={k: v for k, v in spec.hooks.items() if v},
        cgroup_path=cgroup_path,
        rootfs_propagation=spec.rootfs_propagation,
        console_size=p.console_size,
        annotations=spec.annotations,
        proc_attrs=spec.proc_attrs,
    )
    fields.update(engine)
    config = ContainerConfig(spec.root_path, p.args, **fields)
    config.validate()
    return config


def _id_mappings(spec: OciSpec) -> IdMappings | None:
    """A new user namespace's mappings (a namespace joined by path, or none, has none of its own)."""
    if spec.namespaces.get("user") != "":
        return None
    from .userns import IdMappings

    return IdMappings(spec.uid_mappings, spec.gid_mappings)


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
    from .users import MAX_ID

    for part in (user, group):
        # uid_t is 32 bits and (uid_t)-1 means "unchanged" to the kernel: anything above fails only in the child.
        if part.isdigit() and (len(part) > 10 or int(part) > MAX_ID):
            raise InvalidArgument(
                f"invalid --user {spec!r}: {part} is out of range (ids go from 0 to {MAX_ID})"
            )
    return user, group or None


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
