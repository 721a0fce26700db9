"""What the fast paths (``state``, ``ps``, ``exec``) take from ``os``, over ``posix``, without importing ``os``.

``import os`` costs ~4.4 M instructions (~2.5 ms here; its ``_collections_abc`` alone makes some 25 abstract
classes): a third of what ``pycontain state`` does above the interpreter's own start, which the launcher's
``-S`` interpreter makes without loading ``os``. ``posix`` is where ``os`` takes its system calls from
(``os.open`` is ``posix.open``): the modules of those paths call it directly, and take from here the few
conveniences ``os`` adds in Python. They answer as ``os`` does: where ``os`` is loaded (``python -m``, the
run path, a library user), the environment is ``os.environ``, which a caller may have changed.
``tests/test_cli_fast.py`` checks that those commands load no ``os``.
"""

from __future__ import annotations

import posix
import sys

# stat(2)'s file types, as the stat module names them (which costs an import)
S_IFMT, S_IFDIR, S_IFREG = 0o170000, 0o040000, 0o100000


def getenv(name: str) -> str | None:
    """``os.environ.get(name)``."""
    os = sys.modules.get("os")
    if os is not None:
        return os.environ.get(name)
    # Nothing changed the environment since the start without os: posix's copy of it is current.
    value = posix.environ.get(name.encode())
    return (
        None if value is None else value.decode(sys.getfilesystemencoding(), sys.getfilesystemencodeerrors())
    )


def join(path: str, *parts: str) -> str:
    """``os.path.join`` of strings."""
    for p in parts:
        if p.startswith("/"):
            path = p
        elif not path or path.endswith("/"):
            path += p
        else:
            path += "/" + p
    return path


def abspath(path: str) -> str:
    """``os.path.abspath``: a path already absolute and normal (every default root, what engines give) as it
    is; any other through ``os``."""
    if path.startswith("/") and (path == "/" or all(p not in ("", ".", "..") for p in path[1:].split("/"))):
        return path
    import os

    return os.path.abspath(path)


def exists(path: str) -> bool:
    """``os.path.exists``."""
    try:
        posix.stat(path)
    except (OSError, ValueError):
        return False
    return True


def isdir(path: str) -> bool:
    """``os.path.isdir``."""
    try:
        return posix.stat(path).st_mode & S_IFMT == S_IFDIR
    except (OSError, ValueError):
        return False


def dirname(path: str) -> str:
    """``os.path.dirname``."""
    head = path[: path.rfind("/") + 1]
    return head.rstrip("/") or head


def write_replace(path: str, data: bytes, mode: int) -> None:
    """Replace the file at ``path`` whole with ``data`` (a new file of ``mode`` renamed over it): readers and a
    crash see the old content or the new, never half of it. Raises OSError, leaving no temporary file."""
    tmp = f"{path}.{posix.getpid()}.tmp"
    try:
        fd = posix.open(
            tmp, posix.O_WRONLY | posix.O_CREAT | posix.O_TRUNC | posix.O_NOFOLLOW | posix.O_CLOEXEC, mode
        )
        try:
            view = memoryview(data)
            while view:
                view = view[posix.write(fd, view) :]
        finally:
            posix.close(fd)
        posix.rename(tmp, path)
    except OSError:
        try:
            posix.unlink(tmp)
        except OSError:
            pass
        raise


def read_file(path: str, size: int = 65536) -> bytes:
    """The first ``size`` bytes of a small file, in one read(2): ``open``'s buffered and decoding layers cost
    five system calls more (fstat, ioctl, lseeks) and ~9 us a file here, and ``ps`` reads two files of
    /proc and /sys per container."""
    fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
    try:
        return posix.read(fd, size)
    finally:
        posix.close(fd)
