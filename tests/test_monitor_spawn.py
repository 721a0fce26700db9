"""A detached container made beside its monitor's loop (``monitor_spawn``): the loop's interpreter starts
while a creator it forked makes the container; PID 1 ends up the loop's own child (the loop is a child
subreaper), and whatever else the loop adopts that way is reaped, never left a zombie."""

from __future__ import annotations

import os
import signal
import time

import pytest
from conftest import ROOT_REQUIRED, wait_until

from pycontain.api import make_config
from pycontain.container import Container, new_id
from pycontain.errors import PycontainError
from pycontain.monitor_spawn import spawn

pytestmark = ROOT_REQUIRED


def _ppid_and_state(pid: int) -> tuple[int, str]:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[1]), fields[0]


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


def test_pid_1_is_the_child_of_the_loop_started_beside_its_creator(pyc):
    p = pyc("run", "-d", "--network", "none", "--name", "b", "default", "--", "sh", "-c", "echo up; sleep 60")
    assert p.returncode == 0, p.stderr
    cid = p.stdout.strip()
    c = Container.get(cid, pyc.root)
    assert c.state.monitor is not None and c.state.pid is not None
    monitor = c.state.monitor.pid
    with open(f"/proc/{monitor}/cmdline", "rb") as f:
        argv = f.read().split(b"\0")
    assert b"monitor_loop" in argv[3] and argv[4:6] == [b"--beside", cid.encode()], argv
    assert wait_until(lambda: _ppid_and_state(c.state.pid)[0] == monitor)
    assert wait_until(lambda: pyc("logs", "b").stdout == "up\n")
    assert pyc("stop", "-t", "1", "b").returncode == 0
    assert pyc("wait", "b").stdout.strip() == "137"  # SIGKILL: sh ignores SIGTERM as PID 1
    assert wait_until(lambda: not os.path.exists(f"/proc/{monitor}"))


def test_what_the_loop_adopts_besides_pid_1_is_reaped(state_root):
    """The creator leaves a process that outlives it, and that one's child outlives it in turn: both come
    to the loop (a subreaper) and must be reaped when they exit."""
    config = make_config("default", ["sleep", "60"], network="none", detach=True)
    cid = new_id()

    def make(stdio, monitor):
        made = Container.create(config, state_root, stdio=stdio, monitor=monitor, cid=cid)
        if os.fork() == 0:
            if os.fork() == 0:
                time.sleep(0.5)
                os._exit(0)
            time.sleep(0.2)
            os._exit(0)
        return made

    assert spawn(make, config, cid) == cid
    c = Container.get(cid, state_root)
    assert c.state.monitor is not None
    monitor = c.state.monitor.pid
    try:
        time.sleep(1)  # both have exited by now, each adopted by the loop first

        def only_pid_1_left() -> bool:
            kids = _children(monitor)
            return kids == [c.state.pid] and _ppid_and_state(kids[0])[1] != "Z"

        assert wait_until(only_pid_1_left), [(k, _ppid_and_state(k)) for k in _children(monitor)]
    finally:
        c.remove(force=True)


def test_a_container_whose_loop_died_before_taking_it_is_removed(state_root):
    """The loop killed while the creator makes the container: nothing would watch it nor record its exit,
    so the creator removes it, and the caller gets the monitor's death in one line."""
    config = make_config("default", ["sleep", "60"], network="none", detach=True)
    cid = new_id()

    def make(stdio, monitor):
        made = Container.create(config, state_root, stdio=stdio, monitor=monitor, cid=cid)
        os.kill(monitor.pid, signal.SIGKILL)
        while os.path.exists(f"/proc/{monitor.pid}/cmdline") and _ppid_and_state(monitor.pid)[1] != "Z":
            time.sleep(0.01)
        return made

    with pytest.raises(PycontainError, match="the container's monitor died before the container started"):
        spawn(make, config, cid)
    assert wait_until(lambda: not [d for d in os.listdir(state_root) if len(d) == 64])


def test_run_d_reads_what_the_caller_gives_and_fails_as_the_foreground_does(pyc):
    """The configuration of a detached container reads the caller's descriptors (an env file on stdin), and
    its errors reach the caller in one line, with the foreground's status and words."""
    p = pyc(
        "run", "-d", "--network", "none", "--name", "e", "--env-file", "/dev/stdin",
        "default", "--", "sh", "-c", "echo A=$A; sleep 60",
        input="A=1\n",
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert wait_until(lambda: pyc("logs", "e").stdout == "A=1\n")
    for bad in (["--memory", "lots"], ["--name", "e"], ["-v", "relative:x"], ["--env-file", "/nonexistent"]):
        detached = pyc("run", "-d", "--network", "none", *bad, "default", "true")
        foreground = pyc("run", "--rm", "--network", "none", *bad, "default", "true")
        assert detached.returncode == foreground.returncode == 125, (bad, detached.stderr)
        assert detached.stderr == foreground.stderr and detached.stderr.count("\n") == 1, bad
