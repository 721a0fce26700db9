"""A runtime SIGKILLed at any step of create leaves only what ``pycontain rm -f`` removes.

tests/reliability/ kills it at every step of start, exec and rm too, with bridge networking, and in random
cycles; these are the quick ones.
"""

from __future__ import annotations

import os

import pytest
from conftest import ROOT_REQUIRED, mountinfo, own_cgroup_dirs, wait_until

from pycontain.container import CREATE_STEPS

pytestmark = ROOT_REQUIRED


def _new(after: list[str], before: list[str], ids: list[str]) -> list[str]:
    """What is new and belongs to these containers (others may run tests on this host meanwhile)."""
    return sorted(x for x in set(after) - set(before) if any(cid in x for cid in ids))


def _container_processes(marker: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


@pytest.mark.parametrize("step", CREATE_STEPS)
@pytest.mark.parametrize("detach", [False, True])
def test_killed_runtime_is_cleaned_by_rm_force(pyc, step, detach, monkeypatch):
    mounts, cgroups = mountinfo(), own_cgroup_dirs()
    marker = f"crash-{step}-{int(detach)}"
    # The marker is sh's $0: busybox sleep would refuse it as an extra argument and end at once.
    args = [
        "run",
        "--name",
        marker,
        "-m",
        "64m",
        *(["-d"] if detach else []),
        "default",
        "--",
        "sh",
        "-c",
        "sleep 1000; true",
        marker,
    ]
    # Output to a file: a foreground container that outlives its killed runtime keeps its stdio open.
    monkeypatch.setenv("PYCONTAIN_CRASH_AT", step)
    p = pyc.leaving(*args)
    monkeypatch.delenv("PYCONTAIN_CRASH_AT")
    # A detached container is made by its monitor: the monitor is what dies, and run says so.
    if detach:
        assert p.returncode == 125 and "monitor died" in p.stderr, (p.returncode, p.stderr)
    else:
        assert p.returncode == -9, (p.returncode, p.stderr)
    listed = pyc("ps", "-a", "-q").stdout.split()
    assert len(listed) == 1, listed
    ids = pyc.ids()
    assert pyc("rm", "-f", marker).returncode == 0
    assert pyc.ids() == []
    assert wait_until(lambda: not _container_processes(marker))
    assert _new(own_cgroup_dirs(), cgroups, ids) == []
    assert _new(mountinfo(), mounts, [*ids, pyc.root]) == []


def test_gc_removes_abandoned_creates_but_not_live_ones(pyc):
    cgroups = own_cgroup_dirs()
    p = pyc(
        "run",
        "--name",
        "abandoned",
        "-d",
        "default",
        "--",
        "sleep",
        "1000",
        env={**os.environ, "PYCONTAIN_CRASH_AT": "started"},
    )
    assert p.returncode == 125 and "monitor died" in p.stderr
    pyc("run", "-d", "--name", "alive", "default", "--", "sleep", "1000", check=True)
    ids = pyc.ids()
    out = pyc("gc").stdout
    assert "abandoned" in out and "alive" not in out
    assert pyc("ps", "-a", "-q").stdout.split() == [pyc("inspect", "alive").stdout.split('"Id": "')[1][:12]]
    assert pyc("rm", "-f", "alive").returncode == 0
    assert _new(own_cgroup_dirs(), cgroups, ids) == []


def test_check_reports_the_host(pyc):
    import json

    checks = {c["check"]: c for c in json.loads(pyc("check", "--json").stdout)}
    assert checks["root"]["ok"] and checks["overlayfs"]["ok"] and checks["namespace pid"]["ok"]
    assert "v1" in checks["cgroups"]["detail"] or "v2" in checks["cgroups"]["detail"]
