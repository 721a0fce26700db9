"""A run's pipes: feeding stdin and collecting capped stdout/stderr until the process exits (``collect``),
and the worker threads that serve the asyncio methods (``executor``)."""

from __future__ import annotations

import os
import select
import threading
import time

DRAIN_GRACE = 0.25  # seconds to keep reading pipes that background processes hold after the command exited
_CHUNK = 65536


def last_line(data: bytes) -> str:
    lines = [ln for ln in data.decode(errors="replace").splitlines() if ln.strip()]
    return lines[-1].strip() if lines else ""


def collect(
    pid: int,
    in_w: int | None,
    data: bytes | None,
    out_r: int,
    err_r: int,
    max_output: int,
    deadline: float | None,
) -> tuple[bytes, bytes, bool, bool, float | None]:
    """Feed stdin, read stdout/stderr (capped) until the process exits and its pipes are drained, or the
    deadline passes. Returns (stdout, stderr, truncated, timed_out, exit time); closes the fds it got."""
    pidfd = os.pidfd_open(pid)
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    bufs = {out_r: bytearray(), err_r: bytearray()}
    for fd in bufs:
        poller.register(fd, select.POLLIN)
    open_fds = set(bufs)
    view = memoryview(data) if data else None
    if in_w is not None:
        if view:
            os.set_blocking(in_w, False)
            poller.register(in_w, select.POLLOUT)
        else:
            os.close(in_w)
            in_w = None
    truncated = timed_out = False
    ended: float | None = None

    def close(fd: int) -> None:
        poller.unregister(fd)
        os.close(fd)
        open_fds.discard(fd)

    try:
        while open_fds or ended is None:
            now = time.monotonic()
            limit = deadline
            if ended is not None:
                limit = ended + DRAIN_GRACE if limit is None else min(limit, ended + DRAIN_GRACE)
            if limit is not None and now >= limit:
                if ended is None:
                    timed_out = True
                break
            wait = -1 if limit is None else max(1, int((limit - now) * 1000) + 1)
            for fd, _ev in poller.poll(wait):
                if fd == pidfd:
                    ended = time.monotonic()
                    poller.unregister(pidfd)
                elif fd == in_w:
                    try:
                        n = os.write(in_w, view[:_CHUNK])  # type: ignore[index]
                        view = view[n:]  # type: ignore[index]
                    except BlockingIOError:
                        continue
                    except OSError:  # EPIPE: it closed its stdin
                        view = None
                    if not view:
                        close(in_w)
                        in_w = None
                elif fd in open_fds:
                    try:
                        chunk = os.read(fd, _CHUNK)
                    except OSError:
                        chunk = b""
                    if not chunk:
                        close(fd)
                        continue
                    buf = bufs[fd]
                    room = max_output - len(buf)
                    if len(chunk) > room:
                        buf += chunk[:room]
                        truncated = True
                        close(fd)  # the writer gets SIGPIPE/EPIPE: no more work for us
                    else:
                        buf += chunk
    finally:
        if in_w is not None:
            os.close(in_w)
        for fd in list(open_fds):
            if timed_out:
                continue  # read what was written before the kill, below
            poller.unregister(fd)
            os.close(fd)
        os.close(pidfd)
    if timed_out:
        # The caller kills every process; what they wrote before is still ours to read. Non-blocking: a
        # process that survives the kill for a moment must not hold us.
        for fd in list(open_fds):
            os.set_blocking(fd, False)
            stop = time.monotonic() + 1.0
            while len(bufs[fd]) < max_output and time.monotonic() < stop:
                try:
                    chunk = os.read(fd, _CHUNK)
                except BlockingIOError:
                    break
                except OSError:
                    break
                if not chunk:
                    break
                bufs[fd] += chunk[: max_output - len(bufs[fd])]
            os.close(fd)
    return bytes(bufs[out_r]), bytes(bufs[err_r]), truncated, timed_out, ended


_EXECUTOR = None
_EXECUTOR_LOCK = threading.Lock()


def executor():
    global _EXECUTOR
    with _EXECUTOR_LOCK:
        if _EXECUTOR is None:
            from concurrent.futures import ThreadPoolExecutor

            _EXECUTOR = ThreadPoolExecutor(max_workers=64, thread_name_prefix="pycontain-sandbox")
        return _EXECUTOR
