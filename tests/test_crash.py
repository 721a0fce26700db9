"""A runtime SIGKILLed at any step of create leaves only what ``pycontain rm -f`` removes."""

from __future__ import annotations

import os

import pytest
from conftest import ROOT_REQUIRED, mountinfo, own_cgroup_dirs, wait_until

from pycontain.container import CREATE_STEPS

pytestmark = ROOT_REQUIRED


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
def test_killed_runtime_is_cleaned_by_rm_force(pyc, step, detach):
    mounts, cgroups = mountinfo(), own_cgroup_dirs()
    marker = f"crash-{step}-{int(detach)}"
    args = ["run", "--name", marker, "-m", "64m", *(["-d"] if detach else []), "default", "--", "sleep", "1000",
            marker]
    p = pyc(*args, env={**os.environ, "PYCONTAIN_CRASH_AT": step})
    assert p.returncode == -9, (p.returncode, p.stderr)
    listed = pyc("ps", "-a", "-q").stdout.split()
    assert len(listed) == 1, listed
    assert pyc("rm", "-f", marker).returncode == 0
    assert pyc.ids() == []
    assert wait_until(lambda: not _container_processes(marker))
    assert sorted(set(own_cgroup_dirs()) - set(cgroups)) == []
    assert sorted(set(mountinfo()) - set(mounts)) == []


def test_gc_removes_abandoned_creates_but_not_live_ones(pyc):
    cgroups = own_cgroup_dirs()
    p = pyc("run", "--name", "abandoned", "-d", "default", "--", "sleep", "1000",
            env={**os.environ, "PYCONTAIN_CRASH_AT": "started"})
    assert p.returncode == -9
    pyc("run", "-d", "--name", "alive", "default", "--", "sleep", "1000", check=True)
    out = pyc("gc").stdout
    assert "abandoned" in out and "alive" not in out
    assert pyc("ps", "-a", "-q").stdout.split() == [pyc("inspect", "alive").stdout.split('"Id": "')[1][:12]]
    assert pyc("rm", "-f", "alive").returncode == 0
    assert sorted(set(own_cgroup_dirs()) - set(cgroups)) == []


def test_check_reports_the_host(pyc):
    import json

    checks = {c["check"]: c for c in json.loads(pyc("check", "--json").stdout)}
    assert checks["root"]["ok"] and checks["overlayfs"]["ok"] and checks["namespace pid"]["ok"]
    assert "v1" in checks["cgroups"]["detail"] or "v2" in checks["cgroups"]["detail"]
