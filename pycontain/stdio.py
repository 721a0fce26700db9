"""A container's stdio without a terminal: pipes that pycontain relays to and from the caller's own.

The caller's descriptors never reach the container, as with docker and containerd: a terminal among
them would let a process inside push input into the caller's shell (ioctl TIOCSTI), and a file could be
reopened through /proc/self/fd with another mode. The container sees the other ends of three pipes
(stdin is /dev/null unless it is interactive); pycontain copies between them until the process exits.
"""

from __future__ import annotations

import os
import select

from .process import Stdio


class PipeRelay:
    """Pipes for a container process's fds 0-2 and the loop that copies them to the caller's."""

    def __init__(self, interactive: bool, stdin_fd: int = 0, stdout_fd: int = 1, stderr_fd: int = 2) -> None:
        self._dest = {}
        self._child_ends: list[int] = []
        self._stdin_fd = stdin_fd
        self._in_w: int | None = None
        self._in_r: int | None = None
        try:
            if interactive:
                self._in_r, self._in_w = os.pipe2(os.O_CLOEXEC)
                os.set_blocking(self._in_w, False)  # a container that does not read must not stall its output
                self._child_ends.append(self._in_r)
            ends = []
            for dest in (stdout_fd, stderr_fd):
                r, w = os.pipe2(os.O_CLOEXEC)
                self._dest[r] = dest
                self._child_ends.append(w)
                ends.append(w)
        except BaseException:
            self.close()
            raise
        self._out_w, self._err_w = ends

    def stdio(self) -> Stdio:
        """Where the child's fds 0-2 come from (its ends of the pipes)."""
        return Stdio(
            stdin_null=self._in_r is None, stdin_fd=self._in_r, stdout_fd=self._out_w, stderr_fd=self._err_w
        )

    def close(self) -> None:
        for fd in (*self._child_ends, *self._dest, *((self._in_w,) if self._in_w is not None else ())):
            try:
                os.close(fd)
            except OSError:
                pass
        self._child_ends, self._dest, self._in_w = [], {}, None

    def run(self, pid: int) -> None:
        """Copy until the container's output pipes close, or until ``pid`` has exited (what it left in
        them is still copied; a process of its own it left behind may hold them open)."""
        for fd in self._child_ends:
            os.close(fd)
        self._child_ends = []
        pidfd = os.pidfd_open(pid)
        pending = b""
        reading_stdin = self._in_w is not None
        try:
            while self._dest:
                rlist = [*self._dest, pidfd] + ([self._stdin_fd] if reading_stdin and not pending else [])
                wlist = [self._in_w] if pending and self._in_w is not None else []
                ready, writable, _ = select.select(rlist, wlist, [])
                for fd in [fd for fd in ready if fd in self._dest]:
                    self._copy_out(fd)
                if self._stdin_fd in ready:
                    pending = os.read(self._stdin_fd, 65536)
                    if not pending:
                        reading_stdin = False
                        self._close_stdin()
                if writable:
                    assert self._in_w is not None  # only pending input makes it writable
                    try:
                        pending = pending[os.write(self._in_w, pending) :]
                    except BrokenPipeError:  # the container closed its stdin: the rest is not wanted
                        pending, reading_stdin = b"", False
                        self._close_stdin()
                if pidfd in ready:
                    for fd in list(self._dest):
                        os.set_blocking(fd, False)
                        while fd in self._dest and self._copy_out(fd):
                            pass
                    break
        finally:
            os.close(pidfd)
            self.close()

    def _copy_out(self, fd: int) -> bool:
        """One read from an output pipe to its destination; False once there is nothing more now."""
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return False
        if data:
            try:
                write_all(self._dest[fd], data)
                return True
            except BrokenPipeError:
                pass  # the caller's end is gone: closing ours gives the container its SIGPIPE, as if direct
        os.close(fd)
        del self._dest[fd]
        return False

    def _close_stdin(self) -> None:
        if self._in_w is not None:
            os.close(self._in_w)
            self._in_w = None


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data``, waiting while ``fd`` is full (a non-blocking terminal or pipe)."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            select.select([], [fd], [])
