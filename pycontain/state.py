"""Containers' state on disk: one directory per container under the state root, written atomically.

Layout of ``<root>`` (default ``/var/lib/pycontain/containers``)::

    .lock                 flock held while names are reserved or containers removed
    <id>/state.json       the ContainerState, replaced atomically (write to a temp file, rename)
    <id>/container.log    stdout/stderr of a detached container, one timestamped line each (see monitor)
    <id>/upper, work      the overlay's writable layer (copy-on-write over the root filesystem)

A process is identified by pid *and* its start time (field 22 of /proc/PID/stat), so a recorded pid
that the kernel has since given to another process is never reported running or signalled, and
the boot id it was recorded under must be the current one: after a reboot every container is exited.
"""

from __future__ import annotations

import posix
import time

from . import fastjson, fastos, trace
from .errors import AlreadyExists, ContainerNotFound, InvalidArgument, InvalidState, PycontainError

# typing.TYPE_CHECKING without importing typing; type checkers know the idiom.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from .config import ContainerConfig
    from .health import HealthState
    from .network.info import NetInfo

# On disk, not in /run: a container's configuration, writable layer and log outlive a reboot (and a tmpfs
# under /run would hold the writable layers in RAM). What dies with the machine is told apart by boot id.
DEFAULT_ROOT = "/var/lib/pycontain/containers"
# Every container of every state root, by id → its state directory: lets 'gc' tell an orphan cgroup
# (no container anywhere) from one whose container lives under another --root.
INDEX_DIR = "/run/pycontain.index"
# The name index of a state root: ``ROOT/.name.NAME``, a symbolic link to the id of the container that holds
# NAME, so reserving a name is one symlink() (it exists, or it is made) instead of reading every container's
# state. An entry whose container is gone, or no longer has that name, is a crash's leftover: it holds
# nothing. The root's lock file starts with NAMES_INDEXED once every container there has its entry (a root
# made before the index gets them at its next reservation).
NAME_PREFIX = ".name."
NAMES_INDEXED = b"names-indexed 1\n"

CREATING = "creating"
CREATED = "created"
RUNNING = "running"
PAUSED = "paused"
STOPPED = "exited"
# Being removed: while the remover lives, 'rm' is in progress; once it is gone, a crash leftover for gc.
REMOVING = "removing"
# state.json's schema. A file without "version" predates it and has version 1's fields. A newer pycontain
# that changes a field's meaning raises this; an older one then leaves that container alone (it neither
# lists, collects nor removes it) and names the version when asked for it by id.
STATE_VERSION = 1
# The largest state.json read (a container's whole configuration, its environment included: a few KiB).
MAX_STATE = 64 << 20


def crash_point(step: str) -> None:
    """Die by SIGKILL here when PYCONTAIN_CRASH_AT names ``step``: how tests prove that a runtime killed
    at any step leaves only what ``pycontain rm -f`` or ``pycontain gc`` removes. Each is also a step
    ``PYCONTAIN_TRACE`` reports."""
    trace.step(step)
    if fastos.getenv("PYCONTAIN_CRASH_AT") == step:
        posix.kill(posix.getpid(), 9)


def proc_start_time(pid: int, allow_zombie: bool = False) -> int | None:
    """The start time of ``pid`` in clock ticks since boot, or None if there is no such process.

    A zombie has exited and only waits to be reaped: it counts as gone unless ``allow_zombie``
    (our own child that exited before we looked, which we will reap ourselves).
    """
    try:
        data = fastos.read_file(f"/proc/{pid}/stat")
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its closing paren.
    fields = data[data.rfind(b")") + 2 :].split()
    if fields[0] == b"Z" and not allow_zombie:
        return None
    return int(fields[19])


def known_anywhere(cid: str) -> bool:
    """Whether some state root (any --root) still holds container ``cid``."""
    return fastos.isdir(fastos.join(INDEX_DIR, cid))  # follows the link to the state directory


_BOOT_ID: list[str] = []


def current_boot_id() -> str:
    """The kernel's id of this boot: pids and start times recorded under another one mean nothing now."""
    if not _BOOT_ID:
        try:
            _BOOT_ID.append(fastos.read_file("/proc/sys/kernel/random/boot_id").decode().strip())
        except OSError:
            _BOOT_ID.append("")
    return _BOOT_ID[0]


def pid_alive(pid: int | None, start_time: int | None) -> bool:
    if not pid or start_time is None:
        return False
    return proc_start_time(pid) == start_time


class NewerState(InvalidState):
    """A state.json written by a newer pycontain, with a schema this one does not know."""

    def __init__(self, version: int) -> None:
        super().__init__(
            f"the container's state.json has version {version}, newer than this pycontain reads "
            f"({STATE_VERSION}): manage it with the pycontain that made it"
        )


class ProcRef:
    """A process as a state file records it: its pid and its start time, so that a pid the kernel has since
    given to another process is never taken for it. On disk ``[pid, start]``."""

    __slots__ = ("pid", "start")

    def __init__(self, pid: int, start: int | None) -> None:
        self.pid = pid
        self.start = start

    @classmethod
    def me(cls) -> ProcRef:
        pid = posix.getpid()
        return cls(pid, proc_start_time(pid))

    def is_me(self) -> bool:
        return self.pid == posix.getpid()

    def alive(self) -> bool:
        return pid_alive(self.pid, self.start)

    def to_list(self) -> list[int | None]:
        return [self.pid, self.start]

    @classmethod
    def from_list(cls, v: object) -> ProcRef | None:
        if v is None:
            return None
        if not (isinstance(v, list) and len(v) == 2 and _is_int(v[0]) and (v[1] is None or _is_int(v[1]))):
            raise ValueError(f"expected [pid, start time], not {v!r}")
        return cls(v[0], v[1])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ProcRef) and (self.pid, self.start) == (other.pid, other.start)

    def __repr__(self) -> str:
        return f"ProcRef({self.pid}, {self.start})"


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# state.json's top-level fields → the JSON types each may have, checked on load by exact class (true is no
# integer here): a file damaged by hand or by a disk fails there, naming the field, rather than deep
# inside a command.
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "id": (str,),
    "name": (str,),
    "status": (str,),
    "pid": (int,),
    "pid_start": (int, type(None)),
    "created": (int, float),
    "started": (int, float, type(None)),
    "finished": (int, float, type(None)),
    "exit_code": (int, type(None)),
    "oom_killed": (bool,),
    "config": (dict,),
    "cgroup": (dict, type(None)),
    "bundle": (str,),
    "error": (str,),
    "creator": (list, type(None)),
    "boot_id": (str, type(None)),
    "monitor": (list, type(None)),
    "restarts": (int,),
    "manual_stop": (bool,),
    "health": (dict, type(None)),
}


# The JSON type of each field of a ContainerConfig's state.json form, checked on load like the top-level ones
# (here rather than in config.py: 'ps' and 'state' then need not import it); the typed fields' own from_dict
# check their items.
_S, _N, _L, _D = (str,), (type(None),), (list,), (dict,)
_CONFIG_TYPES: dict[str, tuple[type, ...]] = {
    **dict.fromkeys(("rootfs", "image", "cwd", "cgroup_manager", "bundle", "image_id", "restart"), _S),
    **dict.fromkeys(("user", "hostname", "name", "cgroup_parent", "domainname", "cgroup_path"), _S + _N),
    **dict.fromkeys(("rootfs_propagation", "network", "stop_signal"), _S + _N),
    **dict.fromkeys(("readonly", "tty", "interactive", "init", "auto_remove", "detach", "overlay"), (bool,)),
    **dict.fromkeys(("proc_readonly", "no_pivot"), (bool,)),
    **dict.fromkeys(("umask", "oom_score_adj"), (int, type(None))),
    "preserve_fds": (int,),
    **dict.fromkeys(("args", "env", "mounts", "cgroup_writes", "devices", "extra_gids", "publish"), _L),
    **dict.fromkeys(("layers", "extra_hosts", "dns", "dns_search"), _L),
    **dict.fromkeys(("device_rules", "masked_paths", "readonly_paths", "console_size"), _L + _N),
    **dict.fromkeys(("namespaces", "sysctl", "annotations", "labels", "log_opts"), _D),
    **dict.fromkeys(("resources", "security", "hooks", "id_mappings", "time_offsets", "proc_attrs"), _D + _N),
    "healthcheck": _D + _N,
}
_JSON_NAMES = {str: "a string", bool: "true or false", int: "an integer", float: "a number", list: "a list"}


def _check_types(d: dict, types_of: dict[str, tuple[type, ...]], where: str) -> None:
    """ValueError naming the first field of ``d`` (a JSON object read from ``where``) whose value's type is
    not one ``types_of`` gives it, by exact class: true is no integer there. Fields it has none for pass."""
    for k, v in d.items():
        types = types_of.get(k)
        if types is not None and v.__class__ not in types:
            wanted = " or ".join(_JSON_NAMES.get(t, "an object" if t is dict else "null") for t in types)
            raise ValueError(f"{where}{k}: {v!r} is not {wanted}")


class ConfigView:
    """The configuration's fields that 'ps' and 'state' show and 'exec' gives its process, read from its
    state.json form: plain JSON values whose types the load checked (``security`` too: its JSON form, which
    exec's settings are resolved from), so those commands neither import the config module nor make a
    ContainerConfig per container. A field missing (a file from before it) reads as the config's default."""

    __slots__ = (
        "image",
        "args",
        "labels",
        "publish",
        "auto_remove",
        "restart",
        "bundle",
        "annotations",
        "env",
        "cwd",
        "user",
        "hostname",
        "extra_gids",
        "umask",
        "security",
    )

    def __init__(self, d: dict) -> None:
        self.image: str = d["image"] if "image" in d else d["rootfs"]
        self.args: list[str] = d["args"]
        self.labels: dict[str, str] = d.get("labels", {})
        self.publish: list[str] = d.get("publish", [])
        self.auto_remove: bool = d.get("auto_remove", False)
        self.restart: str = d.get("restart", "no")
        self.bundle: str = d.get("bundle", "")
        self.annotations: dict[str, str] = d.get("annotations", {})
        self.env: list[str] = d.get("env", [])
        self.cwd: str = d.get("cwd", "/")
        self.user: str | None = d.get("user")
        self.hostname: str | None = d.get("hostname")
        self.extra_gids: list[int] = d.get("extra_gids", [])
        self.umask: int | None = d.get("umask")
        self.security: dict | None = d.get("security")


class ContainerState:
    """What pycontain knows about one container, persisted as ``state.json``: typed fields, the
    configuration a ``ContainerConfig``. ``to_dict``/``from_dict`` give and read the file's JSON."""

    # state.json's fields, in its order ("config" is the property below)
    FIELDS = (
        "id",
        "name",
        "status",
        "pid",
        "pid_start",
        "created",
        "started",
        "finished",
        "exit_code",
        "oom_killed",
        "config",
        "cgroup",
        "bundle",
        "error",
        "creator",
        "boot_id",
        "monitor",
        "restarts",
        "manual_stop",
        "health",
    )
    __slots__ = (*(k for k in FIELDS if k != "config"), "_config", "_config_doc", "_shown", "net_info")

    def __init__(
        self,
        id: str,
        name: str,
        config: ContainerConfig | dict,
        *,
        status: str = CREATING,
        pid: int = 0,
        pid_start: int | None = None,
        created: float | None = None,
        started: float | None = None,
        finished: float | None = None,
        exit_code: int | None = None,
        oom_killed: bool = False,
        cgroup: dict | None = None,
        bundle: str = "",
        error: str = "",
        creator: ProcRef | None = None,
        boot_id: str | None = None,
        monitor: ProcRef | None = None,
        restarts: int = 0,
        manual_stop: bool = False,
        health: HealthState | None = None,
        net_info: NetInfo | None = None,
    ) -> None:
        self.id = id
        self.name = name
        # A ContainerConfig, or its state.json form (from_dict's, types checked) made one when first read
        self._config: ContainerConfig | None = None if isinstance(config, dict) else config
        self._config_doc: dict | None = config if isinstance(config, dict) else None
        self._shown: ConfigView | None = None
        self.status = status
        self.pid = pid
        self.pid_start = pid_start
        self.created = created if created is not None else time.time()
        self.started = started
        self.finished = finished
        self.exit_code = exit_code
        self.oom_killed = oom_killed
        self.cgroup = cgroup  # the cgroup drivers' record (cgroups.load_manager reads it)
        self.bundle = bundle
        self.error = error
        # The runtime process creating the container: while it lives, a "creating" container is work in
        # progress; once it is gone, a crash leftover for gc.
        self.creator = creator if creator is not None else ProcRef.me()
        self.boot_id = boot_id if boot_id is not None else current_boot_id()
        # The monitor process of a detached container: it reaps PID 1 and records its exit.
        self.monitor = monitor
        self.restarts = restarts  # how many times the restart policy started it again
        self.manual_stop = manual_stop  # stopped by 'stop': the restart policy leaves it alone
        self.health = health  # with a health check (config.healthcheck)
        # Its place on a bridge network while attached (what 'rm' and a restart undo).
        self.net_info = net_info

    @property
    def config(self) -> ContainerConfig:
        """As validated when the container was made; changed only by replacing it ('update' saves new
        limits). One read from state.json is made when first asked for: 'ps' and 'state' show a few plain
        fields (``shown``) and need neither the config module nor a config per container."""
        cfg = self._config
        if cfg is None:
            from .config import ContainerConfig

            assert self._config_doc is not None
            cfg = self._config = ContainerConfig.from_dict(self._config_doc)
        return cfg

    @config.setter
    def config(self, config: ContainerConfig) -> None:
        self._config, self._shown = config, None

    @property
    def shown(self) -> ConfigView:
        """The configuration's fields that 'ps' and 'state' show (its rows read several)."""
        if self._shown is None:
            if self._config is not None:
                self._shown = ConfigView(self._config.to_dict())
            else:
                assert self._config_doc is not None  # (one of the two is set)
                self._shown = ConfigView(self._config_doc)
        return self._shown

    def config_dict(self) -> dict:
        """The configuration as state.json holds it: with the network attachment as "net_info", where
        versions before the typed state kept it (and 'inspect' shows it)."""
        d = self.config.to_dict()
        if self.net_info is not None:
            d["net_info"] = self.net_info.to_dict()
        return d

    def to_dict(self) -> dict:
        # net_info has no key of its own: it is written inside "config" (config_dict)
        d: dict = {
            "version": STATE_VERSION,
            **{k: getattr(self, k) for k in self.FIELDS},
        }
        d["config"] = self.config_dict()
        d["creator"] = self.creator.to_list() if self.creator is not None else None
        d["monitor"] = self.monitor.to_list() if self.monitor is not None else None
        d["health"] = self.health.to_dict() if self.health is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ContainerState:
        """Raises ValueError (naming the field) for a document that is not a state."""
        version = d.get("version", 1)
        if not _is_int(version) or version < 1:
            raise ValueError(f"state version {version!r} is not a version")
        if version > STATE_VERSION:
            raise NewerState(version)
        for k in ("id", "name", "config"):
            if k not in d:
                raise ValueError(f"{k}: missing")
        _check_types(d, _FIELD_TYPES, "")
        doc = d["config"]
        _check_types(doc, _CONFIG_TYPES, "config: ")
        for k in ("rootfs", "args"):
            if k not in doc:
                raise ValueError(f"config: {k}: missing")
        info = doc.get("net_info")  # (a key the config's from_dict ignores)
        net_info = None
        if info:
            from .network.info import NetInfo

            net_info = NetInfo.from_dict(info)
        kw = {k: d[k] for k in cls.FIELDS if k in d and k != "config"}
        kw["creator"] = ProcRef.from_list(d.get("creator"))
        kw["monitor"] = ProcRef.from_list(d.get("monitor"))
        health = d.get("health")
        if health is not None:
            from .health import HealthState

            kw["health"] = HealthState.from_dict(health)
        kw["net_info"] = net_info
        return cls(**kw, config=doc)

    def same_boot(self) -> bool:
        return not self.boot_id or self.boot_id == current_boot_id()

    def alive(self) -> bool:
        return self.same_boot() and pid_alive(self.pid, self.pid_start)

    def status_now(self) -> str:
        """The container's status now, from the kernel's view rather than the last one recorded. Here, not
        in ``Container``: ``state`` and ``ps`` ask it of every container without loading container.py."""
        if self.status == REMOVING:
            return REMOVING
        if self.alive():
            if self.status in (CREATING, CREATED):
                return self.status
            from .freezer import is_frozen  # not the cgroup drivers

            try:
                return PAUSED if is_frozen(self.cgroup) else RUNNING
            except OSError:
                return RUNNING
        if self.status in (RUNNING, PAUSED, CREATED):
            return STOPPED
        return self.status

    def oci_state(self) -> dict:
        """runc's ``state`` document (the runtime spec's state, its id the container's name): here, for
        ``state`` to print it from the saved state alone."""
        from . import SPEC_VERSION

        status = self.status_now()
        oci_status = status if status in (CREATING, CREATED, RUNNING, PAUSED) else "stopped"
        return {
            "ociVersion": SPEC_VERSION,
            "id": self.name,
            "status": oci_status,
            "pid": self.pid if oci_status in (CREATED, RUNNING, PAUSED) else 0,
            "bundle": self.bundle or self.shown.bundle,
            "annotations": self.shown.annotations,
        }

    def monitored(self) -> bool:
        """Whether this container's monitor still runs (it will record the exit and apply the restart policy)."""
        return bool(self.monitor and self.same_boot() and self.monitor.alive())

    def abandoned(self) -> bool:
        """Still "creating" or "removing", but the runtime doing it is gone: a crashed create or rm."""
        return self.status in (CREATING, REMOVING) and not (
            self.same_boot() and self.creator is not None and self.creator.alive()
        )


class StateStore:
    """The state root: reserves ids and names, loads and saves containers' states."""

    def __init__(self, root: str | None = None) -> None:
        if not root and not fastos.getenv("PYCONTAIN_ROOT"):
            from . import rootless

            if rootless.unprivileged():
                root = rootless.default_root()
        self.root = fastos.abspath(root or fastos.getenv("PYCONTAIN_ROOT") or DEFAULT_ROOT)
        if posix.geteuid() == 0:
            self._check_owner()

    def _check_owner(self) -> None:
        """Root acts on no other user's state root (``--root`` a rootless user's): its state files say which
        process is the container, which files its cgroup is, which namespaces exec joins and what
        environment the command gets, so whoever writes them would choose what root kills, writes ("0" to
        a "cgroup" file that links to /etc/passwd) and runs. (In a rootless user namespace the user's own
        files are root's.) Nor on one others may write in (``--root /tmp``: anyone's directory there would
        be a container). A root not made yet is made root's, mode 0700, when first needed."""
        try:
            st = posix.stat(self.root)
        except OSError:
            return
        if st.st_uid == 0 and not st.st_mode & 0o022:
            return
        from .errors import PermissionDenied

        whose = f"belongs to user {st.st_uid}" if st.st_uid else "is writable by other users"
        raise PermissionDenied(
            f"the state root {self.root} {whose}: root does not act on another user's containers (their "
            "state files would choose what it runs, writes and kills); run pycontain as that user"
        )

    def dir(self, cid: str) -> str:
        return fastos.join(self.root, cid)

    def lock(self) -> _Lock:
        import os  # (the paths that write states load it anyway)

        os.makedirs(self.root, mode=0o700, exist_ok=True)
        return _Lock(fastos.join(self.root, ".lock"))

    def ids(self) -> list[str]:
        try:
            names = posix.listdir(self.root)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if len(n) == 64 and not n.startswith("."))

    def reserve(self, state: ContainerState) -> None:
        """Create the container's directory and first state file; the name must be free.

        The name's entry is made first, the directory next: a crash in between leaves an entry whose
        container does not exist, which holds nothing (the next reservation of that name, or 'gc', removes
        it), never a container whose name another one could take.
        """
        with self.lock() as lock:
            self._claim_name(state, lock)
            try:
                posix.mkdir(self.dir(state.id), 0o700)
                try:
                    self.save(state)
                except BaseException:
                    # A full disk must not leave a directory without a state that nothing would ever find.
                    rmtree(self.dir(state.id))
                    raise
            except BaseException:
                self._release_name(state.name, state.id)
                raise
        try:
            try:
                posix.symlink(self.dir(state.id), fastos.join(INDEX_DIR, state.id))
            except FileNotFoundError:
                import os

                os.makedirs(INDEX_DIR, 0o700, exist_ok=True)
                posix.symlink(self.dir(state.id), fastos.join(INDEX_DIR, state.id))
        except PermissionError:
            pass  # rootless: root's index is closed to us, and our containers have no cgroup for gc to find

    def holder(self, name: str) -> ContainerState | None:
        """The container the name index gives ``name`` to, if it exists and still has that name."""
        try:
            cid = posix.readlink(fastos.join(self.root, NAME_PREFIX + name))
        except OSError:
            return None
        if len(cid) != 64 or "/" in cid or cid.startswith("."):
            return None  # not an entry we made
        try:
            st = self.load_id(cid)
        except NewerState:
            return None  # a newer pycontain's container: left alone, as all() leaves it
        return st if st is not None and st.name == name else None

    def _claim_name(self, state: ContainerState, lock: _Lock) -> None:
        """Make ``state.name``'s index entry, or raise AlreadyExists. Under the lock: two reservations of one
        name cannot both find an entry left by a crash and replace it."""
        entry = fastos.join(self.root, NAME_PREFIX + state.name)
        if posix.pread(lock.fd, len(NAMES_INDEXED), 0) != NAMES_INDEXED:
            self._index_names()
            try:
                posix.pwrite(lock.fd, NAMES_INDEXED, 0)
            except OSError:
                pass  # a full disk: the root is indexed again at the next reservation, no harm
        try:
            try:
                posix.symlink(state.id, entry)
                return
            except FileExistsError:
                pass
            other = self.holder(state.name)
            if other is not None:
                raise AlreadyExists(
                    f"the container name {state.name!r} is already in use by container "
                    f"{other.id[:12]} (remove it with 'pycontain rm {state.name}', or choose "
                    "another --name)"
                )
            try:
                posix.unlink(entry)  # a crash's leftover: its container is gone
            except FileNotFoundError:
                pass
            posix.symlink(state.id, entry)
        except OSError as e:
            raise self._write_error(e, state.name) from None

    def _index_names(self) -> None:
        """Give every container of a root made before the name index its entry (under the lock)."""
        for st in self.all():
            try:
                posix.symlink(st.id, fastos.join(self.root, NAME_PREFIX + st.name))
            except FileExistsError:
                pass  # two containers of one name (made by a version that raced): the first keeps it
            except OSError as e:
                raise self._write_error(e, st.name) from None

    def _release_name(self, name: str, cid: str) -> None:
        """Remove ``name``'s entry if it is ``cid``'s (under the lock, once the container is gone)."""
        entry = fastos.join(self.root, NAME_PREFIX + name)
        try:
            if posix.readlink(entry) == cid:
                posix.unlink(entry)
        except OSError:
            pass  # none (a crash before it was made), or another container's by now

    def stale_names(self) -> list[str]:
        """Remove the name entries that hold nothing (a crash's leftovers); their paths. Under the lock."""
        out: list[str] = []
        try:
            entries = posix.listdir(self.root)
        except FileNotFoundError:
            return out
        for n in entries:
            if n.startswith(NAME_PREFIX) and self.holder(n[len(NAME_PREFIX) :]) is None:
                path = fastos.join(self.root, n)
                try:
                    posix.unlink(path)
                    out.append(path)
                except FileNotFoundError:
                    pass
        return out

    def _write_error(self, e: OSError, name: str) -> Exception:
        """A failed write in the state root: a full or read-only disk said in one line, other errors as raised."""
        import errno

        if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO):
            return PycontainError(
                f"cannot save the state of container {name} in {self.root}: "
                f"{posix.strerror(e.errno).lower()} (free some space there, or choose "
                "another --root)"
            )
        return e

    def save(self, state: ContainerState) -> None:
        """Replace ``state.json`` whole: readers and a crash see the old version or the new, never half.

        No fsync (several ms a save on disk, and a run saves several times): the rename alone orders what a
        crashed runtime leaves, and on a power loss ext4 and xfs write a file renamed over another one first.
        """
        path = fastos.join(self.dir(state.id), "state.json")
        data = fastjson.dumps(state.to_dict()).encode()
        try:
            fastos.write_replace(path, data, 0o600)
        except OSError as e:
            err = self._write_error(e, state.name)
            if err is e:
                raise
            raise err from None

    def load_id(self, cid: str) -> ContainerState | None:
        path = fastos.join(self.dir(cid), "state.json")
        try:
            return ContainerState.from_dict(fastjson.loads(_read_state(path)))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as e:
            # A runtime killed between mkdir and its first save leaves a directory without a valid
            # state (so may a disk, or a hand): report it as a broken container that 'rm -f' can remove,
            # its error naming the file and what is wrong with it, on one line.
            text = e.strerror if isinstance(e, OSError) and e.strerror else str(e)  # (not the path again)
            why = " ".join(text.split())[:200] or type(e).__name__
            return ContainerState(
                cid,
                cid[:12],
                {"rootfs": "", "args": []},
                status=CREATING,
                error=f"state file is damaged: {path}: {why}",
            )

    def all(self) -> list[ContainerState]:
        out = []
        for cid in self.ids():
            try:
                st = self.load_id(cid)
            except NewerState:
                continue  # a newer pycontain's: not ours to list, collect or remove
            if st is not None:
                out.append(st)
        return out

    def find(self, ref: str) -> ContainerState:
        """A container by full id, name, or unique id prefix."""
        if not ref or "/" in ref or "\0" in ref or ref in (".", ".."):
            raise InvalidArgument(f"invalid container reference {ref!r}: give a name or an id")
        if len(ref) == 64:
            st = self.load_id(ref)
            if st is not None:
                return st
        # By name through the name index: one link and one state read, not every container's (engines
        # call state, exec and kill by name); a root without the entry is read whole below.
        st = self.holder(ref)
        if st is not None:
            return st
        states = self.all()
        for st in states:
            if st.name == ref:
                return st
        matches = [st for st in states if st.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidArgument(f"{ref!r} matches {len(matches)} containers: give more of the id")
        raise ContainerNotFound(ref)

    def remove(self, cid: str, name: str | None = None) -> None:
        """Remove a container's directory with its ``state.json`` last, then its name's entry: a removal cut
        short leaves a container that 'rm -f' still finds and finishes, never an anonymous half-deleted
        directory, nor a container whose name is free. Under the lock (the name's entry). ``name``: its
        name, when the caller has just read its state under this lock (else it is read here)."""
        d = self.dir(cid)
        if name is None:
            try:
                st = self.load_id(cid)
            except NewerState:
                st = None
            name = st.name if st is not None else None
        try:
            entries = list(posix.scandir(d))
        except FileNotFoundError:
            entries = []
        _remove_entries(e for e in entries if e.name != "state.json")
        crash_point("rm-contents-removed")
        try:
            posix.unlink(fastos.join(INDEX_DIR, cid))
        except (FileNotFoundError, PermissionError):
            pass
        try:
            posix.unlink(fastos.join(d, "state.json"))
        except FileNotFoundError:
            pass
        try:
            posix.rmdir(d)
        except FileNotFoundError:
            pass
        except OSError:
            rmtree(d)  # not empty: whatever came meanwhile (an exec's cached settings) goes with it
        if name is not None:
            self._release_name(name, cid)

    def leftovers(self) -> list[str]:
        """Container directories without a state file (a removal cut between its last two steps).

        Call it under ``lock()``: ``reserve`` makes a directory and its state file under the same lock.
        """
        return [
            self.dir(cid) for cid in self.ids() if not fastos.exists(fastos.join(self.dir(cid), "state.json"))
        ]


def _read_state(path: str) -> str:
    """A state file's text. Not blocking, nor through a symbolic link, nor more than MAX_STATE bytes: a
    damaged one (by a disk, by a hand) is listed as damaged, where a FIFO made ``ps`` wait forever and a
    sparse file of GiBs was read whole."""
    fd = posix.open(path, posix.O_RDONLY | posix.O_NOFOLLOW | posix.O_NONBLOCK | posix.O_CLOEXEC)
    try:
        st = posix.fstat(fd)
        if st.st_mode & fastos.S_IFMT != fastos.S_IFREG:
            raise ValueError("not a regular file")
        if st.st_size > MAX_STATE:
            raise ValueError(f"larger than {MAX_STATE >> 20} MiB")
        return posix.read(fd, st.st_size).decode()
    finally:
        posix.close(fd)


def rmtree(path: str) -> None:
    """shutil.rmtree without importing shutil (and bz2, lzma...) on the start path; never follows links."""
    try:
        entries = list(posix.scandir(path))
    except FileNotFoundError:
        return
    except NotADirectoryError:
        posix.unlink(path)
        return
    except PermissionError:
        # overlayfs leaves work/work with mode 000: root reads it anyway, a rootless user must open it first
        posix.chmod(path, 0o700)
        entries = list(posix.scandir(path))
    _remove_entries(entries)
    try:
        posix.rmdir(path)
    except FileNotFoundError:
        pass


def _remove_entries(entries) -> None:
    for e in entries:
        if e.is_dir(follow_symlinks=False):
            try:
                posix.rmdir(e.path)  # most are empty (a --rm container's upper/ and work/work): no listing
            except OSError:
                rmtree(e.path)
        else:
            try:
                posix.unlink(e.path)
            except FileNotFoundError:
                pass


class _Lock:
    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> _Lock:
        self.fd = posix.open(self.path, posix.O_RDWR | posix.O_CREAT | posix.O_CLOEXEC, 0o600)
        import fcntl  # (only the paths that change a state root lock it)

        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        posix.close(self.fd)
