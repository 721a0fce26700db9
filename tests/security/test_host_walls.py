"""The doors around the container: input that reaches pycontain from an OCI bundle, an image or another
local user must not change the host. Each test makes the attack, then looks at the host (a marker file, a
directory's contents and owner, a file's mode) as the kernel shows it.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess

import pytest
from conftest import ROOT_REQUIRED

import rootfs_builder
from pycontain.spec import default_spec

pytestmark = ROOT_REQUIRED


def _one_line_error(p: subprocess.CompletedProcess, *needles: str) -> None:
    assert p.returncode == 125, (p.returncode, p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def _rootfs(path) -> str:
    """A private copy of the default root filesystem (busybox)."""
    subprocess.run(["cp", "-a", rootfs_builder.resolve("default"), str(path)], check=True)
    return str(path)


def _bundle(tmp_path, args: list[str], mutate=None) -> str:
    b = tmp_path / "bundle"
    b.mkdir()
    _rootfs(b / "rootfs")
    cfg = default_spec()
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = args
    if mutate:
        mutate(cfg)
    (b / "config.json").write_text(json.dumps(cfg))
    return str(b)


# -- linux.sysctl -------------------------------------------------------------------------------------
def test_a_sysctl_key_naming_a_host_path_writes_nothing(pyc, tmp_path):
    """``net./tmp/x``: once joined to the container's /proc/sys, a path that restarts at the host's /."""
    marker = tmp_path / "marker"
    bundle = _bundle(tmp_path, ["true"], lambda c: c["linux"].update(sysctl={f"net.{marker}": "owned"}))
    p = pyc("run", "--bundle", bundle, "sysctl-path")
    _one_line_error(p, "linux.sysctl", "not a sysctl name")
    assert not marker.exists()


@pytest.mark.parametrize("key", ["net..ipv4.ip_forward", ".net.ipv4.ip_forward", "net.ipv4/../../x", "net."])
def test_malformed_sysctl_keys_are_refused(key):
    from pycontain.errors import ConfigError
    from pycontain.spec import parse

    cfg = default_spec()
    cfg["linux"]["sysctl"] = {key: "1"}
    with pytest.raises(ConfigError, match="not a sysctl name"):
        parse(cfg, "/nonexistent-bundle")


def test_sysctls_are_written_only_into_the_containers_proc(pyc, tmp_path):
    """A bundle that mounts no /proc, whose root file system has a plain file at proc/sys/net/ipv4/ip_forward:
    the sysctl must not become a write to that file (it is the bundle's, on the host)."""

    def no_proc(c):
        c["mounts"] = [m for m in c["mounts"] if m["destination"] != "/proc"]
        c["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}

    bundle = _bundle(tmp_path, ["true"], no_proc)
    fake = os.path.join(bundle, "rootfs", "proc", "sys", "net", "ipv4", "ip_forward")
    os.makedirs(os.path.dirname(fake))
    with open(fake, "w") as f:
        f.write("0\n")
    p = pyc("run", "--bundle", bundle, "sysctl-noproc")
    _one_line_error(p, "sysctl", "proc file system")
    with open(fake) as f:
        assert f.read() == "0\n"


# -- mounts over the root ------------------------------------------------------------------------------
def test_a_volume_through_an_image_symlink_to_root_is_refused(pyc, tmp_path):
    """``data -> /`` in the image and ``-v DIR:/data``: the volume would cover the whole root, and
    pycontain would then make dev, proc, sys and tmp in the host's DIR."""
    rootfs = _rootfs(tmp_path / "rootfs")
    os.symlink("/", os.path.join(rootfs, "data"))
    host_dir = tmp_path / "volume"
    host_dir.mkdir()
    p = pyc("run", "--rm", "--network", "none", "-v", f"{host_dir}:/data", rootfs, "true")
    _one_line_error(p, "'/data'", "container's root")
    assert os.listdir(host_dir) == []


def test_an_oci_mount_through_a_symlink_to_root_is_refused(pyc, tmp_path):
    host_dir = tmp_path / "volume"
    host_dir.mkdir()

    def bind(c):
        c["mounts"].append(
            {"destination": "/data", "type": "bind", "source": str(host_dir), "options": ["rbind", "rw"]}
        )

    bundle = _bundle(tmp_path, ["true"], bind)
    os.symlink("/", os.path.join(bundle, "rootfs", "data"))
    p = pyc("run", "--bundle", bundle, "mount-root")
    _one_line_error(p, "'/data'", "container's root")
    assert os.listdir(host_dir) == []


# -- what a container reads ----------------------------------------------------------------------------
def test_proc_interrupts_is_masked(pyc):
    with open("/proc/interrupts") as f:
        assert f.read()  # the host's counts: what a container could watch
    p = pyc("run", "--rm", "--network", "none", "default", "cat", "/proc/interrupts")
    assert p.returncode == 0 and p.stdout == "", (p.stdout[:200], p.stderr)


# -- state another local user could read or plant ------------------------------------------------------
def test_network_records_are_root_only(tmp_path):
    """Every container's name, address and ports: 0600 files in a 0700 directory (an older 0755 one too)."""
    from pycontain.network import ipam

    reg_dir = tmp_path / "networks"
    reg_dir.mkdir(mode=0o755)
    os.chmod(reg_dir, 0o755)
    reg = ipam.Registry(str(reg_dir))
    with reg.lock():
        reg.save(ipam.new_network("private", "pycx0", "10.250.0.0/24", internal=True))
    assert stat.S_IMODE(os.stat(reg_dir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(reg_dir / "private.json").st_mode) == 0o600


def _as_uid(uid: int, fn) -> str:
    """``fn()`` in a forked child running as ``uid`` (its own group too); what it returned or raised."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            try:
                out = f"ok {fn()}"
            except Exception as e:
                out = f"{type(e).__name__}: {e}"
            os.write(w, out.encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        out = f.read()
    os.waitpid(pid, 0)
    return out


VICTIM, ATTACKER = 61234, 65534


@pytest.fixture
def shared_tmp():
    """A directory like /tmp (sticky, open to all) that every user can reach (pytest's tmp_path is 0700)."""
    import tempfile

    d = tempfile.mkdtemp(prefix="pycontain-walls-", dir="/tmp")
    os.chmod(d, 0o1777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize("planted", ["directory", "symlink", "loose mode"])
def test_a_rootless_state_directory_planted_by_another_user_is_refused(shared_tmp, planted):
    """Another local user made the victim's state directory first (or a symlink by its name to a directory
    of theirs, or left it open to all): the victim's pycontain refuses it and puts nothing in it."""
    from pycontain import rootless

    state = os.path.join(shared_tmp, f"pycontain-{VICTIM}")
    trap = os.path.join(shared_tmp, "attacker")
    if planted == "directory":
        os.mkdir(state)
        os.chmod(state, 0o777)
        os.chown(state, ATTACKER, ATTACKER)
        trap = state
    elif planted == "symlink":
        os.mkdir(trap)
        os.chmod(trap, 0o777)
        os.chown(trap, ATTACKER, ATTACKER)
        os.symlink(str(trap), state)
        os.lchown(state, ATTACKER, ATTACKER)
    else:
        os.mkdir(state)
        os.chmod(state, 0o777)
        os.chown(state, VICTIM, VICTIM)
        trap = state
    out = _as_uid(VICTIM, lambda: rootless._private_dir(state))
    assert out.startswith("PermissionDenied") and "refusing" in out and state in out, out
    assert os.listdir(trap) == []


def test_a_rootless_state_directory_is_made_private(shared_tmp):
    from pycontain import rootless

    state = os.path.join(shared_tmp, f"pycontain-{VICTIM}")
    assert _as_uid(VICTIM, lambda: rootless._private_dir(state)) == "ok None"
    st = os.lstat(state)
    assert stat.S_ISDIR(st.st_mode) and st.st_uid == VICTIM and stat.S_IMODE(st.st_mode) == 0o700
