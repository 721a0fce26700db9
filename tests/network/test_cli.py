"""The command line: ``pycontain network ...`` and ``pycontain run --network/-p``.

``network`` commands are run through a prelude that imports ``pycontain.cli.network_cmds`` (which registers
them), so these tests work before and after cli/app.py imports it. ``run --network`` tests skip until
``pycontain run --help`` shows ``--network``.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from pycontain import network

from .conftest import assert_same, free_port, free_ports, needs_net, snapshot

pytestmark = needs_net

PRELUDE = "import sys; import pycontain.cli.network_cmds; from pycontain.cli import main; sys.exit(main(sys.argv[1:]))"


def net_cli(pyc, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", PRELUDE, "--root", pyc.root, "network", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_network_commands(pyc):
    name = f"cli{os.urandom(3).hex()}"
    p = net_cli(pyc, "create", name, "--subnet", "10.233.1.0/24")
    assert p.returncode == 0 and p.stdout.strip() == name, p.stderr
    try:
        p = net_cli(pyc, "ls")
        assert p.returncode == 0
        assert p.stdout.splitlines()[0].split()[:3] == ["NETWORK", "ID", "NAME"]
        row = next(line.split() for line in p.stdout.splitlines() if f" {name} " in line)
        assert row[2:6] == [f"pcn-{name}", "10.233.1.0/24", "10.233.1.1", "no"]
        assert name in net_cli(pyc, "ls", "-q").stdout.split()
        assert {n["name"] for n in json.loads(net_cli(pyc, "ls", "--json").stdout)} >= {"bridge", name}
        info = json.loads(net_cli(pyc, "inspect", name).stdout)[0]
        assert info["subnet"] == "10.233.1.0/24" and info["members"] == {}
        p = net_cli(pyc, "create", name)
        assert (
            p.returncode == 125
            and p.stderr.strip()
            == f"pycontain: network {name!r} already exists (see 'pycontain network inspect {name}')"
        )
        p = net_cli(pyc, "create", "other", "--subnet", "10.233.1.0/25")
        assert p.returncode == 125 and "overlaps network" in p.stderr and len(p.stderr.splitlines()) == 1
        p = net_cli(pyc, "create", "other", "--subnet", "banana")
        assert p.returncode == 125 and "invalid subnet 'banana'" in p.stderr
        p = net_cli(pyc, "inspect", "nope")
        assert p.returncode == 125 and "no such network: 'nope'" in p.stderr
    finally:
        p = net_cli(pyc, "rm", name)
    assert p.returncode == 0 and p.stdout.strip() == name, p.stderr
    p = net_cli(pyc, "rm", name, "bridge")
    assert p.returncode == 125 and "no such network" in p.stderr and "default network" in p.stderr
    assert net_cli(pyc, "gc").returncode == 0


def test_network_rm_in_use(pyc, fakes, network_name):
    name = network_name()
    fakes.new(name, name="holder")
    p = net_cli(pyc, "rm", name)
    assert p.returncode == 125
    assert (
        p.stderr == f"pycontain: network {name!r} is in use by container(s) holder: remove them first "
        "('pycontain rm -f ...')\n"
    )


# -- pycontain run --network (once the runtime is wired to pycontain.network) ---------------------------
def _run_has_network() -> bool:
    if os.geteuid() != 0:
        return False
    p = subprocess.run(
        [sys.executable, "-m", "pycontain", "run", "--help"], capture_output=True, text=True, timeout=60
    )
    return "--network" in p.stdout


wired = pytest.mark.skipif(not _run_has_network(), reason="'pycontain run' has no --network option yet")
HTTPD = "mkdir -p /tmp/w && echo hello-$(hostname) > /tmp/w/index.html && exec httpd -f -p 80 -h /tmp/w"


def http_get(host: str, timeout: int = 3) -> list[str]:
    """A container command that fetches http://HOST/ with busybox nc (its wget crashes in the default rootfs)."""
    return ["sh", "-c", f'printf "GET / HTTP/1.0\\r\\n\\r\\n" | nc -w {timeout} {host} 80']


def _ifaces(text: str) -> list[str]:
    """Interface names from /proc/net/dev."""
    return sorted(line.split(":")[0].strip() for line in text.splitlines() if ":" in line)


def _member_ip(net: str, container_name: str) -> str:
    info = network.inspect_network(net)
    return next(m["ip"] for m in info["members"].values() if m["container_name"] == container_name)


def _retry(fn, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        p = fn()
        if p.returncode == 0 or time.monotonic() > deadline:
            return p
        time.sleep(0.2)


@wired
def test_run_network_none_has_only_lo(pyc):
    p = pyc("run", "--rm", "--network", "none", "default", "--", "cat", "/proc/net/dev", check=True)
    assert _ifaces(p.stdout) == ["lo"]


def test_bridge_is_the_default_of_both_parsers():
    import typer

    from pycontain.cli.commandline import app
    from pycontain.cli.options import parse_run_args
    from pycontain.spec.docker import DEFAULT_NETWORK

    # Either parser leaves --network unset or gives the default; the docker road (spec.docker.network_for)
    # applies the same default to both.
    assert DEFAULT_NETWORK == "bridge"
    assert parse_run_args(["default", "true"])[0]["network"] in (None, DEFAULT_NETWORK)
    run = typer.main.get_command(app).commands["run"]
    assert next(p for p in run.params if p.name == "network").default in (None, DEFAULT_NETWORK)


def test_run_help_says_bridge_is_the_default():
    p = subprocess.run(
        [sys.executable, "-m", "pycontain", "run", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert p.returncode == 0
    text = " ".join(p.stdout.split())
    assert "bridge (the default" in text and "none (only lo)" in text


def _subnet() -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(os.environ["PYCONTAIN_BRIDGE_SUBNET"])


@wired
def test_plain_run_gets_eth0_on_the_default_network_and_rm_leaves_nothing(pyc, state_root):
    pyc("run", "--rm", "default", "--", "true", check=True)  # the bridge and the table exist from here on
    before = snapshot(state_root)
    p = pyc(
        "run",
        "--rm",
        "default",
        "--",
        "sh",
        "-c",
        "cat /proc/net/dev; echo ==; ip -o -4 addr show eth0; echo ==; ip route",
        check=True,
    )
    dev, addr, route = p.stdout.split("==\n")
    assert _ifaces(dev) == ["eth0", "lo"]
    ip, _, prefixlen = addr.split()[3].partition("/")
    subnet = _subnet()
    assert ipaddress.IPv4Address(ip) in subnet and int(prefixlen) == subnet.prefixlen, addr
    gateway = str(subnet.network_address + 1)
    assert f"default via {gateway} dev eth0" in route, route
    # After --rm: no veth, address, allocation, nft rule, namespace mount or file is left.
    assert pyc.ids() == []
    assert_same(before, snapshot(state_root))


@wired
def test_failed_runs_with_the_default_network_leave_nothing(pyc, state_root):
    pyc("run", "--rm", "default", "--", "true", check=True)
    before = snapshot(state_root)
    port = free_port()
    with socket.socket() as busy:  # a host process holds the port: refused inside attach
        busy.bind(("0.0.0.0", port))
        busy.listen()
        p = pyc("run", "-p", f"{port}:80", "default", "--", "true")
        assert p.returncode == 125 and "is in use by a process on the host" in p.stderr, p.stderr
        assert len(p.stderr.splitlines()) == 1
    # Refused once the network is wired: a working directory that is a file (the container's process fails
    # to enter it), a user the image lacks.
    for args in (["-w", "/etc/passwd"], ["-u", "nosuchuser"]):
        p = pyc("run", *args, "default", "--", "true")
        assert p.returncode == 125 and len(p.stderr.splitlines()) == 1, p.stderr
        assert "Traceback" not in p.stderr
    # The command cannot be found: the container ran (and is removed with --rm).
    p = pyc("run", "--rm", "default", "--", "/no/such/command")
    assert p.returncode == 127, p.stderr
    assert pyc.ids() == []
    assert_same(before, snapshot(state_root))


@wired
def test_publish_needs_no_network_flag_but_none_refuses_it(pyc):
    p = pyc("run", "--rm", "--network", "none", "-p", "8080:80", "default", "--", "true")
    assert p.returncode == 125 and "needs a bridge network" in p.stderr and len(p.stderr.splitlines()) == 1


@wired
def test_run_default_bridge(pyc):
    p = pyc(
        "run",
        "--rm",
        "--network",
        "bridge",
        "-h",
        "box",
        "default",
        "--",
        "sh",
        "-c",
        "cat /proc/net/dev; ip route; cat /etc/hostname; grep -c box /etc/hosts",
        check=True,
    )
    assert _ifaces(p.stdout) == ["eth0", "lo"]
    assert "default via " in p.stdout and "box\n" in p.stdout


@wired
def test_run_containers_talk_by_name_and_networks_are_isolated(pyc, network_name):
    n1, n2 = network_name(), network_name()
    pyc(
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        n1,
        "-h",
        "web",
        "default",
        "--",
        "sh",
        "-c",
        HTTPD,
        check=True,
    )
    p = _retry(lambda: pyc("run", "--rm", "--network", n1, "default", "--", *http_get("web")))
    assert p.returncode == 0 and p.stdout.endswith("\n\nhello-web\n"), p.stdout + p.stderr
    ip = _member_ip(n1, "web")
    assert "hello-web" in pyc("run", "--rm", "--network", n1, "default", "--", *http_get(ip)).stdout
    for other in (n2, "bridge"):
        p = pyc("run", "--rm", "--network", other, "default", "--", *http_get(ip, timeout=2))
        assert "hello-web" not in p.stdout


def _http(port: int) -> bytes:
    """GET / from 127.0.0.1:PORT, retried while the container's httpd starts."""
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=3) as r:
                return r.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@wired
def test_run_published_port_answers_on_host_loopback(pyc):
    port, port2 = free_ports(2)
    pyc(
        "run",
        "-d",
        "--name",
        "pub",
        "-h",
        "pub",
        "-p",
        f"127.0.0.1:{port}:80",  # the default network
        "--publish",
        f"{port2}:80",
        "default",
        "--",
        "sh",
        "-c",
        HTTPD,
        check=True,
    )
    for p in (port, port2):
        assert _http(p) == b"hello-pub\n"
    q = pyc("run", "--rm", "--network", "bridge", "-p", f"{port}:81", "default", "--", "true")
    assert q.returncode == 125 and "already published by container pub" in q.stderr
    pyc("rm", "-f", "pub", check=True)
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)


@wired
def test_run_publish_picks_free_host_ports(pyc):
    """-p CTRPORT and -p IP::CTRPORT (docker's): a free host port each, shown by port, ps and inspect, and
    answering on the host's loopback."""
    pyc("run", "-d", "--name", "picked", "-h", "picked", "-p", "80", "-p", "127.0.0.1::80", "default", "--",
        "sh", "-c", HTTPD, check=True)  # fmt: skip
    lines = pyc("port", "picked", check=True).stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("80/tcp -> ") for line in lines), lines
    any_ip, loopback = (line.split(" -> ")[1] for line in lines)
    assert any_ip.startswith("0.0.0.0:") and loopback.startswith("127.0.0.1:")
    ports = [int(where.rsplit(":", 1)[1]) for where in (any_ip, loopback)]
    assert all(p > 0 for p in ports) and ports[0] != ports[1]
    assert pyc("port", "picked", "80/tcp", check=True).stdout.splitlines() == [any_ip, loopback]
    row = pyc("ps", "--format", "{{.Names}} {{.Ports}}", check=True).stdout
    assert f"picked {any_ip}->80/tcp, {loopback}->80/tcp" in row
    info = json.loads(pyc("inspect", "picked", check=True).stdout)[0]
    assert info["NetworkSettings"]["Ports"] == {
        "80/tcp": [
            {"HostIp": "", "HostPort": str(ports[0])},
            {"HostIp": "127.0.0.1", "HostPort": str(ports[1])},
        ]
    }
    assert info["HostConfig"]["PortBindings"] == {
        "80/tcp": [{"HostIp": "", "HostPort": ""}, {"HostIp": "127.0.0.1", "HostPort": ""}]
    }
    for port in ports:
        assert _http(port) == b"hello-picked\n"
    # Taken now: another container asking for the same host port is refused.
    q = pyc("run", "--rm", "-p", f"{ports[1]}:81", "default", "--", "true")
    assert q.returncode == 125 and "already published by container picked" in q.stderr
    pyc("rm", "-f", "picked", check=True)


@wired
def test_run_publish_all_gives_each_exposed_port_a_free_host_port(tmp_path):
    """-P: every port the image exposes gets a host port picked as for -p CTRPORT, and answers there."""
    from images import cli, default_rootfs, make_oci_layout, remove_containers, tree_layer

    data, state, layout = str(tmp_path / "data"), str(tmp_path / "state"), str(tmp_path / "layout")
    config = {"Cmd": ["sh", "-c", HTTPD], "ExposedPorts": {"80/tcp": {}, "53/udp": {}}}
    make_oci_layout(layout, [tree_layer(default_rootfs())], config=config)
    try:
        assert cli(data, "import", layout, "exposing:1").returncode == 0
        p = cli(data, "run", "-d", "--name", "all", "-h", "all", "-P", "exposing:1", state_root=state)
        assert p.returncode == 0, p.stderr
        lines = sorted(cli(data, "port", "all", state_root=state).stdout.splitlines())
        assert [line.split(" -> ")[0] for line in lines] == ["53/udp", "80/tcp"], lines
        assert _http(int(lines[1].rsplit(":", 1)[1])) == b"hello-all\n"
    finally:
        remove_containers(state, data)


@wired
def test_an_exited_container_releases_its_address_and_host_ports(pyc):
    """As docker's: once PID 1 has exited, the container holds no veth, address or host port (another
    container may publish it), and 'start' attaches it again."""
    port = free_port()
    script = "test -e /again && exec sleep 300; touch /again"
    pyc("run", "-d", "--name", "brief", "-p", f"127.0.0.1:{port}:80", "default", "--", "sh", "-c", script,
        check=True)  # fmt: skip
    assert pyc("wait", "brief", check=True).stdout == "0\n"
    assert pyc("port", "brief", check=True).stdout == ""
    assert pyc("ps", "-a", "--format", "{{.Names}}:{{.Ports}}", check=True).stdout == "brief:\n"
    assert "brief" not in json.dumps(network.inspect_network("bridge")["members"])
    p = pyc("run", "--rm", "-p", f"127.0.0.1:{port}:80", "default", "--", "true")
    assert p.returncode == 0, p.stderr
    pyc("start", "brief", check=True)
    assert pyc("port", "brief", check=True).stdout == f"80/tcp -> 127.0.0.1:{port}\n"
    pyc("rm", "-f", "brief", check=True)


@wired
def test_run_network_container_shares_interfaces(pyc):
    pyc("run", "-d", "--name", "first", "--network", "bridge", "default", "--", "sleep", "60", check=True)
    own = pyc("exec", "first", "--", "ip", "-o", "-4", "addr", check=True).stdout
    p = pyc(
        "run", "--rm", "--network", "container:first", "default", "--", "ip", "-o", "-4", "addr", check=True
    )
    assert p.stdout == own and "eth0" in own


@wired
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--network", "nope"], "no such network: 'nope'"),
        (["--network", "container:"], "invalid --network"),
        (["--network", "a/b"], "invalid --network"),
        (["--network", "bridge", "-p", "0"], "invalid --publish"),
        (["--network", "bridge", "-p", "99999:80"], "invalid --publish"),
    ],
)
def test_run_bad_network_options(pyc, args, message):
    p = pyc("run", "--rm", *args, "default", "--", "true")
    assert p.returncode == 125 and message in p.stderr and len(p.stderr.splitlines()) == 1
    assert pyc.ids() == []


@wired
def test_run_cycles_and_concurrent_runs_leave_nothing(pyc, network_name, state_root):
    net = network_name()
    pyc(
        "run", "--rm", "--network", net, "default", "--", "true", check=True
    )  # the bridge exists from here on
    before = snapshot(state_root)
    for i in range(100):
        pyc(
            "run",
            "--rm",
            "--network",
            net,
            *(["-p", f"{free_ports(1)[0]}:80"] if i % 10 == 0 else []),
            "default",
            "--",
            "true",
            check=True,
        )
    procs = [pyc.popen("run", "--rm", "--network", net, "default", "--", "true") for _ in range(20)]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    assert pyc.ids() == []
    assert_same(before, snapshot(state_root))
