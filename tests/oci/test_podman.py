"""pycontain as podman's OCI runtime: a real engine, through conmon, on an image imported from a tarball.

podman 4.3 calls the runtime as ``create --bundle B --pid-file F [--console-socket S] ID``, ``start``,
``kill ID 15`` / ``kill ID 9``, ``delete --force`` and ``exec --process P.json --detach [--tty
--console-socket S]`` (no ``--log`` here: the runtime's stderr reaches podman through conmon). Everything
runs in a namespace sandbox of its own (see podman_env): its cgroups beneath ours, its storage in a temp
dir, the runtime's state in a private /run, no network.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest
from conftest import ROOT_REQUIRED, mountinfo

import rootfs_builder

from .podman_env import IMAGE, PYCONTAIN, PodmanEnv, hybrid_or_v1

pytestmark = [
    ROOT_REQUIRED,
    pytest.mark.podman,
    pytest.mark.skipif(
        shutil.which("podman") is None or shutil.which("conmon") is None,
        reason="podman is not installed (make setup installs it: apt-get install podman conmon)",
    ),
    pytest.mark.skipif(
        shutil.which("nsenter") is None or shutil.which("unshare") is None,
        reason="util-linux's unshare and nsenter are needed",
    ),
    pytest.mark.skipif(
        not hybrid_or_v1(),
        reason="the podman sandbox (podman_env) needs a cgroup v1 or hybrid host; this one is pure cgroup2",
    ),
]


@pytest.fixture(scope="module")
def podman(tmp_path_factory):
    """One sandboxed podman for the module, the busybox root filesystem imported as IMAGE."""
    assert os.access(PYCONTAIN, os.X_OK), f"{PYCONTAIN} missing: run 'make venv' first"
    tar = str(tmp_path_factory.mktemp("podman-image") / "rootfs.tar")
    subprocess.run(["tar", "-C", str(rootfs_builder.resolve("default")), "-cf", tar, "."], check=True)
    env = PodmanEnv().open()
    try:
        p = env("import", tar, IMAGE)
        assert p.returncode == 0, p.stderr
        yield env
    finally:
        env.close()
    # Nothing outlives the module: no cgroup, no mount, no temp dir. (Only what this module made is
    # checked: other tests may create cgroups and mounts at the same time.)
    assert not any(os.path.exists(d) for d in env.cgroups)
    assert not any(env.tmp in m for m in mountinfo())
    assert not os.path.exists(env.tmp)


def ok(p: subprocess.CompletedProcess, env: PodmanEnv) -> subprocess.CompletedProcess:
    # podman 4.3 passes the runtime no --log: its errors reach podman on stderr, and podman prints them.
    assert p.returncode == 0, f"exit {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}"
    return p


def test_run_foreground(podman):
    ok(podman("run", "--rm", IMAGE, "true"), podman)

    p = ok(podman("run", "--rm", IMAGE, "echo", "hi"), podman)
    assert p.stdout == "hi\n"
    p = podman("run", "--rm", IMAGE, "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (p.returncode, p.stdout) == (3, "out\n") and "err" in p.stderr
    # Not found / not executable: the runtime's error reaches podman, which maps it to 127 / 126.
    assert podman("run", "--rm", IMAGE, "/no/such/command").returncode == 127
    assert podman("run", "--rm", IMAGE, "/etc/passwd").returncode == 126
    # stdin reaches the container, and -t gets it a terminal through --console-socket.
    p = ok(podman("run", "--rm", "-i", IMAGE, "sh", "-c", "read line; echo got $line", input="abc\n"), podman)
    assert p.stdout == "got abc\n"
    p = ok(podman("run", "--rm", "-t", IMAGE, "sh", "-c", "tty; test -t 0 && test -t 1 && echo both"), podman)
    assert p.stdout.splitlines() == ["/dev/pts/0", "both"]
    # The config podman wrote: hostname, environment, user, working directory.
    p = ok(
        podman(
            "run",
            "--rm",
            "--hostname",
            "box",
            "-e",
            "FOO=bar",
            "-u",
            "1000:1000",
            "-w",
            "/tmp",
            IMAGE,
            "sh",
            "-c",
            "hostname; echo $FOO; id -u; id -g; pwd",
        ),
        podman,
    )
    assert p.stdout.split() == ["box", "bar", "1000", "1000", "/tmp"]
    assert ok(podman("ps", "-aq"), podman).stdout == ""  # --rm removed them all


def _cgroup_dirs(env: PodmanEnv, cid: str) -> list[str]:
    return [
        os.path.join(d, "libpod_parent", f"libpod-{cid}")
        for d in env.cgroups
        if os.path.isdir(os.path.join(d, "libpod_parent"))
    ]


def test_detached_logs_exec_stop_kill_rm(podman):
    script = "echo started; trap 'echo got-term; exit 0' TERM; while true; do sleep 0.1; done"
    cid = ok(podman("run", "-d", "--name", "d1", IMAGE, "sh", "-c", script), podman).stdout.strip()
    assert len(cid) == 64
    assert ok(podman("inspect", "--format", "{{.State.Status}}", "d1"), podman).stdout.strip() == "running"
    assert "d1" in ok(podman("ps", "--format", "{{.Names}}"), podman).stdout.split()

    # The container's cgroup (podman's cgroupsPath /libpod_parent/libpod-ID) lies beneath the sandbox's
    # cgroup in every hierarchy podman uses, and holds the container's processes.
    dirs = _cgroup_dirs(podman, cid)
    assert dirs and all(os.path.isdir(d) for d in dirs)
    memory = [d for d in dirs if "/memory/" in d]
    assert memory, dirs
    with open(os.path.join(memory[0], "cgroup.procs")) as f:
        assert f.read().split()

    deadline = time.monotonic() + 10
    while "started" not in podman("logs", "d1").stdout and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ok(podman("logs", "d1"), podman).stdout == "started\n"

    # exec: output, exit status, stdin, environment, user, working directory, a missing command.
    p = podman("exec", "d1", "sh", "-c", "echo in-exec; echo e >&2; exit 4")
    assert (p.returncode, p.stdout) == (4, "in-exec\n") and "e" in p.stderr
    p = ok(podman("exec", "-i", "d1", "cat", input="through stdin\n"), podman)
    assert p.stdout == "through stdin\n"
    p = ok(
        podman(
            "exec",
            "-e",
            "FOO=bar",
            "-u",
            "1000:1000",
            "-w",
            "/tmp",
            "d1",
            "sh",
            "-c",
            "echo $FOO; id -u; pwd",
        ),
        podman,
    )
    assert p.stdout.split() == ["bar", "1000", "/tmp"]
    p = podman("exec", "d1", "nonexistent")
    assert p.returncode == 127 and "not found" in p.stderr
    # exec -t: the pty master comes back through --console-socket.
    p = ok(podman("exec", "-t", "d1", "sh", "-c", "tty; test -t 0 && echo is-tty"), podman)
    assert p.stdout.splitlines() == ["/dev/pts/0", "is-tty"]
    # exec shares the container's pid namespace: the main process is PID 1 there.
    p = ok(podman("exec", "d1", "cat", "/proc/1/cmdline"), podman)
    assert p.stdout.split("\0")[:2] == ["sh", "-c"]

    # stop: SIGTERM, which the container's trap turns into a clean exit.
    t0 = time.monotonic()
    ok(podman("stop", "-t", "10", "d1"), podman)
    assert time.monotonic() - t0 < 8
    assert ok(
        podman("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", "d1"), podman
    ).stdout.split() == ["exited", "0"]
    assert ok(podman("logs", "d1"), podman).stdout == "started\ngot-term\n"

    # stop on a container that ignores SIGTERM: SIGKILL after -t seconds, exit 137.
    ok(
        podman(
            "run", "-d", "--name", "d2", IMAGE, "sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"
        ),
        podman,
    )
    t0 = time.monotonic()
    ok(podman("stop", "-t", "1", "d2"), podman)
    assert 1 <= time.monotonic() - t0 < 8
    assert ok(podman("inspect", "--format", "{{.State.ExitCode}}", "d2"), podman).stdout.strip() == "137"

    # kill: SIGKILL by default, or the signal asked for (the trap's exit status comes back).
    ok(podman("run", "-d", "--name", "d3", IMAGE, "sleep", "100"), podman)
    ok(podman("kill", "d3"), podman)
    assert ok(podman("wait", "d3"), podman).stdout.strip() == "137"
    ok(
        podman(
            "run",
            "-d",
            "--name",
            "d4",
            IMAGE,
            "sh",
            "-c",
            "trap 'exit 9' TERM; while true; do sleep 0.1; done",
        ),
        podman,
    )
    time.sleep(0.3)  # the trap is set before the shell's first sleep
    ok(podman("kill", "-s", "TERM", "d4"), podman)
    assert ok(podman("wait", "d4"), podman).stdout.strip() == "9"

    # rm: podman forgets them, pycontain holds no state for them, their cgroups are gone.
    ok(podman("rm", "d1", "d2", "d3", "d4"), podman)
    assert ok(podman("ps", "-aq"), podman).stdout == ""
    assert podman.runtime("list", "-q").stdout == ""
    assert not any(os.path.exists(d) for d in dirs)

    # rm -f of a running container: killed and removed in one go.
    ok(podman("run", "-d", "--name", "d5", IMAGE, "sleep", "100"), podman)
    ok(podman("rm", "-f", "-t", "0", "d5"), podman)
    assert ok(podman("ps", "-aq"), podman).stdout == ""
    assert podman.runtime("list", "-q").stdout == ""
