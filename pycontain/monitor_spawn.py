"""How a detached container's monitor starts: ``spawn`` forks it, it makes (or starts again) the container
with its output on pipes, reports the id or the error, and exec-s ``monitor_loop.py``.

Below both ``container`` (starting an exited container again spawns a monitor) and ``monitor`` (a new
detached container, and a restart by the policy): it is given the function that makes the container's
process, so it never imports ``container`` and neither imports the other's caller.
"""

from __future__ import annotations

import os
import sys

from .errors import EXIT_RUNTIME, ExecFailed, PycontainError

# typing.TYPE_CHECKING without importing typing; type checkers know the idiom.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from .config import ContainerConfig
    from .container import Container
    from .process import Child, Stdio

    # Makes the container's process with the stdio it is given: Container.create, or an exited
    # container's relaunch.
    Make = Callable[[Stdio], tuple[Container, Child]]

LOOP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "monitor_loop.py")


def spawn(make: Make, config: ContainerConfig) -> str:
    """Start a container under a new monitor (``make`` makes its process there, ``config`` is its
    configuration) and return its id once it runs. Errors are the ones making it raised, with their exit
    status."""
    r, w = os.pipe2(os.O_CLOEXEC)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setsid()  # a closing terminal must not SIGHUP the monitor
            if os.fork():
                os._exit(
                    0
                )  # the monitor is an orphan: init (or the nearest subreaper) reaps it, never our caller
            _become_monitor(make, config, w)
        finally:
            os._exit(EXIT_RUNTIME)
    os.close(w)
    os.waitpid(pid, 0)
    chunks = []
    while True:
        data = os.read(r, 65536)
        if not data:
            break
        chunks.append(data)
    os.close(r)
    msg = b"".join(chunks).decode(errors="replace")
    if msg.startswith("OK "):
        return msg[3:].strip()
    if msg.startswith("E"):
        code_s, _, rest = msg[1:].partition("\t")
        kind, _, text = rest.partition("\t")
        raise _rebuild_error(kind, text, int(code_s) if code_s.isdigit() else EXIT_RUNTIME)
    raise PycontainError("the container's monitor died before the container started (see 'pycontain gc')")


def _rebuild_error(kind: str, text: str, code: int) -> PycontainError:
    """The monitor's error, as the class it was raised with (callers match on AlreadyExists, NotFound...)."""
    from . import errors

    cls = getattr(errors, kind, None)
    if not (isinstance(cls, type) and issubclass(cls, PycontainError)):
        cls = PycontainError
    err = cls.__new__(cls)
    Exception.__init__(err, text)
    if cls is ExecFailed or code != cls.exit_code:
        err.exit_code = code
    return err


def _become_monitor(make: Make, config: ContainerConfig, report: int) -> None:
    """In the monitor: stdio away from the caller's, make (or start again) the container, report, loop."""
    fd = os.open("/dev/null", os.O_RDWR)
    for target in (0, 1, 2):
        os.dup2(fd, target)
    os.close(fd)
    # Whatever else the caller left open (the write end of a pipe its own caller waits on) stays with it.
    os.closerange(3, report)
    os.closerange(report + 1, os.sysconf("SC_OPEN_MAX"))
    try:
        container, child, out_r, err_r, in_w = launch(make, config)
    except PycontainError as e:
        _send(report, f"E{e.exit_code}\t{type(e).__name__}\t{e}")
        return
    except OSError as e:
        where = f": {e.filename}" if e.filename else ""
        _send(report, f"E{EXIT_RUNTIME}\tPycontainError\t{e.strerror or e}{where}")
        return
    except Exception as e:
        _send(report, f"E{EXIT_RUNTIME}\tPycontainError\tinternal error: {type(e).__name__}: {e}")
        return
    argv = loop_argv(container, child.pid, out_r, err_r, in_w)
    # Left open: the exec closes it (close-on-exec), so 'run' returns once the monitor is the loop, with
    # its log open and its attach socket about to be.
    os.write(report, f"OK {container.id}".encode())
    os.execv(sys.executable, argv)


def _send(fd: int, text: str) -> None:
    try:
        os.write(fd, text.encode(errors="replace"))
    finally:
        os.close(fd)


def launch(make: Make, config: ContainerConfig) -> tuple[Container, Child, int, int, int]:
    """In the monitor: make the container's process (``make``) with its stdout and stderr on pipes to us.
    Returns the container, its process, and our ends: stdout, stderr (-1 with a tty) and stdin (-1 without
    -i)."""
    from . import process

    tty, interactive = config.tty, config.interactive
    ours: list[int] = []  # the ends the monitor keeps
    theirs: list[int] = []  # the container's ends, closed here once it has them
    try:
        in_r = in_w = -1
        if interactive and not tty:
            in_r, in_w = os.pipe2(os.O_CLOEXEC)
            ours.append(in_w)
            theirs.append(in_r)
        if tty:
            out_r = err_r = -1
            stdio = process.Stdio(tty=True)
        else:
            out_r, out_w = os.pipe2(os.O_CLOEXEC)
            err_r, err_w = os.pipe2(os.O_CLOEXEC)
            ours += [out_r, err_r]
            theirs += [out_w, err_w]
            stdio = process.Stdio(
                stdin_null=in_r < 0, stdin_fd=in_r if in_r >= 0 else None, stdout_fd=out_w, stderr_fd=err_w
            )
        container, child = make(stdio)
    except BaseException:
        for fd in ours:
            os.close(fd)
        raise
    finally:
        for fd in theirs:
            os.close(fd)
    if tty:
        # The pty master is the container's terminal: output comes from it, attach's input goes to it.
        assert child.pty_master is not None  # (a tty's Stdio makes one)
        out_r = in_w = child.pty_master
    return container, child, out_r, err_r, in_w


def attach_socket(cid: str) -> str:
    """Where a container's monitor listens for 'attach': a runtime path (gone with a reboot, as the monitor)."""
    from . import rootless

    # Inside a rootless user namespace euid is 0 but /run is still not ours: ask rootless, not geteuid.
    base = (
        os.path.join(rootless.default_root(), "attach")
        if rootless.unprivileged()
        else "/run/pycontain/attach"
    )
    os.makedirs(base, mode=0o700, exist_ok=True)
    return os.path.join(base, cid + ".sock")


def _loop_program() -> str:
    """The loop's compiled bytecode, made now if it is missing or older than its source: compiling the
    source at each start would leave ~0.7 MB more in every monitor's heap. The cached file's name is
    importlib's (``__pycache__/NAME.TAG.pyc``), spelt out: importlib.util and py_compile (with traceback,
    tokenize...) cost a start ~5 ms of imports, and they are needed only when the file must be made."""
    head, tail = os.path.split(LOOP)
    if sys.implementation.cache_tag is None:
        return LOOP  # an interpreter that caches no bytecode
    cached = os.path.join(head, "__pycache__", f"{tail[:-3]}.{sys.implementation.cache_tag}.pyc")
    try:
        if os.stat(cached).st_mtime >= os.stat(LOOP).st_mtime:
            return cached
    except FileNotFoundError:
        pass  # never compiled (PYTHONDONTWRITEBYTECODE, a fresh tree): compile it now
    import py_compile

    try:
        return py_compile.compile(LOOP, cfile=cached, doraise=True) or LOOP
    except (OSError, py_compile.PyCompileError):
        return LOOP  # a read-only tree: the source runs as well


def loop_argv(container: Container, child_pid: int, out_r: int, err_r: int, stdin_w: int) -> list[str]:
    """The loop's command line (see monitor_loop), the descriptors it is given made inheritable."""
    from .logs import rotation

    for fd in (out_r, err_r, stdin_w):
        if fd >= 0:
            os.set_inheritable(fd, True)
    max_size, max_files = rotation(container.state.config.log_opts)
    check = container.state.config.healthcheck
    interval = str(check.interval if check is not None and check.cmd else 0)
    args = [
        container.log_path,
        str(child_pid),
        str(out_r),
        str(err_r),
        container.store.root,
        container.id,
        interval,
        str(stdin_w),
        attach_socket(container.id),
        str(max_size),
        str(max_files),
    ]
    return [sys.executable, "-I", "-S", _loop_program(), *args]
