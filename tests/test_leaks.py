"""Repeated and concurrent runs leave the host exactly as they found it: mounts, cgroups, state root.

Marked ``soak``: CI runs the counts the runtime-core issue asks for (50 cycles, 20 concurrent runs);
PYCONTAIN_SOAK=N multiplies them for longer runs.
"""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import ROOT_REQUIRED, mountinfo, own_cgroup_dirs

pytestmark = [ROOT_REQUIRED, pytest.mark.soak]
SCALE = int(os.environ.get("PYCONTAIN_SOAK", "1"))


def _snapshot(root: str) -> tuple:
    entries = sorted(os.listdir(root)) if os.path.isdir(root) else []
    return mountinfo(), own_cgroup_dirs(), [e for e in entries if e != ".lock"]


def _assert_nothing_new(before: tuple, after: tuple) -> None:
    """Nothing mounted, no cgroup and no state entry more than before (others may have gone meanwhile)."""
    for what, b, a in zip(("mounts", "cgroups", "state entries"), before, after, strict=True):
        assert sorted(set(a) - set(b)) == [], f"{what} left behind"


def test_run_rm_cycles_leave_nothing(pyc, state_root):
    pyc("run", "--rm", "default", "--", "true", check=True)  # the state root exists from here on
    before = _snapshot(state_root)
    for i in range(50 * SCALE):
        if i % 2:
            p = pyc("run", "--rm", "default", "--", "sh", "-c", "echo x > /tmp/f; echo y > /etc/g")
        else:
            p = pyc("run", "--name", f"c{i}", "-v", "/tmp:/hosttmp:ro", "default", "--", "true")
            assert p.returncode == 0, p.stderr
            p = pyc("rm", f"c{i}")
        assert p.returncode == 0, p.stderr
    _assert_nothing_new(before, _snapshot(state_root))


def test_concurrent_runs_leave_nothing(pyc, state_root):
    pyc("run", "--rm", "default", "--", "true", check=True)
    before = _snapshot(state_root)

    def one(i: int) -> subprocess.CompletedProcess:
        return pyc("run", "--rm", "--name", f"par{i}", "default", "--", "sh", "-c", f"echo {i}")

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(one, range(20 * SCALE)))
    for i, p in enumerate(results):
        assert p.returncode == 0, p.stderr
        assert p.stdout.strip() == str(i)
    _assert_nothing_new(before, _snapshot(state_root))


def test_concurrent_same_name_exactly_one_wins(pyc):
    def one(_: int) -> subprocess.CompletedProcess:
        return pyc("run", "-d", "--name", "same", "default", "--", "sleep", "30")

    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(one, range(10)))
    winners = [p for p in results if p.returncode == 0]
    losers = [p for p in results if p.returncode != 0]
    assert len(winners) == 1
    assert all(p.returncode == 125 and "already in use" in p.stderr for p in losers)
