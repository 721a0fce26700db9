"""What one run did: ``Result``, and the sandbox's cgroup counters it is measured from (``Meter``)."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass

from ..errors import InvalidArgument


@dataclass
class Result:
    """What one ``Sandbox.run`` did.

    returncode: the command's exit status, 128+N when signal N killed it (137 for the OOM killer and for a
    timeout's SIGKILL), 126/127 when it could not be executed / found. stdout, stderr: bytes, each at
    most ``max_output``. wall_time, cpu_time: seconds (cpu_time from the cgroup: user + system of every
    process of the sandbox during the run). peak_memory: bytes, the cgroup's peak during the run (None
    where the kernel does not report it).
    """

    returncode: int
    stdout: bytes = b""
    stderr: bytes = b""
    truncated: bool = False
    wall_time: float = 0.0
    cpu_time: float | None = None
    peak_memory: int | None = None
    oom_killed: bool = False
    timed_out: bool = False
    pids_limited: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def to_dict(self, binary: str = "utf-8") -> dict:
        """JSON-ready: outputs decoded as UTF-8 with U+FFFD for invalid bytes, or ``binary="base64"``."""
        if binary == "base64":
            out, err = (base64.b64encode(b).decode("ascii") for b in (self.stdout, self.stderr))
        elif binary == "utf-8":
            out, err = (b.decode("utf-8", errors="replace") for b in (self.stdout, self.stderr))
        else:
            raise InvalidArgument(f"invalid binary encoding {binary!r}: use 'utf-8' or 'base64'")
        return {
            "returncode": self.returncode,
            "stdout": out,
            "stderr": err,
            "encoding": binary,
            "truncated": self.truncated,
            "wall_time": round(self.wall_time, 6),
            "cpu_time": None if self.cpu_time is None else round(self.cpu_time, 6),
            "peak_memory": self.peak_memory,
            "oom_killed": self.oom_killed,
            "timed_out": self.timed_out,
            "pids_limited": self.pids_limited,
        }


# -- the sandbox's cgroup figures ------------------------------------------------------------------------
def read_file(path: str) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)


def _keyed(data: bytes | None, key: bytes) -> int | None:
    if data is None:
        return None
    for line in data.splitlines():
        k, _, v = line.partition(b" ")
        if k == key:
            try:
                return int(v)
            except ValueError:
                return None
    return None


def _int(data: bytes | None) -> int | None:
    try:
        return int(data) if data is not None else None
    except ValueError:
        return None


class Meter:
    """Counters of one cgroup (v1 or v2) read before and after a run: cpu ns, OOM kills, refused forks."""

    def __init__(self, cg) -> None:
        dirs = getattr(cg, "dirs", None)
        if dirs is not None:  # v1
            self.v2 = False
            self.cpu = os.path.join(dirs["cpuacct"], "cpuacct.usage") if "cpuacct" in dirs else None
            mem = dirs.get("memory")
            self.peak = os.path.join(mem, "memory.max_usage_in_bytes") if mem else None
            self.oom = os.path.join(mem, "memory.oom_control") if mem else None
            self.pids = os.path.join(dirs["pids"], "pids.events") if "pids" in dirs else None
        else:
            self.v2 = True
            d = cg.dir
            self.cpu = os.path.join(d, "cpu.stat")
            self.peak = os.path.join(d, "memory.peak")
            self.oom = os.path.join(d, "memory.events")
            self.pids = os.path.join(d, "pids.events")

    def counters(self) -> tuple[int | None, int | None, int | None]:
        """(cpu ns, oom kills, forks refused by pids.max)."""
        if self.v2:
            usec = _keyed(read_file(self.cpu), b"usage_usec") if self.cpu else None
            cpu = None if usec is None else usec * 1000
        else:
            cpu = _int(read_file(self.cpu)) if self.cpu else None
        oom = _keyed(read_file(self.oom), b"oom_kill") if self.oom else None
        pids = _keyed(read_file(self.pids), b"max") if self.pids else None
        return cpu, oom, pids

    def start_peak(self) -> int | None:
        """Reset the peak so it covers the run: an fd to read it from on v2 (fd-local reset), None on v1."""
        if self.peak is None:
            return None
        if self.v2:
            try:
                fd = os.open(self.peak, os.O_RDWR | os.O_CLOEXEC)
            except OSError:
                return None
            try:
                os.write(fd, b"reset\n")  # kernels >= 6.12: a peak local to this fd
            except OSError:
                pass  # older ones: the cgroup's lifetime peak
            return fd
        try:
            fd = os.open(self.peak, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)
        except OSError:
            pass
        return None

    def end_peak(self, fd: int | None) -> int | None:
        if fd is not None:
            try:
                return _int(os.pread(fd, 64, 0))
            except OSError:
                return None
            finally:
                os.close(fd)
        return _int(read_file(self.peak)) if self.peak and not self.v2 else None
