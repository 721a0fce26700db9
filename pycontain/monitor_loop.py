"""The resident part of a detached container's monitor: a plain script, run as ``python -I -S monitor_loop.py``.

It imports nothing but built-in modules (no site, no pycontain), so each running container costs one small
interpreter. It copies the container's stdout and stderr pipes into the log, a line at a time with a
timestamp, and waits for the container's first process (its direct child: the monitor made it before
exec-ing this script). When that process has exited and its output is drained, it exec-s the full monitor
(``python -m pycontain.monitor exited ...``), which records the status and applies the restart policy.

Log format (the CRI one): ``<RFC 3339 UTC time, ns> <stdout|stderr> <F|P> <text>``, F for a line that
ended with a newline, P for a piece of a longer one (or a last line without newline).

With a health check (HEALTH_INTERVAL > 0 seconds) it starts ``python -m pycontain.monitor health ROOT ID``
every interval, one at a time, which runs the check in the container and records the result.

argv: LOG_PATH CHILD_PID STDOUT_FD STDERR_FD ROOT ID HEALTH_INTERVAL
"""

import os
import select
import sys
import time

# A line longer than this is written in pieces (P): a container printing without newlines cannot make
# the monitor hold its output in memory.
MAX_LINE = 16384
# After PID 1 has exited its pipes close at once (its pid namespace dies with it); a process of a
# container that shares the host's pid namespace may hold them longer: we stop reading after this.
DRAIN_S = 2.0


def _stamp() -> bytes:
    ns = time.time_ns()
    sec, frac = divmod(ns, 1_000_000_000)
    return (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{frac:09d}Z").encode()


def _write_lines(log: int, stream: bytes, buf: bytearray, final: bool) -> None:
    out = []
    while True:
        nl = buf.find(b"\n")
        if nl < 0 or nl > MAX_LINE:
            break
        out.append(b"%s %s F %s\n" % (_stamp(), stream, bytes(buf[:nl])))
        del buf[: nl + 1]
    while len(buf) > MAX_LINE or (final and buf):
        out.append(b"%s %s P %s\n" % (_stamp(), stream, bytes(buf[:MAX_LINE])))
        del buf[:MAX_LINE]
    if out:
        data = b"".join(out)
        while data:
            data = data[os.write(log, data) :]


def _exit_status(status: int) -> int:
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return 125


class _Health:
    """The periodic health check: a full pycontain process each time, reaped here."""

    def __init__(self, interval: float, root: str, cid: str) -> None:
        self.interval = interval
        self.argv = [sys.executable, "-m", "pycontain.monitor", "health", root, cid]
        self.due = time.monotonic() + interval
        self.pid = 0

    def timeout(self) -> float | None:
        if not self.interval:
            return None
        if self.pid:
            return 0.5  # poll for its end
        return max(0.0, self.due - time.monotonic())

    def tick(self) -> None:
        if not self.interval:
            return
        if self.pid:
            done, _ = os.waitpid(self.pid, os.WNOHANG)
            if not done:
                return
            self.pid = 0
            self.due = time.monotonic() + self.interval
        if time.monotonic() >= self.due:
            self.pid = os.posix_spawn(sys.executable, self.argv, os.environ)

    def finish(self) -> None:
        if self.pid:
            os.waitpid(self.pid, 0)
            self.pid = 0


def main(argv: list[str]) -> None:
    log_path, child, out_fd, err_fd, root, cid = (
        argv[0],
        int(argv[1]),
        int(argv[2]),
        int(argv[3]),
        argv[4],
        argv[5],
    )
    health = _Health(float(argv[6]) if len(argv) > 6 else 0.0, root, cid)
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
    streams = {out_fd: (b"stdout", bytearray()), err_fd: (b"stderr", bytearray())}
    pidfd = os.pidfd_open(child)
    poller = select.poll()
    for fd in streams:
        poller.register(fd, select.POLLIN)
    poller.register(pidfd, select.POLLIN)
    status = None
    deadline = None
    while streams:
        waits = [
            t
            for t in (None if deadline is None else deadline - time.monotonic(), health.timeout())
            if t is not None
        ]
        events = poller.poll(int(max(0.0, min(waits)) * 1000) if waits else None)
        if deadline is None:
            health.tick()
        elif time.monotonic() >= deadline:
            break
        for fd, _ev in events:
            if fd == pidfd:
                _pid, raw = os.waitpid(child, 0)
                status = _exit_status(raw)
                poller.unregister(pidfd)
                deadline = time.monotonic() + DRAIN_S
                health.interval = 0.0  # no new check of a container that has exited
                continue
            stream, buf = streams[fd]
            data = os.read(fd, 65536)
            if data:
                buf += data
                _write_lines(log, stream, buf, final=False)
            else:
                _write_lines(log, stream, buf, final=True)
                poller.unregister(fd)
                os.close(fd)
                del streams[fd]
    for stream, buf in streams.values():
        _write_lines(log, stream, buf, final=True)
    if status is None:
        _pid, raw = os.waitpid(child, 0)
        status = _exit_status(raw)
    health.finish()
    os.close(log)
    os.execv(sys.executable, [sys.executable, "-m", "pycontain.monitor", "exited", root, cid, str(status)])


if __name__ == "__main__":
    main(sys.argv[1:])
