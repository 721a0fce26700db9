"""Rootless mode, run by a real unprivileged user the test creates (and deletes, with what it left).

The user runs the same ``pycontain`` as root does; the tests check what the kernel shows: root inside is
the user's own uid outside (uid_map "0 UID 1"), the container gets its own pid/mount/uts/ipc/net namespaces
with the usual walls (no_new_privs, seccomp, docker's capabilities), no cgroup is created (none was
delegated here), and asking for what needs root (limits, a bridge) fails with one line."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import uuid

import pytest
from conftest import ROOT_REQUIRED, own_cgroup_dirs

PYCONTAIN = os.path.join(os.path.dirname(sys.executable), "pycontain")


def _userns_allowed() -> bool:
    try:
        with open("/proc/sys/kernel/unprivileged_userns_clone") as f:
            if f.read().strip() == "0":
                return False
    except FileNotFoundError:
        pass
    with open("/proc/sys/user/max_user_namespaces") as f:
        return int(f.read()) > 0


pytestmark = [
    ROOT_REQUIRED,
    pytest.mark.skipif(not _userns_allowed(), reason="unprivileged user namespaces are off"),
    pytest.mark.skipif(
        not shutil.which("useradd") or not shutil.which("runuser"), reason="no useradd/runuser"
    ),
]


@pytest.fixture(scope="module")
def user():
    name = "pyc-rl-" + uuid.uuid4().hex[:6]
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True
    )
    uid = pwd.getpwnam(name).pw_uid
    try:
        yield name, uid
    finally:
        state = f"/tmp/pycontain-{uid}"
        if os.path.isdir(
            state
        ):  # containers the tests left (they remove their own): end them as the user would
            for cid in os.listdir(state):
                if len(cid) == 64:
                    subprocess.run(
                        ["runuser", "-u", name, "--", PYCONTAIN, "rm", "-f", cid], capture_output=True
                    )
            shutil.rmtree(state, ignore_errors=True)
        subprocess.run(["userdel", name], check=False)


def as_user(user, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_RUNTIME_DIR", "PYCONTAIN_ROOT")}
    return subprocess.run(
        ["runuser", "-u", user[0], "--", PYCONTAIN, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def test_root_inside_is_the_user_outside(user) -> None:
    p = as_user(
        user,
        "run",
        "--rm",
        "--hostname",
        "rl",
        "default",
        "--",
        "sh",
        "-c",
        "cat /proc/self/uid_map; id -u; hostname; echo $$; grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status; "
        "ls /sys/class/net; echo x > /tmp/f && cat /tmp/f",
    )
    assert p.returncode == 0, p.stderr
    out = p.stdout.split("\n")
    assert out[0].split() == ["0", str(user[1]), "1"]
    assert out[1:4] == ["0", "rl", "1"]
    assert out[4].split() == ["NoNewPrivs:", "1"] and out[5].split() == ["Seccomp:", "2"]
    assert out[6:8] == ["lo", "x"]


def test_detached_exec_and_rm_without_any_privilege(user) -> None:
    before = own_cgroup_dirs()
    p = as_user(user, "run", "-d", "--name", "rl-d", "default", "--", "sleep", "60")
    assert p.returncode == 0, p.stderr
    try:
        info = json.loads(as_user(user, "inspect", "rl-d").stdout)[0]
        with open(f"/proc/{info['State']['Pid']}/status") as f:
            assert next(line.split()[1] for line in f if line.startswith("Uid:")) == str(user[1])
        assert own_cgroup_dirs() == before  # no cgroup was made for it
        assert "rl-d" in as_user(user, "ps").stdout
        e = as_user(user, "exec", "rl-d", "sh", "-c", "id -u; cat /proc/self/uid_map; exit 7")
        assert e.returncode == 7 and e.stdout.split()[:4] == ["0", "0", str(user[1]), "1"], (
            e.stdout,
            e.stderr,
        )
    finally:
        r = as_user(user, "rm", "-f", "rl-d")
    assert r.returncode == 0, r.stderr
    assert as_user(user, "ps", "-a", "-q").stdout.strip() == ""
    assert not [d for d in os.listdir(f"/tmp/pycontain-{user[1]}") if len(d) == 64]


def test_walls_stay_up(user) -> None:
    p = as_user(
        user,
        "run",
        "--rm",
        "default",
        "--",
        "sh",
        "-c",
        "mount -t tmpfs t /mnt 2>/dev/null && echo MOUNTED; cat /proc/1/environ >/dev/null && echo own-pid1; "
        "grep CapEff /proc/self/status",
    )
    assert "MOUNTED" not in p.stdout and "own-pid1" in p.stdout
    assert int(p.stdout.split()[-1], 16) & (1 << 21) == 0  # no CAP_SYS_ADMIN, even inside


def test_what_needs_root_is_refused_in_one_line(user) -> None:
    for args, needle in (
        (["-m", "64m"], "no cgroup"),
        (["--network", "bridge"], "rootless containers get none"),
    ):
        p = as_user(user, "run", "--rm", *args, "default", "--", "true")
        assert p.returncode == 125 and needle in p.stderr and len(p.stderr.strip().splitlines()) == 1, (
            args,
            p.stderr,
        )
    assert not [d for d in os.listdir(f"/tmp/pycontain-{user[1]}") if len(d) == 64]
