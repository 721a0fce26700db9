"""The runtime calls engines make, answered as runc answers them (containerd, Docker and the OCI
runtime-tools suite were written against runc's command line), each checked on the kernel's side."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import uuid

import pytest
from conftest import ROOT_REQUIRED, wait_until, write_config

from .test_runtime import state

pytestmark = ROOT_REQUIRED


def _run(pyc, bundle, cid: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        pyc.argv("run", "--bundle", str(bundle), cid), capture_output=True, text=True, timeout=60
    )


def test_hostname_is_optional_and_left_as_inherited(pyc, bundle):
    """ctr, CRI app containers and host-network sandboxes write no hostname: the UTS namespace keeps
    the one it was made with (the host's), as with runc."""
    write_config(bundle, ["hostname"], lambda c: c.pop("hostname"))
    p = _run(pyc, bundle, "h1")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == socket.gethostname()


def test_kill_all_of_a_stopped_container_succeeds(pyc, bundle):
    """containerd sends 'kill --all ID 9' after every exit and retries for ever on an error."""
    write_config(bundle, ["true"])
    assert pyc.leaving("create", "--bundle", str(bundle), "k1").returncode == 0
    assert pyc("start", "k1").returncode == 0
    assert wait_until(lambda: state(pyc, "k1")["status"] == "stopped")
    p = pyc("kill", "--all", "k1", "9")
    assert p.returncode == 0, p.stderr
    # Without --all a stopped container still has no process to signal (runc: an error too).
    assert pyc("kill", "k1", "9").returncode == 125
    assert pyc("delete", "k1").returncode == 0


def test_delete_of_a_created_container_fails_without_force(pyc, bundle):
    write_config(bundle, ["sleep", "60"])
    assert pyc.leaving("create", "--bundle", str(bundle), "d1").returncode == 0
    pid = state(pyc, "d1")["pid"]
    p = pyc("delete", "d1")
    assert p.returncode == 125 and "created" in p.stderr
    # No effect: the container and its process are still there.
    assert state(pyc, "d1")["status"] == "created"
    os.kill(pid, 0)
    assert pyc("delete", "--force", "d1").returncode == 0
    assert pyc("state", "d1").returncode == 125


def test_delete_force_of_a_missing_container_succeeds(pyc):
    assert pyc("delete", "--force", "never-made").returncode == 0
    p = pyc("delete", "never-made")
    assert p.returncode == 125 and "no such container" in p.stderr


def test_error_reaches_the_log_with_a_read_only_stderr(pyc, tmp_path):
    """containerd opens a sandbox runtime's stderr read-only: the --log file is where the error goes."""
    log = tmp_path / "runtime.log"
    with open(os.devnull) as read_only:
        p = subprocess.run(
            pyc.argv("--log", str(log), "--log-format", "json", "state", "absent"),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=read_only,
            timeout=60,
        )
    assert p.returncode == 125
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["level"] == "error" and "no such container" in entry["msg"]


@pytest.fixture
def cgroup_top():
    """A relative cgroupsPath's first component, and its removal (with what beneath it is empty) after."""
    top = f"pycontain-test-{uuid.uuid4().hex[:8]}"
    yield top
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if ctrls.startswith("name="):
                continue
            point = f"/sys/fs/cgroup/{ctrls.split(',')[0]}" if ctrls else "/sys/fs/cgroup/unified"
            d = os.path.join(point, path.lstrip("/"), top)
            for sub, _, _ in sorted(os.walk(d), key=lambda w: -w[0].count("/")):
                os.rmdir(sub)


def test_relative_cgroups_path_is_kept_whole(pyc, bundle, cgroup_top):
    """runtime-tools' linux_cgroups_relative_*: a/x and b/x are two cgroups beneath ours, not one."""
    own = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            own[ctrls] = path.rstrip("/")
    pids = {}
    for sub in ("a", "b"):
        write_config(
            bundle, ["sleep", "60"], lambda c, s=sub: c["linux"].update(cgroupsPath=f"{cgroup_top}/{s}/x")
        )
        p = pyc.leaving("create", "--bundle", str(bundle), f"cg-{sub}")
        assert p.returncode == 0, p.stderr
        pids[sub] = state(pyc, f"cg-{sub}")["pid"]
    for sub, pid in pids.items():
        with open(f"/proc/{pid}/cgroup") as f:
            seen = dict(line.rstrip("\n").split(":", 2)[1:] for line in f)
        assert seen["memory"] == f"{own['memory']}/{cgroup_top}/{sub}/x"
    for sub in pids:
        assert pyc("delete", "--force", f"cg-{sub}").returncode == 0


_DOCKER_UPDATE = {  # what Docker 20.10's 'docker update --memory M' hands the runtime: zeros for the rest
    "memory": {"limit": 0, "reservation": 0, "swap": 0, "kernel": 0},
    "cpu": {"shares": 0, "quota": 0, "period": 0, "cpus": "", "mems": ""},
    "blockIO": {"weight": 0},
    "pids": {"limit": 0},
}


def test_update_zeros_mean_unchanged(pyc, bundle):
    limits = {"memory": {"limit": 64 << 20}, "cpu": {"shares": 512}, "pids": {"limit": 50}}
    write_config(bundle, ["sleep", "60"], lambda c: c["linux"].update(resources=limits))
    assert pyc.leaving("create", "--bundle", str(bundle), "u1").returncode == 0
    assert pyc("start", "u1").returncode == 0
    pid = state(pyc, "u1")["pid"]
    p = pyc("update", "--resources", "-", "u1", input=json.dumps(_DOCKER_UPDATE))
    assert p.returncode == 0, p.stderr
    assert _limits(pid) == (64 << 20, 512, "50")
    doc = json.loads(json.dumps(_DOCKER_UPDATE))
    doc["memory"].update(limit=128 << 20, swap=256 << 20)
    p = pyc("update", "--resources", "-", "u1", input=json.dumps(doc))
    assert p.returncode == 0, p.stderr
    assert _limits(pid) == (128 << 20, 512, "50")
    assert pyc("delete", "--force", "u1").returncode == 0


def _limits(pid: int) -> tuple[int, int, str]:
    """memory limit, cpu shares and pids.max of ``pid``'s cgroups (v1 hierarchies)."""
    with open(f"/proc/{pid}/cgroup") as f:
        where = {c: p for _, cs, p in (line.rstrip("\n").split(":", 2) for line in f) for c in cs.split(",")}

    def read(ctrl: str, name: str) -> str:
        with open(f"/sys/fs/cgroup/{ctrl}{where[ctrl]}/{name}") as f:
            return f.read().strip()

    return (
        int(read("memory", "memory.limit_in_bytes")),
        int(read("cpu", "cpu.shares")),
        read("pids", "pids.max"),
    )


def test_privileged_device_list_keeps_the_ptmx_link(pyc, bundle):
    """docker --privileged lists every host device, /dev/ptmx (5:2) among them: /dev/ptmx stays the link to
    the container's devpts, and a pty can be opened through it."""
    devices = [
        {"path": "/dev/ptmx", "type": "c", "major": 5, "minor": 2, "fileMode": 0o666},
        {"path": "/dev/loop-control", "type": "c", "major": 10, "minor": 237, "fileMode": 0o660},
    ]
    write_config(
        bundle,
        ["sh", "-c", "readlink /dev/ptmx; ls -l /dev/loop-control; ls /dev/pts"],
        lambda c: c["linux"].update(devices=devices),
    )
    p = _run(pyc, bundle, "pt1")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "pts/ptmx"
    assert lines[1].startswith("crw-rw----") and "10, 237" in lines[1]


def test_memory_extras_applied_and_missing_controllers_warned(pyc, bundle):
    """swappiness, disableOOMKiller and kernelTCP reach the v1 memory cgroup; hugepageLimits and the
    network classID / priorities need hierarchies this host may lack: applied or warned about, never
    dropped in silence."""
    limits = {
        "memory": {"limit": 64 << 20, "swappiness": 10, "disableOOMKiller": True, "kernelTCP": 50 << 20},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}],
        "network": {"classID": 0x100001, "priorities": [{"name": "eth0", "priority": 5}]},
    }
    write_config(bundle, ["sleep", "60"], lambda c: c["linux"].update(resources=limits))
    p = pyc.leaving("create", "--bundle", str(bundle), "x1")
    assert p.returncode == 0, p.stderr
    pid = state(pyc, "x1")["pid"]
    with open(f"/proc/{pid}/cgroup") as f:
        where = {c: p for _, cs, p in (line.rstrip("\n").split(":", 2) for line in f) for c in cs.split(",")}

    def read(ctrl: str, name: str) -> str:
        with open(f"/sys/fs/cgroup/{ctrl}{where[ctrl]}/{name}") as f:
            return f.read()

    if "memory" in where and os.path.isdir("/sys/fs/cgroup/memory"):
        assert read("memory", "memory.swappiness").strip() == "10"
        assert "oom_kill_disable 1" in read("memory", "memory.oom_control")
        assert int(read("memory", "memory.kmem.tcp.limit_in_bytes")) == 50 << 20
    for ctrl, field, check in (
        (
            "hugetlb",
            "hugepageLimits[0]",
            lambda: int(read("hugetlb", "hugetlb.2MB.limit_in_bytes")) == 4 << 20,
        ),
        ("net_cls", "network.classID", lambda: int(read("net_cls", "net_cls.classid")) == 0x100001),
        ("net_prio", "network.priorities", lambda: "eth0 5" in read("net_prio", "net_prio.ifpriomap")),
    ):
        if os.path.isdir(f"/sys/fs/cgroup/{ctrl}"):
            assert check()
        else:
            assert f"linux.resources.{field} not applied" in p.stderr
    assert pyc("delete", "--force", "x1").returncode == 0


def test_spec_warnings_are_printed(pyc, bundle):
    """runtime-tools' linux_process_apparmor_profile and linux_capabilities: what the host cannot give is
    said, and the container still starts."""
    with open("/proc/self/status") as f:
        bounding = int(next(line.split()[1] for line in f if line.startswith("CapBnd:")), 16)
    lacking = [n for i, n in ((24, "CAP_SYS_RESOURCE"), (21, "CAP_SYS_ADMIN")) if not bounding >> i & 1]

    def mutate(c: dict) -> None:
        c["process"]["apparmorProfile"] = "acme_secure_profile"
        for key in ("bounding", "effective", "permitted"):
            c["process"]["capabilities"][key] += lacking

    write_config(bundle, ["true"], mutate)
    p = pyc.leaving("create", "--bundle", str(bundle), "w1")
    assert p.returncode == 0, p.stderr
    apparmor = os.path.exists("/sys/kernel/security/apparmor")
    assert ("apparmor profile 'acme_secure_profile' ignored" in p.stderr) != apparmor
    for name in lacking:
        assert f"{name} left out" in p.stderr
    assert pyc("delete", "--force", "w1").returncode == 0


def _inherit_all(c: dict) -> None:
    """runtime-tools' nsinherit: no namespace of its own, nothing mounted."""
    c["linux"]["namespaces"] = []
    c.pop("hostname")
    c["mounts"] = []
    c["linux"].pop("maskedPaths", None)
    c["linux"].pop("readonlyPaths", None)
    c["root"]["readonly"] = False


def test_no_mount_namespace_is_a_chroot(pyc, bundle):
    write_config(bundle, ["sh", "-c", "ls /; echo done"], _inherit_all)
    assert pyc.leaving("create", "--bundle", str(bundle), "n1").returncode == 0
    pid = state(pyc, "n1")["pid"]
    # The host's mount (and every other) namespace, its root the bundle's rootfs.
    for ns in ("mnt", "pid", "net", "uts", "ipc"):
        assert os.readlink(f"/proc/{pid}/ns/{ns}") == os.readlink(f"/proc/self/ns/{ns}")
    assert os.readlink(f"/proc/{pid}/root") == str(bundle / "rootfs")
    assert pyc("start", "n1").returncode == 0
    assert wait_until(lambda: state(pyc, "n1")["status"] == "stopped")
    assert pyc("delete", "n1").returncode == 0


def test_no_mount_namespace_refuses_mounts(pyc, bundle):
    write_config(
        bundle,
        ["true"],
        lambda c: (
            _inherit_all(c),
            c["mounts"].append({"destination": "/proc", "type": "proc", "source": "proc"}),
        ),
    )
    p = pyc("create", "--bundle", str(bundle), "n2")
    assert p.returncode == 125
    assert p.stderr.startswith(
        "pycontain: config.json: mounts: needs a mount namespace of the container's own"
    )
    assert pyc.ids() == []


def test_mount_namespace_joined_by_path(pyc, bundle):
    holder = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sleep", "60"])
    try:
        assert wait_until(
            lambda: os.readlink(f"/proc/{holder.pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
        )
        target = os.readlink(f"/proc/{holder.pid}/ns/mnt")

        def mutate(c: dict) -> None:
            for n in c["linux"]["namespaces"]:
                if n["type"] == "mount":
                    n["path"] = f"/proc/{holder.pid}/ns/mnt"

        write_config(bundle, ["sleep", "60"], mutate)
        p = pyc.leaving("create", "--bundle", str(bundle), "m1")
        assert p.returncode == 0, p.stderr
        pid = state(pyc, "m1")["pid"]
        assert os.readlink(f"/proc/{pid}/ns/mnt") == target
        # The root filesystem was built in that namespace: its mounts are there, not in ours.
        with open(f"/proc/{pid}/mountinfo") as f:
            assert any(line.split()[4] == "/proc" for line in f)
        assert not any(str(bundle) in line for line in open("/proc/self/mountinfo"))
        assert pyc("delete", "--force", "m1").returncode == 0
    finally:
        holder.kill()
        holder.wait()


def test_poststart_hooks_run_after_the_process_is_executed(pyc, bundle, tmp_path):
    """runtime-tools' poststart: the hook sees the user's program, not the runtime's process before execve."""
    out = tmp_path / "exe"
    # The hook reads the state (pid) on stdin and records what that process runs.
    script = f"pid=$(sed -n 's/.*\"pid\": *\\([0-9]*\\).*/\\1/p'); readlink /proc/$pid/exe > {out}"

    def mutate(c: dict) -> None:
        hook = {"path": "/bin/sh", "args": ["sh", "-c", script], "env": ["PATH=/usr/bin:/bin"]}
        c["hooks"] = {"poststart": [hook]}

    write_config(bundle, ["sleep", "60"], mutate)
    for i in range(5):  # the hook and the execve race without the wait: a few rounds show it
        assert pyc.leaving("create", "--bundle", str(bundle), f"ps{i}").returncode == 0
        assert pyc("start", f"ps{i}").returncode == 0
        assert out.read_text().strip().endswith("busybox"), out.read_text()
        assert pyc("delete", "--force", f"ps{i}").returncode == 0


def test_a_created_process_is_named_until_it_executes(pyc, bundle):
    """Between create and start, ps shows what the waiting process is (set through python-prctl), not
    the interpreter's name; start executes the command, which takes its own."""
    write_config(bundle, ["sleep", "60"])
    assert pyc.leaving("create", "--bundle", str(bundle), "n1").returncode == 0
    pid = state(pyc, "n1")["pid"]
    with open(f"/proc/{pid}/comm") as f:
        assert f.read() == "pycontain-start\n"
    assert pyc("start", "n1").returncode == 0
    assert wait_until(lambda: open(f"/proc/{pid}/comm").read() == "sleep\n")
    assert pyc("delete", "--force", "n1").returncode == 0
