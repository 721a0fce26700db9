"""A container's first process drops its privileges in pycontain-init (``--finish``, in C), no longer in
Python: asserted on what the kernel shows of PID 1 (/proc/PID/status, its descriptors, executable and
mounts), against the library's exec (``Container.exec``, whose joiner still drops in Python:
``process.finish_and_exec``), and on the statuses and messages of what can fail there."""

from __future__ import annotations

import os
import re

import pytest

from pycontain.container import Container
from tests.conftest import ROOT_REQUIRED, wait_until
from tests.importlist import imported

pytestmark = ROOT_REQUIRED

STATUS_KEYS = (
    "Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp",
    "SigIgn", "SigBlk",
)  # fmt: skip
# What a process reports of itself: the same for PID 1 (run in the foreground) and for Container.exec.
REPORT = (
    "grep -E '^(Uid|Gid|Groups|Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp|SigIgn|SigBlk):' /proc/self/status; "
    "echo cwd=$(pwd) home=$HOME umask=$(umask) nofile=$(ulimit -n) nproc=$(ulimit -u); "
    "ls /proc/self/fd | tr '\\n' ' '"
)


def _status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return {k: v.strip() for k, v in (line.split(":", 1) for line in f) if k in STATUS_KEYS}


def _fields(text: str) -> dict[str, str]:
    return {k: v.strip() for k, v in re.findall(r"^(\w+):\t(.*)$", text, re.M) if k in STATUS_KEYS}


def _run_detached(pyc, name: str, *opts: str) -> int:
    p = pyc.leaving("run", "-d", "--network", "none", "--name", name, *opts, "default", "--", "sleep", "600")
    assert p.returncode == 0, p.stderr
    return Container.get(name, pyc.root).pid


CONFIGS = [
    (),
    ("--cap-add", "SYS_PTRACE", "--cap-drop", "CHOWN", "--ulimit", "nofile=512:1024", "-u", "1000:1000"),
    ("-u", "65534", "-w", "/tmp/made/here"),
    ("--security-opt", "no-new-privileges=false", "--ulimit", "nproc=100:200"),
    ("--privileged", "-u", "1000"),
    ("--cap-drop", "ALL", "--cap-add", "NET_BIND_SERVICE", "-u", "1000"),
    ("--userns", "0:200000:65536",),
    ("--security-opt", "seccomp=unconfined", "--read-only"),
]  # fmt: skip


@pytest.mark.parametrize("opts", CONFIGS)
def test_the_first_process_holds_what_the_library_exec_gives(pyc, opts):
    """PID 1 of a running container and a process the library's exec starts in it
    with the container's own user and settings: every credential, capability set, wall and signal mask
    the same; and a foreground run's PID 1 reports the same of itself, with the same working directory,
    HOME, umask, rlimits and descriptors as the exec."""
    _run_detached(pyc, "fp", *opts)
    container = Container.get("fp", pyc.root)
    # (both as the container sees them: with --userns the host shows the mapped ids)
    first = container.exec_run(["cat", "/proc/1/status"])
    slow = container.exec_run(["sh", "-c", REPORT])
    assert slow.exit_code == 0 and first.exit_code == 0, slow.stderr
    exec_report = slow.stdout.decode()
    assert _fields(exec_report) == _fields(first.stdout.decode())
    run = pyc("run", "--rm", "--network", "none", *opts, "default", "sh", "-c", REPORT)
    assert run.returncode == 0, run.stderr
    assert run.stdout == exec_report


def test_the_first_process_keeps_no_descriptor_of_the_host_and_runs_no_host_file(pyc):
    """PID 1 before and after its command: only 0-2 open; its executable the image's, never pycontain's
    interpreter; with --init, PID 1 is the sealed pycontain-init with its short command line, confined as
    the command is, and the command its child."""
    pid1 = _run_detached(pyc, "fp")
    assert sorted(os.listdir(f"/proc/{pid1}/fd")) == ["0", "1", "2"]
    assert os.readlink(f"/proc/{pid1}/exe").endswith("/bin/busybox")
    pid_init = _run_detached(pyc, "fpi", "--init")
    assert sorted(os.listdir(f"/proc/{pid_init}/fd")) == ["0", "1", "2"]
    assert os.readlink(f"/proc/{pid_init}/exe") == "/memfd:pycontain-init (deleted)"
    with open(f"/proc/{pid_init}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[:-1] == [b"pycontain-init", b"--", b"sleep", b"600"]
    with open(f"/proc/{pid_init}/task/{pid_init}/children") as f:
        (child,) = f.read().split()
    assert _status(pid_init) == _status(int(child)) == _status(pid1)


def test_the_first_process_sees_only_the_mounts_of_its_plan(pyc):
    """mountinfo of PID 1: the image's overlay as root, docker's /proc, /sys, cgroup view, /dev and its
    mounts, the masked and read-only paths; nothing of the host's tree."""
    pid1 = _run_detached(pyc, "fp")
    with open(f"/proc/{pid1}/mountinfo") as f:
        lines = [line.split() for line in f]
    points = [fields[4] for fields in lines]
    root = next(fields for fields in lines if fields[4] == "/")
    assert root[root.index("-") + 1] == "overlay"
    for needed in ("/proc", "/sys", "/sys/fs/cgroup", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/freezer",
                   "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/proc/sys", "/proc/keys", "/sys/firmware"):  # fmt: skip
        assert needed in points, needed
    allowed = re.compile(r"^/(proc|sys|dev)(/|$)|^/$")
    assert [p for p in points if not allowed.match(p)] == []
    assert len(points) == len(set(points))


@pytest.mark.parametrize(
    "opts, args, status, message",
    [
        ((), ["nosuchcommand"], 127, "executable file not found in $PATH: 'nosuchcommand'"),
        ((), ["/nosuch"], 127, "cannot execute '/nosuch': no such file (or its interpreter is missing)"),
        ((), ["/etc/passwd"], 126, "cannot execute '/etc/passwd': permission denied"),
        ((), ["etc"], 127, "executable file not found in $PATH"),
        (("-u", "nosuchuser"), ["true"], 125, "unable to find user 'nosuchuser'"),
        (("-u", "0:nosuchgroup"), ["true"], 125, "unable to find group 'nosuchgroup'"),
        (("--init",), ["nosuchcommand"], 127, "executable file not found in $PATH: 'nosuchcommand'"),
    ],
)
def test_what_fails_in_the_drop_has_the_python_paths_status_and_message(pyc, opts, args, status, message):
    p = pyc("run", "--rm", "--network", "none", *opts, "default", *args)
    assert p.returncode == status, p.stderr
    assert message in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_a_run_loads_no_python_prctl(pyc):
    """The drop is pycontain-init's: the run path no longer imports python-prctl (1-2 ms per run)."""
    assert "_prctl" not in imported(pyc.root, "run", "--rm", "--network", "none", "default", "true")


@pytest.mark.parametrize("init", [(), ("--init",)])
def test_an_environment_too_large_to_execute_fails_naming_the_command(pyc, tmp_path, init):
    """More environment than execve takes (E2BIG) fails executing pycontain-init already: one line naming
    the command, 126, as when the command's own execve failed."""
    env_file = tmp_path / "env"
    env_file.write_text("".join(f"V{i}={'a' * 100_000}\n" for i in range(25)))
    p = pyc("run", "--rm", "--network", "none", "--env-file", str(env_file), *init, "default", "true")
    assert (p.returncode, p.stderr) == (126, "pycontain: cannot execute 'true': Argument list too long\n")


def test_only_a_container_removed_at_exit_has_a_volatile_writable_layer(pyc):
    """--rm: overlayfs never syncs the writable layer (its end paid a sync of the whole upper file system),
    and the container's directory still goes with it; a kept container's layer stays durable, and it
    starts again on the same layer."""
    removed = _run_detached(pyc, "fprm", "--rm")
    kept = _run_detached(pyc, "fpkeep")

    def volatile(pid: int) -> bool:
        with open(f"/proc/{pid}/mountinfo") as f:
            root = next(line.split() for line in f if line.split()[4] == "/")
        # (newer kernels show it as fsync=volatile)
        return bool({"volatile", "fsync=volatile"} & set(root[root.index("-") + 3].split(",")))

    assert volatile(removed)
    assert not volatile(kept)
    state_dir = os.path.join(pyc.root, Container.get("fprm", pyc.root).id)
    assert pyc("kill", "fprm").returncode == 0
    assert pyc("stop", "fpkeep").returncode == 0
    assert pyc("start", "fpkeep").returncode == 0
    assert pyc("exec", "fpkeep", "true").returncode == 0
    assert wait_until(lambda: not os.path.exists(state_dir))
