"""The container's configuration, what the runtime starts: ``ContainerConfig``, frozen and typed, with its
state.json form (``to_dict``/``from_dict``, each field converted when first read). ``config_check.from_spec``
makes one from an OCI spec, a bundle's (``spec.bundle``) or one written from docker-style options
(``spec.docker``), on one road; its fields' typed values are in ``config_fields``.

Plain classes with ``__slots__`` rather than dataclasses: this module is on the start path of every
``pycontain run``, and on ``ps``'s and ``state``'s, and ``import dataclasses`` alone costs more than a
whole namespace set-up.
"""

from __future__ import annotations

from .errors import InvalidState

# typing.TYPE_CHECKING without importing typing; type checkers know the idiom.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from .cgroups.devices import DeviceRule
    from .cgroups.resources import Resources
    from .config_fields import HealthCheck, Mount, ProcAttrs, TimeOffsets
    from .security.options import SecurityOptions
    from .spec.model import OciDevice, OciHook
    from .userns import IdMappings

DEFAULT_NAMESPACES = {"pid": "", "mount": "", "uts": "", "ipc": "", "network": "", "cgroup": ""}


class ContainerConfig:
    """Everything needed to start a container's process, and nothing about its runtime state.

    Frozen once made (``config_check.from_spec`` validates it as a whole): setting a field raises ``AttributeError``;
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
    __slots__ = (*FIELDS, "_frozen", "_doc", "_saved")

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
        # --log-opt: {"max-size": "10m", "max-file": "3"} (docker's), checked by config_check.validate; see pycontain.logs
        self.log_opts = dict(log_opts or {})
        self._frozen = True

    def __setattr__(self, name: str, value: object) -> None:
        # A config is validated as a whole and shared (state.json, the monitor, the child): a field changed
        # afterwards would be one nothing checked.
        if self._frozen:
            raise AttributeError(f"a ContainerConfig is not changed once made: use replace({name}=...)")
        object.__setattr__(self, name, value)

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
        """state.json's form: plain JSON values (limits, devices and hooks in OCI's spelling). Made once: a
        config never changes, and a container's state is saved several times while it starts."""
        saved = getattr(self, "_saved", None)
        if saved is None:
            saved = self._saved_form()
            object.__setattr__(self, "_saved", saved)
        return dict(saved)

    def _saved_form(self) -> dict:
        doc = getattr(self, "_doc", None)
        if doc is not None and all(k in doc for k in self.FIELDS):
            return {k: doc[k] for k in self.FIELDS}  # read back from state.json: already in this form
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
        """What ``to_dict`` gave, its JSON types checked by the reader (``ContainerState.from_dict`` does as it
        reads state.json). Each field is converted when first read: a typed load of all would cost ~60 us."""
        new = object.__new__(cls)
        object.__setattr__(new, "_doc", d)
        object.__setattr__(new, "_frozen", True)
        return new

    if not TYPE_CHECKING:  # hidden from mypy, which would otherwise accept any attribute name

        def __getattr__(self, name: str) -> object:
            # Python calls this only for a slot not set: a field of a config from_dict made, read first now.
            if name not in _FIELDS:
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
_FIELDS = frozenset(ContainerConfig.FIELDS)


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


def _mounts(v: list) -> list[Mount]:
    from .config_fields import Mount

    return [Mount.from_dict(m) for m in v]


def _time_offsets(v: dict | None) -> TimeOffsets | None:
    from .config_fields import TimeOffsets

    return None if v is None else TimeOffsets.from_dict(v)


def _proc_attrs(v: dict | None) -> ProcAttrs | None:
    from .config_fields import ProcAttrs

    return None if v is None else ProcAttrs.from_dict(v)


def _healthcheck(v: dict | None) -> HealthCheck | None:
    from .config_fields import HealthCheck

    return None if v is None else HealthCheck.from_dict(v)


# How the typed fields are read back from state.json (the others are plain JSON values).
_CONVERT: dict[str, Callable[[Any], object]] = {
    "mounts": _mounts,
    "resources": _resources,
    "device_rules": _device_rules,
    "cgroup_writes": lambda v: [tuple(w) for w in v],
    "id_mappings": _id_mappings_of,
    "security": _security,
    "devices": _devices,
    "hooks": _hooks,
    "time_offsets": _time_offsets,
    "proc_attrs": _proc_attrs,
    "healthcheck": _healthcheck,
}
