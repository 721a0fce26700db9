"""PYCONTAIN_TRACE: the runtime's own per-step timestamps, on stderr only when asked for. No timing is
asserted: only that the steps appear, in order, and that nothing is written without the variable."""

from __future__ import annotations

import os

from tests.conftest import ROOT_REQUIRED

STEPS = ["cli", "reserved", "cgroup-created", "forked", "exec'd", "exited", "rm-contents-removed"]


def _steps(stderr: str) -> list[str]:
    return [
        line.split(")", 1)[1].strip() for line in stderr.splitlines() if line.startswith("pycontain trace:")
    ]


@ROOT_REQUIRED
def test_trace_lists_run_steps_in_order(pyc):
    p = pyc(
        "run",
        "--rm",
        "--network",
        "none",
        "default",
        "--",
        "/bin/true",
        env={**os.environ, "PYCONTAIN_TRACE": "1"},
    )
    assert p.returncode == 0, p.stderr
    steps = _steps(p.stderr)
    assert [s for s in steps if s in STEPS] == STEPS, p.stderr
    assert not p.stdout


@ROOT_REQUIRED
def test_no_trace_without_the_variable(pyc):
    env = {k: v for k, v in os.environ.items() if k != "PYCONTAIN_TRACE"}
    p = pyc("run", "--rm", "--network", "none", "default", "--", "/bin/true", env=env)
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""
