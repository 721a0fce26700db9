"""Containers to run services in: the monitor of a detached container (exit codes, wait, start, restart
policies, timestamped logs), state that outlives a reboot, and the docker flags users reach for first."""

from __future__ import annotations

import json
import os
import re

import pytest
from conftest import ROOT_REQUIRED, wait_until

pytestmark = ROOT_REQUIRED

NET = ("--network", "none")


def _run_d(pyc, name: str, *args: str) -> str:
    p = pyc.leaving("run", "-d", *NET, "--name", name, *args)
    assert p.returncode == 0, p.stderr
    return name


def _state(pyc, name: str) -> dict:
    p = pyc("inspect", name)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)[0]


def _exit_and_restarts(pyc, name: str) -> tuple:
    info = _state(pyc, name)
    return info["State"]["ExitCode"], info["RestartCount"]


def _status(pyc, name: str) -> str:
    return pyc("ps", "-a", "--filter", f"name=^{name}$", "--format", "{{.Names}}={{.Status}}").stdout


def test_detached_exit_code_is_recorded_and_waited_for(pyc):
    _run_d(pyc, "three", "default", "--", "sh", "-c", "sleep 0.3; exit 3")
    p = pyc("wait", "three")
    assert (p.returncode, p.stdout) == (0, "3\n"), p.stderr
    st = _state(pyc, "three")["State"]
    assert st["ExitCode"] == 3 and st["FinishedAt"] and st["OOMKilled"] is False
    rows = pyc("ps", "-a", "--format", "{{.Names}} {{.Status}}").stdout
    assert re.search(r"^three Exited \(3\) \d+ seconds ago$", rows, re.M), rows


def test_signal_and_stop_exit_codes(pyc):
    _run_d(pyc, "killed", "default", "--", "sleep", "100")
    assert pyc("kill", "-s", "KILL", "killed").returncode == 0
    assert pyc("wait", "killed").stdout == "137\n"
    # sh as PID 1 ignores TERM: stop -t 0 ends it with KILL; a trap that exits 0 on TERM gives 0.
    _run_d(pyc, "stubborn", "default", "--", "sleep", "100")
    assert pyc("stop", "-t", "0", "stubborn").returncode == 0
    assert _state(pyc, "stubborn")["State"]["ExitCode"] == 137
    _run_d(
        pyc,
        "polite",
        "--stop-signal",
        "USR1",
        "default",
        "--",
        "sh",
        "-c",
        "trap 'exit 9' USR1; sleep 100 & wait",
    )
    assert pyc("stop", "-t", "5", "polite").returncode == 0
    assert _state(pyc, "polite")["State"]["ExitCode"] == 9


def test_oom_kill_is_recorded(pyc):
    _run_d(pyc, "hog", "-m", "32m", "default", "--", "tail", "/dev/zero")
    assert pyc("wait", "hog", timeout=120).stdout == "137\n"
    st = _state(pyc, "hog")["State"]
    assert st["OOMKilled"] is True and st["ExitCode"] == 137


def test_start_after_exit_keeps_the_writable_layer(pyc):
    _run_d(pyc, "counter", "default", "--", "sh", "-c", "echo run >> /runs; wc -l < /runs")
    assert pyc("wait", "counter").stdout == "0\n"
    p = pyc("start", "counter")
    assert p.returncode == 0, p.stderr
    assert pyc("wait", "counter").stdout == "0\n"
    assert pyc("logs", "counter").stdout.split() == ["1", "2"]
    assert pyc("start", "nosuch").returncode == 125


def test_restart_policy_on_failure_until_success(pyc, tmp_path):
    # Fails twice, then succeeds: the count lives in a volume, so each run sees the runs before it.
    (tmp_path / "n").write_text("")
    script = "echo x >> /s/n; test $(wc -l < /s/n) -ge 3 || exit 5"
    _run_d(
        pyc, "flaky", "--restart", "on-failure", "-v", f"{tmp_path}:/s", "default", "--", "sh", "-c", script
    )
    # A run's ExitCode is the last one recorded: the third run's 0 once its monitor has recorded it.
    assert wait_until(lambda: _exit_and_restarts(pyc, "flaky") == (0, 2), timeout=30)
    assert (tmp_path / "n").read_text().count("x") == 3


def test_restart_policy_limits_and_stop(pyc, tmp_path):
    _run_d(pyc, "capped", "--restart", "on-failure:1", "default", "--", "sh", "-c", "exit 2")
    assert wait_until(lambda: _state(pyc, "capped")["RestartCount"] == 1, timeout=30)
    assert wait_until(
        lambda: "Exited (2)" in _status(pyc, "capped") and not _state(pyc, "capped")["State"]["Running"]
    )
    _run_d(pyc, "never", "--restart", "no", "default", "--", "sh", "-c", "exit 2")
    assert pyc("wait", "never").stdout == "2\n"
    assert _state(pyc, "never")["RestartCount"] == 0
    _run_d(pyc, "backoff", "--restart", "always", "default", "--", "sh", "-c", "exit 6")
    assert wait_until(lambda: "backoff=Restarting (6)" in _status(pyc, "backoff"), timeout=30, interval=0.01)
    assert pyc("stop", "backoff").returncode == 0
    # always: restarted after a clean exit too, until 'stop' says otherwise.
    _run_d(pyc, "forever", "--restart", "always", "default", "--", "sh", "-c", "sleep 0.2")
    assert wait_until(lambda: _state(pyc, "forever")["RestartCount"] >= 2, timeout=30)
    assert pyc("stop", "-t", "1", "forever").returncode == 0
    count = _state(pyc, "forever")["RestartCount"]
    assert not wait_until(lambda: _state(pyc, "forever")["RestartCount"] > count, timeout=1.5)
    assert _state(pyc, "forever")["State"]["Status"] == "exited"
    for bad in ("sometimes", "always:3", "on-failure:x"):
        p = pyc("run", "-d", "--restart", bad, "default", "--", "true")
        assert p.returncode == 125 and "--restart" in p.stderr


def test_logs_timestamps_tail_since(pyc):
    _run_d(
        pyc,
        "talk",
        "default",
        "--",
        "sh",
        "-c",
        "echo one; echo two >&2; printf 'three'; sleep 1.2; echo four",
    )
    assert pyc("wait", "talk").stdout == "0\n"
    assert pyc("logs", "talk").stdout == "one\ntwo\nthreefour\n"
    assert pyc("logs", "--tail", "1", "talk").stdout == "threefour\n"
    stamped = pyc("logs", "-t", "talk").stdout.splitlines()
    assert all(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z ", line) for line in stamped), stamped
    first = stamped[0].split()[0]
    assert pyc("logs", "--since", first, "talk").stdout.startswith("one\n")
    assert pyc("logs", "--until", first, "talk").stdout == ""
    assert pyc("logs", "--since", "1h", "talk").stdout.count("\n") == 3
    assert pyc("logs", "--since", "yesterday", "talk").returncode == 125


def test_inspect_of_a_container_its_policy_restarted(pyc):
    """While a restarted container runs, inspect says so as docker does: ExitCode 0 (not the failed run's)."""
    script = "test -e /ran && exec sleep 300; touch /ran; exit 3"  # the writable layer outlives a run
    _run_d(pyc, "again", "--restart", "on-failure", "default", "--", "sh", "-c", script)

    def restarted() -> bool:
        info = _state(pyc, "again")
        return info["RestartCount"] == 1 and info["State"]["Running"]

    assert wait_until(restarted, timeout=30)
    st = _state(pyc, "again")["State"]
    assert (st["Status"], st["ExitCode"], st["OOMKilled"]) == ("running", 0, False) and st["Pid"] > 0
    assert pyc("inspect", "-f", "{{.State.ExitCode}}", "again").stdout == "0\n"
    assert "again=Up" in _status(pyc, "again")


def test_state_survives_an_emptied_runtime(pyc, state_root):
    """A reboot, simulated: every process gone and a new boot id (what /proc/sys/kernel/random/boot_id says
    after one). The configuration, writable layer and log are on disk: ps -a lists it exited, start works."""
    _run_d(pyc, "svc", "--restart", "always", "default", "--", "sh", "-c", "echo up >> /boots; sleep 100")
    info = _state(pyc, "svc")
    assert info["StateDir"].startswith(state_root) and info["LogPath"].startswith(state_root)
    _reboot(pyc, "svc")
    assert "svc=Exited" in _status(pyc, "svc")
    p = pyc("restart-policy")
    assert p.returncode == 0 and "started svc" in p.stdout, p.stderr
    assert "svc=Up" in _status(pyc, "svc")
    assert pyc("exec", "svc", "cat", "/boots").stdout == "up\nup\n"


def _reboot(pyc, name: str) -> None:
    """What a reboot does to a container: its monitor and processes gone, its boot id an earlier boot's."""
    info = _state(pyc, name)
    path = os.path.join(info["StateDir"], "state.json")
    with open(path) as f:
        monitor = (json.load(f).get("monitor") or [0])[0]
    pid = info["State"]["Pid"]
    for victim in (monitor, pid):  # the monitor first: it must not record the exit, nor restart it
        if victim:
            os.kill(victim, 9)
    assert wait_until(lambda: not pid or not os.path.exists(f"/proc/{pid}"))
    with open(path) as f:
        saved = json.load(f)
    saved["boot_id"] = "0" * 32
    with open(path, "w") as f:
        json.dump(saved, f)


def test_restart_policy_at_boot_follows_each_policy(pyc):
    """At boot, 'restart-policy' starts 'always' containers (even stopped by hand, as docker's daemon does)
    and 'unless-stopped' ones not stopped by hand; never 'no' or 'on-failure' ones."""
    for name, policy in (
        ("always", "always"),
        ("always-stopped", "always"),
        ("unless", "unless-stopped"),
        ("unless-stopped", "unless-stopped"),
        ("no", "no"),
        ("failure", "on-failure"),
    ):
        _run_d(pyc, name, "--restart", policy, "default", "--", "sleep", "300")
    for name in ("always-stopped", "unless-stopped"):
        assert pyc("stop", "-t", "0", name).returncode == 0
    for name in ("always", "always-stopped", "unless", "unless-stopped", "no", "failure"):
        _reboot(pyc, name)
    p = pyc("restart-policy")
    assert p.returncode == 0, p.stderr
    assert sorted(p.stdout.split("\n")[:-1]) == ["started always", "started always-stopped", "started unless"]
    up = pyc("ps", "--format", "{{.Names}}").stdout.split()
    assert sorted(up) == ["always", "always-stopped", "unless"]
    assert pyc("restart-policy").stdout == ""  # running ones are left alone


def test_default_state_root_is_on_disk():
    from pycontain.state import DEFAULT_ROOT

    assert DEFAULT_ROOT.startswith("/var/lib/pycontain")


def test_entrypoint_replaces_the_image_command(pyc):
    p = pyc("run", "--rm", *NET, "--entrypoint", "echo", "default", "--", "a", "b")
    assert (p.returncode, p.stdout) == (0, "a b\n"), p.stderr
    p = pyc("run", "--rm", *NET, "--entrypoint", "", "default", "--", "echo", "c")
    assert p.stdout == "c\n"


def test_ps_filters_and_formats(pyc):
    _run_d(pyc, "web-1", "-l", "tier=front", "default", "--", "sleep", "100")
    _run_d(pyc, "db-1", "-l", "tier=back", "default", "--", "sleep", "100")
    _run_d(pyc, "done", "default", "--", "true")
    assert pyc("wait", "done").stdout == "0\n"
    names = lambda *a: sorted(pyc("ps", *a, "--format", "{{.Names}}").stdout.split())  # noqa: E731
    assert names() == ["db-1", "web-1"]
    assert names("-a") == ["db-1", "done", "web-1"]
    assert names("-f", "name=web") == ["web-1"]
    assert names("--filter", "label=tier=back") == ["db-1"]
    assert names("--filter", "label=tier") == ["db-1", "web-1"]
    assert names("--filter", "status=exited") == ["done"]
    assert names("-f", "name=web", "-f", "name=db") == ["db-1", "web-1"]
    row = json.loads(pyc("ps", "-f", "name=db", "--format", "{{json .}}").stdout)
    assert row["Names"] == "db-1" and row["State"] == "running" and row["Labels"] == "tier=back"
    p = pyc("ps", "--filter", "colour=red")
    assert p.returncode == 125 and "colour=red" in p.stderr
    p = pyc("ps", "-a", "--format", "{{.Nope}}")
    assert p.returncode == 125 and "Nope" in p.stderr
    assert (
        pyc("inspect", "-f", "{{.State.Status}} {{json .Labels}}", "web-1").stdout
        == 'running {"tier": "front"}\n'
    )
    assert "PORTS" in pyc("ps").stdout


def test_cidfile(pyc, tmp_path):
    cidfile = tmp_path / "cid"
    p = pyc.leaving("run", "-d", *NET, "--cidfile", str(cidfile), "default", "--", "sleep", "100")
    assert p.returncode == 0, p.stderr
    assert len(cidfile.read_text()) == 64
    p = pyc("run", "--rm", *NET, "--cidfile", str(cidfile), "default", "--", "true")
    assert p.returncode == 125 and "exists" in p.stderr


def test_unknown_docker_flag_is_an_error(pyc):
    p = pyc("run", "--no-such-flag", "default", "--", "true")
    assert p.returncode == 125 and "--no-such-flag" in p.stderr


def test_monitor_memory_is_small(pyc):
    import importlib.util

    from pycontain import monitor_spawn

    # Never compiled yet (a fresh tree, or PYTHONDONTWRITEBYTECODE): the loop must still run from bytecode,
    # compiling its source in every monitor costs ~0.8 MB each. (py_compile replaces the file atomically: a
    # monitor started meanwhile elsewhere reads the old one or the new one.)
    cached = importlib.util.cache_from_source(monitor_spawn.LOOP)
    if os.access(os.path.dirname(cached), os.W_OK) and os.path.exists(cached):
        os.unlink(cached)
    _run_d(pyc, "small", "default", "--", "sleep", "100")
    with open(os.path.join(_state(pyc, "small")["StateDir"], "state.json")) as f:
        monitor = json.load(f)["monitor"][0]

    def resident() -> bool:  # the monitor execs its loop just after it has told run the id
        with open(f"/proc/{monitor}/cmdline", "rb") as f:
            return b"monitor_loop" in f.read()

    assert wait_until(resident)
    with open(f"/proc/{monitor}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[3] == cached.encode()
    with open(f"/proc/{monitor}/smaps_rollup") as f:
        rollup = f.read()
    # What each monitor adds: its dirty private pages (heap, the interpreter's relocated data). Its PSS also
    # counts a share of the interpreter's file pages, which depends on how many processes map them: 3.4 MB
    # each with ten monitors here, more for a lone one.
    dirty_kb = int(re.search(r"^Private_Dirty:\s+(\d+) kB", rollup, re.M).group(1))
    assert dirty_kb < 4 * 1024, rollup


@pytest.mark.parametrize("policy", ["always", "unless-stopped"])
def test_restart_needs_detach(pyc, policy):
    p = pyc("run", "--restart", policy, *NET, "default", "--", "true")
    assert p.returncode == 125 and "-d" in p.stderr


def test_add_host_dns_and_port(pyc):
    p = pyc.leaving(
        "run",
        "-d",
        "--name",
        "named",
        "--add-host",
        "db.internal:10.1.2.3",
        "--dns",
        "192.0.2.53",
        "--dns-search",
        "example.com",
        "-p",
        "18080:80",
        "default",
        "--",
        "sleep",
        "100",
    )
    assert p.returncode == 0, p.stderr
    hosts = pyc("exec", "named", "cat", "/etc/hosts").stdout
    assert "10.1.2.3\tdb.internal" in hosts
    resolv = pyc("exec", "named", "cat", "/etc/resolv.conf").stdout.splitlines()
    assert [ln for ln in resolv if ln.startswith("nameserver")] == ["nameserver 192.0.2.53"]
    assert "search example.com" in resolv
    assert pyc("port", "named").stdout == "80/tcp -> 0.0.0.0:18080\n"
    assert pyc("port", "named", "80").stdout == "0.0.0.0:18080\n"
    assert pyc("port", "named", "81").returncode == 125
    assert "0.0.0.0:18080->80/tcp" in pyc("ps").stdout
    for flags, needle in (
        (("--add-host", "nocolon"), "--add-host"),
        (("--dns", "not-an-ip"), "--dns"),
        (("--network", "none", "--dns", "192.0.2.1"), "bridge network"),
    ):
        p = pyc("run", "--rm", *flags, "default", "--", "true")
        assert p.returncode == 125 and needle in p.stderr, p.stderr


@pytest.fixture
def volume_name(pyc):
    name = f"t16-{os.getpid()}-{os.urandom(3).hex()}"
    yield name
    pyc("rm", "-f", "vol-a", "vol-b")
    pyc("volume", "rm", name)


def test_named_volumes_and_mounts(pyc, volume_name, tmp_path):
    assert pyc("volume", "create", volume_name).stdout == f"{volume_name}\n"
    assert volume_name in pyc("volume", "ls", "-q").stdout.split()
    mountpoint = json.loads(pyc("volume", "inspect", volume_name).stdout)[0]["Mountpoint"]
    # Written by one container, read by the next one: the data outlives both.
    p = pyc(
        "run",
        "--name",
        "vol-a",
        *NET,
        "-v",
        f"{volume_name}:/data",
        "default",
        "--",
        "sh",
        "-c",
        "echo kept > /data/f",
    )
    assert p.returncode == 0, p.stderr
    with open(os.path.join(mountpoint, "f")) as f:
        assert f.read() == "kept\n"
    p = pyc("volume", "rm", volume_name)
    assert p.returncode == 125 and "vol-a" in p.stderr  # still mounted by a container
    assert pyc("rm", "vol-a").returncode == 0
    (tmp_path / "in").write_text("bound\n")
    p = pyc(
        "run",
        "--name",
        "vol-b",
        *NET,
        "--mount",
        f"type=volume,source={volume_name},target=/v,readonly",
        "--mount",
        f"type=bind,src={tmp_path},dst=/b",
        "--mount",
        "type=tmpfs,target=/t,tmpfs-size=1m",
        "default",
        "--",
        "sh",
        "-c",
        "cat /v/f /b/in; touch /v/x 2>/dev/null || echo ro; df -k /t | tail -1",
    )
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[:3] == ["kept", "bound", "ro"] and lines[3].split()[1] == "1024", lines
    assert pyc("rm", "vol-b").returncode == 0
    assert pyc("volume", "rm", volume_name).stdout == f"{volume_name}\n"
    assert not os.path.exists(mountpoint)
    for spec, needle in (
        ("type=nfs,target=/x", "type is bind"),
        ("type=bind,source=relative,target=/x", "absolute"),
        ("type=volume,source=v,target=/x,colour=red", "colour"),
        ("type=volume,source=v", "target"),
    ):
        p = pyc("run", "--rm", *NET, "--mount", spec, "default", "--", "true")
        assert p.returncode == 125 and needle in p.stderr, p.stderr
    assert pyc("volume", "inspect", "no-such-volume").returncode == 125


def test_cp_diff_top(pyc, tmp_path):
    _run_d(
        pyc, "files", "default", "--", "sh", "-c", "mkdir /d; echo hi > /d/f; rm /bin/ping; exec sleep 100"
    )
    assert wait_until(lambda: "A /d/f" in pyc("diff", "files").stdout)
    assert pyc("diff", "files").stdout.splitlines() == ["C /bin", "D /bin/ping", "A /d", "A /d/f"]
    assert pyc("cp", "files:/d", str(tmp_path)).returncode == 0
    assert (tmp_path / "d" / "f").read_text() == "hi\n"
    assert pyc("cp", "files:/d/f", str(tmp_path / "g")).returncode == 0
    assert (tmp_path / "g").read_text() == "hi\n"
    (tmp_path / "h").write_text("from the host\n")
    assert pyc("cp", str(tmp_path / "h"), "files:/d").returncode == 0
    assert pyc("cp", str(tmp_path / "h"), "files:/renamed").returncode == 0
    assert pyc("exec", "files", "cat", "/d/h", "/renamed").stdout == "from the host\n" * 2
    p = pyc("cp", "files:/nope", str(tmp_path))
    assert p.returncode == 125 and "/nope" in p.stderr
    assert pyc("cp", "a", "b").returncode == 125
    rows = pyc("top", "files").stdout.splitlines()
    assert rows[0].split() == ["UID", "PID", "PPID", "CMD"] and rows[1].endswith("sleep 100")


@pytest.mark.parametrize(
    "member",
    [
        ("d", "symlink", "../../../../../../../../HOST"),  # a link out, then a file through it
        ("../pwned", "file", ""),
        ("/HOST/pwned", "file", ""),
        ("null", "chardev", ""),
    ],
)
def test_cp_from_a_hostile_container_writes_nothing_outside(pyc, tmp_path, member):
    """The container answers cp's 'tar -c' with an archive of its own making: nothing lands outside DEST."""
    import io
    import tarfile

    host = tmp_path / "host-dir"
    host.mkdir()
    name, kind, link = member
    name = name.replace("HOST", str(host).lstrip("/"))
    link = link.replace("HOST", str(host).lstrip("/"))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        ti = tarfile.TarInfo(name)
        if kind == "symlink":
            ti.type, ti.linkname = tarfile.SYMTYPE, link
            tar.addfile(ti)
            ti = tarfile.TarInfo(name + "/pwned")
        elif kind == "chardev":
            ti.type, ti.devmajor, ti.devminor = tarfile.CHRTYPE, 1, 3
        if ti.type != tarfile.CHRTYPE:
            ti.size = 3
        tar.addfile(ti, io.BytesIO(b"hi\n") if ti.size else None)
    shared = tmp_path / "w"
    shared.mkdir()
    (shared / "evil.tar").write_bytes(buf.getvalue())
    (shared / "tar").write_text("#!/bin/sh\nexec cat /w/evil.tar\n")
    (shared / "tar").chmod(0o755)
    _run_d(
        pyc,
        "hostile",
        "-v",
        f"{shared}:/w:ro",
        "-e",
        "PATH=/w:/bin:/usr/bin",
        "default",
        "--",
        "sleep",
        "100",
    )
    dest = tmp_path / "dest" / "sub"
    dest.mkdir(parents=True)
    p = pyc("cp", "hostile:/d", str(dest))
    assert p.returncode == 125 and p.stderr.count("\n") == 1 and "refusing" in p.stderr, p.stderr
    assert list(host.iterdir()) == [] and not (tmp_path / "dest" / "pwned").exists()
    assert list(dest.iterdir()) == []


def test_health_check_states(pyc):
    _run_d(
        pyc,
        "checked",
        "--health-cmd",
        "test -e /ok",
        "--health-interval",
        "0.2s",
        "--health-retries",
        "2",
        "default",
        "--",
        "sleep",
        "100",
    )
    assert wait_until(lambda: "(unhealthy)" in _status(pyc, "checked"), timeout=30)
    assert pyc("exec", "checked", "touch", "/ok").returncode == 0
    assert wait_until(lambda: "(healthy)" in _status(pyc, "checked"), timeout=30)
    health = _state(pyc, "checked")["State"]["Health"]
    assert health["Status"] == "healthy" and health["FailingStreak"] == 0
    assert {e["ExitCode"] for e in health["Log"]} >= {0}
    for flags, needle in (
        (("-d", "--health-interval", "1s"), "--health-cmd"),
        (("-d", "--health-cmd", "true", "--health-interval", "soon"), "--health-interval"),
        (("--health-cmd", "true"), "-d"),
    ):
        p = pyc("run", *NET, *flags, "default", "--", "true")
        assert p.returncode == 125 and needle in p.stderr, p.stderr


def test_attach_to_a_shell_under_a_pty_and_detach(pyc):
    import pty
    import select
    import subprocess

    _run_d(pyc, "shell", "-it", "default", "--", "sh")
    master, slave = pty.openpty()
    p = subprocess.Popen(pyc.argv("attach", "shell"), stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    try:
        seen = b""

        def output_has(text: bytes) -> bool:
            nonlocal seen
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                seen += os.read(master, 65536)
            return text in seen

        # Typed until the shell answers: attach may still be connecting when the first line goes.
        assert wait_until(
            lambda: os.write(master, b"echo hi-$((6*7))\r") and output_has(b"hi-42"), timeout=30
        )
        os.write(master, b"\x10\x11")  # ctrl-p ctrl-q: leave it running
        assert p.wait(timeout=30) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
    assert "shell=Up" in _status(pyc, "shell")
    assert "hi-42" in pyc("logs", "shell").stdout


def test_attach_pipes_and_exit_status(pyc):
    _run_d(pyc, "reader", "-i", "default", "--", "sh", "-c", "read line; echo got $line; exit 4")
    p = pyc("attach", "reader", input="hello\n", timeout=60)
    assert (p.returncode, p.stdout) == (4, "got hello\n"), p.stderr
    p = pyc("attach", "--detach-keys", "ctrl-", "reader")
    assert p.returncode == 125 and "--detach-keys" in p.stderr


def test_logs_follow_ends_with_the_container(pyc):
    _run_d(pyc, "stream", "default", "--", "sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.3; done")
    p = pyc("logs", "-f", "stream", timeout=60)
    assert (p.returncode, p.stdout) == (0, "1\n2\n3\n"), p.stderr


def _log_files(pyc, name: str) -> list[str]:
    log = _state(pyc, name)["LogPath"]
    return sorted(f for f in os.listdir(os.path.dirname(log)) if f.startswith(os.path.basename(log)))


def test_log_rotation_keeps_the_newest_files_and_logs_reads_across_them(pyc):
    _run_d(
        pyc,
        "chatty",
        "--log-opt",
        "max-size=2k",
        "--log-opt",
        "max-file=3",
        "default",
        "--",
        "sh",
        "-c",
        "seq 1 2000",
    )
    assert pyc("wait", "chatty").stdout == "0\n"
    info = _state(pyc, "chatty")
    assert info["HostConfig"]["LogConfig"]["Config"] == {"max-size": "2k", "max-file": "3"}
    assert _log_files(pyc, "chatty") == ["container.log", "container.log.1", "container.log.2"]
    for f in _log_files(pyc, "chatty"):
        assert os.path.getsize(os.path.join(info["StateDir"], f)) <= 2048
    kept = [int(x) for x in pyc("logs", "chatty").stdout.split()]
    # The newest lines, in order, none lost between the files; the oldest dropped with the oldest file.
    assert kept == list(range(kept[0], 2001)) and 1 < kept[0] < 2000 - 60
    assert pyc("logs", "--tail", "3", "chatty").stdout.split() == ["1998", "1999", "2000"]
    stamped = pyc("logs", "-t", "chatty").stdout.splitlines()
    middle = stamped[len(stamped) // 2]
    since = pyc("logs", "--since", middle.split()[0], "chatty").stdout.split()
    assert since == [str(n) for n in range(int(middle.split()[1]), 2001)]


def test_logs_follow_across_rotations(pyc, tmp_path):
    """The container writes a burst (each rotates the log at least once), then waits for the test to have
    read it through 'logs -f' before the next: every line arrives once, in order."""
    gate = tmp_path / "gate"
    gate.mkdir()
    script = (
        "for b in 1 2 3 4; do for i in $(seq 1 30); do echo b$b-$i; done; "
        "while [ ! -e /gate/$b ]; do sleep 0.05; done; done"
    )
    _run_d(
        pyc,
        "bursts",
        *("--log-opt", "max-size=1k", "--log-opt", "max-file=3", "-v", f"{gate}:/gate"),
        *("default", "--", "sh", "-c", script),
    )
    p = pyc.popen("logs", "-f", "bursts")
    got = []
    try:
        for line in p.stdout:
            got.append(line.rstrip("\n"))
            if line.endswith("-30\n"):
                (gate / line[1]).touch()
        assert p.wait(timeout=60) == 0, p.stderr.read()
    finally:
        p.kill()
        p.wait()
    assert got == [f"b{b}-{i}" for b in range(1, 5) for i in range(1, 31)]
    assert len(_log_files(pyc, "bursts")) == 3


def test_log_opt_errors(pyc):
    for bad, word in (
        ("compress=true", "'compress'"),
        ("max-size=lots", "max-size"),
        ("max-file=0", "max-file"),
        ("max-size=100", "max-size"),
    ):
        p = pyc("run", "-d", *NET, "--log-opt", bad, "default", "--", "true")
        assert p.returncode == 125 and word in p.stderr and p.stderr.count("\n") == 1, p.stderr
    p = pyc("run", "--rm", *NET, "--log-opt", "max-size=1m", "default", "--", "true")
    assert p.returncode == 125 and "--log-opt needs -d" in p.stderr
