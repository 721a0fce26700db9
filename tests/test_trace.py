"""PYCONTAIN_TRACE: the runtime's own per-step timestamps, on stderr only when asked for. No timing is
asserted: only that the steps appear, in order, and that nothing is written without the variable."""

from __future__ import annotations

import os
import subprocess

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


@ROOT_REQUIRED
def test_trace_to_a_file_includes_the_monitor_of_run_d(pyc, tmp_path):
    """run -d creates the container in its monitor (stderr on /dev/null): with a file, its steps are there,
    each line with the process that wrote it."""
    out = tmp_path / "trace"
    env = {**os.environ, "PYCONTAIN_TRACE": str(out)}
    p = pyc(
        "run", "-d", "--network", "none", "default", "--", "sleep", "60", env=env, stdin=subprocess.DEVNULL
    )
    try:
        assert p.returncode == 0, p.stderr
        assert "pycontain trace" not in p.stderr
        lines = out.read_text().splitlines()
        pids = {line.rsplit("[", 1)[1].rstrip("]") for line in lines}
        steps = _steps("\n".join(line.rsplit("  [", 1)[0] for line in lines))
        assert steps[0] == "cli" and "reserved" in steps and "exec'd" in steps, lines
        assert len(pids) >= 2  # the command line and the monitor
    finally:
        pyc("rm", "-f", p.stdout.strip())
