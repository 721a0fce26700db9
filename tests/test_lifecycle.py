"""Detached containers: ps, logs, exec, stop, kill, rm, inspect; only their monitor stays behind."""

from __future__ import annotations

import json
import os

from conftest import ROOT_REQUIRED, wait_until

pytestmark = ROOT_REQUIRED


def test_detached_lifecycle(pyc):
    p = pyc("run", "-d", "--name", "web", "default", "--", "sh", "-c", "echo out; echo err >&2; sleep 60")
    assert p.returncode == 0, p.stderr
    cid = p.stdout.strip()
    assert len(cid) == 64
    # Only the container's monitor stays resident (a small interpreter running monitor_loop.py), as conmon
    # does; others' containers may start meanwhile, so only processes naming this container count.
    resident = []
    for pid in set(filter(str.isdigit, os.listdir("/proc"))):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if cid.encode() in cmd:
            resident.append(cmd)
    assert len(resident) == 1 and b"monitor_loop" in resident[0], resident

    rows = json.loads(pyc("ps", "--json").stdout)
    assert [(r["Name"], r["Status"]) for r in rows] == [("web", "running")]
    pid = rows[0]["Pid"]
    assert os.path.exists(f"/proc/{pid}")
    assert "web" in pyc("ps").stdout and "CONTAINER ID" in pyc("ps").stdout

    assert wait_until(lambda: "err" in pyc("logs", "web").stdout)
    assert pyc("logs", "web").stdout.split() == ["out", "err"]

    p = pyc("exec", "web", "--", "sh", "-c", "echo $$ $(hostname); cat /proc/1/cmdline | tr '\\0' ' '")
    first = p.stdout.split()
    assert p.returncode == 0, p.stderr
    assert int(first[0]) > 1 and first[1] == cid[:12] and "sleep" in p.stdout
    assert pyc("exec", "web", "sh", "-c", "exit 7").returncode == 7
    assert pyc("exec", "-t", "web", "tty").stdout.strip().startswith("/dev/pts/")
    assert pyc(
        "exec", "-u", "nobody", "-w", "/tmp", "-e", "X=y", "web", "sh", "-c", "id -u; pwd; echo $X"
    ).stdout.split() == ["65534", "/tmp", "y"]
    assert pyc("exec", "web", "nosuch").returncode == 127

    info = json.loads(pyc("inspect", "web").stdout)[0]
    assert info["Id"] == cid and info["State"]["Running"] and info["State"]["Pid"] == pid

    p = pyc("rm", "web")
    assert p.returncode == 125 and "running" in p.stderr
    assert pyc("stop", "-t", "1", "web").returncode == 0
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
    info = json.loads(pyc("inspect", "web").stdout)[0]
    assert info["State"]["Status"] == "exited" and info["State"]["ExitCode"] == 137
    assert pyc("ps", "-q").stdout.strip() == ""
    assert cid[:12] in pyc("ps", "-a", "-q").stdout
    assert pyc("exec", "web", "true").returncode == 125
    assert pyc("rm", "web").returncode == 0
    assert pyc("inspect", "web").returncode == 125
    p = pyc("rm", "web")
    assert p.returncode == 125 and "no such container" in p.stderr


def test_kill_with_signal_names(pyc):
    pyc(
        "run",
        "-d",
        "--name",
        "k",
        "default",
        "--",
        "sh",
        "-c",
        "trap 'exit 5' USR1; while :; do sleep 0.05; done",
        check=True,
    )
    assert pyc("kill", "-s", "BOGUS", "k").returncode == 125
    assert pyc("kill", "-s", "USR1", "k").returncode == 0
    assert wait_until(lambda: json.loads(pyc("inspect", "k").stdout)[0]["State"]["Status"] == "exited")
    assert pyc("kill", "k").returncode == 125  # not running any more


def test_rm_force_kills_and_cleans(pyc, state_root):
    pyc("run", "-d", "--name", "f", "default", "--", "sleep", "60", check=True)
    pid = json.loads(pyc("inspect", "f").stdout)[0]["State"]["Pid"]
    assert pyc("rm", "-f", "f").returncode == 0
    assert wait_until(
        lambda: not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
    )
    assert pyc.ids() == []


def test_duplicate_name_is_refused(pyc):
    pyc("run", "-d", "--name", "dup", "default", "--", "sleep", "30", check=True)
    p = pyc("run", "--name", "dup", "default", "--", "true")
    assert p.returncode == 125 and "already in use" in p.stderr
    assert len(pyc.ids()) == 1


def test_exited_foreground_container_keeps_its_status(pyc):
    assert pyc("run", "--name", "done", "default", "--", "sh", "-c", "exit 9").returncode == 9
    info = json.loads(pyc("inspect", "done").stdout)[0]
    assert info["State"]["Status"] == "exited" and info["State"]["ExitCode"] == 9
    assert "Exited (9)" in pyc("ps", "-a").stdout


def test_detached_rm_is_removed_once_it_exits(pyc):
    pyc("run", "-d", "--rm", "--name", "gone", "default", "--", "true", check=True)
    assert wait_until(lambda: pyc("ps", "-a", "-q").stdout.strip() == "")
    assert pyc.ids() == []
