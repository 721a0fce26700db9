"""How a detached container's monitor starts: ``spawn`` forks it, it makes (or starts again) the container
with its output on pipes, reports the id or the error, and exec-s ``monitor_loop.py``.

A new container without a terminal is made beside the loop, not before it: the monitor becomes a child
subreaper, forks the creator and exec-s the loop at once, so the loop's interpreter starts (~10 ms) while
the creator makes the container. The creator sends the loop what it needs (``loop_fields``), reports, and
exits: the container's first process, the creator's child, is then the loop's (the subreaper adopts it).
As before, 'run' returns with the loop about to open the log and bind the attach socket (it is usually
up by then, its interpreter having started meanwhile). With a terminal (the pty master is the
creator's descriptor) and for a restart by the policy, the monitor makes the container itself, then exec-s
the loop, as the loop's own parent.

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
    from .state import ProcRef

    # Makes the container's process with the stdio it is given, recording the monitor it is given:
    # Container.create, or an exited container's relaunch.
    Make = Callable[[Stdio, ProcRef], tuple[Container, Child]]
    # Called first in the monitor: the Make and the container's configuration.
    Prepare = Callable[[], tuple[Make, ContainerConfig]]

LOOP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "monitor_loop.py")


def spawn(prepare: Prepare, cid: str) -> str:
    """Start a container under a new monitor and return its id (``cid``) once it runs: ``prepare``, called
    first in the monitor, gives the function that makes its process there and its configuration. Errors
    are the ones preparing or making it raised, with their exit status.

    ``prepare`` runs before the monitor leaves our descriptors (a ``--env-file /dev/stdin`` is still ours)
    and may do all the configuration's work: what it imports and allocates then is the monitor's own, not
    pages of ours that the creator, forked from the monitor while we wait, copies at its first write to
    each (see ``api.run_docker``)."""
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
            _become_monitor(prepare, cid, w)
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


def _become_monitor(prepare: Prepare, cid: str, report: int) -> None:
    """In the monitor: prepare, stdio away from the caller's, make (or start again) the container, report,
    loop."""
    try:
        make, config = prepare()
    except Exception as e:
        _send(report, _error_report(e))
        return
    sys.stdout.flush()  # (what preparing wrote: warnings, traces)
    sys.stderr.flush()
    fd = os.open("/dev/null", os.O_RDWR)
    for target in (0, 1, 2):
        os.dup2(fd, target)
    os.close(fd)
    # Whatever else the caller left open (the write end of a pipe its own caller waits on) stays with it.
    os.closerange(3, report)
    os.closerange(report + 1, os.sysconf("SC_OPEN_MAX"))
    from .state import ProcRef

    me = ProcRef.me()
    if not config.tty and _subreaper():
        _make_beside_the_loop(make, config, cid, report, me)
        return
    try:
        container, child, out_r, err_r, in_w = launch(make, config, me)
    except Exception as e:
        _send(report, _error_report(e))
        return
    argv = loop_argv(container, child.pid, out_r, err_r, in_w)
    # Left open: the exec closes it (close-on-exec), so 'run' returns once the monitor is the loop, with
    # its log open and its attach socket about to be.
    os.write(report, f"OK {container.id}".encode())
    os.execv(sys.executable, argv)


# prctl(2)'s option (linux/prctl.h)
PR_SET_CHILD_SUBREAPER = 36


def _subreaper() -> bool:
    """Make this process a child subreaper (kept across exec): what its descendants orphan comes to it.

    Through ``libc`` (ctypes), which making the container loads anyway: python-prctl's library would cost
    a start ~1.3 ms here, the run path needing it nowhere else."""
    from . import libc

    try:
        libc.prctl("PR_SET_CHILD_SUBREAPER", PR_SET_CHILD_SUBREAPER, 1)
    except OSError:
        return False  # the monitor makes the container itself, as the loop's parent
    return True


def _make_beside_the_loop(make: Make, config: ContainerConfig, cid: str, report: int, me: ProcRef) -> None:
    """Fork the creator, then become the loop at once (see the module's docstring)."""
    try:
        stdio, ours, theirs = _pipes(config)
        fields_r, fields_w = os.pipe2(os.O_CLOEXEC)
        creator = os.fork()
    except Exception as e:
        _send(report, _error_report(e))
        return
    if creator == 0:
        try:
            for fd in (*ours, fields_r):
                os.close(fd)
            _create(make, stdio, theirs, me, report, fields_w)
        finally:
            os._exit(0)
    for fd in (*theirs, fields_w, report):
        os.close(fd)
    out_r, err_r, in_w = ours if len(ours) == 3 else (*ours, -1)
    for fd in (out_r, err_r, in_w, fields_r):
        if fd >= 0:
            os.set_inheritable(fd, True)
    args = [str(fd) for fd in (fields_r, creator, out_r, err_r, in_w)]
    # The id is there for people (and tests) looking for a container's monitor in ps.
    os.execv(sys.executable, [sys.executable, "-I", "-S", _loop_program(), "--beside", cid, *args])


def _create(make: Make, stdio: Stdio, theirs: list[int], me: ProcRef, report: int, fields_w: int) -> None:
    """In the creator: make the container, hand it to the loop, and report."""
    try:
        try:
            container, child = make(stdio, me)
        finally:
            for fd in theirs:
                os.close(fd)
    except Exception as e:
        _send(report, _error_report(e))
        return
    try:
        from .stdio import write_all

        data = "\0".join(loop_fields(container, child.pid)).encode()
        write_all(fields_w, b"%d\n%s" % (len(data), data))
    except Exception as e:
        # No loop will watch it (nor record its exit): nothing may stay running unwatched.
        try:
            container.remove(force=True)
        except Exception:
            pass  # 'rm -f' finds it
        if isinstance(e, BrokenPipeError):
            e = PycontainError("the container's monitor died before the container started")
        _send(report, _error_report(e))
        return
    # Closed here, not by the exit: 'run' returns at the end of the report, and the exit first unmaps our
    # whole heap (~0.5 ms).
    _send(report, f"OK {container.id}")


def _error_report(e: Exception) -> str:
    """What the monitor sends 'run' for an error: its exit status, class and text (see _rebuild_error)."""
    if isinstance(e, PycontainError):
        return f"E{e.exit_code}\t{type(e).__name__}\t{e}"
    if isinstance(e, OSError):
        where = f": {e.filename}" if e.filename else ""
        return f"E{EXIT_RUNTIME}\tPycontainError\t{e.strerror or e}{where}"
    return f"E{EXIT_RUNTIME}\tPycontainError\tinternal error: {type(e).__name__}: {e}"


def _send(fd: int, text: str) -> None:
    try:
        os.write(fd, text.encode(errors="replace"))
    finally:
        os.close(fd)


def _pipes(config: ContainerConfig) -> tuple[Stdio, list[int], list[int]]:
    """The container's stdio on pipes (no terminal): its Stdio, the monitor's ends (stdout, stderr, and
    stdin with -i) and the container's, all close-on-exec."""
    from . import process

    ours: list[int] = []
    theirs: list[int] = []
    try:
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        ours.append(out_r)
        theirs.append(out_w)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        ours.append(err_r)
        theirs.append(err_w)
        in_r = -1
        if config.interactive:
            in_r, in_w = os.pipe2(os.O_CLOEXEC)
            ours.append(in_w)
            theirs.append(in_r)
    except BaseException:
        for fd in ours + theirs:
            os.close(fd)
        raise
    stdio = process.Stdio(
        stdin_null=in_r < 0, stdin_fd=in_r if in_r >= 0 else None, stdout_fd=out_w, stderr_fd=err_w
    )
    return stdio, ours, theirs


def launch(make: Make, config: ContainerConfig, monitor: ProcRef) -> tuple[Container, Child, int, int, int]:
    """In the monitor: make the container's process (``make``, recording ``monitor``) with its stdout and
    stderr on pipes to us. Returns the container, its process, and our ends: stdout, stderr (-1 with a tty)
    and stdin (-1 without -i)."""
    from . import process

    if config.tty:
        container, child = make(process.Stdio(tty=True), monitor)
        # The pty master is the container's terminal: output comes from it, attach's input goes to it.
        assert child.pty_master is not None  # (a tty's Stdio makes one)
        return container, child, child.pty_master, -1, child.pty_master
    stdio, ours, theirs = _pipes(config)
    try:
        container, child = make(stdio, monitor)
    except BaseException:
        for fd in ours:
            os.close(fd)
        raise
    finally:
        for fd in theirs:
            os.close(fd)
    out_r, err_r, in_w = ours if len(ours) == 3 else (*ours, -1)
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


def loop_fields(container: Container, child_pid: int) -> list[str]:
    """What the loop needs besides its descriptors (see monitor_loop): log, PID 1, the container, its health
    check's interval, the attach socket and the log's rotation."""
    from .logs import rotation

    max_size, max_files = rotation(container.state.config.log_opts)
    check = container.state.config.healthcheck
    interval = str(check.interval if check is not None and check.cmd else 0)
    return [
        container.log_path,
        str(child_pid),
        container.store.root,
        container.id,
        interval,
        attach_socket(container.id),
        str(max_size),
        str(max_files),
    ]


def loop_argv(container: Container, child_pid: int, out_r: int, err_r: int, stdin_w: int) -> list[str]:
    """The loop's command line (see monitor_loop), the descriptors it is given made inheritable."""
    for fd in (out_r, err_r, stdin_w):
        if fd >= 0:
            os.set_inheritable(fd, True)
    fds = [str(fd) for fd in (out_r, err_r, stdin_w)]
    return [sys.executable, "-I", "-S", _loop_program(), *fds, *loop_fields(container, child_pid)]
