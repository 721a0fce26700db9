"""The monitor of a detached container: the process that stays to reap its PID 1.

``spawn`` forks twice (the monitor leaves the caller's session and is nobody's child but init's), and the
monitor makes the container: its first process is the monitor's own child, so its exit status can be read
with ``waitpid``. The monitor reports the container's id (or the error) to the caller over a pipe, then
exec-s ``monitor_loop.py``, a built-in-modules-only script that writes the timestamped log and waits. When
PID 1 has exited, the loop exec-s this module again (``python -m pycontain.monitor exited ROOT ID CODE``),
which records the exit (code, time, OOM kill) and applies the restart policy: it starts the container
again, as the same process, and goes back to the loop — or ends.

Restart policies (docker's): ``no``; ``on-failure[:N]`` (a non-zero exit, at most N times if N is given);
``always``; ``unless-stopped``. 'stop' ends a container for good whatever its policy; after a reboot,
``pycontain restart-policy`` (see ``boot``) starts the ``always`` ones and the ``unless-stopped`` ones that
were not stopped.
"""

from __future__ import annotations

import os
import sys
import time

from .errors import EXIT_RUNTIME, ExecFailed, PycontainError

# typing.TYPE_CHECKING without importing typing; type checkers know the idiom.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from .config import ContainerConfig
    from .health import HealthState

LOOP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "monitor_loop.py")


def spawn(config=None, root: str | None = None, existing=None):
    """Start a detached container under a new monitor and return its ``Container`` once it runs.

    ``config``: a new container; ``existing``: an exited ``Container`` to start again (same configuration
    and writable layer). Errors are the ones creating it raised, with their exit status.
    """
    from .container import Container

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
            _become_monitor(config, root, existing, w)
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
        return Container.get(msg[3:].strip(), root)
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


def _become_monitor(config, root: str | None, existing, report: int) -> None:
    """In the monitor: stdio away from the caller's, make (or start again) the container, report, loop."""
    fd = os.open("/dev/null", os.O_RDWR)
    for target in (0, 1, 2):
        os.dup2(fd, target)
    os.close(fd)
    # Whatever else the caller left open (the write end of a pipe its own caller waits on) stays with it.
    os.closerange(3, report)
    os.closerange(report + 1, os.sysconf("SC_OPEN_MAX"))
    try:
        container, child, out_r, err_r, in_w = _launch(config, root, existing)
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
    argv = _loop_argv(container, child.pid, out_r, err_r, in_w)
    # Left open: the exec closes it (close-on-exec), so 'run' returns once the monitor is the loop, with
    # its log open and its attach socket about to be.
    os.write(report, f"OK {container.id}".encode())
    os.execv(sys.executable, argv)


def _send(fd: int, text: str) -> None:
    try:
        os.write(fd, text.encode(errors="replace"))
    finally:
        os.close(fd)


def _launch(config, root: str | None, existing):
    """Make the container (or start it again) with its stdout and stderr on pipes to us."""
    from . import process
    from .container import Container

    cfg = config if existing is None else existing.state.config
    tty, interactive = cfg.tty, cfg.interactive
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
        if existing is not None:
            container = existing
            child = container.relaunch(stdio)
        else:
            container, child = Container.create(config, root, stdio=stdio, monitored=True)
    except BaseException:
        for fd in ours:
            os.close(fd)
        raise
    finally:
        for fd in theirs:
            os.close(fd)
    if tty:
        # The pty master is the container's terminal: output comes from it, attach's input goes to it.
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
    source at each start would leave ~0.7 MB more in every monitor's heap."""
    import importlib.util
    import py_compile

    cached = importlib.util.cache_from_source(LOOP)
    try:
        if os.stat(cached).st_mtime >= os.stat(LOOP).st_mtime:
            return cached
    except FileNotFoundError:
        pass  # never compiled (PYTHONDONTWRITEBYTECODE, a fresh tree): compile it now
    try:
        return py_compile.compile(LOOP, cfile=cached, doraise=True) or LOOP
    except (OSError, py_compile.PyCompileError):
        return LOOP  # a read-only tree: the source runs as well


def _loop_argv(container, child_pid: int, out_r: int, err_r: int, stdin_w: int) -> list[str]:
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


def exited(root: str, cid: str, code: int) -> None:
    """The container's PID 1 has exited with ``code``: record it, then restart it if its policy says so."""
    from .container import Container
    from .errors import ContainerNotFound
    from .restart import backoff, should_restart
    from .state import STOPPED

    try:
        c = Container.get(cid, root)
    except ContainerNotFound:
        return  # removed while it ran ('rm -f')
    ran_for = time.time() - (c.state.started or time.time())
    if not c.record_exit(code):
        return  # removed on exit (--rm), or being removed: never started again
    policy = c.state.config.restart
    if should_restart(policy, code, c.state.restarts, c.state.manual_stop):
        time.sleep(backoff(c.state.restarts, ran_for))
        st = c.store.load_id(cid)
        # Still exited: not removed (nor being removed), stopped or started by someone else meanwhile.
        if st is not None and st.status == STOPPED and not st.manual_stop and not st.alive():
            c.state = st
            try:
                _container, child, out_r, err_r, in_w = _launch(None, root, c)
            except Exception as e:
                _record_failure(c, e)
            else:
                os.execv(sys.executable, _loop_argv(c, child.pid, out_r, err_r, in_w))
    _forget_monitor(c)


HEALTH_LOG_KEEP = 5  # results kept in State.Health.Log, as docker keeps


def new_health(config: ContainerConfig) -> HealthState | None:
    """A container's health record when it starts: "starting" until its first check passes."""
    from .health import HealthState

    return HealthState() if config.healthcheck is not None and config.healthcheck.cmd else None


def health(root: str, cid: str) -> None:
    """One health check (started by the monitor loop every interval): run the command, record the result."""
    from .container import Container
    from .errors import ContainerNotFound

    try:
        c = Container.get(cid, root)
    except ContainerNotFound:
        return
    check = c.state.config.healthcheck
    if check is None or not check.cmd or not c.running():
        return
    started = time.time()
    try:
        result = c.exec_run(check.cmd, timeout=check.timeout)
        code, output = result.exit_code, (result.stdout + result.stderr).decode(errors="replace")
    except PycontainError as e:
        code, output = -1, str(e)
    from .health import HealthResult, HealthState

    entry = HealthResult(started, time.time(), code, output[-4096:])
    with c.store.lock():
        st = c.store.load_id(cid)
        if st is None or st.pid != c.state.pid:
            return  # removed, or started again meanwhile: this result is about a run that ended
        h = st.health or HealthState()
        h.log = h.log[-(HEALTH_LOG_KEEP - 1) :] + [entry]
        if code == 0:
            h.status, h.failing_streak = "healthy", 0
        elif started - (st.started or 0) >= check.start_period or h.status != "starting":
            h.failing_streak += 1
            if h.failing_streak >= (check.retries or 3):
                h.status = "unhealthy"
        st.health = h
        c.store.save(st)


def _record_failure(c, e: Exception) -> None:
    """A restart that failed: the container stays exited, the error goes to its log (there is no caller)."""
    from .logs import stamp_of

    stamp = stamp_of(time.time_ns())
    try:
        with open(c.log_path, "a") as f:
            f.write(f"{stamp} stderr F pycontain: restart failed: {e}\n")
    except OSError:
        pass


def _forget_monitor(c) -> None:
    with c.store.lock():
        st = c.store.load_id(c.id)
        if st is not None and st.monitor and st.monitor.is_me():
            st.monitor = None
            c.store.save(st)


def boot(root: str | None = None) -> list[str]:
    """After a reboot (or from a service unit at start-up): start every exited container whose policy is
    ``always``, or ``unless-stopped`` and not stopped with 'stop'. Returns one line per container."""
    from .container import Container
    from .restart import parse_restart

    lines = []
    for c in Container.list(root):
        st = c.state
        name, _ = parse_restart(st.config.restart)
        wanted = name == "always" or (name == "unless-stopped" and not st.manual_stop)
        if not wanted or c.status() != "exited" or st.monitored():
            continue
        try:
            c.start_again()
            lines.append(f"started {c.name}")
        except PycontainError as e:
            lines.append(f"could not start {c.name}: {e}")
    return lines


def _main(argv: list[str]) -> int:
    if len(argv) == 4 and argv[0] == "exited":
        exited(argv[1], argv[2], int(argv[3]))
        return 0
    if len(argv) == 3 and argv[0] == "health":
        health(argv[1], argv[2])
        return 0
    sys.stderr.write(
        "usage: python -m pycontain.monitor exited ROOT ID CODE | health ROOT ID (run by the monitor loop)\n"
    )
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
