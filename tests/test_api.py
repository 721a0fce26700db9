"""The library API the CLI wraps: pycontain.run, pycontain.start, Container."""

from __future__ import annotations

import os

import pytest
from conftest import ROOT_REQUIRED

import pycontain
from pycontain.errors import AlreadyExists, InvalidState, NotFound

pytestmark = ROOT_REQUIRED


def test_run_returns_exit_status(state_root, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    code = pycontain.run(
        "default",
        ["sh", "-c", "hostname > /out/h; exit 4"],
        root=state_root,
        hostname="api",
        volumes=[f"{out}:/out"],
        auto_remove=True,
    )
    assert code == 4
    assert (out / "h").read_text().strip() == "api"
    assert not os.listdir(state_root) or os.listdir(state_root) == [".lock"]


def test_start_exec_stop_remove(state_root):
    c = pycontain.start("default", ["sleep", "30"], root=state_root, name="lib")
    try:
        assert c.status() == "running"
        again = pycontain.Container.get("lib", state_root)
        assert again.id == c.id
        child = c.exec(["sh", "-c", "exit 3"])
        _, status = os.waitpid(child.pid, 0)
        assert os.WEXITSTATUS(status) == 3
        with pytest.raises(AlreadyExists):
            pycontain.start("default", ["true"], root=state_root, name="lib")
        c.stop(timeout=1)
        assert c.status() == "exited"
        with pytest.raises(InvalidState):
            c.exec(["true"])
    finally:
        c.remove(force=True)
    with pytest.raises(NotFound):
        pycontain.Container.get("lib", state_root)


def test_exec_run_result_input_timeouts_and_limit_keywords(state_root):
    c = pycontain.start("default", ["sleep", "300"], root=state_root, memory="64m", pids=32)
    try:
        r = c.exec_run(["sh", "-c", "cat; echo err >&2; exit 2"], input=b"in\n")
        assert (r.exit_code, r.stdout, r.stderr, r.output) == (2, b"in\n", b"err\n", "in\n")
        with pytest.raises(pycontain.PycontainError, match="did not finish within 0.3 s"):
            c.exec_run(["sleep", "100"], timeout=0.3)
        assert c.exec_run(["pidof", "sleep"]).output.split() == ["1"]  # the timed-out one killed and reaped
        limit = "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes"
        assert c.exec_run(["sh", "-c", limit]).output == f"{64 << 20}\n"
        with pytest.raises(pycontain.PycontainError, match="still runs after"):
            c.wait(timeout=0.1)
        c.kill("KILL")
        assert c.wait(timeout=30) == 137
    finally:
        c.remove(force=True)


def test_make_config_validates():
    with pytest.raises(NotFound):
        pycontain.make_config("/nonexistent", ["true"])
    with pytest.raises(pycontain.PycontainError):
        pycontain.make_config("default", [])
