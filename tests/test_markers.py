"""The ``root`` marker that ``make check`` relies on: tests/conftest.py puts it on every test that needs root
and skips those tests without root, so the fast lane neither runs a privileged test nor loses a plain one."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
# One file of each kind: plain unit tests, container tests (the `pyc` fixture and a module-wide
# ROOT_REQUIRED), network tests (needs_net) and unit tests beside a few marked ones.
pytestmark = pytest.mark.slow  # three pytest runs in subprocesses: CI's make test, not make check
FILES = ["test_units.py", "test_lifecycle.py", "network/test_rtnl.py", "test_security_unit.py"]


def _collect(*args: str, prefix: list[str] | None = None) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]
    return subprocess.run(
        [*(prefix or []), *argv], cwd=os.path.dirname(HERE), capture_output=True, text=True, timeout=300
    )


def _ids(p: subprocess.CompletedProcess) -> set[str]:
    assert p.returncode in (0, 5), p.stdout + p.stderr  # 5: nothing selected
    return {line.split("[")[0] for line in p.stdout.splitlines() if "::" in line}


def test_root_marker_splits_the_suite():
    files = [os.path.join("tests", f) for f in FILES]
    root = _ids(_collect("--collect-only", "-m", "root", *files))
    plain = _ids(_collect("--collect-only", "-m", "not root", *files))
    assert not root & plain
    by_file = {f: {t for t in root if t.startswith(f)} for f in files}
    # Container tests (the pyc fixture, ROOT_REQUIRED) and netlink tests are root's, every one of them.
    assert by_file["tests/test_lifecycle.py"] and not {t for t in plain if "test_lifecycle" in t}
    assert by_file["tests/network/test_rtnl.py"] and not {t for t in plain if "test_rtnl" in t}
    # Pure unit tests are not; a file with a few @ROOT_REQUIRED tests splits.
    assert not by_file["tests/test_units.py"] and any("test_units" in t for t in plain)
    assert by_file["tests/test_security_unit.py"] and any("test_security_unit" in t for t in plain)


def test_without_root_marked_tests_are_skipped_and_the_rest_run():
    """In a user namespace of its own (euid 65534, no capability on the host) pytest skips what is marked
    and runs the plain tests, which pass there."""
    prefix = ["unshare", "--user", "--"]
    if subprocess.run([*prefix, "true"], capture_output=True).returncode != 0:
        pytest.skip("unprivileged user namespaces are not available here")
    p = _collect("-rs", "tests/test_units.py", "tests/test_lifecycle.py", prefix=prefix)
    assert p.returncode == 0, p.stdout + p.stderr
    summary = p.stdout.strip().splitlines()[-1]
    assert " passed" in summary and " skipped" in summary and "failed" not in summary, summary
    assert "needs root" in p.stdout
