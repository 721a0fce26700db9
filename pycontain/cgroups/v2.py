"""The cgroup v2 driver: the unified hierarchy through plain cgroupfs files.

Creating, joining, listing, freezing and killing need no controller at all, so a cgroup without
limits works on any v2 host. Limits need their controller enabled in the parent's
``cgroup.subtree_control``; the driver enables it only when a limit asks for it and the parent offers
it, and never moves a process it did not start (a parent holding processes of its own refuses
controllers with EBUSY: the driver then says so, and how to fix it).
"""

from __future__ import annotations

import _signal as signal  # the C module: the signal package loads enum (2-3 ms on the start path)
import errno
import os

from ..errors import PycontainError, Unsupported
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


class V2Manager(CgroupManager):
    driver = "v2"

    def __init__(self, path: str, dir: str) -> None:
        super().__init__(path)
        self.dir = dir

    def _file(self, name: str) -> str:
        return os.path.join(self.dir, name)

    # -- lifecycle -------------------------------------------------------------------------
    def create(self) -> None:
        parent = os.path.dirname(self.dir)
        try:
            os.makedirs(parent, exist_ok=True)
            os.mkdir(self.dir)
        except FileExistsError:
            from ..errors import AlreadyExists

            raise AlreadyExists(
                f"cgroup {self.dir} already exists (remove the stale container, or rmdir it)"
            ) from None
        except PermissionError:
            from ..errors import PermissionDenied

            raise PermissionDenied(
                f"cannot create cgroup {self.dir} (run pycontain as root, or pass --cgroup-parent a delegated cgroup)"
            ) from None
        except OSError as e:
            raise PycontainError(
                f"cannot create cgroup {self.dir} ({(e.strerror or str(e)).lower()})"
            ) from None

    def procs_files(self) -> list[str]:
        return [self._file("cgroup.procs")]

    def set_devices(self, rules: list) -> bool:
        """v2 has no devices files: the rules become a BPF_CGROUP_DEVICE program attached to the cgroup."""
        from .devfilter import attach

        attach(self.dir, rules)
        return True

    def pids(self) -> list[int]:
        return tree_pids(self.dir)

    def kill_all(self, sig: int) -> None:
        kill_file = self._file("cgroup.kill")
        if sig == signal.SIGKILL and os.path.exists(kill_file):
            try:
                write_file(kill_file, "1")
                return
            except CgroupWriteError as e:
                if e.errno != errno.ENOENT:
                    raise
                return
        super().kill_all(sig)

    def destroy(self) -> None:
        remove_tree(self.dir)

    def exists(self) -> bool:
        return os.path.isdir(self.dir)

    # -- freezer ---------------------------------------------------------------------------
    def _require_freeze(self) -> str:
        path = self._file("cgroup.freeze")
        if not os.path.exists(path):
            raise Unsupported(f"cgroup v2 freezer is not available at {path} (it needs linux 5.2 or newer)")
        return path

    def freeze(self) -> None:
        write_file(self._require_freeze(), "1")
        if not wait_for(self.frozen, FREEZE_TIMEOUT):
            write_file(self._file("cgroup.freeze"), "0")
            raise PycontainError(
                f"cgroup {self.path} did not freeze within {FREEZE_TIMEOUT:g}s (its processes may be stuck in the kernel; try again)"
            )

    def thaw(self) -> None:
        write_file(self._require_freeze(), "0")
        if not wait_for(lambda: not self.frozen(), FREEZE_TIMEOUT):
            raise PycontainError(f"cgroup {self.path} did not thaw within {FREEZE_TIMEOUT:g}s (try again)")

    def frozen(self) -> bool:
        from ..freezer import is_frozen

        return is_frozen(self.record())

    def oom_killed(self) -> bool:
        return read_keyed(self._file("memory.events")).get("oom_kill", 0) > 0

    # -- controllers -----------------------------------------------------------------------
    def controllers(self) -> list[str]:
        """The controllers this cgroup has (its ``cgroup.controllers``)."""
        try:
            return read_file(self._file("cgroup.controllers")).split()
        except FileNotFoundError:
            return []

    def enable_controller(self, name: str) -> None:
        """Make controller ``name`` available in this cgroup: enable it in the parent's subtree_control.

        Writes the parent's ``cgroup.subtree_control`` only when this cgroup lacks ``name`` and the parent
        has it; raises Unsupported (one line: which controller, where, what to do) otherwise.
        """
        if name in self.controllers():
            return
        parent_dir = os.path.dirname(self.dir)
        parent_path = os.path.dirname(self.path.rstrip("/")) or "/"
        try:
            offered = read_file(os.path.join(parent_dir, "cgroup.controllers")).split()
        except FileNotFoundError:
            offered = []
        if name not in offered and parent_path == "/":
            raise Unsupported(
                f"cgroup v2 controller {name!r} is not available in the v2 hierarchy at {parent_dir} "
                f"(this host binds it to cgroup v1: use --cgroup-manager v1)"
            )
        if name not in offered:
            raise Unsupported(
                f"cgroup v2 controller {name!r} is not delegated to {parent_path} "
                f"(enable it in {os.path.join(os.path.dirname(parent_dir), 'cgroup.subtree_control')}, "
                f"or pass --cgroup-parent a cgroup that has it)"
            )
        try:
            write_file(os.path.join(parent_dir, "cgroup.subtree_control"), "+" + name)
        except CgroupWriteError as e:
            if e.errno == errno.EBUSY:
                raise Unsupported(
                    f"cannot enable cgroup v2 controller {name!r} in {parent_path}: it holds processes of its own "
                    f"(pass --cgroup-parent a cgroup without processes, or move them into a leaf cgroup)"
                ) from None
            raise Unsupported(
                f"cannot enable cgroup v2 controller {name!r} in {parent_path} ({os.strerror(e.errno or 0).lower()}; "
                f"pass --cgroup-parent a cgroup that has it)"
            ) from None
        if name not in self.controllers():
            raise Unsupported(
                f"cgroup v2 controller {name!r} did not appear in {self.path} (pass --cgroup-parent a cgroup that has it)"
            )

    def plan(self, r: Resources) -> list[tuple[str, str, str]]:
        """The (controller, file, value) writes that apply ``r``, in order (pure: reads nothing but cpu.max)."""
        from .resources import blkio_weight_to_io_weight, cpu_max, memory_v2, shares_to_weight, swap_to_v2

        out: list[tuple[str, str, str]] = []
        if r.memory is not None:
            out.append(("memory", "memory.max", memory_v2(r.memory)))
        if r.memory_swap is not None:
            out.append(("memory", "memory.swap.max", swap_to_v2(r.memory, r.memory_swap)))
        if r.memory_reservation is not None:
            out.append(("memory", "memory.low", memory_v2(r.memory_reservation)))
        if r.cpu_shares is not None:
            out.append(("cpu", "cpu.weight", str(shares_to_weight(r.cpu_shares))))
        if r.cpu_quota is not None or r.cpu_period is not None:
            quota = r.cpu_quota
            if quota is None:  # only the period changes: keep the current quota
                try:
                    current = read_file(self._file("cpu.max")).split()[0]
                    quota = None if current == "max" else int(current)
                except (OSError, IndexError, ValueError):
                    quota = None
            out.append(("cpu", "cpu.max", cpu_max(quota, r.cpu_period)))
        if r.cpuset_mems is not None:
            out.append(("cpuset", "cpuset.mems", r.cpuset_mems))
        if r.cpuset_cpus is not None:
            out.append(("cpuset", "cpuset.cpus", r.cpuset_cpus))
        if r.pids_limit is not None:
            out.append(("pids", "pids.max", "max" if r.pids_limit <= 0 else str(r.pids_limit)))
        if r.blkio_weight is not None:
            if os.path.exists(self._file("io.bfq.weight")):
                out.append(("io", "io.bfq.weight", str(r.blkio_weight)))  # bfq takes blkio's 1..1000 scale
            else:
                out.append(("io", "io.weight", f"default {blkio_weight_to_io_weight(r.blkio_weight)}"))
        for line in io_max_lines(r):
            out.append(("io", "io.max", line))
        return out

    def apply(self, resources: Resources) -> None:
        writes = self.plan(resources)
        for controller in dict.fromkeys(c for c, _f, _v in writes):
            self.enable_controller(controller)
        for _c, name, value in writes:
            path = self._file(name)
            if name == "memory.swap.max" and not os.path.exists(path):
                continue  # no swap accounting on this host: docker drops the swap limit too
            write_file(path, value)

    def stats(self) -> Stats:
        from .usage import Stats

        s = Stats()
        cpu = read_keyed(self._file("cpu.stat"))
        if "usage_usec" in cpu:
            s.cpu_usage_ns = cpu["usage_usec"] * 1000
        s.memory_usage = read_int(self._file("memory.current"))
        if s.memory_usage is not None:
            s.memory_cache = read_keyed(self._file("memory.stat")).get("inactive_file")
            s.memory_limit = read_int(self._file("memory.max"))
        s.pids_current = read_int(self._file("pids.current"))
        if s.pids_current is None:
            s.pids_current = len(self.pids())
        else:
            s.pids_limit = read_int(self._file("pids.max"))
        try:
            io = read_file(self._file("io.stat"))
        except FileNotFoundError:
            io = None
        if io is not None:
            rbytes = wbytes = 0
            for line in io.splitlines():
                for field in line.split()[1:]:
                    key, _, value = field.partition("=")
                    if key == "rbytes":
                        rbytes += int(value)
                    elif key == "wbytes":
                        wbytes += int(value)
            s.blkio_read_bytes, s.blkio_write_bytes = rbytes, wbytes
        return s

    def record(self) -> dict:
        return {"driver": self.driver, "path": self.path, "dir": self.dir}


def io_max_lines(r: Resources) -> list[str]:
    """The v2 ``io.max`` lines for docker's throttles: one "MAJ:MIN rbps=N wbps=N riops=N wiops=N" per device."""
    keys = (
        ("device_read_bps", "rbps"),
        ("device_write_bps", "wbps"),
        ("device_read_iops", "riops"),
        ("device_write_iops", "wiops"),
    )
    per_device: dict[tuple[int, int], list[str]] = {}
    for attr, key in keys:
        for major, minor, value in getattr(r, attr) or ():
            per_device.setdefault((major, minor), []).append(f"{key}={value if value > 0 else 'max'}")
    return [f"{major}:{minor} " + " ".join(fields) for (major, minor), fields in per_device.items()]
