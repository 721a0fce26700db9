"""Details where pycontain once differed from runc, each checked on a bundle built here, with runc's behaviour
as the expectation (and runc itself run on the same bundle where it is installed and supports the feature).

Every container runs for real as root; what is asserted is what the kernel shows: files on the host, the
container's /proc, its cgroup files, the scheduler's view of its process.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import stat
import subprocess
import sys

import pytest
from conftest import ROOT_REQUIRED, wait_until, write_config

from pycontain.cgroups import detect_mode
from pycontain.spec import default_spec

pytestmark = ROOT_REQUIRED

RUNC = shutil.which("runc")


def run(pyc, bundle, cid="d1", *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        pyc.argv("run", *flags, "--bundle", str(bundle), cid), capture_output=True, text=True, timeout=60
    )


def runc_run(bundle, tmp_path, cid="runc-d1") -> subprocess.CompletedProcess:
    """runc on the same bundle, with a state root of its own (deleted afterwards whatever happens)."""
    root = tmp_path / "runc-state"
    try:
        return subprocess.run(
            [RUNC, "--root", str(root), "run", "--bundle", str(bundle), cid],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
    finally:
        subprocess.run([RUNC, "--root", str(root), "delete", "--force", cid], capture_output=True)


def tree(path) -> dict[str, tuple[int, int, bytes]]:
    """name -> (mode, rdev, content) for every entry of ``path``: any change made in it shows."""
    out = {}
    for name in sorted(os.listdir(path)):
        st = os.lstat(os.path.join(path, name))
        data = open(os.path.join(path, name), "rb").read() if stat.S_ISREG(st.st_mode) else b""
        out[name] = (st.st_mode, st.st_rdev, data)
    return out


# -- 1. a host directory bound at /dev -------------------------------------------------------------
def _scratch_dev(tmp_path):
    """A directory standing in for the host's /dev: a marker and a regular file named like a device."""
    dev = tmp_path / "fakedev"
    dev.mkdir()
    (dev / "marker").write_text("mine\n")
    (dev / "null").write_text("not a device\n")
    return dev


def _bind_dev(dev):
    def mutate(c):
        # The bind replaces the /dev tmpfs and the mounts beneath it (runc would make their mount points
        # in the bound directory, as it must for any bind mount).
        c["mounts"] = [m for m in c["mounts"] if not m["destination"].startswith("/dev")]
        c["mounts"].append({"destination": "/dev", "type": "bind", "source": str(dev), "options": ["rbind"]})
        c["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]

    return mutate


def test_bind_mounted_dev_is_left_alone(pyc, bundle, tmp_path):
    dev = _scratch_dev(tmp_path)
    before = tree(dev)
    write_config(bundle, ["sh", "-c", "cat /dev/marker /dev/null; ls /dev"], _bind_dev(dev))
    p = run(pyc, bundle)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split("\n")[:2] == ["mine", "not a device"]
    assert "fuse" not in p.stdout.split() and "zero" not in p.stdout.split()
    assert tree(dev) == before  # nothing deleted, made or replaced in the bound directory
    if RUNC:
        r = runc_run(bundle, tmp_path)
        assert r.returncode == 0, r.stderr
        assert r.stdout == p.stdout and tree(dev) == before


def test_docker_style_volume_at_dev_is_left_alone(pyc, tmp_path):
    dev = _scratch_dev(tmp_path)
    before = tree(dev)
    p = pyc(
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        f"{dev}:/dev",
        "default",
        "--",
        "cat",
        "/dev/marker",
        "/dev/null",
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout == "mine\nnot a device\n"
    assert tree(dev) == before


def test_own_tmpfs_dev_still_gets_the_default_nodes(pyc, bundle):
    write_config(
        bundle, ["sh", "-c", "ls -l /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty"]
    )
    p = run(pyc, bundle)
    assert p.returncode == 0, p.stderr
    assert [line[0] for line in p.stdout.splitlines()] == ["c"] * 6


# -- 2. the container's own cgroup at /sys/fs/cgroup ------------------------------------------------
def _limit_files() -> tuple[str, str, str]:
    """(memory limit file, cpu shares/weight file, what 64 MiB reads as) in the container's view."""
    if detect_mode() == "unified":
        return "memory.max", "cpu.weight", str(64 << 20)
    return "memory/memory.limit_in_bytes", "cpu/cpu.shares", str(64 << 20)


def test_bundle_sees_its_own_cgroup_limits_read_only(pyc, bundle, tmp_path):
    mem, _cpu, expected = _limit_files()
    script = (
        f"cat /sys/fs/cgroup/{mem}; grep -c . /proc/self/cgroup >/dev/null; "
        f"if echo 1 > /sys/fs/cgroup/{mem}; then echo writable; else echo refused; fi; "
        "grep -E '^[0-9]+:(memory)?:' /proc/self/cgroup | cut -d: -f3"
    )
    write_config(
        bundle,
        ["sh", "-c", script],
        lambda c: c["linux"].update(resources={"memory": {"limit": 64 << 20}}),
    )
    p = run(pyc, bundle)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.split()
    assert lines[0] == expected and "refused" in lines, p.stdout
    assert lines[-1] == "/"  # its cgroup namespace: the directory shown is its own cgroup
    if RUNC and detect_mode() != "unified":
        r = runc_run(bundle, tmp_path)
        assert r.returncode == 0, r.stderr
        assert r.stdout.split()[0] == expected and "refused" in r.stdout.split()


def test_docker_style_run_sees_its_own_cgroup_limits(pyc):
    mem, _cpu, expected = _limit_files()
    p = pyc(
        "run", "--rm", "--network", "none", "--memory", "64m", "default", "--",
        "sh", "-c", f"cat /sys/fs/cgroup/{mem}; echo 1 > /sys/fs/cgroup/{mem} || echo refused",
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert p.stdout.split()[0] == expected and "refused" in p.stdout


@pytest.mark.skipif(detect_mode() == "legacy", reason="no cgroup2 mount on this host")
def test_cgroup_v2_view_is_the_container_s_own_directory(pyc):
    # On this hybrid host the v2 driver puts the container in the (controller-less) unified hierarchy: its
    # cgroup2 directory itself is then its /sys/fs/cgroup, as on a pure v2 host.
    p = pyc(
        "run", "--rm", "--network", "none", "--cgroup-manager", "v2", "default", "--",
        "sh", "-c", "cat /sys/fs/cgroup/cgroup.procs; grep -c . /sys/fs/cgroup/cgroup.controllers; "
        "grep ' /sys/fs/cgroup ' /proc/self/mounts",
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "1"  # only the container's own processes: PID 1, and cat
    assert lines[-1].startswith("cgroup2 /sys/fs/cgroup cgroup2 ro,")


# -- 3. runc's command line -------------------------------------------------------------------------
def test_run_keep_leaves_the_stopped_container(pyc, bundle):
    write_config(bundle, ["sh", "-c", "exit 3"])
    p = run(pyc, bundle, "k1", "--keep")
    assert p.returncode == 3, p.stderr
    st = json.loads(pyc("state", "k1", check=True).stdout)
    assert st["status"] == "stopped"
    assert pyc("delete", "k1").returncode == 0
    assert pyc("state", "k1").returncode == 125


def test_run_pid_file_in_the_bundle_directory_is_runc_form(pyc, bundle, tmp_path):
    write_config(bundle, ["sh", "-c", "echo $$"])
    pid_file = tmp_path / "pid"
    p = subprocess.run(
        pyc.argv("run", "--pid-file", str(pid_file), "pf1"),
        cwd=bundle,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "1" and int(pid_file.read_text()) > 1


def _shell_with_fd3(argv: list[str], out) -> subprocess.CompletedProcess:
    """``argv`` run with descriptor 3 open on ``out`` (as an engine passes a socket or a pipe)."""
    cmd = " ".join(f"'{a}'" for a in argv) + f" 3>'{out}'"
    return subprocess.run(
        ["sh", "-c", cmd], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )


def test_preserve_fds_passes_descriptors_on(pyc, bundle, tmp_path):
    write_config(bundle, ["sh", "-c", "echo through-fd3 >&3"])
    out = tmp_path / "fd3"
    p = _shell_with_fd3(pyc.argv("run", "--preserve-fds", "1", "--bundle", str(bundle), "pfd1"), out)
    assert p.returncode == 0, p.stderr
    assert out.read_text() == "through-fd3\n"
    # without the flag the descriptor stays behind, as with runc
    out2 = tmp_path / "fd3b"
    p = _shell_with_fd3(pyc.argv("run", "--bundle", str(bundle), "pfd2"), out2)
    assert p.returncode != 0 and out2.read_text() == ""
    p = pyc("run", "--preserve-fds", "5", "--bundle", str(bundle), "pfd3")
    assert p.returncode == 125 and "descriptor 3 is not open" in p.stderr
    if RUNC:
        out3 = tmp_path / "fd3c"
        root = tmp_path / "runc-state"
        r = _shell_with_fd3(
            [RUNC, "--root", str(root), "run", "--preserve-fds", "1", "-b", str(bundle), "rpfd"], out3
        )
        assert r.returncode == 0, r.stderr
        assert out3.read_text() == "through-fd3\n"


def test_exec_preserve_fds(pyc, bundle, tmp_path):
    write_config(bundle, ["sleep", "60"])
    assert pyc.leaving("create", "--bundle", str(bundle), "xp1").returncode == 0
    assert pyc("start", "xp1").returncode == 0
    out = tmp_path / "exec-fd3"
    p = _shell_with_fd3(pyc.argv("exec", "--preserve-fds", "1", "xp1", "sh", "-c", "echo exec-fd3 >&3"), out)
    assert p.returncode == 0, p.stderr
    assert out.read_text() == "exec-fd3\n"
    p = _shell_with_fd3(pyc.argv("exec", "xp1", "sh", "-c", "echo x >&3"), tmp_path / "none")
    assert p.returncode != 0 and (tmp_path / "none").read_text() == ""
    assert pyc("delete", "--force", "xp1").returncode == 0


def test_update_takes_runc_cpu_share(pyc, bundle):
    write_config(bundle, ["sleep", "60"])
    assert pyc.leaving("create", "--bundle", str(bundle), "u1").returncode == 0
    assert pyc("start", "u1").returncode == 0
    p = pyc("update", "--cpu-share", "512", "u1")
    assert p.returncode == 0, p.stderr
    pid = json.loads(pyc("state", "u1", check=True).stdout)["pid"]
    if detect_mode() == "unified":
        path = open(f"/proc/{pid}/cgroup").read().split("::", 1)[1].strip()
        assert open(f"/sys/fs/cgroup{path}/cpu.weight").read().strip() != "100"
    else:
        line = next(x for x in open(f"/proc/{pid}/cgroup").read().splitlines() if x.split(":")[1] == "cpu")
        assert open(f"/sys/fs/cgroup/cpu{line.split(':', 2)[2]}/cpu.shares").read().strip() == "512"
    assert pyc("delete", "--force", "u1").returncode == 0


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--log-format", "xml"], "--log-format 'xml' is not a log format: use text or json"),
        (["--log", "/nonexistent-dir/pycontain.log"], "--log /nonexistent-dir/pycontain.log: cannot write"),
    ],
)
def test_bad_log_settings_are_refused(pyc, flags, expected):
    p = subprocess.run(pyc.argv(*flags, "list"), capture_output=True, text=True, timeout=60)
    assert p.returncode == 125 and p.stderr.count("\n") == 1 and expected in p.stderr, p.stderr
    assert not os.path.exists("/nonexistent-dir")
    if RUNC:
        assert subprocess.run([RUNC, *flags, "list"], capture_output=True).returncode != 0


# -- 4. the runtime spec's smaller rules ------------------------------------------------------------
def test_create_container_hook_path_resolves_on_the_host(pyc, bundle, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    hook = tmp_path / "host-only-hook.sh"  # exists on the host, not in the container
    hook.write_text(f"#!/bin/sh\ncat > {shared}/state.json\n")
    hook.chmod(0o755)

    def mutate(c):
        # the same path inside and out, so the file lands in one place whichever side the hook writes from
        c["mounts"].append(
            {"destination": str(shared), "type": "bind", "source": str(shared), "options": ["bind"]}
        )
        c["hooks"] = {"createContainer": [{"path": str(hook)}]}

    write_config(bundle, ["true"], mutate)
    p = run(pyc, bundle, "h1")
    assert p.returncode == 0, p.stderr
    assert json.loads((shared / "state.json").read_text())["id"] == "h1"
    assert not (bundle / "rootfs" / str(hook).lstrip("/")).exists()
    if RUNC:
        (shared / "state.json").unlink()
        r = runc_run(bundle, tmp_path, "h2")
        assert r.returncode == 0, r.stderr
        assert json.loads((shared / "state.json").read_text())["id"] == "h2"


def test_missing_cwd_on_a_read_only_root_is_made(pyc, bundle, tmp_path):
    write_config(bundle, ["pwd"], lambda c: c["process"].update(cwd="/made/by/runtime"))
    p = run(pyc, bundle)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "/made/by/runtime\n"
    if RUNC:
        shutil.rmtree(bundle / "rootfs" / "made")
        r = runc_run(bundle, tmp_path)
        assert (r.returncode, r.stdout) == (0, p.stdout), r.stderr


def test_cwd_that_cannot_be_made_is_one_clear_error(pyc, bundle):
    write_config(bundle, ["pwd"], lambda c: c["process"].update(cwd="/sys/not-here"))
    p = run(pyc, bundle)
    assert p.returncode == 125
    assert p.stderr == "pycontain: cannot create the working directory /sys/not-here: Read-only file system\n"
    assert pyc.ids() == []


def test_exec_failure_after_create_is_reported(pyc, bundle):
    write_config(bundle, ["no-such-command"], lambda c: c["root"].update(readonly=False))
    p = run(pyc, bundle)
    assert p.returncode == 127
    assert "executable file not found in $PATH: 'no-such-command'" in p.stderr


def test_tmpfs_over_an_image_directory_keeps_its_mode(pyc, bundle, tmp_path):
    (bundle / "rootfs" / "private").mkdir(mode=0o700)
    (bundle / "rootfs" / "private").chmod(0o710)

    def mutate(c):
        c["mounts"].append({"destination": "/private", "type": "tmpfs", "source": "tmpfs"})
        c["mounts"].append(
            {"destination": "/moded", "type": "tmpfs", "source": "tmpfs", "options": ["mode=750"]}
        )

    write_config(bundle, ["stat", "-c", "%a", "/private", "/moded"], mutate)
    p = run(pyc, bundle)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["710", "750"]
    if RUNC:
        # (runc 1.1 then chmods a tmpfs over an existing directory back to that directory's mode even
        # when mode= is given; newer runc lets mode= win, as pycontain does: compared on /private only)
        r = runc_run(bundle, tmp_path)
        assert (r.returncode, r.stdout.split()[0]) == (0, "710"), r.stderr


# -- 5. fields runc 1.2 and crun implement ---------------------------------------------------------
def _ioprio_get(pid: int) -> int:
    nr = {"x86_64": 252, "aarch64": 31}[os.uname().machine]
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc.syscall(ctypes.c_long(nr), ctypes.c_int(1), ctypes.c_int(pid))


def test_io_priority_scheduler_and_memory_policy(pyc, bundle):
    def mutate(c):
        c["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_BE", "priority": 6}
        c["process"]["scheduler"] = {"policy": "SCHED_BATCH", "nice": 7}
        c["linux"]["memoryPolicy"] = {"mode": "MPOL_INTERLEAVE", "nodes": "0"}

    write_config(bundle, ["sleep", "60"], mutate)
    assert pyc.leaving("create", "--bundle", str(bundle), "pa1").returncode == 0
    assert pyc("start", "pa1").returncode == 0
    pid = json.loads(pyc("state", "pa1", check=True).stdout)["pid"]
    assert wait_until(lambda: os.readlink(f"/proc/{pid}/exe").endswith("busybox"))
    assert _ioprio_get(pid) == 2 << 13 | 6
    assert os.sched_getscheduler(pid) == os.SCHED_BATCH
    assert os.getpriority(os.PRIO_PROCESS, pid) == 7
    with open(f"/proc/{pid}/numa_maps") as f:
        assert "interleave:0" in f.read()
    assert pyc("delete", "--force", "pa1").returncode == 0


def test_exec_process_json_io_priority_and_scheduler(pyc, bundle, tmp_path):
    write_config(bundle, ["sleep", "60"])
    assert pyc.leaving("create", "--bundle", str(bundle), "pa2").returncode == 0
    assert pyc("start", "pa2").returncode == 0
    proc = default_spec()["process"]
    proc.update(
        terminal=False,
        args=["sh", "-c", "exec sleep 60"],
        ioPriority={"class": "IOPRIO_CLASS_IDLE", "priority": 0},
        scheduler={"policy": "SCHED_IDLE"},
    )
    (tmp_path / "process.json").write_text(json.dumps(proc))
    pid_file = tmp_path / "exec.pid"
    p = pyc.leaving(
        "exec", "--detach", "--pid-file", str(pid_file), "--process", str(tmp_path / "process.json"), "pa2"
    )
    assert p.returncode == 0, p.stderr
    pid = int(pid_file.read_text())
    assert _ioprio_get(pid) == 3 << 13
    assert os.sched_getscheduler(pid) == os.SCHED_IDLE
    assert pyc("delete", "--force", "pa2").returncode == 0


def test_scheduler_the_kernel_refuses_fails_create_clearly(pyc, bundle):
    write_config(
        bundle,
        ["true"],
        lambda c: c["process"].update(scheduler={"policy": "SCHED_DEADLINE", "runtime": 10, "deadline": 5}),
    )
    p = run(pyc, bundle)
    assert p.returncode == 125 and "cannot set process.scheduler: Invalid argument" in p.stderr
    assert p.stderr.count("\n") == 1 and pyc.ids() == []


def _in_private_mounts(setup: str, argv: list[str]) -> subprocess.CompletedProcess:
    """``argv`` in a mount namespace of its own after ``setup`` (shell): the submounts a test needs vanish
    with it, whatever happens."""
    cmd = setup + " && exec " + " ".join(f"'{a}'" for a in argv)
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", cmd],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_recursive_read_only_reaches_submounts(pyc, bundle, tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)

    def mutate(c):
        c["root"]["readonly"] = False
        c["mounts"].append(
            {"destination": "/data", "type": "bind", "source": str(src), "options": ["rbind", "rro"]}
        )
        c["mounts"].append(
            {"destination": "/plain", "type": "bind", "source": str(src), "options": ["rbind", "ro"]}
        )

    script = "for f in /data/x /data/sub/x /plain/sub/x; do touch $f 2>/dev/null && echo rw || echo ro; done"
    write_config(bundle, ["sh", "-c", script], mutate)
    argv = pyc.argv("run", "--bundle", str(bundle), "rro1")
    p = _in_private_mounts(f"mount -t tmpfs sub '{src}/sub'", argv)
    assert p.returncode == 0, p.stderr
    # rro: the submount too; plain ro leaves the submount writable (why rro exists)
    assert p.stdout.split() == ["ro", "ro", "rw"]
    assert not (src / "sub" / "x").exists()  # it was the tmpfs, gone with the namespace


def test_id_mapped_mount(pyc, bundle, tmp_path):
    src = tmp_path / "owned"
    src.mkdir()
    (src / "f").write_text("x")
    os.chown(src / "f", 0, 0)
    maps = [{"containerID": 0, "hostID": 1234, "size": 1}]

    def mutate(c):
        c["mounts"].append(
            {
                "destination": "/mapped",
                "type": "bind",
                "source": str(src),
                "options": ["bind"],
                "uidMappings": maps,
                "gidMappings": maps,
            }
        )

    write_config(bundle, ["stat", "-c", "%u:%g", "/mapped/f"], mutate)
    p = run(pyc, bundle)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "1234:1234\n"
    assert os.stat(src / "f").st_uid == 0  # the files on disk keep their owner


def test_features_lists_what_is_implemented(pyc):
    p = subprocess.run([sys.executable, "-m", "pycontain", "features"], capture_output=True, text=True)
    doc = json.loads(p.stdout)
    assert {"rro", "rnosuid", "idmap", "ridmap"} <= set(doc["mountOptions"])
    assert doc["linux"]["mountExtensions"]["idmap"]["enabled"] is True
    assert "MPOL_INTERLEAVE" in doc["linux"]["memoryPolicy"]["modes"]
