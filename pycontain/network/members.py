"""A container on a network: ``attach`` (namespace, veth, address, ports, files) and ``detach``."""

from __future__ import annotations

import os

from .. import trace
from ..errors import AlreadyExists, InvalidArgument, InvalidState
from . import settings
from .info import NetInfo, as_dict

# ports (published ports) and upkeep (netlink, nftables, pruning) are imported where they are needed: a
# claim from the warm pool without -p needs neither (each module loaded costs ``run`` ~0.1-0.3 ms).
TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from .netns import Background


def resolve_state_root(root: str | None) -> str:
    """The state root containers are kept in: the one ``StateStore`` picks (--root, $PYCONTAIN_ROOT, the
    default, the rootless default), so network records and leftovers are looked for where they are."""
    from ..state import StateStore  # on every run's path already (light: fastjson and errors)

    return StateStore(root).root


# -- helpers --------------------------------------------------------------------------------------------
def _check_id(container_id: str) -> None:
    if not container_id or "/" in container_id or "\0" in container_id or container_id in (".", ".."):
        raise InvalidArgument(f"invalid container id {container_id!r}")


def _veth_name(container_id: str) -> str:
    if len(container_id) == 64 and all(c in "0123456789abcdef" for c in container_id):
        return settings.veth_name(container_id)
    import hashlib

    return settings.veth_name(hashlib.sha256(container_id.encode()).hexdigest())


def _info(net: dict, m: dict) -> NetInfo:
    ports = m.get("ports")
    if ports:
        from .ports import PortSpec

    return NetInfo(
        m["container_id"],
        net["name"],
        net["bridge"],
        m["netns_path"],
        m["ip"],
        int(net["subnet"].rpartition("/")[2]),  # the registry holds it canonical: no ipaddress to import
        None if net.get("internal") else net["gateway"],
        m["mac"],
        m["veth_host"],
        [PortSpec.from_dict(p) for p in ports] if ports else [],
        bool(net.get("internal")),
        settings.files_dir(m["state_root"], m["container_id"]),
    )


def _write_files(net: dict, m: dict) -> None:
    """The container's hosts, resolv.conf and hostname, and every other member's hosts file rewritten."""
    from . import files

    d = settings.files_dir(m["state_root"], m["container_id"])
    os.makedirs(d, mode=0o755, exist_ok=True)
    content = container_files(_info(net, m), m.get("hostname"), m.get("container_name"), net)
    for fname in files.NAMES:
        files.write_in_place(os.path.join(d, fname), content[fname])
    files.refresh_hosts(net)


# -- attach / detach ----------------------------------------------------------------------------------
def attach(
    container_id: str,
    name: str = settings.DEFAULT_NETWORK,
    *,
    container_name: str,
    publish=(),
    hostname: str | None = None,
    state_root: str | None = None,
    extra_hosts=(),
    dns=(),
    dns_search=(),
) -> NetInfo:
    """Give container ``container_id`` (whose state directory must exist) a network namespace on network
    ``name``, with ``publish`` ([HOSTIP:]HOSTPORT:CTRPORT[/proto] strings or PortSpecs) DNATed to it.
    ``extra_hosts`` (NAME:IP, docker's --add-host) go into its hosts file; ``dns`` and ``dns_search``
    replace the host's nameservers and search domains in its resolv.conf.

    Writes ``<state root>/<id>/net/{hosts,resolv.conf,hostname}`` and updates the hosts file of every
    other member. On any failure everything already made is removed before the error propagates.
    On the default network a warm pool entry is taken when there is one (``pool.claim``: no netlink at
    all; published ports are checked and DNATed as for a namespace made here).
    """
    from . import ipam, pool

    _check_id(container_id)
    root = resolve_state_root(state_root)
    if not os.path.isdir(os.path.join(root, container_id)):
        raise InvalidState(
            f"container {container_id[:12]} has no state directory in {root}: attach it to a "
            "network after reserving it"
        )
    if name in ("none", "host") or name.startswith("container:"):
        raise InvalidArgument(
            f"network {name!r} is not a bridge network: the runtime handles it without attach()"
        )
    if publish:
        from .ports import PortSpec, parse_publish

    ports = [p if isinstance(p, PortSpec) else parse_publish(p) for p in publish]
    reg = ipam.Registry()
    # Checked again under the lock; here, before the namespace path (which would be this member's) is touched.
    _not_attached(container_id, container_name, reg.all())
    own = {
        "container_id": container_id,
        "container_name": container_name,
        "hostname": hostname,
        "state_root": root,
        "ports": [],
        "extra_hosts": list(extra_hosts),
        "dns": list(dns),
        "dns_search": list(dns_search),
    }
    if name in (settings.DEFAULT_NETWORK, "default") and root != pool.pool_dir():

        def published_ports(nets: list[dict]) -> list[dict]:
            from .ports import check_ports

            return [p.to_dict() for p in check_ports(ports, nets)]

        try:
            claimed = pool.claim(reg, own, _write_files, published_ports if ports else None)
        except BaseException:
            try:
                detach(container_id, None, root)  # whatever the claim recorded (nothing if refused)
            except Exception:
                pass
            raise
        if claimed is not None:
            trace.step("net: pool entry claimed")
            return _info(*claimed)
    from . import links, netns, rtnl
    from .ports import check_ports
    from .upkeep import load_network, prune, sync_nft

    path = settings.netns_path(root, container_id)
    netns.remove(path)  # a leftover of a crashed attach of this very id
    pending = netns.create_with_socket(path)  # made while the registry and the bridge are seen to
    recorded = False
    nl = None
    try:
        try:
            nl = rtnl.Rtnl()
            with reg.lock():
                prune(reg, nl)
                net = load_network(reg, nl, name)
                nets = reg.all()
                _not_attached(container_id, container_name, nets)
                if ports and net.get("internal"):
                    raise InvalidArgument(f"network {net['name']!r} is internal: it cannot publish ports")
                ports = check_ports(ports, nets)  # with the host ports picked for -p CTRPORT
                veth = _veth_name(container_id)
                if any(m["veth_host"] == veth for other in nets for m in other["members"].values()):
                    raise AlreadyExists(
                        f"veth name {veth} is taken: container ids clash in their first digits"
                    )
                ip = ipam.allocate(net)
                member = {
                    **own,
                    "ip": ip,
                    "mac": ipam.mac_for(ip),
                    "veth_host": veth,
                    "netns_path": path,
                    "ports": [p.to_dict() for p in ports],
                }
                net["members"][container_id] = member
                reg.save(net)
                recorded = True
                trace.step("net: address allocated")
                bridge_index = links.ensure_bridge(nl, net)
                trace.step("net: bridge checked")
                sync_nft(reg)
                trace.step("net: nftables synced")
            with rtnl.Rtnl(pending.wait()) as inner:  # type: ignore[arg-type]
                trace.step("net: namespace made")
                links.add_container_link(nl, inner, net, member, bridge_index)
                trace.step("net: veth on the bridge")
            if root != pool.pool_dir():
                # A pool entry has no name to list and no files: its claimer writes the container's.
                with reg.lock():
                    net = reg.load(net["name"]) or net
                    _write_files(net, member)
        except BaseException:
            netns.abandon(pending)
            try:
                if recorded:
                    detach(container_id, None, root, _nl=nl)
                else:
                    netns.remove(path)
            except Exception:
                pass
            raise
    finally:
        if nl is not None:
            nl.close()
    return _info(net, member)


def _not_attached(container_id: str, container_name: str, nets: list[dict]) -> None:
    for other in nets:
        if container_id in other["members"]:
            raise AlreadyExists(
                f"container {container_name} is already attached to network {other['name']!r}"
            )


def detach(
    container_id: str,
    info: dict | NetInfo | None = None,
    state_root: str | None = None,
    _nl=None,
    wait: bool = True,
) -> Background | None:
    """Remove everything ``attach`` made for the container: veth, namespace mount and file, address,
    published-port rules, its files; and drop it from the other members' hosts files. Idempotent; works
    from the container id alone (``info`` only adds paths a crashed attach may not have recorded).

    ``wait=False``: its files go at once, and the rest (the kernel removing the veth, then the address
    released: ~2-10 ms) in a thread while the caller goes on (``rm`` removes the container's own
    directory meanwhile); the caller must ``wait()`` for what it returns (None: nothing left to do) before
    it exits. Killed before, it leaves a member whose container is gone: pruned by the next attach or gc.
    Not a detached process: forking the caller (copy-on-write faults in the caller, the child's work on
    the same CPUs) cost ``rm`` more than the wait it saved: the veth is mostly gone by the time the
    container's directory is.
    """
    from . import files, ipam

    _check_id(container_id)
    root = resolve_state_root(state_root)
    d = as_dict(info)
    reg = ipam.Registry()
    records = [m for net in reg.all() for cid, m in net["members"].items() if cid == container_id]
    veths = {_veth_name(container_id)} | {m["veth_host"] for m in records}
    if d.get("veth_host"):
        veths.add(d["veth_host"])
    paths = {settings.netns_path(root, container_id)} | {
        m["netns_path"] for m in records if m.get("netns_path")
    }
    if d.get("netns_path"):
        paths.add(d["netns_path"])
    files.remove(settings.files_dir(root, container_id))
    if not (records or d or any(os.path.lexists(p) for p in paths)):
        return None

    def release() -> None:
        _remove_links_and_namespaces(sorted(veths), sorted(paths), _nl)
        if records:
            _forget(reg, container_id)

    if wait:
        release()
        return None
    from .netns import Background

    return Background(release)


def _forget(reg, container_id: str) -> None:
    """Drop the container from the registry (its address, ports) and from the other members' hosts files."""
    from .files import refresh_hosts

    with reg.lock():
        nets = reg.all()
        changed = [net for net in nets if container_id in net["members"]]
        # Only published ports name a container in the nftables table: without any, it is unchanged. Its
        # rules go first, its records after: killed in between, the records lead the next detach (or gc)
        # to the rest, whereas records gone first would leave rules that nothing names any more.
        ported = any(net["members"][container_id].get("ports") for net in changed)
        for net in changed:
            del net["members"][container_id]
        if ported:
            from .upkeep import sync_nft

            sync_nft(reg, nets=nets)
        for net in changed:
            reg.save(net)
        for net in changed:
            refresh_hosts(net)


# How long a veth may take to go with its namespace before it is deleted here (see below).
VETH_GRACE_S = 0.3


def _remove_links_and_namespaces(veths: list[str], paths: list[str], nl=None) -> None:
    """Unmount the namespaces, and return once the veths are gone from the host.

    Unmounted, a container's namespace goes as soon as nothing else holds it (its processes are dead by
    now), and the kernel removes its eth0, and so the veth, in a worker of its own: waiting for that costs
    ~10 ms, deleting the veth here ~20 (the deletion waits for RCU grace periods in the caller). A veth
    still there after VETH_GRACE_S (its namespace held by a container that joined it with
    --network container:, or by any other process) is deleted here. Either way it is gone when this
    returns, before its address can be handed out again.

    The veths are looked up by name with if_nametoindex, not netlink: pyroute2's message modules (15-40 ms
    to import) are loaded only for a veth that outlives its grace period.
    """
    import _socket  # not socket: see rtnl

    from . import netns, rtnl

    with rtnl.LinkWatch() as watch:  # before anything goes: no removal is missed
        present = {}
        for v in veths:
            try:
                present[_socket.if_nametoindex(v)] = v
            except OSError:
                continue  # no such device (ENODEV): nothing to wait for
        for p in paths:
            netns.remove(p)
        left = watch.wait_gone(set(present), VETH_GRACE_S) if present else set()
    if not left:
        return
    own = nl is None
    nl = nl or rtnl.Rtnl()
    try:
        nl.call(*(rtnl.del_link(present[i]) for i in sorted(left)))
    finally:
        if own:
            nl.close()


def container_files(
    info: dict | NetInfo, hostname: str | None, container_name: str | None, _net: dict | None = None
) -> dict[str, str]:
    """The contents of the container's ``hosts``, ``resolv.conf`` and ``hostname`` files: its own names
    and every other member's in hosts; the host's resolvers minus loopback ones."""
    from . import files, ipam

    d = as_dict(info)
    net = _net if _net is not None else (ipam.Registry().load(d["network"]) or {"members": {}})
    record = net["members"].get(d["container_id"]) or {}
    own = {
        "container_id": d["container_id"],
        "ip": d["ip"],
        "hostname": hostname,
        "container_name": container_name,
        "extra_hosts": record.get("extra_hosts") or [],
    }
    members = [m for m in net["members"].values() if m["container_id"] != own["container_id"]] + [own]
    return {
        "hosts": files.hosts(own, members),
        "resolv.conf": files.resolv_conf(dns=record.get("dns"), search=record.get("dns_search")),
        "hostname": (hostname or container_name or d["container_id"][:12]) + "\n",
    }
