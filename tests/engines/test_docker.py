"""dockerd 20.10 with pycontain added as its default runtime (``--add-runtime``): run, exec, logs, update,
--privileged, stop and rm, each checked on the kernel's side where Docker's own view could hide it.

dockerd (and the containerd it starts) runs in a namespace sandbox of its own (engines_env); its cgroups
(``/docker/ID``) are beneath the sandbox's cgroup in every hierarchy.
"""

from __future__ import annotations

import os
import shutil
import time

import pytest
from conftest import ROOT_REQUIRED, engine_sandbox
from nsbox import hybrid_or_v1

from .engines_env import IMAGE, DockerEnv

pytestmark = [
    ROOT_REQUIRED,
    pytest.mark.engines,
    pytest.mark.skipif(
        shutil.which("dockerd") is None or shutil.which("docker") is None,
        reason="docker is not installed (make setup installs it: apt-get install docker.io)",
    ),
    pytest.mark.skipif(
        not hybrid_or_v1(), reason="the engine sandbox (tests/nsbox.py) needs a v1 or hybrid host"
    ),
]


@pytest.fixture(scope="module")
def docker(images):
    with engine_sandbox(DockerEnv(images)) as env:
        yield env


def ok(p):
    assert p.returncode == 0, f"exit {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}"
    return p


def _memory_limit(env: DockerEnv, cid: str) -> int:
    """The kernel's memory limit of a container's cgroup, read in the sandbox (where /docker/ID lives)."""
    p = ok(env.run("cat", f"/sys/fs/cgroup/memory/docker/{cid}/memory.limit_in_bytes"))
    return int(p.stdout)


def test_run_foreground_and_exit_status(docker):
    p = ok(
        docker.docker(
            "run", "--rm", "--network", "none", "--hostname", "box", IMAGE, "sh", "-c", "echo hi; hostname"
        )
    )
    assert p.stdout.split() == ["hi", "box"]
    p = docker.docker("run", "--rm", "--network", "none", IMAGE, "sh", "-c", "exit 3")
    assert p.returncode == 3
    # A command that is not there: the runtime's error reaches docker, which maps it to 127.
    assert docker.docker("run", "--rm", "--network", "none", IMAGE, "/no/such/command").returncode == 127


def test_detached_exec_logs_update_stop_rm(docker):
    script = "echo started; trap 'echo got-term; exit 0' TERM; while true; do sleep 0.1; done"
    cid = ok(
        docker.docker(
            "run", "-d", "--name", "d1", "--network", "none", "-m", "64m", IMAGE, "sh", "-c", script
        )
    )
    cid = cid.stdout.strip()
    assert _memory_limit(docker, cid) == 64 << 20
    p = docker.docker("exec", "d1", "sh", "-c", "echo in-exec; exit 4")
    assert (p.returncode, p.stdout) == (4, "in-exec\n")
    # docker update sends every limit, zeros for those not given: only the memory limit changes.
    ok(docker.docker("update", "--memory", "128m", "--memory-swap", "256m", "--cpu-shares", "512", "d1"))
    assert _memory_limit(docker, cid) == 128 << 20
    ok(docker.docker("update", "--cpu-shares", "256", "d1"))
    assert _memory_limit(docker, cid) == 128 << 20
    p = ok(docker.run("cat", f"/sys/fs/cgroup/cpu/docker/{cid}/cpu.shares"))
    assert int(p.stdout) == 256

    ok(docker.docker("stop", "-t", "10", "d1"))
    assert ok(
        docker.docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "d1")
    ).stdout.split() == [
        "exited",
        "0",
    ]
    deadline = time.monotonic() + 10
    while "got-term" not in docker.docker("logs", "d1").stdout and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ok(docker.docker("logs", "d1")).stdout == "started\ngot-term\n"
    ok(docker.docker("rm", "d1"))
    assert not os.path.exists(f"/sys/fs/cgroup/memory/docker/{cid}")
    assert ok(docker.docker("ps", "-aq")).stdout == ""


def test_privileged(docker):
    """--privileged hands the runtime every host device, /dev/ptmx among them, and every capability."""
    p = ok(
        docker.docker(
            "run",
            "--rm",
            "--privileged",
            "--network",
            "none",
            IMAGE,
            "sh",
            "-c",
            "readlink /dev/ptmx; test -c /dev/loop-control && echo loop; grep CapEff /proc/self/status",
        )
    )
    lines = p.stdout.splitlines()
    assert lines[:2] == ["pts/ptmx", "loop"]
    with open("/proc/self/status") as f:
        bounding = next(line.split()[1] for line in f if line.startswith("CapBnd:"))
    # Every capability Docker 20.10 knows (numbers 0-37) that this host's bounding set has.
    assert int(lines[2].split()[1], 16) == int(bounding, 16) & ((1 << 38) - 1)
