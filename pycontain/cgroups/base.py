"""The one interface every cgroup driver implements (v2 native cgroupfs, v1 with cgroupspy).

This module sits on the start path of ``pycontain run``: it imports nothing beyond ``os``.
"""

from __future__ import annotations

import os

# typing.TYPE_CHECKING without importing typing (2 ms on the start path); type checkers know the idiom.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from .resources import Resources
    from .usage import Stats

FREEZE_TIMEOUT = 10.0  # seconds a freeze or thaw may take, on either driver


class CgroupManager:
    """A container's cgroup: created beneath the cgroup pycontain runs in (or a given parent).

    ``path`` is the cgroup's path relative to the hierarchy root(s), e.g. ``/user.slice/pycontain-3f2a...``.
    A manager is cheap to rebuild from ``record()`` (stored in the container's state), so every
    command (``exec``, ``stats``, ``rm``) works on the same cgroup without re-detecting anything.
    """

    driver = ""

    def __init__(self, path: str) -> None:
        self.path = path

    # -- lifecycle -------------------------------------------------------------------------
    def create(self) -> None:
        """Make the cgroup directory (directories, for v1). Fails if it already exists."""
        raise NotImplementedError

    def procs_files(self) -> list[str]:
        """Absolute ``cgroup.procs`` files a process writes its own pid into to join the cgroup.

        The container's child process does this itself, before unsharing its cgroup namespace,
        so it never runs outside its cgroup; it must not need to import anything to do so.
        """
        raise NotImplementedError

    def add(self, pid: int) -> None:
        for path in self.procs_files():
            with open(path, "w") as f:
                f.write(str(pid))

    def pids(self) -> list[int]:
        """Every process in the cgroup (and beneath it)."""
        raise NotImplementedError

    def kill_all(self, sig: int) -> None:
        """Send ``sig`` to every process in the cgroup."""
        for pid in self.pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def destroy(self) -> None:
        """Remove the cgroup; it must hold no process. Missing directories are not an error."""
        raise NotImplementedError

    def exists(self) -> bool:
        raise NotImplementedError

    # -- resources -------------------------------------------------------------------------
    def apply(self, resources: Resources) -> None:
        """Write the limits in ``resources`` (fields left ``None`` are not touched)."""
        raise NotImplementedError

    def set_devices(self, rules: list) -> bool:
        """Enforce device access rules (``cgroups.devices.DeviceRule``, in order); False where this driver
        cannot (a v1 host without the devices hierarchy)."""
        return False

    def stats(self) -> Stats:
        raise NotImplementedError

    def freeze(self) -> None:
        raise NotImplementedError

    def thaw(self) -> None:
        raise NotImplementedError

    def frozen(self) -> bool:
        raise NotImplementedError

    def oom_killed(self) -> bool:
        """Whether the kernel's OOM killer has killed a process of this cgroup."""
        raise NotImplementedError

    # -- persistence -----------------------------------------------------------------------
    def record(self) -> dict[str, str]:
        return {"driver": self.driver, "path": self.path}
