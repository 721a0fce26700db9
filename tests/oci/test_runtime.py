"""OCI bundles run for real: each config field checked against what the kernel shows in the container."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time

from conftest import ROOT_REQUIRED, own_cgroup_dirs, wait_until, write_config

pytestmark = ROOT_REQUIRED


def state(pyc, cid) -> dict:
    p = pyc("state", cid)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_create_start_state_kill_delete(pyc, bundle, tmp_path):
    write_config(
        bundle,
        ["sh", "-c", "echo started > /tmp/marker; exec sleep 60"],
        lambda c: (c.update(annotations={"org.example/k": "v"}), c["root"].update(readonly=False)),
    )
    pid_file = tmp_path / "pid"
    p = pyc.leaving("create", "--bundle", str(bundle), "--pid-file", str(pid_file), "c1")
    assert p.returncode == 0, p.stderr
    st = state(pyc, "c1")
    assert st["status"] == "created" and st["id"] == "c1" and st["bundle"] == str(bundle)
    assert st["annotations"] == {"org.example/k": "v"}
    assert int(pid_file.read_text()) == st["pid"]
    # Created: the user process has not run yet.
    assert not (bundle / "rootfs" / "tmp" / "marker").exists()
    assert "c1" in pyc("list", "-q").stdout

    assert pyc("start", "c1").returncode == 0
    assert wait_until(lambda: (bundle / "rootfs" / "tmp" / "marker").exists())
    assert state(pyc, "c1")["status"] == "running"
    assert pyc("start", "c1").returncode == 125  # only once
    p = pyc("delete", "c1")
    assert p.returncode == 125 and "running" in p.stderr

    assert pyc("kill", "c1", "KILL").returncode == 0
    assert wait_until(lambda: state(pyc, "c1")["status"] == "stopped")
    assert pyc("delete", "c1").returncode == 0
    assert pyc("state", "c1").returncode == 125


def test_run_foreground_returns_status_and_cleans_up(pyc, bundle):
    cgroups = own_cgroup_dirs()
    write_config(bundle, ["sh", "-c", "exit 7"])
    p = subprocess.run(
        pyc.argv("run", "--bundle", str(bundle), "r1"), capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 7, p.stderr
    assert pyc.ids() == []
    assert sorted(set(own_cgroup_dirs()) - set(cgroups)) == []


def test_run_in_bundle_directory_with_only_an_id(pyc, bundle):
    write_config(bundle, ["true"])
    p = subprocess.run(pyc.argv("run", "r2"), cwd=bundle, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr


def test_process_fields(pyc, bundle):
    def mutate(c):
        c["process"].update(
            cwd="/tmp",
            env=["PATH=/bin:/usr/bin", "FOO=bar"],
            user={"uid": 1000, "gid": 1000, "umask": 0o077, "additionalGids": [5, 7]},
            oomScoreAdj=123,
        )
        c["hostname"] = "ocihost"

    write_config(
        bundle,
        ["sh", "-c", "pwd; echo $FOO; id -u; id -g; id -G; umask; hostname; cat /proc/self/oom_score_adj"],
        mutate,
    )
    p = subprocess.run(
        pyc.argv("run", "--bundle", str(bundle), "p1"), capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 0, p.stderr
    out = p.stdout.split("\n")
    assert out[0] == "/tmp" and out[1] == "bar" and out[2] == "1000" and out[3] == "1000"
    assert set(out[4].split()) == {"1000", "5", "7"}
    assert out[5] == "0077" and out[6] == "ocihost" and out[7] == "123"


def test_mounts_options_and_readonly_root(pyc, bundle):
    def mutate(c):
        c["mounts"].append(
            {
                "destination": "/data",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "nodev", "noexec", "size=2m", "mode=700"],
            }
        )
        c["root"]["readonly"] = True

    write_config(
        bundle, ["sh", "-c", "grep ' /data ' /proc/self/mountinfo; touch /x 2>&1; stat -c %a /data"], mutate
    )
    p = subprocess.run(
        pyc.argv("run", "--bundle", str(bundle), "m1"), capture_output=True, text=True, timeout=60
    )
    line, touch, mode = p.stdout.strip().split("\n")
    opts = line.split()[5]
    assert {"nosuid", "nodev", "noexec"} <= set(opts.split(","))
    assert "size=2048k" in line
    assert "Read-only file system" in touch
    assert mode == "700"


def test_namespaces_left_out_are_shared(pyc, bundle):
    def mutate(c):
        c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "network"]

    write_config(bundle, ["sh", "-c", "readlink /proc/self/ns/net; readlink /proc/self/ns/uts"], mutate)
    p = subprocess.run(
        pyc.argv("run", "--bundle", str(bundle), "n1"), capture_output=True, text=True, timeout=60
    )
    net, uts = p.stdout.split()
    assert net == os.readlink("/proc/self/ns/net")
    assert uts != os.readlink("/proc/self/ns/uts")


def test_sysctl_and_devices(pyc, bundle):
    def mutate(c):
        c["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.shmmax": "123456"}
        c["linux"]["devices"] = [
            {
                "path": "/dev/mynull",
                "type": "c",
                "major": 1,
                "minor": 3,
                "fileMode": 0o620,
                "uid": 0,
                "gid": 0,
            }
        ]

    write_config(
        bundle,
        [
            "sh",
            "-c",
            "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax; "
            "stat -c '%t %T %a' /dev/mynull; echo x > /dev/mynull && echo ok",
        ],
        mutate,
    )
    p = subprocess.run(
        pyc.argv("run", "--bundle", str(bundle), "s1"), capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.split("\n")[:4] == ["1", "123456", "1 3 620", "ok"]
    with open("/proc/sys/kernel/shmmax") as f:
        assert f.read().strip() != "123456"  # the host's value is untouched


def test_hooks_run_in_order_with_state(pyc, bundle, tmp_path):
    log = tmp_path / "hooks.log"
    hook = tmp_path / "hook.sh"
    hook.write_text(f'#!/bin/sh\nread s; echo "$1 $(echo $s | grep -o \'"status": *"[a-z]*"\')" >> {log}\n')
    hook.chmod(0o755)

    def mutate(c):
        c["hooks"] = {
            k: [{"path": str(hook), "args": ["hook.sh", k]}]
            for k in ("prestart", "createRuntime", "poststart", "poststop")
        }

    write_config(bundle, ["true"], mutate)
    p = subprocess.run(
        pyc.argv("run", "--bundle", str(bundle), "h1"), capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 0, p.stderr
    lines = log.read_text().splitlines()
    assert [x.split()[0] for x in lines] == ["prestart", "createRuntime", "poststart", "poststop"]
    assert '"created"' in lines[0] and '"stopped"' in lines[3]


def test_failing_hook_fails_create_and_leaves_nothing(pyc, bundle):
    write_config(bundle, ["true"], lambda c: c.update(hooks={"createRuntime": [{"path": "/bin/false"}]}))
    p = pyc("create", "--bundle", str(bundle), "f1")
    assert p.returncode == 125 and "createRuntime hook /bin/false" in p.stderr
    assert pyc.ids() == []


def test_malformed_config_is_refused_before_anything_exists(pyc, bundle):
    cgroups = own_cgroup_dirs()
    write_config(bundle, [], None)
    p = pyc("create", "--bundle", str(bundle), "bad")
    assert p.returncode == 125
    assert p.stderr.startswith("pycontain: config.json: process.args")
    (bundle / "config.json").write_text("{not json")
    p = pyc("create", "--bundle", str(bundle), "bad")
    assert p.returncode == 125 and "invalid JSON" in p.stderr and "Traceback" not in p.stderr
    assert pyc.ids() == [] and own_cgroup_dirs() == cgroups


def test_console_socket_receives_the_terminal(pyc, bundle, tmp_path):
    write_config(
        bundle,
        ["sh", "-c", "tty; stty size"],
        lambda c: c["process"].update(terminal=True, consoleSize={"height": 20, "width": 70}),
    )
    path = str(tmp_path / "console.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    try:
        p = pyc.leaving("create", "--bundle", str(bundle), "--console-socket", path, "t1")
        assert p.returncode == 0, p.stderr
        conn, _ = srv.accept()
        _msg, fds, _flags, _addr = socket.recv_fds(conn, 1024, 1)
        conn.close()
        master = fds[0]
        assert pyc("start", "t1").returncode == 0
        out = b""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and b"70" not in out:
            try:
                out += os.read(master, 1024)
            except OSError:
                break
        os.close(master)
        assert b"/dev/pts/0" in out and b"20 70" in out, out
    finally:
        srv.close()


def test_exec_with_process_json(pyc, bundle, tmp_path):
    write_config(bundle, ["sleep", "60"])
    assert pyc.leaving("run", "--bundle", str(bundle), "--detach", "e1").returncode == 0
    proc = {
        "args": ["sh", "-c", "echo $X; id -u; pwd"],
        "env": ["X=from-json", "PATH=/bin"],
        "cwd": "/etc",
        "user": {"uid": 65534, "gid": 65534},
        "terminal": False,
    }
    (tmp_path / "process.json").write_text(json.dumps(proc))
    pid_file = tmp_path / "exec.pid"
    p = pyc("exec", "--process", str(tmp_path / "process.json"), "--pid-file", str(pid_file), "e1")
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["from-json", "65534", "/etc"]
    assert pid_file.read_text().strip().isdigit()
    assert pyc("delete", "--force", "e1").returncode == 0


def test_spec_command_writes_a_default_config(pyc, tmp_path):
    assert pyc("spec", "--bundle", str(tmp_path)).returncode == 0
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["ociVersion"].startswith("1.") and cfg["root"]["path"] == "rootfs"
    p = pyc("spec", "--bundle", str(tmp_path))
    assert p.returncode == 125 and "already exists" in p.stderr


def test_features_and_global_flags(pyc, tmp_path):
    feats = json.loads(pyc("features").stdout)
    assert "pid" in feats["linux"]["namespaces"]
    log = tmp_path / "runtime.log"
    p = pyc("--log", str(log), "--log-format", "json", "state", "nosuch")
    assert p.returncode == 125
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["level"] == "error" and "nosuch" in entry["msg"]
    p = pyc("--systemd-cgroup", "list")
    assert p.returncode == 125 and "systemd" in p.stderr
