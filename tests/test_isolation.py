"""Isolation, as the kernel shows it: namespaces, PID 1, processes, network, filesystem escapes."""

from __future__ import annotations

import os

from conftest import ROOT_REQUIRED

pytestmark = ROOT_REQUIRED

NAMESPACES = ("pid", "mnt", "uts", "ipc", "net", "cgroup")


def test_namespaces_differ_from_the_hosts(pyc):
    script = "; ".join(f"echo {ns}=$(readlink /proc/self/ns/{ns})" for ns in NAMESPACES)
    p = pyc("run", "--rm", "default", "--", "sh", "-c", script)
    assert p.returncode == 0, p.stderr
    inside = dict(line.split("=", 1) for line in p.stdout.split())
    for ns in NAMESPACES:
        host = os.readlink(f"/proc/self/ns/{ns}")
        assert inside[ns].startswith(f"{ns}:["), inside
        assert inside[ns] != host, f"{ns} namespace is the host's"


def test_pid1_and_no_host_processes(pyc):
    p = pyc("run", "--rm", "default", "--", "sh", "-c", "echo $$; ls -d /proc/[0-9]*")
    lines = p.stdout.split()
    assert lines[0] == "1"
    pids = sorted(int(x.rsplit("/", 1)[1]) for x in lines[1:])
    # Only the shell (1) and its ls child: none of the host's hundreds of processes.
    assert len(pids) <= 2 and pids[0] == 1, pids
    assert str(os.getpid()) not in lines[1:]


def test_network_none_has_only_loopback_and_it_is_up(pyc):
    # --network none: the default (bridge) adds eth0, see tests/network.
    p = pyc(
        "run",
        "--rm",
        "--network",
        "none",
        "default",
        "--",
        "sh",
        "-c",
        "ls /sys/class/net; cat /sys/class/net/lo/operstate /sys/class/net/lo/flags",
    )
    out = p.stdout.split()
    assert out[0] == "lo" and len(out) == 3, out
    assert int(out[2], 16) & 1, "lo is not IFF_UP"
    # A ping to loopback works, so the interface really carries traffic.
    p = pyc("run", "--rm", "--network", "none", "default", "--", "ping", "-c", "1", "-W", "2", "127.0.0.1")
    assert p.returncode == 0, p.stdout + p.stderr


def test_default_network_is_a_namespace_of_its_own_with_eth0(pyc):
    script = "ls /sys/class/net; readlink /proc/self/ns/net"
    p = pyc("run", "--rm", "default", "--", "sh", "-c", script)
    assert p.returncode == 0, p.stderr
    *ifaces, ns = p.stdout.split()
    assert ifaces == ["eth0", "lo"], ifaces
    assert ns != os.readlink("/proc/self/ns/net")


def test_hostname_default_and_flag(pyc):
    p = pyc("run", "--name", "hn", "default", "--", "hostname")
    cid = pyc("inspect", "hn").stdout
    assert p.stdout.strip() and p.stdout.strip() in cid
    assert p.stdout.strip() != os.uname().nodename
    assert pyc("run", "--rm", "-h", "box", "default", "--", "hostname").stdout.strip() == "box"


def test_cannot_reach_host_filesystem(pyc, tmp_path):
    marker = tmp_path / "host-secret"
    marker.write_text("secret")
    host_path = str(marker)
    script = (
        f"cat {host_path} 2>/dev/null && echo LEAK-direct; "
        f"cat /../../..{host_path} 2>/dev/null && echo LEAK-dotdot; "
        f"cat /proc/1/root{host_path} 2>/dev/null && echo LEAK-proc1root; "
        "ls /proc/1/root/ | grep -q work && echo LEAK-work; "
        "cd / && cd .. && cd .. && ls | grep -q work && echo LEAK-cd; "
        "echo done"
    )
    p = pyc("run", "--rm", "default", "--", "sh", "-c", script)
    assert p.stdout.strip().splitlines() == ["done"], p.stdout


def test_no_host_fd_leaks_into_container(pyc, tmp_path):
    # An inheritable fd to a host directory, opened before pycontain pivots: it must not survive.
    fd = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)
    os.set_inheritable(fd, True)
    try:
        p = pyc(
            "run",
            "--rm",
            "default",
            "--",
            "sh",
            "-c",
            "ls /proc/self/fd; for f in /proc/self/fd/*; do readlink $f; done",
            pass_fds=(fd,),
        )
    finally:
        os.close(fd)
    fds = {int(x) for x in p.stdout.split() if x.isdigit()}
    assert fds <= {0, 1, 2, 3}, fds  # 3 is ls's own directory fd
    assert str(tmp_path) not in p.stdout


def test_only_safe_device_nodes(pyc):
    p = pyc("run", "--rm", "default", "--", "sh", "-c", "ls /dev; ls /dev/pts; mount | grep -c ' /dev/'")
    names = set(p.stdout.split())
    for required in (
        "null",
        "zero",
        "full",
        "random",
        "urandom",
        "tty",
        "console",
        "ptmx",
        "pts",
        "shm",
        "mqueue",
        "fd",
        "stdin",
        "stdout",
        "stderr",
    ):
        assert required in names, (required, names)
    assert not names & {"sda", "vda", "mem", "kmsg", "kvm"}, names


def test_proc_and_sys_are_read_only(pyc):
    p = pyc(
        "run",
        "--rm",
        "default",
        "--",
        "sh",
        "-c",
        "echo 1 > /proc/sys/kernel/panic 2>/dev/null && echo LEAK-proc; "
        "echo x > /sys/kernel/uevent_helper 2>/dev/null && echo LEAK-sys; "
        "grep -E ' /(proc|sys) ' /proc/mounts",
    )
    assert "LEAK" not in p.stdout, p.stdout
    for line in p.stdout.splitlines():
        assert " ro," in line or line.split()[3].startswith("ro"), line
