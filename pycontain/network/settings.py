"""Where networking keeps its records and what it names things: one place, overridable from the environment.

Bridges, subnets and the nftables table are host-wide, so the registry of networks (definitions and
address allocations) is too: every state root (``--root``) and every image store (``PYCONTAIN_DATA``)
shares it, and two of them can never be handed the same address on the same bridge, nor render the table
without each other's rules. Container-side files live in the container's own state directory.

========================  ==================================  ============================================
environment variable      default                             what
========================  ==================================  ============================================
PYCONTAIN_NETWORKS_DIR    ``/var/lib/pycontain/networks``     one ``<network>.json`` per network + ``.lock``
                          (whatever ``PYCONTAIN_DATA`` says)
PYCONTAIN_BRIDGE          ``pycontain0``                      the default network's bridge device
PYCONTAIN_BRIDGE_SUBNET   10.88.0.0/16 (the next free one     the default network's subnet
                          when a host route overlaps it)
PYCONTAIN_NFT_TABLE       ``pycontain``                       pycontain's nftables table (family ``ip``)
========================  ==================================  ============================================
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (every run imports this module)
if TYPE_CHECKING:
    from collections.abc import Iterator

DEFAULT_NETWORK = "bridge"
DEFAULT_REGISTRY = "/var/lib/pycontain/networks"
DEFAULT_SUBNET = "10.88.0.0/16"
# Tried in order for the default network when 10.88.0.0/16 overlaps a host route or another network.
DEFAULT_SUBNET_FALLBACKS = tuple(f"172.{n}.0.0/16" for n in range(20, 32))
RESERVED_NAMES = frozenset({"none", "host", "bridge", "default", "container"})
VETH_PREFIX = "pcv"  # + the first 12 hex digits of the container id: 15 characters, the kernel's limit
MTU = 1500


def user_subnet_pool() -> Iterator[str]:
    """Where user networks without --subnet go: the first free /24 of these (podman's pool, then the next
    ones). A generator: every 'pycontain run' imports this module, and needs none of the 2816."""
    return (f"10.{a}.{b}.0/24" for a in range(89, 100) for b in range(256))


def registry_dir() -> str:
    d = os.environ.get("PYCONTAIN_NETWORKS_DIR")
    if d:
        return os.path.abspath(d)
    # Not beneath PYCONTAIN_DATA: a second image store still shares pycontain0 and the nftables table.
    return DEFAULT_REGISTRY


def pool_dir() -> str:
    """The default network's warm pool (``pool``): here, for ``upkeep`` to tell its entries apart without
    importing the pool, which imports ``upkeep``."""
    return os.path.join(registry_dir(), "netpool")


def default_bridge() -> str:
    return os.environ.get("PYCONTAIN_BRIDGE") or "pycontain0"


def configured_subnet() -> str | None:
    return os.environ.get("PYCONTAIN_BRIDGE_SUBNET") or None


def nft_table() -> str:
    return os.environ.get("PYCONTAIN_NFT_TABLE") or "pycontain"


def netns_path(root: str, container_id: str) -> str:
    return os.path.join(root, "netns", container_id)


def files_dir(root: str, container_id: str) -> str:
    return os.path.join(root, container_id, "net")


def veth_name(container_id: str) -> str:
    return VETH_PREFIX + container_id[:12]
