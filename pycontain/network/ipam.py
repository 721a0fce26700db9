"""The network registry and address allocator: one JSON file per network, one flock for all of them.

``<registry>/<name>.json`` holds a network's definition and its members (container id → address, MAC,
veth, published ports, names, state root). Every change happens under ``<registry>/.lock``
(``fcntl.flock``), re-reading the files first, so concurrent runs never hand out one address twice; a
file is replaced atomically (written aside, renamed), so readers without the lock see a whole one.
"""

from __future__ import annotations

import fcntl
import os
import time

from .. import fastjson, fastos
from ..errors import InvalidArgument, PycontainError
from . import settings

# ipaddress (~2 ms to import) is imported by the functions that parse addresses: a warm pool's claim loads
# and saves the registry without them.
TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    import ipaddress

_NAME_FIRST = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_NAME_REST = _NAME_FIRST | frozenset("_.-")


def valid_network_name(name: str) -> bool:
    return 0 < len(name) <= 64 and name[0] in _NAME_FIRST and all(c in _NAME_REST for c in name[1:])


class Registry:
    def __init__(self, path: str | None = None) -> None:
        self.path = path or settings.registry_dir()

    def file(self, name: str) -> str:
        return os.path.join(self.path, name + ".json")

    def lock(self) -> _Flock:
        self._private_dir()
        return _Flock(os.path.join(self.path, ".lock"))

    def _private_dir(self) -> None:
        """The registry names every container, its address and its ports: root's alone (0700, files 0600;
        a directory an older pycontain made 0755 is closed too)."""
        os.makedirs(self.path, mode=0o700, exist_ok=True)
        if os.stat(self.path).st_mode & 0o777 != 0o700:
            os.chmod(self.path, 0o700)

    def load(self, name: str) -> dict | None:
        if not valid_network_name(name):
            return None
        try:
            with open(self.file(name)) as f:
                return fastjson.loads(f.read())
        except FileNotFoundError:
            return None
        except ValueError:
            raise PycontainError(f"the record of network {name!r} is damaged: {self.file(name)}") from None

    def all(self) -> list[dict]:
        try:
            names = sorted(
                n[:-5] for n in os.listdir(self.path) if n.endswith(".json") and not n.startswith(".")
            )
        except FileNotFoundError:
            return []
        nets = []
        for n in names:
            net = self.load(n)
            if net is not None:
                nets.append(net)
        return nets

    def save(self, net: dict) -> None:
        self._private_dir()
        path = self.file(net["name"])
        fastos.write_replace(path, (fastjson.dumps(net) + "\n").encode(), 0o600)

    def delete(self, name: str) -> None:
        try:
            os.unlink(self.file(name))
        except FileNotFoundError:
            pass


class _Flock:
    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> _Flock:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


def new_network(name: str, bridge: str, subnet: str, internal: bool, default: bool = False) -> dict:
    import ipaddress

    net = ipaddress.IPv4Network(subnet)
    return {
        "name": name,
        "id": os.urandom(32).hex(),
        "bridge": bridge,
        "subnet": str(net),
        "gateway": str(net.network_address + 1),
        "internal": internal,
        "default": default,
        "mtu": settings.MTU,
        "created": time.time(),
        "members": {},
    }


def parse_subnet(subnet: str) -> ipaddress.IPv4Network:
    import ipaddress

    try:
        net = ipaddress.ip_network(subnet, strict=True)
    except ValueError as e:
        raise InvalidArgument(f"invalid subnet {subnet!r}: {e} (expected e.g. 10.90.0.0/24)") from None
    if net.version != 4:
        raise InvalidArgument(f"invalid subnet {subnet!r}: only IPv4 subnets are supported")
    if not 8 <= net.prefixlen <= 29:
        raise InvalidArgument(f"invalid subnet {subnet!r}: the prefix length must be between /8 and /29")
    if net.is_loopback or net.is_multicast or net.is_link_local or net.is_unspecified:
        raise InvalidArgument(
            f"invalid subnet {subnet!r}: loopback, link-local and multicast ranges cannot be used"
        )
    return net


def allocate(net: dict) -> str:
    """The lowest free host address of the network (never the network, gateway or broadcast address)."""
    import ipaddress

    subnet = ipaddress.IPv4Network(net["subnet"])
    taken = {int(ipaddress.IPv4Address(m["ip"])) for m in net["members"].values()}
    taken.add(int(ipaddress.IPv4Address(net["gateway"])))
    for n in range(int(subnet.network_address) + 1, int(subnet.broadcast_address)):
        if n not in taken:
            return str(ipaddress.IPv4Address(n))
    raise PycontainError(
        f"network {net['name']!r} has no free address left in {net['subnet']} "
        "(remove containers, or create a network with a larger --subnet)"
    )


def mac_for(ip: str) -> str:
    """docker's scheme: 02:42 and the address's four bytes. One address, one MAC: a reused address keeps
    its MAC, so neighbours' ARP caches stay right."""
    import ipaddress

    return "02:42:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(ip).packed)


def overlap(subnet: ipaddress.IPv4Network, nets: list[dict], routes: list[tuple[str, str]]) -> str | None:
    """What ``subnet`` overlaps, in words: another network, or a host route; None if nothing."""
    import ipaddress

    for other in nets:
        if subnet.overlaps(ipaddress.IPv4Network(other["subnet"])):
            return f"network {other['name']!r} ({other['subnet']})"
    for dst, dev in routes:
        if subnet.overlaps(ipaddress.IPv4Network(dst, strict=False)):
            return f"the host's route {dst}" + (f" dev {dev}" if dev else "")
    return None
