"""A CI smoke run of benchmarks/run_latency.py with tiny counts: it runs, prints every measure's row
side by side with runc and crun, and leaves nothing behind. No timing is asserted."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT_REQUIRED

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "benchmarks", "run_latency.py")


def _sleepers() -> set[str]:
    """The pids of 'sleep 3600' processes: the bench's running containers."""
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.split()[1:] == ["sleep", "3600"]}


@ROOT_REQUIRED
@pytest.mark.skipif(shutil.which("hyperfine") is None, reason="hyperfine is not installed (make setup)")
def test_run_latency_prints_every_row(tmp_path):
    sys.path.insert(0, os.path.join(REPO, "benchmarks"))
    try:
        from run_latency import MEASURES
    finally:
        sys.path.pop(0)
    sleepers = _sleepers()
    # The console script next to this interpreter, or the interpreter itself running the package.
    exe = os.path.join(os.path.dirname(sys.executable), "pycontain")
    pycontain = exe if os.access(exe, os.X_OK) else None
    argv = [sys.executable, SCRIPT, "--runs", "2", "--warmup", "0", "--out", str(tmp_path)]
    argv += ["--density", "2", "--sandbox-runs", "3", "--state-tmpfs"]
    p = subprocess.run(
        argv + (["--pycontain", pycontain] if pycontain else []),
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    for label, *_ in MEASURES:
        row = next((line for line in p.stdout.splitlines() if line.startswith(label)), None)
        assert row is not None, (label, p.stdout)
        assert "n/a" not in row.split()[1:2], row  # pycontain's own figure is there
    for name in (
        "runc run",
        "runc exec",
        "runc state",
        "pycontain exec",
        "pycontain ps (10)",
        "start rate at N = 2",
        "sandbox pool, warm",
        "sandbox pool, back to back, reset",
        "sandbox pool, back to back, remade",
    ):
        assert any(line.startswith(name) for line in p.stdout.splitlines()), (name, p.stdout)
    assert (tmp_path / "latency.json").is_file()
    # Its containers (removed with their cgroups), bridge and nftables table are gone. (A subset, not a
    # machine-wide cgroup listing: other tests on the machine start and stop their own meanwhile.)
    assert _sleepers() <= sleepers
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    assert "pycbench1" not in links and "pycbench2" not in links
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    assert "pycontain_bench_lat" not in tables and "pycontain_bench_pool" not in tables
    with open("/proc/self/mountinfo") as f:
        mounts = f.read()
    # the warm pools' namespaces are unmounted (the default network's own pool too: on by default)
    assert "pycontain-bench-pool-" not in mounts and "pycontain-bench-net-" not in mounts
    # --state-tmpfs: said in the output, and the tmpfs is unmounted after the containers on it are gone
    assert "state roots are on a tmpfs" in p.stdout
    assert " - tmpfs pycontain-bench " not in mounts


@ROOT_REQUIRED
def test_detached_bench_runs_and_leaves_nothing():
    """benchmarks/detached.py with tiny counts: every figure printed, no container (or sandbox) left."""
    script = os.path.join(REPO, "benchmarks", "detached.py")
    argv = [sys.executable, script, "--containers", "2", "--runs", "2", "--warmup", "0"]
    if not (shutil.which("hyperfine") and shutil.which("podman") and shutil.which("crun")):
        argv.append("--no-podman")
    p = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    assert "pycontain monitor, 2 running: Pss mean" in p.stdout
    if "--no-podman" not in argv:
        assert "pycontain run -d: median" in p.stdout and "conmon (podman's monitor)" in p.stdout
    out = subprocess.run(["ps", "-eo", "args="], capture_output=True, text=True).stdout
    assert not any(line.strip() == "sleep 86400" for line in out.splitlines())


@ROOT_REQUIRED
@pytest.mark.skipif(shutil.which("hyperfine") is None, reason="hyperfine is not installed (make setup)")
def test_compare_trees_runs_and_leaves_nothing():
    """benchmarks/compare_trees.py with one run, this tree against itself: every row for both, none
    failing, and its containers, bridge and table gone."""
    script = os.path.join(REPO, "benchmarks", "compare_trees.py")
    sleepers = _sleepers()
    p = subprocess.run(
        [sys.executable, script, REPO, REPO, "--runs", "1"], capture_output=True, text=True, timeout=600
    )
    assert p.returncode == 0, p.stderr[-2000:]
    rows = {line.rsplit(None, 3)[0]: line.split()[-1] for line in p.stdout.splitlines()[1:]}
    for label in ("exec", "state", "ps", "run --network none", "run (bridge)", "run -d until logged"):
        for tree in ("before", "after"):
            assert rows.get(f"{label} ({tree})") == "0", (label, tree, p.stdout)
    assert _sleepers() <= sleepers
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    assert "pycbench3" not in links
    with open("/proc/self/mountinfo") as f:
        assert "pycontain-ab-net-" not in f.read()  # the default network's warm pool is unmounted
