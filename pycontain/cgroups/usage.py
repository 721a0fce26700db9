"""A container's usage figures, as the drivers read them (``stats()``), and docker stats' CPU %."""

from __future__ import annotations


class Stats:
    """One sample of a container's usage; ``None`` where the host does not account for it.

    cpu_usage_ns: total cpu time; memory_usage: bytes charged (cache included), memory_cache: its
    reclaimable part (inactive file pages; docker stats shows usage - cache); memory_limit: bytes,
    ``None`` = unlimited; pids_current, pids_limit (``None`` = unlimited); blkio_read_bytes /
    blkio_write_bytes: totals over all devices.
    """

    __slots__ = (
        "cpu_usage_ns",
        "memory_usage",
        "memory_cache",
        "memory_limit",
        "pids_current",
        "pids_limit",
        "blkio_read_bytes",
        "blkio_write_bytes",
    )

    def __init__(
        self,
        *,
        cpu_usage_ns: int | None = None,
        memory_usage: int | None = None,
        memory_cache: int | None = None,
        memory_limit: int | None = None,
        pids_current: int | None = None,
        pids_limit: int | None = None,
        blkio_read_bytes: int | None = None,
        blkio_write_bytes: int | None = None,
    ) -> None:
        self.cpu_usage_ns = cpu_usage_ns
        self.memory_usage = memory_usage
        self.memory_cache = memory_cache
        self.memory_limit = memory_limit
        self.pids_current = pids_current
        self.pids_limit = pids_limit
        self.blkio_read_bytes = blkio_read_bytes
        self.blkio_write_bytes = blkio_write_bytes

    def to_dict(self) -> dict:
        return {f: getattr(self, f) for f in self.__slots__}

    def __repr__(self) -> str:
        return "Stats(" + ", ".join(f"{f}={getattr(self, f)!r}" for f in self.__slots__) + ")"


def cpu_percent(prev: Stats, cur: Stats, interval: float, ncpus: int) -> float:
    """docker stats' CPU %: cpu time used over ``interval`` seconds, 100% per cpu, at most ncpus * 100."""
    if prev.cpu_usage_ns is None or cur.cpu_usage_ns is None or interval <= 0:
        return 0.0
    delta = cur.cpu_usage_ns - prev.cpu_usage_ns
    if delta <= 0:
        return 0.0
    return min(delta / (interval * 1e9) * 100.0, max(ncpus, 1) * 100.0)
