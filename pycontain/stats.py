"""docker stats' figures for running containers: two samples of each cgroup a second apart give CPU %;
memory is usage less the page cache, against the limit (the host's memory when there is none)."""

from __future__ import annotations

import os
import time

# typing.TYPE_CHECKING without importing typing; type checkers know the idiom.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def host_memory() -> int | None:
    """MemTotal in bytes: the limit docker stats shows for a container without a memory limit."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


INTERVAL = 1.0  # seconds between the two samples that give CPU % (and between refreshes)


class Sampler:
    """Samples containers' cgroups and turns two consecutive samples into docker stats' figures.

    ``refs``: the containers to watch (each must run: InvalidState otherwise), or none for every running
    one, listed anew at each sample. The first sample is taken at once; ``next()`` waits ``INTERVAL`` and
    returns the figures since the one before."""

    def __init__(self, refs: list[str], root: str | None = None) -> None:
        from .container import Container
        from .errors import InvalidState

        self.refs = list(dict.fromkeys(refs))
        self.root = root
        for ref in self.refs:  # a name that matches nothing, or a stopped container, is an error up front
            c = Container.get(ref, root)
            if not c.running():
                raise InvalidState(f"container {c.name} is not running (status: {c.status()})")
        self.prev: dict[str, tuple[float, Any]] = {}
        self.ncpus = os.cpu_count() or 1
        self.host_memory = host_memory()
        self.sample()

    def next(self) -> list[dict]:
        """Wait ``INTERVAL``, then ``sample()``."""
        time.sleep(INTERVAL)
        return self.sample()

    def containers(self) -> list[Any]:
        """The containers to show: the named ones, or every running one (read anew each time)."""
        from .container import Container

        if self.refs:
            from .errors import ContainerNotFound

            found = []
            for ref in self.refs:
                try:
                    found.append(Container.get(ref, self.root))
                except ContainerNotFound:
                    continue  # removed while we were watching it
            return [c for c in found if c.running()]
        return [c for c in Container.list(self.root) if c.running()]

    def sample(self) -> list[dict]:
        """One row per container that is still running; CPU % from the previous sample, if any."""
        from .cgroups.usage import cpu_percent
        from .errors import PycontainError

        rows = []
        seen = set()
        for c in self.containers():
            try:
                now, s = time.monotonic(), c.stats()
            except (OSError, PycontainError):
                continue  # it stopped between the listing and the sample
            seen.add(c.id)
            before = self.prev.get(c.id)
            self.prev[c.id] = (now, s)
            cpu = cpu_percent(before[1], s, now - before[0], self.ncpus) if before else 0.0
            usage = None
            if s.memory_usage is not None:
                usage = max(s.memory_usage - (s.memory_cache or 0), 0)
            limit = s.memory_limit if s.memory_limit is not None else self.host_memory
            if limit is not None and self.host_memory is not None:
                limit = min(limit, self.host_memory)  # a limit above the host's memory is no limit
            rows.append(
                {
                    "Id": c.id,
                    "Name": c.name,
                    "CPUPerc": round(cpu, 2),
                    "MemUsage": usage,
                    "MemLimit": limit,
                    "MemPerc": round(usage / limit * 100, 2) if usage is not None and limit else 0.0,
                    "Pids": s.pids_current,
                    "PidsLimit": s.pids_limit,
                    "BlockRead": s.blkio_read_bytes,
                    "BlockWrite": s.blkio_write_bytes,
                    "Paused": c.status() == "paused",
                }
            )
        self.prev = {k: v for k, v in self.prev.items() if k in seen}
        return rows
