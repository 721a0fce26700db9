"""The resident part of a detached container's monitor: a plain script, run as ``python -I -S monitor_loop.py``.

It imports nothing but built-in modules (no site, no pycontain), so each running container costs one small
interpreter. It copies the container's stdout and stderr pipes into the log, a line at a time with a
timestamp, and waits for the container's first process (its direct child: the monitor made it before
exec-ing this script). When that process has exited and its output is drained, it exec-s the full monitor
(``python -m pycontain.monitor exited ...``), which records the status and applies the restart policy.

Log format (the CRI one): ``<RFC 3339 UTC time, ns> <stdout|stderr> <F|P> <text>``, F for a line that
ended with a newline, P for a piece of a longer one (or a last line without newline).

Rotation (``--log-opt max-size=... max-file=N``): a record that would take the log past LOG_MAX_SIZE bytes
goes to a fresh one; the full one becomes LOG_PATH.1, LOG_PATH.1 becomes .2, ..., and what would be
LOG_PATH.<N> is dropped, so at most N files exist (N = 1: the log starts over). LOG_MAX_SIZE 0: unbounded.

With a health check (HEALTH_INTERVAL > 0 seconds) it starts ``python -m pycontain.monitor health ROOT ID``
every interval, one at a time, which runs the check in the container and records the result.

It also listens on ATTACH_SOCKET (``pycontain attach``): each client gets the container's output as it
comes and what it sends goes to the container's stdin (STDIN_FD: a pipe with -i, the pty master with -t,
where STDOUT_FD is that master too and STDERR_FD is -1). A client leaves by closing its connection.

argv: STDOUT_FD STDERR_FD STDIN_FD LOG_PATH CHILD_PID ROOT ID HEALTH_INTERVAL ATTACH_SOCKET LOG_MAX_SIZE
LOG_MAX_FILES, or ``--beside ID FIELDS_FD CREATOR_PID STDOUT_FD STDERR_FD STDIN_FD`` for a loop started
beside the process that makes the container ``ID`` (``monitor_spawn``): the fields from LOG_PATH on come on
FIELDS_FD (their length, a newline, then the fields NUL-separated) once the container runs, or nothing if
making it failed (the creator reports that, and the loop ends). Once the log is open and the attach socket
bound, the loop waits for the creator's exit: CHILD_PID, the creator's child, is then the loop's (it is a
child subreaper).

A subreaper also gets whatever its other descendants orphan (the default network's pool filler, which
the creator double-forks; whatever a health check leaves): reaped at each SIGCHLD, never left as zombies.
"""

import _signal  # the C modules: signal.py and socket.py would load enum, selectors...
import _socket
import errno
import os
import select
import sys
import time

# A line longer than this is written in pieces (P): a container printing without newlines cannot make
# the monitor hold its output in memory.
MAX_LINE = 16384
# The most of what attach clients sent that waits for a container to read its stdin (see _Attach).
MAX_PENDING = 65536
# After PID 1 has exited its pipes close at once (its pid namespace dies with it); a process of a
# container that shares the host's pid namespace may hold them longer: we stop reading after this.
DRAIN_S = 2.0


def _stamp() -> bytes:
    ns = time.time_ns()
    sec, frac = divmod(ns, 1_000_000_000)
    return (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{frac:09d}Z").encode()


class _Log:
    """The log file, rotated by size."""

    def __init__(self, path: str, max_size: int, max_files: int) -> None:
        self.path = path
        self.max_size = max_size
        self.max_files = max_files
        self.fd = self._open(0)
        self.size = os.fstat(self.fd).st_size  # a container started again appends to its log

    def _open(self, truncate: int) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | truncate, 0o640)

    def write(self, records: list) -> None:
        """Whole records, each in one file: a reader never finds a line cut by a rotation."""
        chunk: list = []
        size = self.size
        for rec in records:
            if self.max_size and size and size + len(rec) > self.max_size:
                self._write(chunk)
                self._rotate()
                chunk, size = [], 0
            chunk.append(rec)
            size += len(rec)
        self._write(chunk)

    def _write(self, chunk: list) -> None:
        data = b"".join(chunk)
        try:
            if self.fd < 0:
                self.fd = self._open(0)  # (a rotation could not make the new file)
            while data:
                n = os.write(self.fd, data)
                self.size += n
                data = data[n:]
        except OSError:
            # A full disk (or quota, an I/O error): this output is lost, not the monitor, which must go on
            # draining the pipes (else the container stops on its next write) and record the exit.
            pass

    def _rotate(self) -> None:
        self.close()
        truncate = os.O_TRUNC
        if self.max_files > 1:
            names = [self.path] + [f"{self.path}.{i}" for i in range(1, self.max_files)]
            for i in range(len(names) - 1, 0, -1):
                try:
                    os.rename(names[i - 1], names[i])
                except FileNotFoundError:
                    pass  # fewer files so far (or someone removed one): nothing to shift
            truncate = 0
        self.size = 0
        try:
            self.fd = self._open(truncate)
        except OSError:
            self.fd = -1  # (no inode left for it: _write tries again)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)


def _write_lines(log: _Log, stream: bytes, buf: bytearray, final: bool) -> None:
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
        log.write(out)


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
        # -P: the monitor runs in its starter's working directory, which python -m would put first on sys.path.
        self.argv = [sys.executable, "-P", "-m", "pycontain.monitor", "health", root, cid]
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


class _Attach:
    """The attach socket and its clients.

    What clients send waits in ``pending`` until the container's stdin takes it, written without blocking
    (POLLOUT on a descriptor of its own): a container that does not read its stdin must not stop the loop
    (its output would no longer be logged, then fill its pipe and stop the container). While MAX_PENDING
    bytes wait, clients are not read: they wait, as on a pipe."""

    def __init__(self, path: str, stdin_fd: int, poller) -> None:
        # (a pty master is also the stdout read: a descriptor of its own is registered for POLLOUT)
        self.stdin_fd = os.dup(stdin_fd) if stdin_fd >= 0 else -1
        if stdin_fd >= 0:
            os.set_blocking(stdin_fd, False)  # (for the pty, the stdout read too: done after POLLIN alone)
        self.pending = bytearray()
        self.poller = poller
        self.clients: set[int] = set()
        self.listener = None
        self.path = path
        if not path:
            return
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        sock.bind(path)
        os.chmod(path, 0o600)
        sock.listen(8)
        self.listener = sock
        poller.register(sock.fileno(), select.POLLIN)

    def handle(self, fd: int) -> bool:
        """A poll event on ``fd`` if it is ours (the listener, a client, stdin); False otherwise."""
        if self.listener is not None and fd == self.listener.fileno():
            client, _addr = self.listener._accept()  # type: ignore[attr-defined]  # _socket's: a bare fd
            os.set_blocking(client, False)  # a client that stops reading is dropped, never waited for
            self.clients.add(client)
            self.poller.register(client, 0 if len(self.pending) >= MAX_PENDING else select.POLLIN)
            return True
        if fd == self.stdin_fd and fd >= 0:
            self._flush()
            return True
        if fd not in self.clients:
            return False
        try:
            data = os.read(fd, 65536)
        except OSError:
            data = b""
        if not data:
            self._drop(fd)
        elif self.stdin_fd >= 0:
            self.pending += data
            self._flush()
        return True

    def _flush(self) -> None:
        """Write to the container's stdin what it takes now; poll for the rest (see the class)."""
        was_full = len(self.pending) >= MAX_PENDING
        try:
            while self.pending:
                del self.pending[: os.write(self.stdin_fd, self.pending)]
        except BlockingIOError:
            pass
        except OSError:
            self.pending.clear()  # the container closed its stdin
        if self.pending:
            self.poller.register(self.stdin_fd, select.POLLOUT)  # (again: a modify)
        else:
            try:
                self.poller.unregister(self.stdin_fd)  # (even with no events asked, POLLERR would come)
            except KeyError:
                pass
        full = len(self.pending) >= MAX_PENDING
        if full != was_full:
            for client in self.clients:
                self.poller.modify(client, 0 if full else select.POLLIN)

    def send(self, data: bytes) -> None:
        for fd in list(self.clients):
            try:
                _write_all(fd, data)
            except OSError:
                self._drop(fd)

    def _drop(self, fd: int) -> None:
        self.poller.unregister(fd)
        self.clients.discard(fd)
        os.close(fd)

    def close(self) -> None:
        for fd in list(self.clients):
            self._drop(fd)
        if self.stdin_fd >= 0:
            os.close(self.stdin_fd)
        if self.listener is not None:
            self.listener.close()
            try:
                os.unlink(self.path)
            except OSError:
                pass


def _drain(fd: int) -> bool:
    try:
        return bool(os.read(fd, 4096))
    except BlockingIOError:
        return False


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


def _read_fields(fd: int) -> list[str] | None:
    """The creator's message on ``fd`` (see the docstring), or None if it closed the pipe without one."""
    data = b""
    while True:
        head, nl, body = data.partition(b"\n")
        if nl and len(body) >= int(head):
            return body[: int(head)].decode().split("\0")
        chunk = os.read(fd, 65536)
        if not chunk:
            return None
        data += chunk


def _reap_orphans(known: set[int]) -> None:
    """Reap the children that are not the container's PID 1 or a health check (orphans we adopted)."""
    try:
        with open(f"/proc/self/task/{os.getpid()}/children") as f:
            pids = [int(p) for p in f.read().split()]
    except OSError:
        return  # a kernel without CONFIG_PROC_CHILDREN: they stay until the monitor ends
    for pid in pids:
        if pid not in known:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def main(argv: list[str]) -> None:
    creator = -1
    if argv[0] == "--beside":
        fields_fd, creator = int(argv[2]), int(argv[3])
        fields = _read_fields(fields_fd)
        os.close(fields_fd)
        if fields is None:
            os.waitpid(creator, 0)
            return
        argv = argv[4:7] + fields
    out_fd, err_fd, stdin_fd = int(argv[0]), int(argv[1]), int(argv[2])
    log_path, child, root, cid = argv[3], int(argv[4]), argv[5], argv[6]
    health = _Health(float(argv[7]), root, cid)
    log = _Log(log_path, int(argv[9]), int(argv[10]))
    streams = {fd: (name, bytearray()) for fd, name in ((out_fd, b"stdout"), (err_fd, b"stderr")) if fd >= 0}
    poller = select.poll()
    attach = _Attach(argv[8], stdin_fd, poller)
    if creator >= 0:
        os.waitpid(creator, 0)  # it exits once it has reported: its child is ours from here on
    pidfd = os.pidfd_open(child)
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    _signal.set_wakeup_fd(wake_w)
    _signal.signal(_signal.SIGCHLD, lambda _signum, _frame: None)  # the wakeup byte is what matters
    poller.register(wake_r, select.POLLIN)
    _reap_orphans({child})
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
            if fd == wake_r:
                while _drain(wake_r):
                    pass
                _reap_orphans({child, health.pid})
                continue
            if fd == pidfd:
                _pid, raw = os.waitpid(child, 0)
                status = _exit_status(raw)
                poller.unregister(pidfd)
                deadline = time.monotonic() + DRAIN_S
                health.interval = 0.0  # no new check of a container that has exited
                continue
            if attach.handle(fd) or fd not in streams:
                continue  # an attach client's event, or one of a client dropped earlier in this round
            stream, buf = streams[fd]
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                continue  # (a pty master is non-blocking, for attach's input: see _Attach)
            except OSError as e:
                if e.errno != errno.EIO:  # a pty master whose every slave is closed
                    raise
                data = b""
            if data:
                attach.send(data)
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
    attach.close()
    log.close()
    os.execv(
        sys.executable, [sys.executable, "-P", "-m", "pycontain.monitor", "exited", root, cid, str(status)]
    )


if __name__ == "__main__":
    main(sys.argv[1:])
