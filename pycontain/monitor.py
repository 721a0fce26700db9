"""The monitor of a detached container: the process that stays to reap its PID 1.

``monitor_spawn.spawn`` forks twice (the monitor leaves the caller's session and is nobody's child but
init's); the monitor runs ``monitor_loop.py``, a built-in-modules-only script that writes the timestamped
log and waits, and the container's first process is its child (made by a creator it forked, then adopted
as a subreaper's, or made by the monitor itself), so its exit status can be read with ``waitpid``. The
caller gets the container's id (or the error) over a pipe (see ``monitor_spawn``). When
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

from .errors import PycontainError


def exited(root: str, cid: str, code: int) -> None:
    """The container's PID 1 has exited with ``code``: record it, then restart it if its policy says so."""
    from .container import Container
    from .errors import ContainerNotFound
    from .monitor_spawn import launch, loop_argv
    from .restart import backoff, should_restart
    from .state import STOPPED, ProcRef

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
                _container, child, out_r, err_r, in_w = launch(
                    lambda stdio, monitor: (c, c.relaunch(stdio, monitor)), c.state.config, ProcRef.me()
                )
            except Exception as e:
                _record_failure(c, e)
            else:
                os.execv(sys.executable, loop_argv(c, child.pid, out_r, err_r, in_w))
    _forget_monitor(c)


HEALTH_LOG_KEEP = 5  # results kept in State.Health.Log, as docker keeps


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
