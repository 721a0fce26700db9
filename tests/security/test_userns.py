"""User namespaces (``--userns``, OCI uidMappings/gidMappings) and time namespaces (OCI timeOffsets).

Root in a remapped container is uid 100000 on the host: the kernel's view is checked from both sides
(/proc/self/uid_map inside, /proc/PID/status and file owners outside), the image's layers appear owned by
root inside through idmapped mounts without being changed on disk, and host-root-only files stay closed."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from conftest import ROOT_REQUIRED

import rootfs_builder
from pycontain.errors import InvalidArgument, NotFound
from pycontain.spec import default_spec
from pycontain.userns import IdMappings, parse_mapping, resolve, subordinate, to_host

pytestmark = ROOT_REQUIRED
MAP = "0:100000:65536"


def run(pyc, *args: str, cmd: str) -> subprocess.CompletedProcess:
    return pyc("run", "--rm", "--network", "none", *args, "default", "--", "sh", "-c", cmd)


def test_root_inside_is_an_unprivileged_range_outside(pyc) -> None:
    p = run(
        pyc,
        "--userns",
        MAP,
        cmd="cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g; "
        "stat -c %u:%g /etc/passwd /bin/busybox; grep ^Uid /proc/self/status",
    )
    assert p.returncode == 0, p.stderr
    lines = [ln.split() for ln in p.stdout.strip().splitlines()]
    assert lines[0] == lines[1] == ["0", "100000", "65536"]
    assert lines[2:4] == [["0"], ["0"]]
    assert lines[4:6] == [["0:0"], ["0:0"]]  # the layers, shifted by idmapped mounts
    assert lines[6] == ["Uid:", "0", "0", "0", "0"]
    st = os.stat(os.path.join(rootfs_builder.resolve("default"), "etc", "passwd"))
    assert (st.st_uid, st.st_gid) == (0, 0)  # ...and unchanged on disk


def test_host_side_ids_and_files(pyc, tmp_path) -> None:
    secret = tmp_path / "vol" / "secret"
    secret.parent.mkdir()
    secret.write_text("host root only")
    secret.chmod(0o600)
    p = pyc.leaving(
        "run",
        "-d",
        "--name",
        "remapped",
        "--network",
        "none",
        "--userns",
        MAP,
        "-v",
        f"{secret.parent}:/vol",
        "default",
        "sh",
        "-c",
        "touch /made; sleep 60",
    )
    assert p.returncode == 0, p.stderr
    try:
        info = json.loads(pyc("inspect", "remapped").stdout)[0]
        with open(f"/proc/{info['State']['Pid']}/status") as f:
            uids = next(line.split()[1:] for line in f if line.startswith("Uid:"))
        assert uids == ["100000"] * 4
        made = os.path.join(pyc.root, info["Id"], "upper", "made")
        for _ in range(50):
            if os.path.exists(made):
                break
            __import__("time").sleep(0.05)
        st = os.stat(made)
        assert (st.st_uid, st.st_gid) == (100000, 100000)
        e = pyc("exec", "remapped", "sh", "-c", "cat /proc/self/uid_map; id -u; cat /vol/secret")
        assert e.stdout.split()[:4] == ["0", "100000", "65536", "0"] and "Permission denied" in e.stderr, e
        assert "host root only" not in e.stdout
    finally:
        pyc("rm", "-f", "remapped")
    with open("/proc/self/mountinfo") as f:
        assert "idmapped" not in f.read()


def test_capabilities_do_not_reach_the_hosts_namespaces(pyc) -> None:
    p = run(
        pyc,
        "--userns",
        MAP,
        "--cap-add",
        "SYS_ADMIN",
        "--security-opt",
        "seccomp=unconfined",
        cmd="mount -t tmpfs t /mnt && echo MOUNTED; hostname x && echo RENAMED; grep CapEff /proc/self/status",
    )
    assert "MOUNTED" not in p.stdout and "RENAMED" not in p.stdout, p.stdout
    assert "permission denied" in p.stderr.lower() or "not permitted" in p.stderr.lower()
    cap_eff = int(p.stdout.split()[-1], 16)
    assert cap_eff & (1 << 21)  # CAP_SYS_ADMIN is held, but only inside the user namespace


def test_low_ports_without_capabilities(pyc) -> None:
    p = run(
        pyc,
        "--userns",
        MAP,
        "--cap-drop",
        "ALL",
        cmd="cat /proc/sys/net/ipv4/ip_unprivileged_port_start; (nc -l -p 80 & sleep 0.3; kill $!) && echo bound",
    )
    assert p.stdout.split()[0] == "0" and "bound" in p.stdout, (p.stdout, p.stderr)


def test_bad_userns_values(pyc) -> None:
    for value, needle in (
        ("lots", "CONTAINER:HOST:SIZE"),
        ("0:100000:0", "SIZE"),
        ("0:4294967295:2", "ids go"),
    ):
        p = run(pyc, "--userns", value, cmd="true")
        assert p.returncode == 125 and needle in p.stderr and len(p.stderr.strip().splitlines()) == 1, (
            value,
            p.stderr,
        )
    assert pyc.ids() == []


def test_remap_reads_subordinate_ranges(tmp_path) -> None:
    sub = tmp_path / "subuid"
    sub.write_text("alice:100000:65536\npycontain:231072:65536\n")
    assert subordinate("pycontain", str(sub)) == (231072, 65536)
    with pytest.raises(NotFound, match=r"echo nobody:100000:65536 >> "):
        subordinate("nobody", str(sub))
    assert resolve("host") is None and resolve(None) is None
    assert resolve("0:1000:10") == IdMappings([(0, 1000, 10)], [(0, 1000, 10)])
    with pytest.raises(InvalidArgument):
        parse_mapping("1:2")
    assert to_host([(0, 1000, 10)], 3) == 1003 and to_host([(0, 1000, 10)], 10) == -1


def _bundle(tmp_path, args, mutate) -> str:
    b = tmp_path / "bundle"
    b.mkdir()
    subprocess.run(["cp", "-a", rootfs_builder.resolve("default"), str(b / "rootfs")], check=True)
    cfg = default_spec(args=args)
    cfg["process"]["terminal"] = False
    mutate(cfg)
    (b / "config.json").write_text(json.dumps(cfg))
    return str(b)


def test_oci_user_and_time_namespaces(pyc, tmp_path) -> None:
    def mutate(c):
        c["linux"]["namespaces"] += [{"type": "user"}, {"type": "time"}]
        c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
        c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 300000, "size": 65536}]
        c["linux"]["timeOffsets"] = {"boottime": {"secs": 864000, "nanosecs": 0}}

    b = _bundle(
        tmp_path, ["sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; cut -d. -f1 /proc/uptime"], mutate
    )
    with open("/proc/uptime") as f:
        host_up = float(f.read().split()[0])
    p = pyc("run", "--bundle", b, "nsoci")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.split("\n")
    assert lines[0].split() == ["0", "200000", "65536"] and lines[1].split() == ["0", "300000", "65536"]
    assert 864000 - 1 <= int(lines[2]) - host_up < 864000 + 60


def test_oci_mappings_without_a_user_namespace_are_refused(pyc, tmp_path) -> None:
    def mutate(c):
        c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 1}]
        c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 1}]

    b = _bundle(tmp_path, ["true"], mutate)
    p = pyc("create", "--bundle", b, "nouserns")
    assert p.returncode == 125 and "linux.uidMappings" in p.stderr and pyc.ids() == []
