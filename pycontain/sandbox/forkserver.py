"""A single-threaded process that creates the sandbox pool's containers.

A pool runs threads (its workers, the cgroup warmer, the caller's own), and a fork from a threaded
process copies whatever lock another thread held at that instant, held for ever in the child: a child
that needs it (a library's lock, a buffered stream's lock, a C library's) hangs. The pool therefore asks
this server, started with ``subprocess`` (exec'd fresh, so it inherits no thread and no held lock) to
run ``Container.create``; the server forks the containers' first processes from its one thread.

Protocol, over a SOCK_SEQPACKET socket pair (one datagram per message): the client sends
``{"config": ContainerConfig.to_dict(), "root": str | None}`` as JSON; the server answers
``{"id": ..., "pid": ...}`` with a pidfd of PID 1 attached (SCM_RIGHTS), or ``{"error": message,
"kind": exception class name}``. PID 1 is the server's child: the server reaps it when its pidfd says it
exited; the client signals and watches it through its own copy of the pidfd. The server exits when the
client closes its end.
"""

from __future__ import annotations

import array
import json
import os
import select
import socket
import sys
import threading

_MAX_MESSAGE = 1 << 20


class ForkServer:
    """The client side: starts the server, sends it create requests (one at a time)."""

    def __init__(self) -> None:
        import subprocess

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            # subprocess forks and execs in C (no Python code runs in between): safe from any thread.
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "pycontain.sandbox.forkserver", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._sock = ours
        self._lock = threading.Lock()

    @property
    def pid(self) -> int:
        return self._proc.pid

    def create(self, config: dict, root: str | None) -> tuple[str, int, int]:
        """Create and start a container in the server: (its id, the host pid of its PID 1, a pidfd of it)."""
        from .. import errors

        request = json.dumps({"config": config, "root": root}).encode()
        fds = array.array("i")
        with self._lock:
            try:
                self._sock.sendall(request)
                data, anc, _flags, _addr = self._sock.recvmsg(_MAX_MESSAGE, socket.CMSG_SPACE(fds.itemsize))
            except OSError as e:  # it died (EPIPE, ECONNRESET)
                raise errors.PycontainError(f"the sandbox fork server is gone: {e.strerror}") from None
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
        if not data:
            for fd in fds:
                os.close(fd)
            raise errors.PycontainError("the sandbox fork server exited")
        reply = json.loads(data)
        if "error" in reply:
            for fd in fds:
                os.close(fd)
            cls = getattr(errors, reply["kind"], None)
            if not (isinstance(cls, type) and issubclass(cls, errors.PycontainError)):
                cls = errors.PycontainError
            try:
                raise cls(reply["error"])
            except TypeError:  # a class whose constructor takes other arguments
                raise errors.PycontainError(reply["error"]) from None
        return reply["id"], reply["pid"], fds[0]

    def close(self) -> None:
        """Closing our end ends the server; its children (PID 1s) are the caller's to have destroyed."""
        self._sock.close()
        self._proc.wait()


def _create(request: bytes) -> tuple[dict, int | None]:
    from ..config import ContainerConfig
    from ..container import Container
    from ..process import Stdio

    try:
        req = json.loads(request)
        stdio = Stdio(stdin_null=True, log_path="/dev/null")
        container, child = Container.create(
            ContainerConfig.from_dict(req["config"]), req["root"], stdio=stdio
        )
    except Exception as e:
        return {"error": str(e), "kind": type(e).__name__}, None
    return {"id": container.id, "pid": child.pid}, child.pid


def serve(sock: socket.socket) -> None:
    """Answer create requests until the client goes; reap every PID 1 we forked once it exits."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    children: dict[int, int] = {}  # pidfd -> pid
    while True:
        for fd, _events in poller.poll():
            if fd in children:
                os.waitpid(children.pop(fd), 0)  # exited: its pidfd is readable
                poller.unregister(fd)
                os.close(fd)
                continue
            request = sock.recv(_MAX_MESSAGE)
            if not request:
                return
            reply, pid = _create(request)
            if pid is None:
                sock.send(json.dumps(reply).encode())
                continue
            pidfd = os.pidfd_open(pid)
            children[pidfd] = pid
            poller.register(pidfd, select.POLLIN)
            sock.sendmsg(
                [json.dumps(reply).encode()],
                [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [pidfd]))],
            )


if __name__ == "__main__":
    serve(socket.socket(fileno=int(sys.argv[1])))
