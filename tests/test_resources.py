"""Resource limits through the CLI, on the real kernel: run's limit flags, stats, update, pause/unpause.

The limits are read back from the container's own cgroup (the directories ``inspect`` records), so each
test looks only at cgroups it created; the ``pyc`` fixture removes its containers afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from conftest import ROOT_REQUIRED, wait_until

pytestmark = ROOT_REQUIRED

MiB = 1024 * 1024


def _inspect(pyc, ref: str) -> dict:
    p = pyc("inspect", ref)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)[0]


def _cg_dir(pyc, ref: str, controller: str) -> str:
    record = _inspect(pyc, ref)["Cgroup"]
    if record["driver"] == "v2":
        pytest.skip("these checks read cgroup v1 files (this host runs the v2 driver)")
    if controller not in record["dirs"]:
        pytest.skip(f"the {controller} controller is not mounted on this host")
    return record["dirs"][controller]


def _cg_read(pyc, ref: str, controller: str, name: str) -> str:
    with open(os.path.join(_cg_dir(pyc, ref, controller), name)) as f:
        return f.read().strip()


def _detached(pyc, *flags: str, name: str = "c", cmd: tuple[str, ...] = ("sleep", "120")) -> str:
    p = pyc("run", "-d", "--name", name, *flags, "default", "--", *cmd)
    assert p.returncode == 0, p.stderr
    return name


# -- limits set by run ----------------------------------------------------------------------------
def test_memory_limit(pyc):
    _detached(pyc, "-m", "64m")
    assert int(_cg_read(pyc, "c", "memory", "memory.limit_in_bytes")) == 64 * MiB
    assert _inspect(pyc, "c")["Config"]["resources"]["memory"]["limit"] == 64 * MiB


def test_memory_limit_oom_kills(pyc):
    # busybox tail keeps every "line" it reads: /dev/zero has no newline, so it grows until the OOM killer comes.
    p = pyc("run", "--name", "oom", "-m", "32m", "default", "--", "tail", "/dev/zero", timeout=120)
    assert p.returncode == 137, p.stderr
    state = _inspect(pyc, "oom")["State"]
    assert state["OOMKilled"] is True and state["ExitCode"] == 137


def test_no_oom_without_pressure(pyc):
    assert pyc("run", "--name", "ok", "-m", "32m", "default", "--", "true").returncode == 0
    assert _inspect(pyc, "ok")["State"]["OOMKilled"] is False


def test_pids_limit(pyc):
    p = pyc(
        "run",
        "--pids-limit",
        "10",
        "default",
        "--",
        "sh",
        "-c",
        "for i in $(seq 50); do sleep 5 & echo started; done; echo all",
    )
    started = p.stdout.split().count("started")
    assert p.returncode != 0 and "all" not in p.stdout
    assert "can't fork" in p.stderr
    assert 1 <= started <= 9  # the shell itself is one of the ten


def test_pids_limit_file(pyc):
    _detached(pyc, "--pids-limit", "10")
    assert _cg_read(pyc, "c", "pids", "pids.max") == "10"


def test_cpu_limits(pyc):
    _detached(pyc, "--cpus", "0.5", "--cpu-shares", "512", "--cpuset-cpus", "0")
    assert _cg_read(pyc, "c", "cpu", "cpu.cfs_quota_us") == "50000"
    assert _cg_read(pyc, "c", "cpu", "cpu.cfs_period_us") == "100000"
    assert _cg_read(pyc, "c", "cpu", "cpu.shares") == "512"
    assert _cg_read(pyc, "c", "cpuset", "cpuset.cpus") == "0"
    # the container's process itself may run on cpu 0 only
    pid = _inspect(pyc, "c")["State"]["Pid"]
    assert os.sched_getaffinity(pid) == {0}


@pytest.mark.parametrize(
    ("flag", "value"),
    [("-m", "12x"), ("--cpus", "abc"), ("--pids-limit", "x"), ("--memory", "1k"), ("--cpu-shares", "-5")],
)
def test_bad_values_create_nothing(pyc, flag, value):
    p = pyc("run", "--name", "bad", flag, value, "default", "--", "true")
    assert p.returncode == 125
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and value in lines[0] and "Traceback" not in p.stderr, p.stderr
    assert pyc.ids() == []
    assert not os.path.isdir(pyc.root) or [e for e in os.listdir(pyc.root) if e != ".lock"] == []


# -- stats ----------------------------------------------------------------------------------------
def test_stats_json(pyc):
    _detached(pyc, "-m", "64m", "--pids-limit", "50", name="s1")
    _detached(pyc, name="s2", cmd=("sh", "-c", "sleep 120 & sleep 120"))
    t0 = time.monotonic()
    p = pyc("stats", "--no-stream", "--json", "s1", "s2")
    assert p.returncode == 0, p.stderr
    assert time.monotonic() - t0 >= 1.0  # two samples for CPU %
    rows = {r["Name"]: r for r in json.loads(p.stdout)}
    assert set(rows) == {"s1", "s2"}
    assert rows["s1"]["MemUsage"] > 0 and rows["s1"]["MemLimit"] == 64 * MiB
    assert rows["s1"]["Pids"] >= 1 and rows["s1"]["PidsLimit"] == 50
    assert rows["s2"]["Pids"] >= 2 and rows["s2"]["MemLimit"] > 64 * MiB  # unlimited: the host's memory
    for r in rows.values():
        assert r["CPUPerc"] >= 0.0 and 0.0 <= r["MemPerc"] <= 100.0

    # no ids: every running container of this state root
    every = json.loads(pyc("stats", "--json").stdout)
    assert {r["Name"] for r in every} == {"s1", "s2"}


def test_stats_cpu_percent(pyc):
    _detached(pyc, "--cpus", "0.5", cmd=("sh", "-c", "while :; do :; done"))
    row = json.loads(pyc("stats", "--json", "c").stdout)[0]
    assert 20.0 < row["CPUPerc"] < 65.0, row  # the cfs quota holds a busy loop near 50%


def test_stats_table(pyc):
    _detached(pyc, "-m", "64m")
    p = pyc("stats", "--no-stream")
    assert p.returncode == 0, p.stderr
    header, row = p.stdout.splitlines()[:2]
    for col in ("CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "PIDS", "BLOCK I/O"):
        assert col in header
    assert " c " in row and "/ 64MiB" in row


def test_stats_stream(pyc):
    _detached(pyc)
    proc = pyc.popen("stats", "c")
    try:
        lines = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and sum("CONTAINER ID" in x for x in lines) < 2:
            lines.append(proc.stdout.readline())
        assert sum("CONTAINER ID" in x for x in lines) >= 2, lines  # refreshed at least once
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_stats_errors(pyc):
    p = pyc("stats", "--no-stream", "nosuch")
    assert p.returncode == 125 and "nosuch" in p.stderr
    assert pyc("run", "--name", "done", "default", "--", "true").returncode == 0
    p = pyc("stats", "--no-stream", "done")
    assert p.returncode == 125 and "not running" in p.stderr and "Traceback" not in p.stderr
    assert json.loads(pyc("stats", "--json").stdout) == []


# -- update ---------------------------------------------------------------------------------------
def test_update_memory(pyc):
    _detached(pyc, "-m", "64m")
    p = pyc("update", "--memory", "128m", "--memory-swap", "256m", "c")
    assert p.returncode == 0, p.stderr
    assert int(_cg_read(pyc, "c", "memory", "memory.limit_in_bytes")) == 128 * MiB
    saved = _inspect(pyc, "c")["Config"]["resources"]
    assert saved["memory"] == {"limit": 128 * MiB, "swap": 256 * MiB}


def test_update_without_limits_before(pyc):
    _detached(pyc)
    assert pyc("update", "--memory", "128m", "c").returncode == 0
    assert int(_cg_read(pyc, "c", "memory", "memory.limit_in_bytes")) == 128 * MiB
    # only what is given changes; the rest keeps its value
    assert pyc("update", "--pids-limit", "33", "--cpus", "0.25", "c").returncode == 0
    assert _cg_read(pyc, "c", "pids", "pids.max") == "33"
    assert _cg_read(pyc, "c", "cpu", "cpu.cfs_quota_us") == "25000"
    assert int(_cg_read(pyc, "c", "memory", "memory.limit_in_bytes")) == 128 * MiB
    saved = _inspect(pyc, "c")["Config"]["resources"]
    assert saved["memory"]["limit"] == 128 * MiB and saved["pids"]["limit"] == 33
    assert saved["cpu"]["quota"] == 25000
    assert pyc("update", "--pids-limit", "-1", "c").returncode == 0
    assert _cg_read(pyc, "c", "pids", "pids.max") == "max"


def test_update_past_saved_swap(pyc):
    _detached(pyc, "-m", "64m")  # memory+swap defaults to 128m, as in docker
    p = pyc("update", "-m", "512m", "c")
    assert p.returncode == 125 and "memory-swap" in p.stderr and len(p.stderr.splitlines()) == 1
    assert int(_cg_read(pyc, "c", "memory", "memory.limit_in_bytes")) == 64 * MiB
    assert _inspect(pyc, "c")["Config"]["resources"]["memory"]["limit"] == 64 * MiB


def test_update_resources_file(pyc, tmp_path):
    _detached(pyc)
    f = tmp_path / "resources.json"
    f.write_text(json.dumps({"pids": {"limit": 42}, "cpu": {"shares": 256}}))
    p = pyc("update", "--resources", str(f), "--cpu-shares", "300", "c")  # flags win over the file
    assert p.returncode == 0, p.stderr
    assert _cg_read(pyc, "c", "pids", "pids.max") == "42"
    assert _cg_read(pyc, "c", "cpu", "cpu.shares") == "300"
    p = pyc("update", "--resources", "-", "c", input='{"memory": {"limit": 100663296}}')
    assert p.returncode == 0, p.stderr
    assert int(_cg_read(pyc, "c", "memory", "memory.limit_in_bytes")) == 96 * MiB

    f.write_text("{not json")
    p = pyc("update", "--resources", str(f), "c")
    assert p.returncode == 125 and "not JSON" in p.stderr
    p = pyc("update", "--resources", str(tmp_path / "missing.json"), "c")
    assert p.returncode == 125 and "missing.json" in p.stderr


def test_update_errors(pyc):
    assert pyc("run", "--name", "done", "default", "--", "true").returncode == 0
    p = pyc("update", "--memory", "128m", "done")
    assert p.returncode == 125 and "not running" in p.stderr and len(p.stderr.splitlines()) == 1
    _detached(pyc)
    for args, needle in ((["--memory", "12x"], "12x"), (["--cpus", "abc"], "abc"), ([], "nothing to update")):
        p = pyc("update", *args, "c")
        assert p.returncode == 125 and needle in p.stderr and "Traceback" not in p.stderr, p.stderr
    p = pyc("update", "--memory", "128m", "nosuch")
    assert p.returncode == 125 and "nosuch" in p.stderr


# -- pause / unpause ------------------------------------------------------------------------------
def _cpu_usage(pyc, ref: str) -> int:
    return int(_cg_read(pyc, ref, "cpuacct", "cpuacct.usage"))


def test_pause_unpause(pyc):
    _detached(pyc, cmd=("sh", "-c", "while :; do :; done"))
    assert pyc("pause", "c").returncode == 0
    assert _cg_read(pyc, "c", "freezer", "freezer.state") == "FROZEN"
    pid = _inspect(pyc, "c")["State"]["Pid"]
    with open(f"/proc/{pid}/status") as f:
        state = next(line.split()[1] for line in f if line.startswith("State:"))
    assert state in ("D", "S", "T")  # frozen: not running
    before = _cpu_usage(pyc, "c")
    time.sleep(0.3)
    assert _cpu_usage(pyc, "c") == before  # a busy loop that burns nothing: really frozen

    assert json.loads(pyc("ps", "--json").stdout)[0]["Status"] == "paused"
    assert "(Paused)" in pyc("ps").stdout
    info = _inspect(pyc, "c")["State"]
    assert info["Paused"] is True and info["Running"] is True and info["Status"] == "paused"
    p = pyc("exec", "c", "true")
    assert p.returncode == 125 and "paused" in p.stderr
    p = pyc("pause", "c")
    assert p.returncode == 125 and "already paused" in p.stderr

    assert pyc("unpause", "c").returncode == 0
    assert _cg_read(pyc, "c", "freezer", "freezer.state") == "THAWED"
    assert wait_until(lambda: _cpu_usage(pyc, "c") > before, timeout=5)
    assert json.loads(pyc("ps", "--json").stdout)[0]["Status"] == "running"
    assert pyc("exec", "c", "true").returncode == 0
    p = pyc("unpause", "c")
    assert p.returncode == 125 and "not paused" in p.stderr


def test_stop_and_rm_paused(pyc):
    _detached(pyc, name="p1")
    _detached(pyc, name="p2")
    assert pyc("pause", "p1", "p2").returncode == 0
    assert pyc("stop", "-t", "1", "p1").returncode == 0
    assert _inspect(pyc, "p1")["State"]["Status"] == "exited"
    assert pyc("rm", "-f", "p2").returncode == 0
    assert pyc.ids() and len(pyc.ids()) == 1


def test_pause_errors(pyc):
    assert pyc("run", "--name", "done", "default", "--", "true").returncode == 0
    for cmd in ("pause", "unpause"):
        p = pyc(cmd, "done")
        assert p.returncode == 125 and "not running" in p.stderr and len(p.stderr.splitlines()) == 1
        p = pyc(cmd, "nosuch")
        assert p.returncode == 125 and "nosuch" in p.stderr
