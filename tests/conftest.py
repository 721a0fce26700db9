"""Shared fixtures: a private state root per test, a CLI runner, and leak snapshots.

Every test runs the real thing as root. Each gets its own state root (``--root``), and whatever
containers it leaves behind are removed with ``rm -f`` afterwards, even when it fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

ROOT_REQUIRED = pytest.mark.skipif(os.geteuid() != 0, reason="pycontain needs root (namespaces, mounts, cgroups)")


class CLI:
    """Runs ``python -m pycontain --root ROOT ...`` and returns the CompletedProcess."""

    def __init__(self, root: str) -> None:
        self.root = root

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "pycontain", "--root", self.root, *args]

    def __call__(self, *args: str, input: str | None = None, timeout: float = 60, check: bool = False,
                 **kw: object) -> subprocess.CompletedProcess:
        p = subprocess.run(self.argv(*args), input=input, capture_output=True, text=True, timeout=timeout, **kw)
        if check and p.returncode != 0:
            raise AssertionError(f"pycontain {' '.join(args)} exited {p.returncode}: {p.stderr}")
        return p

    def leaving(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """For commands that leave a process behind holding the stdio they were given (OCI create,
        run --detach): its stdout goes to /dev/null and its stderr to a file, never to a pipe we wait on."""
        import tempfile

        with tempfile.TemporaryFile("w+") as err:
            p = subprocess.run(self.argv(*args), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                               timeout=timeout, text=True)
            err.seek(0)
            p.stderr = err.read()
        return p

    def popen(self, *args: str, **kw: object) -> subprocess.Popen:
        return subprocess.Popen(self.argv(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)

    def ids(self) -> list[str]:
        return [d for d in os.listdir(self.root) if len(d) == 64] if os.path.isdir(self.root) else []


@pytest.fixture
def state_root(tmp_path):
    root = str(tmp_path / "state")
    yield root
    _remove_all(root)


@pytest.fixture
def pyc(state_root) -> CLI:
    return CLI(state_root)


def _remove_all(root: str) -> None:
    if not os.path.isdir(root):
        return
    ids = [d for d in os.listdir(root) if len(d) == 64]
    if ids:
        subprocess.run([sys.executable, "-m", "pycontain", "--root", root, "rm", "-f", *ids],
                       capture_output=True, timeout=60)


def own_cgroup_dirs() -> list[str]:
    """Every cgroup directory beneath the cgroups this process runs in (v1 hierarchies and cgroup2)."""
    found = []
    with open("/proc/self/cgroup") as f:
        lines = f.read().splitlines()
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers.startswith("name="):
            continue
        base = "/sys/fs/cgroup/unified" if controllers == "" and os.path.isdir("/sys/fs/cgroup/unified") \
            else "/sys/fs/cgroup" if controllers == "" else f"/sys/fs/cgroup/{controllers.split(',')[0]}"
        top = os.path.join(base, path.lstrip("/"))
        for d, subdirs, _files in os.walk(top):
            found.extend(os.path.join(d, s) for s in subdirs if "pycontain" in s)
    return sorted(found)


def mountinfo() -> list[str]:
    """The host's mount table without mount ids (which change as anything mounts elsewhere)."""
    with open("/proc/self/mountinfo") as f:
        return sorted(" ".join(line.split()[2:]) for line in f)


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


@pytest.fixture(scope="session", autouse=True)
def default_rootfs():
    """Build the default root filesystem once (the Makefile does it too; this makes pytest standalone)."""
    if os.geteuid() == 0:
        import rootfs_builder

        rootfs_builder.resolve("default")
