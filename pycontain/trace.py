"""``PYCONTAIN_TRACE=1``: one line on stderr as each step of a command is reached, to see where its time goes.

    $ PYCONTAIN_TRACE=1 pycontain run --rm --network none default /bin/true
    pycontain trace:   0.00 ms  (+0.00)  cli
    pycontain trace:   4.81 ms  (+4.81)  reserved
    ...

Times are milliseconds since this module was imported (the command line imports it first), so they
leave out the interpreter's own start, which ``python -c pass`` measures. Only the runtime's processes
trace: the container's child never writes here (its stderr is the container's). A value other than
``1`` is a file the lines are appended to, with the process id: a detached container's monitor (forked
from ``run -d``, its stderr on /dev/null) traces there. Off, ``step`` is a call that returns at once:
the variable is read once, at import.
"""

from __future__ import annotations

import posix
import time

from . import fastos

_where = fastos.getenv("PYCONTAIN_TRACE")
_start = time.perf_counter() if _where else None
_last = _start


def step(name: str) -> None:
    """Note that ``name`` has been reached (nothing unless PYCONTAIN_TRACE is set)."""
    global _last
    if _start is None or _last is None:
        return
    now = time.perf_counter()
    line = f"pycontain trace: {(now - _start) * 1e3:7.2f} ms  (+{(now - _last) * 1e3:.2f})  {name}"
    try:
        if _where == "1":
            posix.write(2, f"{line}\n".encode())
        else:
            assert _where is not None
            fd = posix.open(_where, posix.O_WRONLY | posix.O_APPEND | posix.O_CREAT | posix.O_CLOEXEC, 0o600)
            try:
                posix.write(fd, f"{line}  [{posix.getpid()}]\n".encode())
            finally:
                posix.close(fd)
    except OSError:
        pass  # a closed stderr or an unwritable file must not fail the command being traced
    _last = now
