"""Bad input: one line naming the problem and the fix, docker's exit statuses, nothing left behind."""

from __future__ import annotations

import os

import pytest
from conftest import ROOT_REQUIRED, own_cgroup_dirs

pytestmark = ROOT_REQUIRED


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run", "--rm", "/no/such/rootfs", "--", "true"], "no such image"),
        (["run", "--rm", "-u", "nosuchuser", "default", "--", "true"], "unable to find user 'nosuchuser'"),
        (["run", "--rm", "-u", "a:b:c", "default", "--", "true"], "invalid --user"),
        (["run", "--rm", "-v", "./relative:/x", "default", "--", "true"], "must be absolute"),
        (["run", "--rm", "-v", "/tmp:/x:rx", "default", "--", "true"], "invalid volume mode"),
        (["run", "--rm", "--bogus", "default", "--", "true"], "unknown flag"),
        (["run", "--rm", "default"], "no command given"),
        (["run", "--rm", "--name", "bad/name", "default", "--", "true"], "invalid container name"),
        (["run", "--rm", "-e", "=x", "default", "--", "true"], "invalid environment variable"),
        (["run", "--rm", "-w", "relative", "default", "--", "true"], "absolute"),
        (["exec", "nosuch", "--", "true"], "no such container"),
        (["stop", "nosuch"], "no such container"),
        (["logs", "../../etc"], "invalid container reference"),
    ],
)
def test_bad_input_is_one_clear_line(pyc, args, needle):
    before = own_cgroup_dirs()
    p = pyc(*args)
    assert p.returncode == 125, (p.returncode, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], p.stderr
    assert lines[0].startswith("pycontain: ")
    assert "Traceback" not in p.stderr
    assert pyc.ids() == []
    assert own_cgroup_dirs() == before


def test_not_root_is_explained(pyc):
    # An unprivileged user runs rootless, and root's state root (this test's) stays closed to it.
    p = pyc("run", "--rm", "default", "--", "true", user=65534)
    assert p.returncode == 125
    assert "permission denied" in p.stderr and "rootless" in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_failed_start_leaves_nothing(pyc):
    before = own_cgroup_dirs()
    p = pyc("run", "default", "--", "/no/such/binary")
    assert p.returncode == 127
    assert pyc.ids() == [] or all(os.path.isdir(os.path.join(pyc.root, i)) for i in pyc.ids())
    assert own_cgroup_dirs() == before
    assert pyc.ids() == []


def test_exec_with_a_relative_working_directory_is_refused(pyc):
    """As run's -w: a relative one is refused, never made beneath the container's root."""
    pyc("run", "-d", "--name", "wd", "--network", "none", "default", "--", "sleep", "1000", check=True)
    try:
        p = pyc("exec", "-w", "rel", "wd", "true")
        assert p.returncode == 125 and p.stderr.count("\n") == 1, (p.returncode, p.stderr)
        assert "working directory must be an absolute path: 'rel'" in p.stderr
        assert pyc("exec", "wd", "test", "-e", "/rel").returncode == 1
    finally:
        pyc("rm", "-f", "wd")
