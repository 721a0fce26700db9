"""The typed model of an OCI runtime spec: ``OciSpec`` and its parts, and the mount-option tables they
translate with.

Plain ``__slots__`` classes, no ``dataclasses``, ``typing``, ``re`` or ``json``: ``pycontain run`` builds
an ``OciSpec`` too (``pycontain.spec.docker``), so this module is on its start path.
"""

from __future__ import annotations

from ..libc import (  # the kernel's numbers, defined once there
    MOUNT_ATTR__ATIME,
    MOUNT_ATTR_NOATIME,
    MOUNT_ATTR_NODEV,
    MOUNT_ATTR_NODIRATIME,
    MOUNT_ATTR_NOEXEC,
    MOUNT_ATTR_NOSUID,
    MOUNT_ATTR_NOSYMFOLLOW,
    MOUNT_ATTR_RDONLY,
    MOUNT_ATTR_STRICTATIME,
    MS_BIND,
    MS_DIRSYNC,
    MS_I_VERSION,
    MS_LAZYTIME,
    MS_MANDLOCK,
    MS_NOATIME,
    MS_NODEV,
    MS_NODIRATIME,
    MS_NOEXEC,
    MS_NOSUID,
    MS_NOSYMFOLLOW,
    MS_POSIXACL,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_RELATIME,
    MS_REMOUNT,
    MS_SHARED,
    MS_SILENT,
    MS_SLAVE,
    MS_STRICTATIME,
    MS_SYNCHRONOUS,
    MS_UNBINDABLE,
)

# typing.TYPE_CHECKING without importing typing; type checkers know the idiom.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..config_fields import ProcAttrs, TimeOffsets

# mount(8) option -> (clears the flag, flag); runc's table.
MOUNT_FLAGS = {
    "defaults": (False, 0),
    "ro": (False, MS_RDONLY),
    "rw": (True, MS_RDONLY),
    "nosuid": (False, MS_NOSUID),
    "suid": (True, MS_NOSUID),
    "nodev": (False, MS_NODEV),
    "dev": (True, MS_NODEV),
    "noexec": (False, MS_NOEXEC),
    "exec": (True, MS_NOEXEC),
    "sync": (False, MS_SYNCHRONOUS),
    "async": (True, MS_SYNCHRONOUS),
    "remount": (False, MS_REMOUNT),
    "mand": (False, MS_MANDLOCK),
    "nomand": (True, MS_MANDLOCK),
    "dirsync": (False, MS_DIRSYNC),
    "noatime": (False, MS_NOATIME),
    "atime": (True, MS_NOATIME),
    "nodiratime": (False, MS_NODIRATIME),
    "diratime": (True, MS_NODIRATIME),
    "relatime": (False, MS_RELATIME),
    "norelatime": (True, MS_RELATIME),
    "strictatime": (False, MS_STRICTATIME),
    "nostrictatime": (True, MS_STRICTATIME),
    "nosymfollow": (False, MS_NOSYMFOLLOW),
    "symfollow": (True, MS_NOSYMFOLLOW),
    "lazytime": (False, MS_LAZYTIME),
    "nolazytime": (True, MS_LAZYTIME),
    "iversion": (False, MS_I_VERSION),
    "noiversion": (True, MS_I_VERSION),
    "silent": (False, MS_SILENT),
    "loud": (True, MS_SILENT),
    "acl": (False, MS_POSIXACL),
    "noacl": (True, MS_POSIXACL),
    "bind": (False, MS_BIND),
    "rbind": (False, MS_BIND | MS_REC),
}
# Propagation changes need a mount(2) call of their own, after the mount itself.
MOUNT_PROPAGATION = {
    "private": MS_PRIVATE,
    "rprivate": MS_PRIVATE | MS_REC,
    "shared": MS_SHARED,
    "rshared": MS_SHARED | MS_REC,
    "slave": MS_SLAVE,
    "rslave": MS_SLAVE | MS_REC,
    "unbindable": MS_UNBINDABLE,
    "runbindable": MS_UNBINDABLE | MS_REC,
}
# Recursive options (runc's): applied with mount_setattr(2) and AT_RECURSIVE to the mount and every mount
# beneath it, once mounted. option -> (clears the attribute, MOUNT_ATTR_*); the atime ones also clear the
# atime field (MOUNT_ATTR__ATIME), as the kernel requires.
RECURSIVE_OPTIONS = {
    "rro": (False, MOUNT_ATTR_RDONLY),
    "rrw": (True, MOUNT_ATTR_RDONLY),
    "rnosuid": (False, MOUNT_ATTR_NOSUID),
    "rsuid": (True, MOUNT_ATTR_NOSUID),
    "rnodev": (False, MOUNT_ATTR_NODEV),
    "rdev": (True, MOUNT_ATTR_NODEV),
    "rnoexec": (False, MOUNT_ATTR_NOEXEC),
    "rexec": (True, MOUNT_ATTR_NOEXEC),
    "rnodiratime": (False, MOUNT_ATTR_NODIRATIME),
    "rdiratime": (True, MOUNT_ATTR_NODIRATIME),
    "rrelatime": (False, 0),  # MOUNT_ATTR_RELATIME is 0: clearing the atime field is the whole change
    "rnorelatime": (True, 0),
    "rnoatime": (False, MOUNT_ATTR_NOATIME),
    "ratime": (True, MOUNT_ATTR_NOATIME),
    "rstrictatime": (False, MOUNT_ATTR_STRICTATIME),
    "rnostrictatime": (True, MOUNT_ATTR_STRICTATIME),
    "rnosymfollow": (False, MOUNT_ATTR_NOSYMFOLLOW),
    "rsymfollow": (True, MOUNT_ATTR_NOSYMFOLLOW),
}
_ATIME_OPTIONS = frozenset(
    ("rrelatime", "rnorelatime", "rnoatime", "ratime", "rstrictatime", "rnostrictatime")
)
# An id-mapped bind mount: "ridmap" maps the submounts of a recursive bind too.
IDMAP_OPTIONS = ("idmap", "ridmap")
# Accepted, not applied (each gives a warning): podman puts tmpcopyup on its tmpfs mounts.
IGNORED_OPTIONS = {"tmpcopyup": "the tmpfs starts empty instead of holding a copy of the image's directory"}

HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


# -- the model ------------------------------------------------------------------------------------
class OciProcess:
    """``process``: what runs in the container, as whom, with which limits."""

    __slots__ = (
        "args",
        "env",
        "cwd",
        "terminal",
        "console_size",
        "uid",
        "gid",
        "umask",
        "additional_gids",
        "capabilities",
        "rlimits",
        "no_new_privileges",
        "oom_score_adj",
        "apparmor_profile",
        "selinux_label",
        "proc_attrs",
        "user",
    )

    def __init__(
        self,
        args: list[str],
        *,
        env: list[str] | None = None,
        cwd: str = "/",
        terminal: bool = False,
        console_size: tuple[int, int] | None = None,
        uid: int = 0,
        gid: int = 0,
        umask: int | None = None,
        additional_gids: list[int] | None = None,
        capabilities: dict[str, list[str]] | None = None,
        rlimits: list[tuple[str, int, int]] | None = None,
        no_new_privileges: bool = False,
        oom_score_adj: int | None = None,
        apparmor_profile: str | None = None,
        selinux_label: str | None = None,
    ) -> None:
        self.args = list(args)
        self.env = list(env or [])
        self.cwd = cwd
        self.terminal = terminal
        self.console_size = console_size  # (height, width), only meaningful with terminal
        self.uid = uid
        self.gid = gid
        self.umask = umask
        self.additional_gids = list(additional_gids or [])
        self.capabilities = capabilities  # {set: [CAP_...]} for all five sets, or None when not given
        self.rlimits = list(rlimits or [])  # [(RLIMIT_..., soft, hard)]
        self.no_new_privileges = no_new_privileges
        self.oom_score_adj = oom_score_adj
        self.apparmor_profile = apparmor_profile
        self.selinux_label = selinux_label
        # ioPriority and scheduler of an exec's process.json (pycontain.procattr.check); a config.json's
        # are in OciSpec.proc_attrs with its memoryPolicy
        self.proc_attrs: ProcAttrs | None = None
        # docker's --user (UID[:GID], names allowed, looked up in the container), in place of uid and gid;
        # pycontain's own field: a config.json has numbers only
        self.user: str | None = None

    def to_dict(self) -> dict:
        user: dict = {"uid": self.uid, "gid": self.gid}
        if self.umask is not None:
            user["umask"] = self.umask
        if self.additional_gids:
            user["additionalGids"] = list(self.additional_gids)
        d: dict = {
            "terminal": self.terminal,
            "user": user,
            "args": list(self.args),
            "env": list(self.env),
            "cwd": self.cwd,
        }
        if self.console_size is not None:
            d["consoleSize"] = {"height": self.console_size[0], "width": self.console_size[1]}
        if self.capabilities is not None:
            d["capabilities"] = {k: list(v) for k, v in self.capabilities.items()}
        if self.rlimits:
            d["rlimits"] = [{"type": t, "soft": s, "hard": h} for t, s, h in self.rlimits]
        d["noNewPrivileges"] = self.no_new_privileges
        if self.oom_score_adj is not None:
            d["oomScoreAdj"] = self.oom_score_adj
        if self.apparmor_profile:
            d["apparmorProfile"] = self.apparmor_profile
        if self.selinux_label:
            d["selinuxLabel"] = self.selinux_label
        return d

    def __repr__(self) -> str:
        return f"OciProcess(args={self.args!r}, cwd={self.cwd!r}, uid={self.uid}, gid={self.gid})"


class OciMount:
    """One ``mounts`` entry. ``source`` of a bind mount is absolute (resolved against the bundle)."""

    __slots__ = ("destination", "type", "source", "options", "uid_mappings", "gid_mappings")

    def __init__(
        self, destination: str, type: str = "", source: str = "", options: list[str] | None = None
    ) -> None:
        self.destination = destination
        self.type = type
        self.source = source
        self.options = list(options or [])
        # An id-mapped mount's own mappings, (container_id, host_id, size) as linux.uidMappings
        self.uid_mappings: list[tuple[int, int, int]] = []
        self.gid_mappings: list[tuple[int, int, int]] = []

    @property
    def is_bind(self) -> bool:
        """A bind mount: type "bind", or a bind/rbind option (runc's rule; the type is then ignored)."""
        return self.type == "bind" or "bind" in self.options or "rbind" in self.options

    def flags_and_data(self) -> tuple[int, list[int], str, bool]:
        """The mount(2) arguments for the options: (flags, propagation_flags, data, recursive_bind).

        Options are applied in order (a later "rw" clears an earlier "ro"). ``flags`` holds MS_BIND | MS_REC
        for "rbind" (``recursive_bind`` says so too), and MS_BIND for a mount of type "bind" without a
        bind option. Each propagation option (private, rslave, ...) is one entry of ``propagation_flags``,
        to apply with a mount(2) call of its own once mounted. Options mount(8) does not know as flags
        (mode=755, size=65536k, newinstance, ...) are joined with commas into ``data``. A read-only bind
        mount needs a remount (MS_REMOUNT | MS_BIND | MS_RDONLY) after the bind: the kernel ignores
        MS_RDONLY on the first call.
        """
        flags = 0
        propagation: list[int] = []
        data: list[str] = []
        for opt in self.options:
            entry = MOUNT_FLAGS.get(opt)
            if entry is not None:
                clear, flag = entry
                flags = flags & ~flag if clear else flags | flag
            elif opt in MOUNT_PROPAGATION:
                propagation.append(MOUNT_PROPAGATION[opt])
            elif opt not in IGNORED_OPTIONS and opt not in RECURSIVE_OPTIONS and opt not in IDMAP_OPTIONS:
                data.append(opt)
        if self.type == "bind" and not flags & MS_BIND:
            flags |= MS_BIND
        return flags, propagation, ",".join(data), "rbind" in self.options

    def recursive_attrs(self) -> tuple[int, int]:
        """(attributes to set, attributes to clear) for mount_setattr(2) from the recursive options (rro, ...),
        in order: a later "rrw" undoes an earlier "rro"."""
        attr_set = attr_clr = 0
        for opt in self.options:
            entry = RECURSIVE_OPTIONS.get(opt)
            if entry is None:
                continue
            clear, attr = entry
            if opt in _ATIME_OPTIONS:  # the atime mode is one field: set it whole (relatime is 0)
                attr_set = attr_set & ~MOUNT_ATTR__ATIME | (0 if clear else attr)
                attr_clr |= MOUNT_ATTR__ATIME
            elif clear:
                attr_set &= ~attr
                attr_clr |= attr
            else:
                attr_set |= attr
                attr_clr &= ~attr
        return attr_set, attr_clr

    @property
    def id_mapped(self) -> bool:
        """An id-mapped bind mount: mappings of its own, or the idmap/ridmap option."""
        return bool(self.uid_mappings or self.gid_mappings) or any(o in IDMAP_OPTIONS for o in self.options)

    def to_dict(self) -> dict:
        d: dict = {"destination": self.destination}
        if self.type:
            d["type"] = self.type
        if self.source:
            d["source"] = self.source
        d["options"] = list(self.options)
        for key, maps in (("uidMappings", self.uid_mappings), ("gidMappings", self.gid_mappings)):
            if maps:
                d[key] = [{"containerID": c, "hostID": h, "size": n} for c, h, n in maps]
        return d

    def __repr__(self) -> str:
        return f"OciMount({self.destination!r}, type={self.type!r}, source={self.source!r}, options={self.options!r})"


class OciHook:
    """One lifecycle hook. ``args`` is the full argv (args[0] included); empty means ``[path]``."""

    __slots__ = ("path", "args", "env", "timeout")

    def __init__(
        self,
        path: str,
        args: list[str] | None = None,
        env: list[str] | None = None,
        timeout: int | None = None,
    ) -> None:
        self.path = path
        self.args = list(args or [])
        self.env = list(env or [])
        self.timeout = timeout  # seconds, > 0, or None for no limit

    @classmethod
    def from_dict(cls, d: dict) -> OciHook:
        """``to_dict``'s form back (the state file's)."""
        return cls(d["path"], d.get("args"), d.get("env"), d.get("timeout"))

    def to_dict(self) -> dict:
        d: dict = {"path": self.path}
        if self.args:
            d["args"] = list(self.args)
        if self.env:
            d["env"] = list(self.env)
        if self.timeout is not None:
            d["timeout"] = self.timeout
        return d

    def __repr__(self) -> str:
        return f"OciHook({self.path!r}, args={self.args!r}, timeout={self.timeout!r})"


class OciDevice:
    """One ``linux.devices`` entry: a node to create in the container."""

    __slots__ = ("path", "type", "major", "minor", "file_mode", "uid", "gid")

    def __init__(
        self,
        path: str,
        type: str,
        major: int = 0,
        minor: int = 0,
        file_mode: int | None = None,
        uid: int | None = None,
        gid: int | None = None,
    ) -> None:
        self.path = path
        self.type = type
        self.major = major
        self.minor = minor
        self.file_mode = file_mode
        self.uid = uid
        self.gid = gid

    @classmethod
    def from_dict(cls, d: dict) -> OciDevice:
        """``to_dict``'s form back (the state file's)."""
        return cls(
            d["path"],
            d["type"],
            d.get("major", 0),
            d.get("minor", 0),
            d.get("fileMode"),
            d.get("uid"),
            d.get("gid"),
        )

    def to_dict(self) -> dict:
        d: dict = {"path": self.path, "type": self.type, "major": self.major, "minor": self.minor}
        for key, value in (("fileMode", self.file_mode), ("uid", self.uid), ("gid", self.gid)):
            if value is not None:
                d[key] = value
        return d

    def __repr__(self) -> str:
        return f"OciDevice({self.path!r}, {self.type!r}, {self.major}, {self.minor})"


class OciSpec:
    """A parsed, validated config.json (see the module's docstring)."""

    __slots__ = (
        "oci_version",
        "raw",
        "bundle",
        "process",
        "root_path",
        "root_readonly",
        "hostname",
        "domainname",
        "mounts",
        "hooks",
        "annotations",
        "namespaces",
        "uid_mappings",
        "gid_mappings",
        "devices",
        "resources",
        "cgroups_path",
        "sysctl",
        "masked_paths",
        "readonly_paths",
        "rootfs_propagation",
        "seccomp",
        "personality",
        "time_offsets",
        "mount_label",
        "proc_attrs",
        "warnings",
    )

    def __init__(self) -> None:
        self.oci_version = ""
        self.raw: dict = {}
        self.bundle = ""
        self.process: OciProcess | None = None
        self.root_path = ""
        self.root_readonly = False
        self.hostname: str | None = None
        self.domainname: str | None = None
        self.mounts: list[OciMount] = []
        self.hooks: dict[str, list[OciHook]] = {k: [] for k in HOOK_KINDS}
        self.annotations: dict[str, str] = {}
        self.namespaces: dict[str, str] = {}  # type -> "" (create) or a path (join), in document order
        self.uid_mappings: list[tuple[int, int, int]] = []  # (container_id, host_id, size)
        self.gid_mappings: list[tuple[int, int, int]] = []
        self.devices: list[OciDevice] = []
        self.resources: dict | None = None
        self.cgroups_path: str | None = None
        self.sysctl: dict[str, str] = {}
        self.masked_paths: list[str] | None = None  # None: the runtime's defaults
        self.readonly_paths: list[str] | None = None
        self.rootfs_propagation: str | None = None
        self.seccomp: dict | None = None
        self.personality: dict | None = None
        self.time_offsets: TimeOffsets | None = None
        self.mount_label: str | None = None
        # process.ioPriority, process.scheduler and linux.memoryPolicy, as pycontain.procattr.check gives them
        self.proc_attrs: ProcAttrs | None = None
        self.warnings: list[str] = []

    def to_dict(self) -> dict:
        """The normalised document: OCI-shaped, paths absolute; ``parse`` reads it back unchanged."""
        d: dict = {"ociVersion": self.oci_version}
        if self.process is not None:
            d["process"] = self.process.to_dict()
        d["root"] = {"path": self.root_path, "readonly": self.root_readonly}
        if self.hostname is not None:
            d["hostname"] = self.hostname
        if self.domainname is not None:
            d["domainname"] = self.domainname
        d["mounts"] = [m.to_dict() for m in self.mounts]
        hooks = {k: [h.to_dict() for h in v] for k, v in self.hooks.items() if v}
        if hooks:
            d["hooks"] = hooks
        if self.annotations:
            d["annotations"] = dict(self.annotations)
        linux: dict = {
            "namespaces": [{"type": t, "path": p} if p else {"type": t} for t, p in self.namespaces.items()]
        }
        if self.uid_mappings:
            linux["uidMappings"] = [
                {"containerID": c, "hostID": h, "size": s} for c, h, s in self.uid_mappings
            ]
        if self.gid_mappings:
            linux["gidMappings"] = [
                {"containerID": c, "hostID": h, "size": s} for c, h, s in self.gid_mappings
            ]
        if self.devices:
            linux["devices"] = [dev.to_dict() for dev in self.devices]
        for key, value in (
            ("resources", self.resources),
            ("cgroupsPath", self.cgroups_path),
            ("sysctl", self.sysctl or None),
            ("maskedPaths", self.masked_paths),
            ("readonlyPaths", self.readonly_paths),
            ("rootfsPropagation", self.rootfs_propagation),
            ("seccomp", self.seccomp),
            ("personality", self.personality),
            ("timeOffsets", self.time_offsets.to_dict() if self.time_offsets is not None else None),
            ("mountLabel", self.mount_label),
        ):
            if value is not None:
                linux[key] = value
        # Kept as given (pycontain.procattr validated them): the document's own spelling round-trips.
        raw_process, raw_linux = self.raw.get("process"), self.raw.get("linux")
        for key in ("ioPriority", "scheduler"):
            if "process" in d and isinstance(raw_process, dict) and raw_process.get(key) is not None:
                d["process"][key] = raw_process[key]
        if isinstance(raw_linux, dict) and raw_linux.get("memoryPolicy") is not None:
            linux["memoryPolicy"] = raw_linux["memoryPolicy"]
        d["linux"] = linux
        return d

    def __repr__(self) -> str:
        return f"OciSpec(oci_version={self.oci_version!r}, root_path={self.root_path!r}, process={self.process!r})"
