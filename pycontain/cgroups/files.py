"""Small file helpers the cgroup drivers share: reading and writing cgroup files (one ``write(2)`` each,
an error naming the file and the value), listing and removing a cgroup tree."""

from __future__ import annotations

import errno
import os
import time

from ..errors import PermissionDenied, PycontainError, Unsupported


def read_file(path: str) -> str:
    with open(path) as f:
        return f.read()


def read_int(path: str) -> int | None:
    """An integer file ("max" and missing files read as None)."""
    try:
        text = read_file(path).strip()
    except FileNotFoundError:
        return None
    if text in ("", "max"):
        return None
    return int(text)


def read_keyed(path: str) -> dict[str, int]:
    """A flat-keyed file such as cgroup.events or memory.stat: "key value" per line (missing: {})."""
    out: dict[str, int] = {}
    try:
        text = read_file(path)
    except FileNotFoundError:
        return out
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        try:
            out[key] = int(value.strip())
        except ValueError:
            continue
    return out


def write_file(path: str, value: str) -> None:
    """Write one value into a cgroup file, as one write(2); errors become one-line PycontainErrors."""
    try:
        fd = os.open(path, os.O_WRONLY)
    except FileNotFoundError:
        raise Unsupported(
            f"cgroup file {path} does not exist (the kernel or the hierarchy lacks this controller)"
        ) from None
    except PermissionError:
        raise PermissionDenied(
            f"cannot open cgroup file {path} for writing (run pycontain as root)"
        ) from None
    try:
        os.write(fd, value.encode())
    except OSError as e:
        raise CgroupWriteError(path, value, e) from None
    finally:
        os.close(fd)


class CgroupWriteError(PycontainError):
    def __init__(self, path: str, value: str, err: OSError) -> None:
        reason = (err.strerror or str(err)).lower()
        if err.errno == errno.EBUSY and "memory" in os.path.basename(path):
            reason += ": the cgroup already uses more memory than that"
        super().__init__(f"cannot write {value.strip()!r} to {path} ({reason}; check the limit's value)")
        self.errno = err.errno
        self.path = path


def cgroup_procs(path: str) -> list[int]:
    """The pids in one cgroup.procs file (missing: [])."""
    try:
        return [int(x) for x in read_file(path).split()]
    except (FileNotFoundError, ProcessLookupError):
        return []


def tree_pids(top: str) -> list[int]:
    """Every pid in ``top``'s cgroup.procs and its descendants'."""
    seen: list[int] = []
    for dirpath, _dirs, _files in os.walk(top):
        for pid in cgroup_procs(os.path.join(dirpath, "cgroup.procs")):
            if pid not in seen:
                seen.append(pid)
    return seen


def remove_tree(top: str, timeout: float = 5.0) -> None:
    """rmdir ``top`` and the cgroups beneath it, deepest first; retry EBUSY while processes exit."""
    try:
        os.rmdir(top)  # the usual case, nothing beneath and no process left: no walk through its files
        return  # (listing a v1 cgroup's dozens of files costs ~0.1 ms a hierarchy)
    except FileNotFoundError:
        return
    except OSError:
        pass  # cgroups beneath it or processes still leaving (EBUSY), or not a directory: below
    if not os.path.isdir(top):
        return
    dirs = [d for d, _sub, _files in os.walk(top)]
    deadline = time.monotonic() + timeout
    for d in reversed(dirs):  # os.walk is top-down: reversed, children come before parents
        delay = 0.005
        while True:
            try:
                os.rmdir(d)
                break
            except FileNotFoundError:
                break
            except OSError as e:
                if e.errno != errno.EBUSY or time.monotonic() >= deadline:
                    left = cgroup_procs(os.path.join(d, "cgroup.procs"))
                    extra = f": processes {left} are still in it (kill them first)" if left else ""
                    raise PycontainError(
                        f"cannot remove cgroup {d} ({(e.strerror or str(e)).lower()}{extra})"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.1)


def wait_for(predicate, timeout: float) -> bool:
    """Poll ``predicate`` (5 ms growing to 50 ms) until it is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
