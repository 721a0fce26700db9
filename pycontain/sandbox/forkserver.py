"""A single-threaded process that creates the sandbox pool's containers.

A pool runs threads (its workers, the cgroup warmer, the caller's own), and a fork from a threaded
process copies whatever lock another thread held at that instant, held for ever in the child: a child
that needs it (a library's lock, a buffered stream's lock, a C library's) hangs. The pool therefore asks
this server, started with ``subprocess`` (exec'd fresh, so it inherits no thread and no held lock) to
run ``Container.create``; the server forks the containers' first processes from its one thread.

It also resets used sandboxes for reuse (``pycontain.sandbox.reset``), which takes ``setns`` into their
mount namespaces: a threaded process cannot.

Protocol, over a SOCK_SEQPACKET socket pair (one datagram per message), JSON: the client sends
``{"config": ContainerConfig.to_dict(), "root": str | None, "reuse": bool}``; the server answers
``{"id": ..., "pid": ..., "not_resettable": why}`` (no ``not_resettable`` when ``reuse`` was asked and
the sandbox can be reset: the server has recorded its baseline) with a pidfd of PID 1 attached
(SCM_RIGHTS). ``{"reset": id, "root": ..., "pid": PID 1's}`` is answered ``{"ok": true}``. Any failure:
``{"error": message, "kind": exception class name}``. PID 1 is the server's child: the server reaps it
when its pidfd says it exited; the client signals and watches it through its own copy of the pidfd.
The server exits when the client closes its end.
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
_MAIN = "import socket, sys; from pycontain.sandbox.forkserver import serve; serve(socket.socket(fileno=int(sys.argv[1])))"


class ForkServer:
    """The client side: starts the server, sends it create requests (one at a time)."""

    def __init__(self) -> None:
        import subprocess

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            # subprocess forks and execs in C (no Python code runs in between): safe from any thread.
            self._proc = subprocess.Popen(
                # Not "-m" this module: the package's __init__ imports it first, and runpy warns on stderr.
                # (-P: not the caller's working directory first on sys.path, as -c would put it)
                [sys.executable, "-P", "-c", _MAIN, str(theirs.fileno())],
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

    def create(self, config: dict, root: str | None, reuse: bool = False) -> tuple[str, int, int, str | None]:
        """Create and start a container in the server: (its id, the host pid of its PID 1, a pidfd of it,
        and with ``reuse`` None when it can be reset, else why not; without, always a reason)."""
        reply, fds = self._call({"config": config, "root": root, "reuse": reuse})
        return reply["id"], reply["pid"], fds[0], reply.get("not_resettable")

    def reset(self, cid: str, root: str | None, pid1: int) -> None:
        """Make a sandbox the server created with ``reuse`` as good as new (``pycontain.sandbox.reset``);
        raises ``NotResettable`` when it cannot be."""
        self._call({"reset": cid, "root": root, "pid": pid1})

    def _call(self, request: dict) -> tuple[dict, array.array]:
        from .. import errors
        from . import reset

        data = json.dumps(request).encode()
        fds = array.array("i")
        with self._lock:
            try:
                self._sock.sendall(data)
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
            cls = (
                reset.NotResettable
                if reply["kind"] == "NotResettable"
                else getattr(errors, reply["kind"], None)
            )
            if not (isinstance(cls, type) and issubclass(cls, errors.PycontainError)):
                cls = errors.PycontainError
            try:
                raise cls(reply["error"])
            except TypeError:  # a class whose constructor takes other arguments
                raise errors.PycontainError(reply["error"]) from None
        return reply, fds

    def close(self) -> None:
        """Closing our end ends the server; its children (PID 1s) are the caller's to have destroyed."""
        self._sock.close()
        self._proc.wait()


def _create(req: dict) -> tuple[dict, object]:
    from ..config import ContainerConfig
    from ..container import Container
    from ..process import Stdio

    try:
        stdio = Stdio(stdin_null=True, log_path="/dev/null")
        container, child = Container.create(
            ContainerConfig.from_dict(req["config"]), req["root"], stdio=stdio
        )
    except Exception as e:
        return {"error": str(e), "kind": type(e).__name__}, None
    return {"id": container.id, "pid": child.pid}, container


def _reset(req: dict, bases: dict, own: dict[str, int], host_root: tuple[int, int]) -> dict:
    from . import reset

    try:
        base = bases.get(req["pid"])
        if base is None:
            raise reset.NotResettable("the fork server has no record of it to reset it to")
        reset.reset(base, own["mnt"], own["ipc"])
    except Exception as e:
        return {"error": str(e), "kind": type(e).__name__}
    finally:
        st = os.stat("/")
        if (st.st_dev, st.st_ino) != host_root:
            # Still in the sandbox's mount namespace (its setns back failed): never create from there.
            os._exit(1)
    return {"ok": True}


def _record(container, pid1: int, bases: dict) -> str | None:
    """Now, before any run: what the sandbox must look like after each reset; or why it cannot be reset."""
    from . import reset

    cg = container.cgroup()
    if cg is None:
        return "it has no cgroup"
    try:
        bases[pid1] = reset.baseline(pid1, cg)
    except (reset.NotResettable, OSError) as e:
        return str(e)
    return None


def serve(sock: socket.socket) -> None:
    """Answer create and reset requests until the client goes; reap every PID 1 we forked once it exits."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    children: dict[int, int] = {}  # pidfd -> pid
    bases: dict = {}  # pid -> reset.Baseline, of the sandboxes made to be reset
    # Our own namespaces, to come back to after a reset has entered a sandbox's.
    own = {name: os.open(f"/proc/self/ns/{name}", os.O_RDONLY | os.O_CLOEXEC) for name in ("mnt", "ipc")}
    st = os.stat("/")
    host_root = (st.st_dev, st.st_ino)
    while True:
        for fd, _events in poller.poll():
            if fd in children:
                gone = children.pop(fd)
                os.waitpid(gone, 0)  # exited: its pidfd is readable
                bases.pop(gone, None)
                poller.unregister(fd)
                os.close(fd)
                continue
            request = sock.recv(_MAX_MESSAGE)
            if not request:
                return
            req = json.loads(request)
            if "reset" in req:
                sock.send(json.dumps(_reset(req, bases, own, host_root)).encode())
                continue
            reply, container = _create(req)
            if container is None:
                sock.send(json.dumps(reply).encode())
                continue
            pid = reply["pid"]
            pidfd = os.pidfd_open(pid)
            children[pidfd] = pid
            poller.register(pidfd, select.POLLIN)
            if req.get("reuse"):
                reply["not_resettable"] = _record(container, pid, bases)
            else:
                reply["not_resettable"] = "not asked for"
            sock.sendmsg(
                [json.dumps(reply).encode()],
                [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [pidfd]))],
            )
