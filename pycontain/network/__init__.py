"""Container networking: bridges, veth pairs, an address allocator, NAT and published ports, named networks.

A container on a bridge network gets a network namespace made *before* its process starts (as CNI does
for podman): a new namespace pinned by a bind mount on ``<state root>/netns/<container id>``, set up
through netlink (lo up; a veth pair with the host end on the network's bridge and the other end made
inside as ``eth0``; an address from the allocator; a default route via the bridge; the bridge's MTU).
The container's first process then joins it by path (``config.namespaces["network"] = info.netns_path``).

::

    info = network.attach(cid, "bridge", container_name="web", publish=["8080:80"], hostname="web")
    ...                                   # bind-mount info.files_dir/{hosts,resolv.conf,hostname} into /etc
    network.detach(cid, info)             # idempotent: veth, namespace, address, rules, files

Networks (``create_network``) are host-wide: one bridge each, a subnet that overlaps neither a host route
nor another network, isolated from one another by pycontain's nftables table (which also masquerades
their traffic out, except for ``internal`` ones, and DNATs published ports, for connections to the host's
own addresses too, 127.0.0.1 included). Members find each other by name through /etc/hosts, rewritten
in every member come and go.

Netlink requests are pyroute2 messages sent in batches by ``rtnl`` (which imports pyroute2's message
modules alone: ~15 ms, against ~85 ms for the ``pyroute2`` package), and only by the functions that
need them, so ``resolve_mode`` and ``parse_publish`` stay cheap on ``pycontain run``'s start path.
"""

from __future__ import annotations

from .. import lazy_exports

# Re-exported lazily: ``pycontain run`` needs ``mode`` (and ``members`` for a bridge), never the named
# networks' module; each module loaded costs start-up time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from .info import NetInfo
    from .leftovers import gc
    from .members import attach, container_files, detach
    from .mode import resolve_mode
    from .networks import create_network, inspect_network, list_networks, remove_network
    from .ports import PortSpec, parse_publish, published

_EXPORTS = {
    "NetInfo": "info",
    "PortSpec": "ports",
    "attach": "members",
    "container_files": "members",
    "create_network": "networks",
    "detach": "members",
    "gc": "leftovers",
    "inspect_network": "networks",
    "list_networks": "networks",
    "parse_publish": "ports",
    "published": "ports",
    "remove_network": "networks",
    "resolve_mode": "mode",
}
__all__ = [
    "NetInfo",
    "PortSpec",
    "attach",
    "container_files",
    "create_network",
    "detach",
    "gc",
    "inspect_network",
    "list_networks",
    "parse_publish",
    "published",
    "remove_network",
    "resolve_mode",
]


__getattr__ = lazy_exports(__name__, _EXPORTS)
