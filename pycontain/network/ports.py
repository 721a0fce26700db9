"""Published ports: ``--publish`` parsed (``PortSpec``), and checked against other containers and the host."""

from __future__ import annotations

from ..errors import AlreadyExists, InvalidArgument


# -- published ports ----------------------------------------------------------------------------------
class PortSpec:
    """One published port: ``host_ip`` ("" for every address of the host), host port → container port."""

    __slots__ = ("host_ip", "host_port", "container_port", "proto")

    def __init__(self, host_port: int, container_port: int, proto: str = "tcp", host_ip: str = "") -> None:
        self.host_ip = host_ip
        self.host_port = host_port
        self.container_port = container_port
        self.proto = proto

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__slots__}

    @classmethod
    def from_dict(cls, d: dict) -> PortSpec:
        return cls(int(d["host_port"]), int(d["container_port"]), d.get("proto", "tcp"), d.get("host_ip", ""))

    def clashes(self, other: PortSpec) -> bool:
        return (
            self.proto == other.proto
            and self.host_port == other.host_port
            and (not self.host_ip or not other.host_ip or self.host_ip == other.host_ip)
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PortSpec) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(tuple(self.to_dict().values()))

    def __str__(self) -> str:
        return f"{self.host_ip or '0.0.0.0'}:{self.host_port}->{self.container_port}/{self.proto}"

    __repr__ = __str__


def _port(text: str, spec: str, what: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
        raise InvalidArgument(
            f"invalid --publish {spec!r}: {what} port {text!r} must be a number from 1 to 65535"
        )
    return int(text)


def parse_publish(spec: str) -> PortSpec:
    """``[HOSTIP:]HOSTPORT:CTRPORT[/tcp|/udp]`` → PortSpec (docker's -p without ranges or random ports)."""
    if not isinstance(spec, str) or not spec:
        raise InvalidArgument("invalid --publish '': expected [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|/udp]")
    body, slash, proto = spec.partition("/")
    if slash and proto not in ("tcp", "udp"):
        raise InvalidArgument(f"invalid --publish {spec!r}: the protocol must be tcp or udp, not {proto!r}")
    parts = body.split(":")
    if len(parts) == 2:
        host_ip, host, ctr = "", *parts
    elif len(parts) == 3:
        host_ip, host, ctr = parts
        if host_ip.startswith("["):
            raise InvalidArgument(f"invalid --publish {spec!r}: IPv6 host addresses are not supported")
        import ipaddress

        try:
            ipaddress.IPv4Address(host_ip)
        except ValueError:
            raise InvalidArgument(f"invalid --publish {spec!r}: {host_ip!r} is not an IPv4 address") from None
        if host_ip == "0.0.0.0":
            host_ip = ""
    else:
        raise InvalidArgument(
            f"invalid --publish {spec!r}: expected [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|/udp], "
            "e.g. 8080:80 or 127.0.0.1:8080:80/tcp"
        )
    return PortSpec(_port(host, spec, "host"), _port(ctr, spec, "container"), proto or "tcp", host_ip)


def _port_free(p: PortSpec) -> None:
    """Fail unless a host process could bind the port: DNAT would silently steal its traffic."""
    import errno
    import socket

    kind = socket.SOCK_STREAM if p.proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as s:
        if kind == socket.SOCK_STREAM:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((p.host_ip or "0.0.0.0", p.host_port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise AlreadyExists(
                    f"cannot publish {p}: host port {p.host_port}/{p.proto} is in use by a process "
                    "on the host (choose another host port)"
                ) from None
            if e.errno == errno.EADDRNOTAVAIL:
                raise InvalidArgument(
                    f"cannot publish {p}: {p.host_ip} is not an address of this host"
                ) from None
            raise


def check_ports(ports: list[PortSpec], nets: list[dict]) -> None:
    for i, p in enumerate(ports):
        for q in ports[:i]:
            if p.clashes(q):
                raise InvalidArgument(f"host port {p.host_port}/{p.proto} is published twice ({q} and {p})")
        for net in nets:
            for m in net["members"].values():
                for d in m.get("ports", []):
                    if p.clashes(PortSpec.from_dict(d)):
                        raise AlreadyExists(
                            f"host port {p.host_port}/{p.proto} is already published by container "
                            f"{m.get('container_name') or m['container_id'][:12]} "
                            f"({PortSpec.from_dict(d)}): choose another host port"
                        )
        _port_free(p)
