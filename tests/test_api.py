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


def test_make_config_validates():
    with pytest.raises(NotFound):
        pycontain.make_config("/nonexistent", ["true"])
    with pytest.raises(pycontain.PycontainError):
        pycontain.make_config("default", [])
