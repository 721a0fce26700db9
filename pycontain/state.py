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

import errno
import fcntl
import os
import time

from . import fastjson, trace
from .errors import AlreadyExists, ContainerNotFound, InvalidArgument, InvalidState, PycontainError

# On disk, not in /run: a container's configuration, writable layer and log outlive a reboot (and a tmpfs
# under /run would hold the writable layers in RAM). What dies with the machine is told apart by boot id.
DEFAULT_ROOT = "/var/lib/pycontain/containers"
# Every container of every state root, by id → its state directory: lets 'gc' tell an orphan cgroup
# (no container anywhere) from one whose container lives under another --root.
INDEX_DIR = "/run/pycontain.index"

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


def crash_point(step: str) -> None:
    """Die by SIGKILL here when PYCONTAIN_CRASH_AT names ``step``: how tests prove that a runtime killed
    at any step leaves only what ``pycontain rm -f`` or ``pycontain gc`` removes. Each is also a step
    ``PYCONTAIN_TRACE`` reports."""
    trace.step(step)
    if os.environ.get("PYCONTAIN_CRASH_AT") == step:
        os.kill(os.getpid(), 9)


def proc_start_time(pid: int, allow_zombie: bool = False) -> int | None:
    """The start time of ``pid`` in clock ticks since boot, or None if there is no such process.

    A zombie has exited and only waits to be reaped: it counts as gone unless ``allow_zombie``
    (our own child that exited before we looked, which we will reap ourselves).
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its closing paren.
    fields = data[data.rfind(b")") + 2 :].split()
    if fields[0] == b"Z" and not allow_zombie:
        return None
    return int(fields[19])


def known_anywhere(cid: str) -> bool:
    """Whether some state root (any --root) still holds container ``cid``."""
    return os.path.isdir(os.path.join(INDEX_DIR, cid))  # follows the link to the state directory


_BOOT_ID: list[str] = []


def current_boot_id() -> str:
    """The kernel's id of this boot: pids and start times recorded under another one mean nothing now."""
    if not _BOOT_ID:
        try:
            with open("/proc/sys/kernel/random/boot_id") as f:
                _BOOT_ID.append(f.read().strip())
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


class ContainerState:
    """What pycontain knows about one container, persisted as ``state.json``."""

    __slots__ = (
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

    def __init__(
        self,
        id: str,
        name: str,
        config: dict,
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
        creator: list[int] | None = None,
        boot_id: str | None = None,
        monitor: list[int | None] | None = None,
        restarts: int = 0,
        manual_stop: bool = False,
        health: dict | None = None,
    ) -> None:
        self.id = id
        self.name = name
        self.config = config
        self.status = status
        self.pid = pid
        self.pid_start = pid_start
        self.created = created if created is not None else time.time()
        self.started = started
        self.finished = finished
        self.exit_code = exit_code
        self.oom_killed = oom_killed
        self.cgroup = cgroup
        self.bundle = bundle
        self.error = error
        # The runtime process creating the container ([pid, start time]): while it lives, a "creating"
        # container is work in progress; once it is gone, a crash leftover for gc.
        self.creator = creator if creator is not None else [os.getpid(), proc_start_time(os.getpid())]
        self.boot_id = boot_id if boot_id is not None else current_boot_id()
        # The monitor process of a detached container ([pid, start time]): it reaps PID 1 and records its exit.
        self.monitor = monitor
        self.restarts = restarts  # how many times the restart policy started it again
        self.manual_stop = manual_stop  # stopped by 'stop': the restart policy leaves it alone
        self.health = health  # {"Status": ..., "FailingStreak": n, "Log": [...]} with --health-cmd

    def to_dict(self) -> dict:
        return {"version": STATE_VERSION, **{k: getattr(self, k) for k in self.__slots__}}

    @classmethod
    def from_dict(cls, d: dict) -> ContainerState:
        version = d.get("version", 1)
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise ValueError(f"state version {version!r} is not a version")
        if version > STATE_VERSION:
            raise NewerState(version)
        return cls(**{k: d[k] for k in cls.__slots__ if k in d})

    def same_boot(self) -> bool:
        return not self.boot_id or self.boot_id == current_boot_id()

    def alive(self) -> bool:
        return self.same_boot() and pid_alive(self.pid, self.pid_start)

    def monitored(self) -> bool:
        """Whether this container's monitor still runs (it will record the exit and apply the restart policy)."""
        return bool(self.monitor and self.same_boot() and pid_alive(*self.monitor))

    def abandoned(self) -> bool:
        """Still "creating" or "removing", but the runtime doing it is gone: a crashed create or rm."""
        return self.status in (CREATING, REMOVING) and not (
            self.same_boot() and pid_alive(*(self.creator or [0, None]))
        )


class StateStore:
    """The state root: reserves ids and names, loads and saves containers' states."""

    def __init__(self, root: str | None = None) -> None:
        if not root and not os.environ.get("PYCONTAIN_ROOT"):
            from . import rootless

            if rootless.unprivileged():
                root = rootless.default_root()
        self.root = os.path.abspath(root or os.environ.get("PYCONTAIN_ROOT") or DEFAULT_ROOT)

    def dir(self, cid: str) -> str:
        return os.path.join(self.root, cid)

    def lock(self) -> _Lock:
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        return _Lock(os.path.join(self.root, ".lock"))

    def ids(self) -> list[str]:
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if len(n) == 64 and not n.startswith("."))

    def reserve(self, state: ContainerState) -> None:
        """Create the container's directory and first state file; the name must be free."""
        with self.lock():
            for other in self.all():
                if other.name == state.name:
                    raise AlreadyExists(
                        f"the container name {state.name!r} is already in use by container "
                        f"{other.id[:12]} (remove it with 'pycontain rm {state.name}', or choose "
                        "another --name)"
                    )
            os.mkdir(self.dir(state.id), 0o700)
            try:
                self.save(state)
            except BaseException:
                # A full disk must not leave a directory without a state that nothing would ever find.
                rmtree(self.dir(state.id))
                raise
        try:
            try:
                os.symlink(self.dir(state.id), os.path.join(INDEX_DIR, state.id))
            except FileNotFoundError:
                os.makedirs(INDEX_DIR, 0o700, exist_ok=True)
                os.symlink(self.dir(state.id), os.path.join(INDEX_DIR, state.id))
        except PermissionError:
            pass  # rootless: root's index is closed to us, and our containers have no cgroup for gc to find

    def save(self, state: ContainerState) -> None:
        """Replace ``state.json`` whole: readers and a crash see the old version or the new, never half.

        No fsync (several ms a save on disk, and a run saves several times): the rename alone orders what a
        crashed runtime leaves, and on a power loss ext4 and xfs write a file renamed over another one first.
        """
        path = os.path.join(self.dir(state.id), "state.json")
        tmp = f"{path}.{os.getpid()}.tmp"
        data = fastjson.dumps(state.to_dict()).encode()
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            os.rename(tmp, path)
        except OSError as e:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO):
                raise PycontainError(
                    f"cannot save the state of container {state.name} in {self.root}: "
                    f"{os.strerror(e.errno).lower()} (free some space there, or choose "
                    "another --root)"
                ) from None
            raise

    def load_id(self, cid: str) -> ContainerState | None:
        try:
            with open(os.path.join(self.dir(cid), "state.json")) as f:
                return ContainerState.from_dict(fastjson.loads(f.read()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError, KeyError):
            # A runtime killed between mkdir and its first save leaves a directory without a valid
            # state: report it as a broken container that 'rm -f' can remove.
            return ContainerState(cid, cid[:12], {}, status=CREATING, error="state file is damaged")

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

    def remove(self, cid: str) -> None:
        """Remove a container's directory with its ``state.json`` last: a removal cut short leaves a
        container that 'rm -f' still finds and finishes, never an anonymous half-deleted directory."""
        d = self.dir(cid)
        try:
            entries = list(os.scandir(d))
        except FileNotFoundError:
            entries = []
        _remove_entries(e for e in entries if e.name != "state.json")
        crash_point("rm-contents-removed")
        try:
            os.unlink(os.path.join(INDEX_DIR, cid))
        except (FileNotFoundError, PermissionError):
            pass
        rmtree(d)

    def leftovers(self) -> list[str]:
        """Container directories without a state file (a removal cut between its last two steps).

        Call it under ``lock()``: ``reserve`` makes a directory and its state file under the same lock.
        """
        return [
            self.dir(cid)
            for cid in self.ids()
            if not os.path.exists(os.path.join(self.dir(cid), "state.json"))
        ]


def rmtree(path: str) -> None:
    """shutil.rmtree without importing shutil (and bz2, lzma...) on the start path; never follows links."""
    try:
        entries = list(os.scandir(path))
    except FileNotFoundError:
        return
    except NotADirectoryError:
        os.unlink(path)
        return
    except PermissionError:
        # overlayfs leaves work/work with mode 000: root reads it anyway, a rootless user must open it first
        os.chmod(path, 0o700)
        entries = list(os.scandir(path))
    _remove_entries(entries)
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass


def _remove_entries(entries) -> None:
    for e in entries:
        if e.is_dir(follow_symlinks=False):
            rmtree(e.path)
        else:
            try:
                os.unlink(e.path)
            except FileNotFoundError:
                pass


class _Lock:
    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> _Lock:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)
