"""``NetInfo``: what ``attach`` returns, everything ``detach`` and the runtime need, JSON-able."""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from .ports import PortSpec  # loaded only for a container that publishes ports (``run``'s start path)


# -- what attach returns ------------------------------------------------------------------------------
class NetInfo:
    """A container's place on a network: everything ``detach`` and the runtime need, JSON-able."""

    __slots__ = (
        "container_id",
        "network",
        "bridge",
        "netns_path",
        "ip",
        "prefixlen",
        "gateway",
        "mac",
        "veth_host",
        "ports",
        "internal",
        "files_dir",
    )

    def __init__(
        self,
        container_id: str,
        network: str,
        bridge: str,
        netns_path: str,
        ip: str,
        prefixlen: int,
        gateway: str | None,
        mac: str,
        veth_host: str,
        ports: list[PortSpec] | None = None,
        internal: bool = False,
        files_dir: str = "",
    ) -> None:
        self.container_id = container_id
        self.network = network
        self.bridge = bridge
        self.netns_path = netns_path
        self.ip = ip
        self.prefixlen = prefixlen
        self.gateway = gateway  # the default route's next hop; None on an internal network (no route out)
        self.mac = mac
        self.veth_host = veth_host
        self.ports = list(ports or [])
        self.internal = internal
        self.files_dir = files_dir  # holds hosts, resolv.conf and hostname, to bind-mount into /etc

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__slots__}
        d["ports"] = [p.to_dict() for p in self.ports]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> NetInfo:
        kw = {k: d[k] for k in cls.__slots__ if k in d}
        ports = d.get("ports")
        if ports:
            from .ports import PortSpec

            kw["ports"] = [p if isinstance(p, PortSpec) else PortSpec.from_dict(p) for p in ports]
        return cls(**kw)

    def __repr__(self) -> str:
        return f"NetInfo({self.to_dict()!r})"


def as_dict(info: dict | NetInfo | None) -> dict:
    if info is None:
        return {}
    return info.to_dict() if isinstance(info, NetInfo) else dict(info)
