"""The cgroup v1 driver: one directory per controller hierarchy (cpu, cpuacct, cpuset, memory, devices,
freezer, blkio, pids: those this host mounts).

A cgroup is made in the hierarchies of ``ALWAYS`` only; the others (cpu, cpuset, pids) when a limit
first needs them (``dir``), at create or at ``update``, which then moves the container's processes in.
OCI bundles' cgroups (``every``) are made in every hierarchy at once, as runc makes them: engines read
their statistics from all of them.

Limits and statistics of the controllers cgroupspy covers (memory, cpu, cpuacct, cpuset, blkio weight)
go through cgroupspy, imported inside ``apply``/``stats`` only (it costs ~14 ms, and ``pycontain run``
without limits never pays it); pids, freezer, blkio throttles and everything else are plain files.
"""

from __future__ import annotations

import _signal as signal  # the C module: the signal package loads enum (2-3 ms on the start path)
import errno
import os

from ..cgroup_record import v1_dirs
from ..errors import AlreadyExists, PermissionDenied, PycontainError, Unsupported
from .base import FREEZE_TIMEOUT, CgroupManager
from .files import (
    CgroupWriteError,
    read_file,
    read_int,
    read_keyed,
    remove_tree,
    tree_pids,
    wait_for,
    write_file,
)

# typing.TYPE_CHECKING without importing typing; resources is imported where limits or stats are used
# (``state`` and ``ps`` load this module to read the freezer, and need neither).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from .resources import Resources
    from .usage import Stats

# The hierarchies every container's cgroup is made in: freezer (pause, and finding and killing all its
# processes), devices (its device rules), memory (OOM kills, memory stats), cpuacct and blkio (CPU and
# block I/O stats). Each other one would cost every container a mkdir, a join and an rmdir (a new cpuset
# also copies its parent's cpus and mems), for limits most never set: pids.current falls back to
# counting the freezer's processes.
ALWAYS = ("freezer", "devices", "memory", "cpuacct", "blkio")

UNLIMITED = 1 << 62  # v1 files read 9223372036854771712 (page-rounded int64 max) when unlimited

_THROTTLE_FILES = {
    "device_read_bps": "blkio.throttle.read_bps_device",
    "device_write_bps": "blkio.throttle.write_bps_device",
    "device_read_iops": "blkio.throttle.read_iops_device",
    "device_write_iops": "blkio.throttle.write_iops_device",
}


class _Node:
    """The one thing cgroupspy's controllers need from a node: its absolute path, as bytes."""

    def __init__(self, path: str) -> None:
        self.full_path = os.fsencode(path)


def _expand(cpuset: str) -> set[int]:
    """ "0-2,5" -> {0, 1, 2, 5} (the form cgroupspy's cpuset files take)."""
    out: set[int] = set()
    for part in cpuset.split(","):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


class V1Manager(CgroupManager):
    """``dirs`` maps each mounted controller to this cgroup's absolute directory in its hierarchy
    (co-mounted controllers share one). ``path`` is the cgroup's path in the freezer hierarchy."""

    driver = "v1"

    def __init__(self, path: str, dirs: dict[str, str], every: bool = False) -> None:
        super().__init__(path)
        self.dirs = dict(dirs)
        self.every = every  # create() makes every hierarchy, not only ALWAYS's

    def _dirs(self) -> list[str]:
        """Distinct directories, cpuset first (it must be filled in before a process can join)."""
        return v1_dirs(self.dirs)

    def dir(self, controller: str) -> str:
        """This cgroup's directory in ``controller``'s hierarchy, made now if it was not (``ALWAYS``);
        Unsupported when the hierarchy is not mounted."""
        try:
            d = self.dirs[controller]
        except KeyError:
            raise Unsupported(
                f"cgroup v1 controller {controller!r} is not mounted on this host (mount it at /sys/fs/cgroup/{controller}, "
                f"or drop the limit that needs it)"
            ) from None
        if not os.path.isdir(d):
            self._add_hierarchy(d)
        return d

    def _made(self) -> list[str]:
        """The directories this cgroup is made in (``_dirs`` order)."""
        return [d for d in self._dirs() if os.path.isdir(d)]

    # -- lifecycle -------------------------------------------------------------------------
    def create(self) -> None:
        always = set() if self.every else {self.dirs[c] for c in ALWAYS if c in self.dirs}
        made: list[str] = []
        try:
            for d in self._dirs():
                if always and d not in always:
                    continue  # made when a limit needs it; a host with none of ALWAYS gets them all
                self._mkdirs(d, d == self.dirs.get("cpuset"), made)
        except BaseException:
            _rmdirs(made)
            raise

    def _add_hierarchy(self, d: str) -> None:
        """Make the cgroup in one more hierarchy and move its processes there, frozen meanwhile (when it
        has the freezer) so that none forks a child that would stay outside."""
        made: list[str] = []
        try:
            self._mkdirs(d, d == self.dirs.get("cpuset"), made)
            if not self.pids():
                return
            thaw = "freezer" in self.dirs and os.path.isdir(self.dirs["freezer"]) and not self.frozen()
            if thaw:
                self.freeze()
            try:
                for pid in self.pids():
                    try:
                        write_file(os.path.join(d, "cgroup.procs"), str(pid))
                    except CgroupWriteError as e:
                        if e.errno != errno.ESRCH:  # one that exited meanwhile needs no moving
                            raise
            finally:
                if thaw:
                    self.thaw()
        except BaseException:
            for pid in tree_pids(d):  # back where they were: the parent of the one we made
                try:
                    write_file(os.path.join(os.path.dirname(d), "cgroup.procs"), str(pid))
                except PycontainError:
                    continue  # best effort: the error that got us here is the one to report
            _rmdirs(made)
            raise

    def _mkdirs(self, d: str, is_cpuset: bool, made: list[str]) -> None:
        """mkdir -p ``d``; the last component must be new. New cpuset directories get their parent's
        cpus and mems (a v1 cpuset starts empty, and joining an empty one fails with ENOSPC)."""
        missing: list[str] = []
        p = os.path.dirname(d)
        while not os.path.isdir(p):
            missing.append(p)
            p = os.path.dirname(p)
        for path in [*reversed(missing), d]:
            try:
                os.mkdir(path)
            except FileExistsError:
                if path == d:
                    raise AlreadyExists(
                        f"cgroup {d} already exists (remove the stale container, or rmdir it)"
                    ) from None
                continue
            except PermissionError:
                raise PermissionDenied(f"cannot create cgroup {path} (run pycontain as root)") from None
            except OSError as e:
                raise PycontainError(
                    f"cannot create cgroup {path} ({(e.strerror or str(e)).lower()})"
                ) from None
            made.append(path)
            if is_cpuset:
                parent = os.path.dirname(path)
                for name in ("cpuset.cpus", "cpuset.mems"):
                    own = os.path.join(path, name)
                    if not read_file(own).strip():
                        write_file(own, read_file(os.path.join(parent, name)).strip() or "\n")

    def procs_files(self) -> list[str]:
        return [os.path.join(d, "cgroup.procs") for d in self._made()]

    def pids(self) -> list[int]:
        seen: list[int] = []
        for d in self._dirs():
            for pid in tree_pids(d):
                if pid not in seen:
                    seen.append(pid)
        return seen

    def kill_all(self, sig: int) -> None:
        frozen = "freezer" in self.dirs and self.frozen()
        super().kill_all(sig)
        if frozen and sig == signal.SIGKILL:
            self.thaw()  # frozen tasks die only once they run again

    def destroy(self) -> None:
        for d in reversed(self._dirs()):
            remove_tree(d)

    def exists(self) -> bool:
        return any(os.path.isdir(d) for d in self._dirs())

    # -- freezer ---------------------------------------------------------------------------
    def _state_file(self) -> str:
        # self.dirs, not self.dir(): the freezer is in ALWAYS, and reading or writing it must never make it
        if "freezer" not in self.dirs:
            self.dir("freezer")  # raises Unsupported: not mounted
        return os.path.join(self.dirs["freezer"], "freezer.state")

    def _state(self) -> str:
        try:
            return read_file(self._state_file()).strip()
        except FileNotFoundError:
            return ""

    def freeze(self) -> None:
        path = self._state_file()
        write_file(path, "FROZEN")

        def done() -> bool:
            state = self._state()
            if state == "FREEZING":  # tasks that were busy in the kernel: ask again
                write_file(path, "FROZEN")
            return state == "FROZEN"

        if not wait_for(done, FREEZE_TIMEOUT):
            write_file(path, "THAWED")
            raise PycontainError(
                f"cgroup {self.path} did not freeze within {FREEZE_TIMEOUT:g}s (its processes may be stuck in the kernel; try again)"
            )

    def thaw(self) -> None:
        path = self._state_file()
        write_file(path, "THAWED")
        if not wait_for(lambda: self._state() == "THAWED", FREEZE_TIMEOUT):
            raise PycontainError(f"cgroup {self.path} did not thaw within {FREEZE_TIMEOUT:g}s (try again)")

    def frozen(self) -> bool:
        from ..freezer import is_frozen

        return is_frozen(self.record())

    def oom_killed(self) -> bool:
        if "memory" not in self.dirs:
            return False
        return read_keyed(os.path.join(self.dirs["memory"], "memory.oom_control")).get("oom_kill", 0) > 0

    # -- resources -------------------------------------------------------------------------
    def set_devices(self, rules: list) -> bool:
        """Each rule to devices.allow or devices.deny, in order, one write each (the kernel parses one rule
        per write); a leading deny-all ("a") first empties the inherited allow list."""
        if "devices" not in self.dirs:  # a host without the devices hierarchy: nothing to enforce with
            return False
        d = self.dirs["devices"]
        for rule in rules:
            write_file(os.path.join(d, "devices.allow" if rule.allow else "devices.deny"), rule.line())
        return True

    def apply(self, resources: Resources) -> None:
        r = resources
        if r.is_empty():
            return
        from cgroupspy import controllers as cc

        if r.memory is not None or r.memory_swap is not None or r.memory_reservation is not None:
            mem = cc.MemoryController(_Node(self.dir("memory")))
            self._guard(lambda: _set_memory(mem, r), "memory")
            if r.memory_reservation is not None:
                self._guard(
                    lambda: setattr(mem, "soft_limit_in_bytes", r.memory_reservation),
                    "memory.soft_limit_in_bytes",
                )

        if r.cpu_shares is not None or r.cpu_quota is not None or r.cpu_period is not None:
            cpu = cc.CpuController(_Node(self.dir("cpu")))
            if r.cpu_shares is not None:
                self._guard(lambda: setattr(cpu, "shares", r.cpu_shares), "cpu.shares")
            if r.cpu_period is not None:
                self._guard(lambda: setattr(cpu, "cfs_period_us", r.cpu_period), "cpu.cfs_period_us")
            if r.cpu_quota is not None:
                self._guard(lambda: setattr(cpu, "cfs_quota_us", r.cpu_quota), "cpu.cfs_quota_us")

        if r.cpuset_cpus is not None or r.cpuset_mems is not None:
            cpuset = cc.CpuSetController(_Node(self.dir("cpuset")))
            if r.cpuset_mems is not None:
                self._guard(lambda: setattr(cpuset, "mems", _expand(r.cpuset_mems)), "cpuset.mems")
            if r.cpuset_cpus is not None:
                self._guard(lambda: setattr(cpuset, "cpus", _expand(r.cpuset_cpus)), "cpuset.cpus")

        if r.pids_limit is not None:
            write_file(
                os.path.join(self.dir("pids"), "pids.max"), "max" if r.pids_limit <= 0 else str(r.pids_limit)
            )

        if r.blkio_weight is not None:
            blkio_dir = self.dir("blkio")
            if os.path.exists(os.path.join(blkio_dir, "blkio.weight")):
                blkio = cc.BlkIOController(_Node(blkio_dir))
                self._guard(lambda: setattr(blkio, "weight", r.blkio_weight), "blkio.weight")
            elif os.path.exists(os.path.join(blkio_dir, "blkio.bfq.weight")):
                write_file(os.path.join(blkio_dir, "blkio.bfq.weight"), str(r.blkio_weight))
            else:
                raise Unsupported(
                    f"--blkio-weight {r.blkio_weight} needs blkio.weight, which this kernel's cgroup v1 blkio controller "
                    f"lacks (drop --blkio-weight, or use --device-read-bps/--device-write-bps throttles)"
                )
        for attr, name in _THROTTLE_FILES.items():
            for major, minor, value in getattr(r, attr) or ():
                write_file(os.path.join(self.dir("blkio"), name), f"{major}:{minor} {value}")

    def _guard(self, fn, name: str) -> None:
        """Run a cgroupspy write, turning its OSErrors into one-line PycontainErrors."""
        try:
            fn()
        except PycontainError:
            raise
        except FileNotFoundError as e:
            raise Unsupported(
                f"cgroup v1 file {name} is missing in {os.path.dirname(e.filename or '') or self.path} (this kernel lacks it; drop the limit)"
            ) from None
        except OSError as e:
            reason = (e.strerror or str(e)).lower()
            if e.errno == errno.EBUSY and name.startswith("memory"):
                reason += ": the cgroup already uses more memory than that"
            raise PycontainError(
                f"cannot set {name} of cgroup {self.path} ({reason}; check the limit's value)"
            ) from None

    def stats(self) -> Stats:
        from cgroupspy import controllers as cc

        from .usage import Stats

        s = Stats()
        made = self._made()
        if self.dirs.get("cpuacct") in made:
            s.cpu_usage_ns = cc.CpuAcctController(_Node(self.dirs["cpuacct"])).get_content("usage")
        if self.dirs.get("memory") in made:
            mem = cc.MemoryController(_Node(self.dirs["memory"]))
            s.memory_usage = mem.get_content("usage_in_bytes")
            stat = mem.get_content("stat") or {}
            cache = stat.get("total_inactive_file", stat.get("inactive_file"))
            s.memory_cache = int(cache) if cache is not None else None
            limit = mem.get_content("limit_in_bytes")
            s.memory_limit = limit if limit is not None and limit < UNLIMITED else None
        if "pids" in self.dirs:
            s.pids_current = read_int(os.path.join(self.dirs["pids"], "pids.current"))
            s.pids_limit = read_int(os.path.join(self.dirs["pids"], "pids.max"))
        if s.pids_current is None:
            s.pids_current = len(self.pids())
        if self.dirs.get("blkio") in made:
            s.blkio_read_bytes, s.blkio_write_bytes = _blkio_bytes(self.dirs["blkio"])
        return s

    def record(self) -> dict:
        return {"driver": self.driver, "path": self.path, "dirs": dict(self.dirs)}


def _rmdirs(made: list[str]) -> None:
    """Undo ``_mkdirs``, deepest first."""
    for d in reversed(made):
        try:
            os.rmdir(d)
        except OSError:
            continue  # best effort: the error that got us here is the one to report


def _set_memory(mem, r: Resources) -> None:
    """memory.limit_in_bytes and memory.memsw.limit_in_bytes in the order the kernel accepts (runc's rule:
    memsw may never be below the memory limit, so raise memsw first when it grows past the current limit)."""
    memory, swap = r.memory, r.memory_swap
    if memory == -1 and swap is None:
        swap = -1
    has_swap = os.path.exists(os.fsdecode(mem.filepath(b"memory.memsw.limit_in_bytes")))
    if not has_swap:
        swap = None  # no swap accounting on this host: docker drops the swap limit too
    if memory is not None and swap is not None:
        current = mem.get_content("limit_in_bytes")
        if swap == -1 or (current is not None and current < swap):
            mem.memsw_limit_in_bytes = swap
            mem.limit_in_bytes = memory
        else:
            mem.limit_in_bytes = memory
            mem.memsw_limit_in_bytes = swap
    elif memory is not None:
        mem.limit_in_bytes = memory
    elif swap is not None:
        mem.memsw_limit_in_bytes = swap


def _blkio_bytes(d: str) -> tuple[int | None, int | None]:
    """Read/Write byte totals from blkio.throttle.io_service_bytes_recursive ("8:0 Read 4096" lines)."""
    for name in (
        "blkio.throttle.io_service_bytes_recursive",
        "blkio.io_service_bytes_recursive",
        "blkio.throttle.io_service_bytes",
    ):
        try:
            text = read_file(os.path.join(d, name))
        except FileNotFoundError:
            continue
        rd = wr = 0
        for line in text.splitlines():
            fields = line.split()
            if len(fields) == 3 and fields[2].isdigit():
                if fields[1] == "Read":
                    rd += int(fields[2])
                elif fields[1] == "Write":
                    wr += int(fields[2])
        return rd, wr
    return None, None


__all__ = ["V1Manager", "CgroupWriteError"]
