"""What every command of the command line shares, and nothing else: the global flags, the guard that turns
every error into one line and an exit status, and the ``command`` decorator that puts the two around a
typer command.

A leaf: the command modules, the fast parsers and ``cli.main`` import it; it imports none of them, nor
typer (only when a typer command exits with a status), so the fast paths pay for nothing here.
"""

from __future__ import annotations

import os
import sys

from ..errors import EXIT_RUNTIME, PycontainError

# typing.TYPE_CHECKING without importing typing (4 ms on the fast paths); type checkers know the idiom.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    from ..container import Container

    Body = TypeVar("Body", bound=Callable[..., int | None])


class Globals:
    """The global flags (runc's set): parsed here, before any command, by both parsers."""

    __slots__ = ("root", "log", "log_format", "debug", "systemd_cgroup", "rootless")

    def __init__(self) -> None:
        self.root: str | None = None
        self.log: str | None = None
        self.log_format = "text"
        self.debug = False
        self.systemd_cgroup = False
        self.rootless = "auto"


GLOBALS = Globals()
_VALUED = {"--root": "root", "--log": "log", "--log-format": "log_format", "--rootless": "rootless"}
_FLAGS = {"--debug": "debug", "--systemd-cgroup": "systemd_cgroup"}


def parse_globals(argv: list[str], g: Globals = GLOBALS) -> list[str]:
    """Take the global flags off the front of ``argv`` into ``g``; return the rest (the command and its args)."""
    i = 0
    while i < len(argv) and argv[i].startswith("--"):
        name, eq, value = argv[i].partition("=")
        if name in _FLAGS:
            setattr(g, _FLAGS[name], True if not eq else value.lower() in ("1", "true", "yes"))
            i += 1
        elif name in _VALUED and (eq or i + 1 < len(argv)):
            if not eq:
                value = argv[i + 1]
                i += 1
            setattr(g, _VALUED[name], value)
            i += 1
        else:
            break
    if g.root is None:
        g.root = os.environ.get("PYCONTAIN_ROOT") or None
    return argv[i:]


def _log_error(message: str) -> None:
    """Engines (podman via conmon) read a runtime's errors from --log, as JSON lines with --log-format json."""
    if not GLOBALS.log:
        return
    try:
        import time

        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if GLOBALS.log_format == "json":
            from .. import fastjson

            line = fastjson.dumps({"level": "error", "msg": message, "time": stamp})
        else:
            line = f"{stamp} error: {message}"
        with open(GLOBALS.log, "a") as f:
            f.write(line + "\n")
    except OSError:
        pass


def check_log() -> str | None:
    """runc refuses a --log-format it does not know and a --log it cannot open, before doing anything: an
    engine that reads errors from the log must not wait on a file nothing will be written to."""
    if GLOBALS.log_format not in ("text", "json"):
        fmt, GLOBALS.log_format = GLOBALS.log_format, "text"
        return f"--log-format {fmt!r} is not a log format: use text or json"
    if GLOBALS.log:
        try:
            os.close(os.open(GLOBALS.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644))
        except OSError as e:
            path, GLOBALS.log = GLOBALS.log, None
            return f"--log {path}: cannot write the log there: {e.strerror}"
    return None


def fail(message: str, code: int) -> int:
    # --log first: containerd opens a sandbox runtime's stderr read-only, so writing there fails, and
    # the log file is the only place the engine reads the reason from.
    _log_error(message)
    try:
        sys.stderr.write(f"pycontain: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    return code


def guarded(fn: Callable[..., int | None], *args: Any, **kwargs: Any) -> int:
    """Run a command body, turning every error into one line and an exit status."""
    try:
        return fn(*args, **kwargs) or 0
    except PycontainError as e:
        return fail(str(e), e.exit_code)
    except KeyboardInterrupt as e:
        from ..interrupts import exit_status

        return exit_status(e)
    except BrokenPipeError as e:
        if _stdout_gone():
            return 0  # 'pycontain ps | head': the reader has all it wanted
        return fail(f"broken pipe: {e.strerror or e}", EXIT_RUNTIME)
    except PermissionError as e:
        from .. import rootless

        if rootless.unprivileged():
            return fail(
                f"permission denied: {e.filename or e} (as a user other than root pycontain manages only "
                "your own rootless containers: use sudo for the rest)",
                EXIT_RUNTIME,
            )
        return fail(f"permission denied: {e.filename or e}", EXIT_RUNTIME)
    except OSError as e:
        where = f": {e.filename}" if e.filename else ""
        return fail(f"{e.strerror or e}{where}{_what_to_do(e.errno)}", EXIT_RUNTIME)
    except Exception as e:
        if os.environ.get("PYCONTAIN_DEBUG") or GLOBALS.debug:
            import traceback

            traceback.print_exc()
        return fail(
            f"internal error: {type(e).__name__}: {e} (run with PYCONTAIN_DEBUG=1 for details)", EXIT_RUNTIME
        )


def _what_to_do(errno_: int | None) -> str:
    """For the resources a host runs out of: what to do about it."""
    import errno

    return {
        errno.EMFILE: " (pycontain ran out of file descriptors: raise its limit with 'ulimit -n')",
        errno.ENFILE: " (the host ran out of file descriptors: see /proc/sys/fs/file-max)",
        errno.ENOSPC: " (free some space there)",
        errno.EDQUOT: " (a disk quota is exhausted: free some space there)",
        errno.EAGAIN: " (a process limit is reached: the host's pid_max, a cgroup's pids.max or 'ulimit -u')",
        errno.ENOMEM: " (the host is out of memory)",
    }.get(errno_ or 0, "")


def _stdout_gone() -> bool:
    """Whether our stdout is a pipe whose reader has gone (as opposed to some other pipe breaking)."""
    import select

    try:
        poller = select.poll()
        poller.register(1, select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (OSError, ValueError):
        return False


def exit_with(code: int) -> None:
    """End a typer command with ``code`` (typer's way: an exception its runner turns into the status)."""
    if code:
        import typer

        raise typer.Exit(code)


def command(group: Any, name: str, **settings: Any) -> Callable[[Body], Body]:
    """Register the decorated function as the command ``name`` of the typer ``group`` (``app``, or a
    sub-application such as ``network``), run through ``guarded``.

    The function is the whole command: typer has parsed its parameters, it calls one library function and
    prints the result; what it returns is the exit status (None: 0), what it raises becomes one line.
    It is returned as it is, so a command can call another's function (``image ls`` is ``images``).
    """
    import functools

    def register(fn: Body) -> Body:
        @functools.wraps(fn)  # typer reads the parameters and the help from fn's signature and docstring
        def run(*args: Any, **kwargs: Any) -> None:
            exit_with(guarded(fn, *args, **kwargs))

        group.command(name, **settings)(run)
        return fn

    return register


def container(ref: str) -> Container:
    """The container a name or id refers to, in the state root of ``--root``."""
    from ..container import Container

    return Container.get(ref, GLOBALS.root)


def for_each(refs: list[str], action: Callable[[Container], object], quiet: bool = False) -> int:
    """Apply ``action`` to each container (printing its reference unless ``quiet``); the worst status: one
    container that fails does not stop the others (docker's rule for stop, rm, kill...)."""
    return for_each_ref(refs, lambda ref: action(container(ref)), quiet)


def for_each_ref(refs: list[str], action: Callable[[str], object], quiet: bool = False) -> int:
    """``for_each`` for any reference (an image, a volume, a network): the worst status of them all."""
    worst = 0
    for ref in refs:

        def one(ref: str = ref) -> int:
            action(ref)
            if not quiet:
                print(ref)
            return 0

        worst = max(worst, guarded(one))
    return worst


def render_table(header: tuple[str, ...], rows: list[tuple[str, ...]], gap: int = 2) -> str:
    """Left-aligned columns ``gap`` spaces apart (docker's layout); the header bold on a terminal."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]

    def line(cells: tuple[str, ...]) -> str:
        return (" " * gap).join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    head = line(header)
    if sys.stdout.isatty():
        head = f"\x1b[1m{head}\x1b[0m"
    return "\n".join([head, *(line(r) for r in rows)])
