"""Published ports: ``--publish`` parsed (``PortSpec``), checked against other containers and the host, and
host ports picked for ``-p CTRPORT`` / ``-p IP::CTRPORT`` (host port 0 until ``attach`` picks one)."""

from __future__ import annotations

from ..errors import AlreadyExists, InvalidArgument

# typing.TYPE_CHECKING without importing typing; type checkers know the idiom.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from .info import NetInfo


# -- published ports ----------------------------------------------------------------------------------
class PortSpec:
    """One published port: ``host_ip`` ("" for every address of the host), host port → container port.

    ``host_port`` 0: any free one, picked when the container is attached (docker's ``-p 80``)."""

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


FORMS = "[HOSTIP:]HOSTPORT:CONTAINERPORT, HOSTIP::CONTAINERPORT or CONTAINERPORT, then [/tcp|/udp]"


def parse_publish(spec: str) -> PortSpec:
    """docker's ``-p`` forms (without ranges) → PortSpec: ``[HOSTIP:]HOSTPORT:CTRPORT``, and ``CTRPORT`` or
    ``HOSTIP::CTRPORT`` for a free host port (host_port 0), each with an optional ``/tcp`` or ``/udp``."""
    if not isinstance(spec, str) or not spec:
        raise InvalidArgument(f"invalid --publish '': expected {FORMS}")
    body, slash, proto = spec.partition("/")
    if slash and proto not in ("tcp", "udp"):
        raise InvalidArgument(f"invalid --publish {spec!r}: the protocol must be tcp or udp, not {proto!r}")
    parts = body.split(":")
    if len(parts) == 1:
        return PortSpec(0, _port(body, spec, "container"), proto or "tcp")
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
        if not host:  # HOSTIP::CTRPORT
            return PortSpec(0, _port(ctr, spec, "container"), proto or "tcp", host_ip)
    else:
        raise InvalidArgument(
            f"invalid --publish {spec!r}: expected {FORMS}, e.g. 8080:80, 127.0.0.1:8080:80/tcp or 80"
        )
    return PortSpec(_port(host, spec, "host"), _port(ctr, spec, "container"), proto or "tcp", host_ip)


def published(info: NetInfo | None) -> list[PortSpec]:
    """A container's published ports as bound (host ports picked for ``-p 80`` included), from its network
    attachment (``ContainerState.net_info``): none unless it is on its network (running, as docker shows them)."""
    return list(info.ports) if info is not None else []


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


# Tries at picking a free host port before giving up: the kernel's choice can be a port another container
# publishes already (DNAT binds no socket), rarely more than once in a row.
PICK_TRIES = 64


def _pick(p: PortSpec, taken: list[PortSpec]) -> PortSpec:
    """``p`` with a host port no host socket binds (the kernel's ephemeral choice) and none of ``taken``."""
    import socket

    kind = socket.SOCK_STREAM if p.proto == "tcp" else socket.SOCK_DGRAM
    for _ in range(PICK_TRIES):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind((p.host_ip or "0.0.0.0", 0))
            except OSError as e:
                raise InvalidArgument(
                    f"cannot publish {p.container_port}/{p.proto} on {p.host_ip}: {e.strerror}"
                ) from None
            picked = PortSpec(s.getsockname()[1], p.container_port, p.proto, p.host_ip)
        if not any(picked.clashes(q) for q in taken):
            return picked
    raise AlreadyExists(f"cannot publish {p.container_port}/{p.proto}: no free host port found")


def check_ports(ports: list[PortSpec], nets: list[dict]) -> list[PortSpec]:
    """``ports`` checked (none taken on the host or by another container, none twice), each host port 0
    replaced by a free one. Called under the registry's lock, so two containers never pick the same."""
    others = [
        (m, PortSpec.from_dict(d))
        for net in nets
        for m in net["members"].values()
        for d in m.get("ports", [])
    ]
    fixed = [p for p in ports if p.host_port]
    for i, p in enumerate(fixed):
        for q in fixed[:i]:
            if p.clashes(q):
                raise InvalidArgument(f"host port {p.host_port}/{p.proto} is published twice ({q} and {p})")
        for m, q in others:
            if p.clashes(q):
                raise AlreadyExists(
                    f"host port {p.host_port}/{p.proto} is already published by container "
                    f"{m.get('container_name') or m['container_id'][:12]} ({q}): choose another host port"
                )
        _port_free(p)
    taken = [q for _m, q in others] + fixed
    out = []
    for p in ports:
        if not p.host_port:
            p = _pick(p, taken)
            taken.append(p)
        out.append(p)
    return out
