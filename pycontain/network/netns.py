"""Network namespaces that outlive processes: made, held by a bind mount on a file, and removed.

A namespace is made by a short-lived *thread*, not a forked child: ``unshare(CLONE_NEWNET)`` changes
only the calling thread's namespace, which the thread pins by bind-mounting
``/proc/thread-self/ns/net`` onto ``<netns_dir>/<container id>`` before it ends (what ``ip netns add``
does in a child). A thread costs ~0.1 ms against a fork's milliseconds, and the rest of the process
never leaves the host's namespace. Netlink sockets inside a namespace are opened the same way: a thread
``setns``-es into it and creates the socket, which stays bound to that namespace for good.
"""

from __future__ import annotations

import errno
import os

# libc (ctypes: ~3-5 ms to import) is imported by the functions that call into it: a pool's claim imports
# this module for ``is_mounted`` and ``detached`` alone.
TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable


def _make(path: str, with_socket: bool) -> int | None:
    """The body of a thread of its own (whose namespace it changes): a new namespace pinned on ``path``,
    and a NETLINK_ROUTE socket inside it (bound to it for good) when ``with_socket``."""
    from .. import libc

    _placeholder(path)
    try:
        libc.unshare(libc.CLONE_NEWNET)
        _ignore_router_advertisements()
        libc.mount("/proc/thread-self/ns/net", path, None, libc.MS_BIND)
        if with_socket:
            import socket  # here: the pool's claim path imports this module for is_mounted only

            return socket.socket(
                socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE
            ).detach()
        return None
    except BaseException:
        remove(path)
        raise


def _ignore_router_advertisements() -> None:
    """In the calling thread's new namespace (which /proc/sys/net shows to this thread): IPv6 router
    advertisements and redirects ignored, before any device exists, so every device inherits it. Another
    container on the bridge has CAP_NET_RAW and could otherwise route this one's traffic through itself
    (the CVE-2020-13401 class; docker does the same)."""
    for conf in ("all", "default"):
        for key in ("accept_ra", "accept_redirects"):
            try:
                fd = os.open(f"/proc/sys/net/ipv6/conf/{conf}/{key}", os.O_WRONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                return  # a kernel without IPv6
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)


def _placeholder(path: str) -> None:
    """The empty file a namespace is mounted on. Its directory goes when its last namespace does
    (``remove``), so it may vanish between being made and the file's creation: then it is made again."""
    for _ in range(100):
        os.makedirs(os.path.dirname(path), mode=0o711, exist_ok=True)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
        except FileNotFoundError:
            continue
        os.close(fd)
        return
    raise OSError(errno.ENOENT, "the namespace directory keeps vanishing", os.path.dirname(path))


def create(path: str) -> None:
    """A new, empty network namespace held by a bind mount on ``path`` (which must not exist)."""
    Background(lambda: _make(path, False)).wait()


class Background:
    """``fn()`` run by a thread of its own while the caller goes on. Namespace work is kernel time spent
    without the GIL (ctypes and socket calls drop it): ``unshare(CLONE_NEWNET)`` and unmounting a namespace
    are milliseconds each, which then overlap what the caller does meanwhile. ``wait()`` returns ``fn``'s
    result, once, or raises what it raised. A bare ``_thread`` (``threading`` costs ~1.5 ms to import, on
    ``rm``'s path): every caller waits for it."""

    def __init__(self, fn) -> None:
        import _thread

        self._fn = fn
        self._out: list = []
        self._err: list[BaseException] = []
        self._done = _thread.allocate_lock()
        self._done.acquire()
        try:
            _thread.start_new_thread(self._run, ())
        except BaseException:
            self._done.release()
            raise

    def _run(self) -> None:
        try:
            self._out.append(self._fn())
        except BaseException as e:
            self._err.append(e)
        finally:
            self._done.release()

    def wait(self) -> object:
        with self._done:
            pass
        if self._err:
            raise self._err.pop()
        return self._out.pop() if self._out else None


# The intermediates ``detached`` forked and did not wait for: each is reaped by the next call (or by init,
# once the caller has exited).
_intermediates: list[int] = []


def detached(body: Callable[[], object]) -> bool:
    """Run ``body()`` in a process of its own that outlives the caller and is never its child (a caller that
    lives on, a container's monitor or a Python program, collects no zombie): a new session, stdio on
    /dev/null, none of the caller's descriptors (a capturing parent waits for EOF on its pipes; a lock would
    stay held). It exits when ``body`` returns or raises. False when it could not be started.

    A short-lived intermediate forks it and exits. The caller does not wait for that intermediate: its fork
    costs ~0.25 ms, waiting for it to be scheduled, fork and exit another 1-4 ms on a busy host; it is
    reaped by the caller's next call here (``reap_detached``), or by init once the caller has exited."""
    reap_detached()
    try:
        devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        pid = os.fork()
        if pid == 0:
            try:
                if os.fork() == 0:
                    os.setsid()
                    _drop_descriptors(devnull)
                    body()
            finally:
                os._exit(0)
    except OSError:
        return False
    finally:
        os.close(devnull)
    _intermediates.append(pid)
    return True


def reap_detached() -> None:
    """Reap the intermediates of earlier ``detached`` calls that have exited (each does at once)."""
    for pid in list(_intermediates):
        try:
            done = os.waitpid(pid, os.WNOHANG)[0]
        except ChildProcessError:
            done = pid  # reaped by someone else (a subreaper's loop)
        if done:
            _intermediates.remove(pid)


def _drop_descriptors(devnull: int) -> None:
    """Every descriptor of the caller's replaced by /dev/null (close-on-exec above 2). Not closed: a Python
    object of the caller's that still names one (a file collected later) would then close whatever this
    process opened under its number."""
    for target in (0, 1, 2):
        os.dup2(devnull, target)
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd != devnull:
            try:
                os.dup2(devnull, fd, inheritable=False)
            except OSError:
                pass  # the listing's own descriptor, closed since


def create_with_socket(path: str) -> Background:
    """``create(path)`` in the background; its ``wait()`` gives a NETLINK_ROUTE socket's fd (the caller's to
    close) inside the new namespace."""
    return Background(lambda: _make(path, True))


def abandon(pending: Background) -> None:
    """Wait for a ``create_with_socket`` whose caller failed meanwhile, and close its socket if nobody took
    it (the namespace is the caller's to remove)."""
    try:
        fd = pending.wait()
    except BaseException:
        return
    if isinstance(fd, int):
        os.close(fd)


def remove(path: str) -> bool:
    """Unmount and delete a namespace file; False when there was nothing. The namespace itself goes when
    its last user does (its processes, other mounts of it)."""
    from .. import libc

    found = False
    try:
        libc.umount2(path, libc.MNT_DETACH)
        found = True
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOENT):
            raise
    try:
        os.unlink(path)
        found = True
    except FileNotFoundError:
        pass
    if found:
        try:
            os.rmdir(os.path.dirname(path))  # the last one: leave the state root as it was before any
        except OSError:
            pass  # other namespaces live there (ENOTEMPTY)
    return found


def is_mounted(path: str) -> bool:
    """Whether ``path`` holds a namespace (a bind mount of an nsfs inode), not just an empty file."""
    try:
        return os.stat(path).st_dev != os.stat(os.path.dirname(path)).st_dev
    except OSError:
        return False


def netlink_socket(path: str) -> int:
    """A NETLINK_ROUTE socket (its fd) that works inside the namespace held at ``path``."""

    from .. import libc

    def body() -> int:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            libc.setns(fd, libc.CLONE_NEWNET)
        finally:
            os.close(fd)
        import socket

        return socket.socket(
            socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE
        ).detach()

    return Background(body).wait()  # type: ignore[return-value]
