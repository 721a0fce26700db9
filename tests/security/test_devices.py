"""Device access rules: a container's root may mknod any node (CAP_MKNOD), but may only open the ones its
cgroup allows (docker's list). The nodes are made on a volume on the host's ext4 (the container's own root
has its upper layer on /run, which is nodev, so nodes made there never open at all and would prove nothing).

/dev/fuse (10:229) is the probe: harmless to open, and outside docker's default list."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from conftest import ROOT_REQUIRED

from pycontain.cgroups import detect_mode

pytestmark = ROOT_REQUIRED

FUSE = (10, 229)
OPEN_FUSE = "mknod /vol/fuse c 10 229 && (exec 3<>/vol/fuse) && echo opened; rm -f /vol/fuse"


@pytest.fixture
def vol(tmp_path):
    d = tmp_path / "vol"
    d.mkdir()
    return d


def run(pyc, vol, *opts: str, cmd: str = OPEN_FUSE) -> subprocess.CompletedProcess:
    return pyc(
        "run", "--rm", "--network", "none", "-v", f"{vol}:/vol", *opts, "default", "--", "sh", "-c", cmd
    )


@pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no fuse driver on this host")
def test_default_rules_refuse_devices_outside_dockers_list(pyc, vol) -> None:
    p = run(pyc, vol)
    assert "Operation not permitted" in p.stderr and "opened" not in p.stdout, (p.stdout, p.stderr)
    assert os.listdir(vol) == []


@pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no fuse driver on this host")
def test_privileged_opens_them(pyc, vol) -> None:
    p = run(pyc, vol, "--privileged")
    assert p.returncode == 0 and "opened" in p.stdout, p.stderr


def test_the_nodes_a_container_needs_still_work(pyc, vol) -> None:
    p = run(
        pyc,
        vol,
        "-t",
        cmd="echo x > /dev/null && head -c 8 /dev/urandom | wc -c && head -c 4 /dev/zero | wc -c "
        "&& tty >/dev/null && echo tty-ok && mknod /vol/n c 1 3 && echo y > /vol/n && echo node-ok",
    )
    assert p.returncode == 0 and p.stdout.split() == ["8", "4", "tty-ok", "node-ok"], (p.stdout, p.stderr)


def test_rules_are_in_the_cgroup(pyc) -> None:
    if detect_mode() == "unified":
        pytest.skip(
            "cgroup v2 keeps the rules in a BPF program, not in a devices.list (tests/test_cgroups.py)"
        )
    p = pyc.leaving("run", "-d", "--name", "devrules", "--network", "none", "default", "sleep", "60")
    assert p.returncode == 0, p.stderr
    try:
        pid = json.loads(pyc("inspect", "devrules").stdout)[0]["State"]["Pid"]
        with open(f"/proc/{pid}/cgroup") as f:
            rel = next(line.split(":", 2)[2].strip() for line in f if line.split(":")[1] == "devices")
        with open(f"/sys/fs/cgroup/devices{rel}/devices.list") as f:
            rules = f.read().split("\n")
        assert "c *:* m" in rules and "b *:* m" in rules and "c 1:3 rwm" in rules and "c 136:* rwm" in rules
        assert "a *:* rwm" not in rules and "c 10:229 rwm" not in rules
    finally:
        pyc("rm", "-f", "devrules")


@pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no fuse driver on this host")
def test_oci_linux_devices_nodes_are_allowed(pyc, tmp_path) -> None:
    import rootfs_builder
    from pycontain.spec import default_spec

    b = tmp_path / "bundle"
    b.mkdir()
    subprocess.run(["cp", "-a", rootfs_builder.resolve("default"), str(b / "rootfs")], check=True)
    cfg = default_spec(
        args=[
            "sh",
            "-c",
            "(exec 3<>/dev/fuse) && echo opened-listed; mknod /dev/loopctl c 10 237; "
            "(exec 3<>/dev/loopctl) && echo opened-unlisted",
        ]
    )
    cfg["process"]["terminal"] = False
    cfg["linux"]["devices"] = [
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o600}
    ]
    (b / "config.json").write_text(json.dumps(cfg))
    p = pyc("run", "--bundle", str(b), "devoci")
    assert "opened-listed" in p.stdout and "opened-unlisted" not in p.stdout, (p.stdout, p.stderr)
    assert "Operation not permitted" in p.stderr


def test_bad_device_rules_in_config_json(pyc, tmp_path) -> None:
    from pycontain.spec import default_spec

    b = tmp_path / "bundle"
    (b / "rootfs").mkdir(parents=True)
    cfg = default_spec(args=["true"])
    cfg["linux"]["resources"]["devices"] = [{"allow": "yes", "access": "rwm"}]
    (b / "config.json").write_text(json.dumps(cfg))
    p = pyc("create", "--bundle", str(b), "badrules")
    assert p.returncode == 125 and "linux.resources.devices[0].allow" in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and pyc.ids() == []
