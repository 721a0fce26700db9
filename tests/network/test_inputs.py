"""Parsing and validation that need no privileges: -p specs, --network values, generated files."""

from __future__ import annotations

import pytest

from pycontain import network
from pycontain.errors import InvalidArgument, NotFound
from pycontain.network import PortSpec, files, ipam, nft


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        ("8080:80", PortSpec(8080, 80, "tcp", "")),
        ("8080:80/tcp", PortSpec(8080, 80, "tcp", "")),
        ("5353:53/udp", PortSpec(5353, 53, "udp", "")),
        ("127.0.0.1:8080:80", PortSpec(8080, 80, "tcp", "127.0.0.1")),
        ("0.0.0.0:1:65535/udp", PortSpec(1, 65535, "udp", "")),
        # docker's forms for a free host port, picked when the container is attached: host port 0 here
        ("80", PortSpec(0, 80, "tcp", "")),
        ("53/udp", PortSpec(0, 53, "udp", "")),
        ("127.0.0.1::80", PortSpec(0, 80, "tcp", "127.0.0.1")),
        ("0.0.0.0::80/tcp", PortSpec(0, 80, "tcp", "")),
    ],
)
def test_parse_publish(spec, want):
    assert network.parse_publish(spec) == want
    assert PortSpec.from_dict(want.to_dict()) == want


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "0",
        "a",
        "80/sctp",
        "::80",
        ":80",
        "127.0.0.1::0",
        "a:80",
        "80:b",
        "0:80",
        "80:0",
        "65536:80",
        "80:80/sctp",
        "80:80/",
        "1.2.3:80:80",
        "[::1]:80:80",
        "localhost:80:80",
        "1:2:3:4",
        "8080:-80",
        " 80:80",
    ],
)
def test_parse_publish_rejects(spec):
    with pytest.raises(InvalidArgument) as e:
        network.parse_publish(spec)
    assert "\n" not in str(e.value) and "publish" in str(e.value)


def test_port_clashes():
    a = PortSpec(80, 80)
    assert a.clashes(PortSpec(80, 81))
    assert a.clashes(PortSpec(80, 81, host_ip="127.0.0.1"))
    assert not a.clashes(PortSpec(80, 80, "udp"))
    assert not PortSpec(80, 80, host_ip="127.0.0.1").clashes(PortSpec(80, 80, host_ip="127.0.0.2"))


def test_resolve_mode(tmp_path, monkeypatch):
    monkeypatch.setenv("PYCONTAIN_NETWORKS_DIR", str(tmp_path))
    assert network.resolve_mode("none") == ("none", None)
    assert network.resolve_mode("host") == ("host", None)
    assert network.resolve_mode("bridge") == ("bridge", "bridge")
    assert network.resolve_mode("default") == ("bridge", "bridge")
    assert network.resolve_mode("container:web") == ("container", "web")
    for bad in ("container:", "container:../x", "", "-x", "a/b", "x y"):
        with pytest.raises(InvalidArgument):
            network.resolve_mode(bad)
    with pytest.raises(NotFound, match="no such network: 'nope'"):
        network.resolve_mode("nope")
    ipam.Registry().save(ipam.new_network("mine", "pcn-mine", "10.97.0.0/24", False))
    assert network.resolve_mode("mine") == ("bridge", "mine")


@pytest.mark.parametrize(
    "subnet",
    [
        "10.0.0.0/33",
        "10.1.2.3/24",
        "fd00::/64",
        "127.0.0.0/8",
        "10.0.0.0/30",
        "10.0.0.0/7",
        "nonsense",
        "169.254.0.0/16",
        "224.0.0.0/8",
    ],
)
def test_bad_subnets(subnet):
    with pytest.raises(InvalidArgument, match="invalid subnet"):
        ipam.parse_subnet(subnet)


def test_allocator_skips_taken_and_reserved():
    net = ipam.new_network("n", "pcn-n", "10.97.0.0/29", False)
    got = []
    for i in range(5):
        ip = ipam.allocate(net)
        got.append(ip)
        net["members"][str(i)] = {"ip": ip}
    assert got == ["10.97.0.2", "10.97.0.3", "10.97.0.4", "10.97.0.5", "10.97.0.6"]
    with pytest.raises(Exception, match="no free address"):
        ipam.allocate(net)
    del net["members"]["1"]
    assert ipam.allocate(net) == "10.97.0.3"
    assert ipam.mac_for("10.97.0.3") == "02:42:0a:61:00:03"


def test_overlap():
    nets = [ipam.new_network("a", "pcn-a", "10.97.0.0/24", False)]
    assert "network 'a'" in ipam.overlap(ipam.parse_subnet("10.97.0.128/25"), nets, [])
    assert "route 10.0.0.0/8 dev eth9" in ipam.overlap(
        ipam.parse_subnet("10.98.0.0/24"), [], [("10.0.0.0/8", "eth9")]
    )
    assert ipam.overlap(ipam.parse_subnet("10.98.0.0/24"), nets, [("10.97.0.0/16", "x")]) is None


def test_hosts_file():
    own = {"container_id": "a" * 64, "ip": "10.97.0.2", "hostname": "web", "container_name": "web"}
    other = {"container_id": "b" * 64, "ip": "10.97.0.10", "hostname": "h2", "container_name": "db"}
    third = {"container_id": "c" * 64, "ip": "10.97.0.3", "hostname": None, "container_name": "cache"}
    text = files.hosts(own, [own, other, third])
    lines = text.splitlines()
    assert lines[0] == "127.0.0.1\tlocalhost"
    assert lines[-3:] == ["10.97.0.2\tweb", "10.97.0.3\tcache", "10.97.0.10\th2 db"]


def test_resolv_conf_drops_loopback(tmp_path):
    src = tmp_path / "resolv.conf"
    src.write_text(
        "# comment\nnameserver 127.0.0.53\nnameserver 10.1.1.1\nnameserver ::1\nsearch example.org\n"
        "options ndots:2\n"
    )
    assert (
        files.resolv_conf(str(src)) == "# comment\nnameserver 10.1.1.1\nsearch example.org\noptions ndots:2\n"
    )


@pytest.mark.parametrize(
    "addr",
    [
        "127.0.0.1",
        "127.0.0.53",
        "127.255.255.255",
        "10.1.1.1",
        "0.0.0.0",
        "255.255.255.255",
        "0127.0.0.1",
        "127.00.0.1",
        "127.0.0.256",
        "1.2.3",
        "1.2.3.4.5",
        "127..0.1",
        "+127.0.0.1",
        "127.0.0.1 ",
        "\u0661\u0662\u0667.0.0.1",
        "",
        "abc",
        "::1",
        "0:0:0:0:0:0:0:1",
        "::1%lo",
        "fe80::1%eth0",
        "::ffff:127.0.0.1",
        "::127.0.0.1",
        "2001:db8::1",
    ],
)
def test_loopback_nameservers_are_what_inet_pton_calls_loopback(addr):
    """resolv.conf's loopback check parses dotted quads itself (a claim does not load _socket): the same
    answer as inet_pton's, for the forms it rejects too (leading zeros, non-ASCII digits, IPv6 forms)."""
    import socket

    host = addr.split("%")[0]
    try:
        want = socket.inet_pton(socket.AF_INET, host)[0] == 127
    except OSError:
        try:
            want = socket.inet_pton(socket.AF_INET6, host) == bytes(15) + b"\x01"
        except OSError:
            want = False
    assert files._is_loopback(addr) is want


def test_write_in_place_keeps_inode(tmp_path):
    p = tmp_path / "hosts"
    files.write_in_place(str(p), "a long first version\n")
    ino = p.stat().st_ino
    files.write_in_place(str(p), "short\n")
    assert p.read_text() == "short\n" and p.stat().st_ino == ino


def test_nft_render_is_whole_table():
    nets = [
        ipam.new_network("bridge", "pyc0", "10.97.0.0/16", False),
        ipam.new_network("i", "pcn-i", "10.98.0.0/24", True),
    ]
    nets[0]["members"]["x" * 64] = {"ip": "10.97.0.2", "ports": [PortSpec(8080, 80).to_dict()]}
    cmds = nft.render("t", nets)
    assert [next(iter(c)) for c in cmds[:3]] == ["add", "delete", "add"]
    text = repr(cmds)
    assert "'masquerade'" in text and "'dnat': {'addr': '10.97.0.2', 'port': 80}" in text
    # the internal network is neither masqueraded nor reachable through the forward chain
    masq = [c for c in cmds if "rule" in c.get("add", {}) and c["add"]["rule"]["chain"] == "postrouting"]
    assert all("10.98.0.0" not in repr(c) and "pcn-i" not in repr(c) for c in masq)
    assert nft.render("t", []) == cmds[:2]
