"""rtnetlink through pyroute2's message classes, several requests per system call.

Every link, address and route request is a pyroute2 message (``ifinfmsg``, ``ifaddrmsg``, ``rtmsg``),
encoded and its replies decoded by pyroute2; this module only moves the bytes, on a plain
``NETLINK_ROUTE`` socket. Two reasons not to use pyroute2's ``IPRoute``:

- Importing the ``pyroute2`` package costs ~85 ms (its ``__init__`` loads every protocol it knows: asyncio,
  NDB, conntrack, IPVS, wireguard...), more than three whole container starts; ``IPRoute`` itself pulls
  asyncio (~50 ms). The message modules need ~15 ms. ``load()`` imports only them, beneath a stand-in for
  the package that runs the real ``__init__`` the first time anything asks it for a name of its own, so
  ``from pyroute2 import IPRoute`` elsewhere in the same process still works.
- ``IPRoute`` sends one request per call and runs an event loop for each; ``Rtnl.call`` sends a whole
  batch in one ``sendmsg`` (the kernel runs them in order) and reads every answer back.
"""

from __future__ import annotations

# The C module alone: ``socket`` costs 5-8 ms to import (selectors, enum), and ``rm`` of a container on a
# bridge (``LinkWatch``) needs nothing of it but the socket type and constants.
import _socket
import errno
import os
import struct
import sys

from ..errors import PycontainError, Unsupported
from ..libc import IFF_UP

TYPE_CHECKING = False  # typing costs ~3 ms at import: only mypy reads the import below
if TYPE_CHECKING:
    from typing import Any

SOL_NETLINK = 270
NETLINK_CAP_ACK = 10  # errors echo only the failed request's header, not the whole request
NETLINK_EXT_ACK = 11  # errors carry the kernel's own sentence ("Error: ... already exists")

NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300
NLM_F_EXCL, NLM_F_CREATE = 0x200, 0x400
NLM_F_ACK_TLVS = 0x200
NLMSG_ERROR, NLMSG_DONE = 2, 3
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_GETADDR = 20, 22
RTM_NEWROUTE, RTM_GETROUTE = 24, 26
RTEXT_FILTER_SKIP_STATS = 1 << 3  # IFLA_EXT_MASK: no counters in link answers (less to decode)
RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 3, 0, 1
_HDR = struct.Struct("=IHHII")  # struct nlmsghdr: length, type, flags, sequence number, port id

_classes: dict[int, type] = {}
_NetlinkError: type[Any] | None = None  # pyroute2's class, untyped: ``.code`` is the errno


# -- importing only what is needed -----------------------------------------------------------------------
def _lazy_package() -> None:
    """Put a stand-in for the ``pyroute2`` package in ``sys.modules`` (unless the real one is there), so
    importing its submodules skips the package's ``__init__``."""
    if "pyroute2" in sys.modules:
        return
    import importlib
    import importlib.machinery  # not importlib.util: it costs ~2 ms more (contextlib, functools...)
    import types

    spec = importlib.machinery.PathFinder.find_spec("pyroute2")
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        raise Unsupported(
            "pyroute2 is needed for container networking: install it in pycontain's environment "
            "('pip install pyroute2'), or run containers with --network none"
        )
    loader = spec.loader
    package = types.ModuleType("pyroute2")
    package.__spec__ = spec
    package.__loader__ = loader
    package.__file__ = spec.origin
    package.__path__ = list(spec.submodule_search_locations)
    package.__package__ = "pyroute2"

    def __getattr__(name: str) -> object:
        # 'from pyroute2 import config' inside pyroute2 asks the package for a submodule: import just that.
        if (
            name.isidentifier()
            and importlib.machinery.PathFinder.find_spec(f"pyroute2.{name}", package.__path__) is not None
        ):
            return importlib.import_module(f"pyroute2.{name}")
        # Anything else (IPRoute, NDB...) lives in the real __init__: run it now, in this very module.
        del package.__dict__["__getattr__"]
        loader.exec_module(package)
        return getattr(package, name)

    package.__getattr__ = __getattr__  # type: ignore[method-assign]
    sys.modules["pyroute2"] = package


def _lazy_config() -> None:
    """A stand-in for ``pyroute2.config`` holding what ``ifinfmsg`` reads of it at import (AF_BRIDGE, its
    extra plugin lists: empty), without the real module's imports (multiprocessing, platform: ~6 ms) and
    uname calls. Anything else asked of it runs the real module, in this very object (the plugin lists
    kept)."""
    if "pyroute2.config" in sys.modules:
        return
    import importlib.machinery
    import types

    package = sys.modules["pyroute2"]
    spec = importlib.machinery.PathFinder.find_spec("pyroute2.config", package.__path__)
    if spec is None or spec.loader is None:
        return  # importing it says what is wrong
    loader = spec.loader
    config = types.ModuleType("pyroute2.config")
    config.__spec__ = spec
    config.__loader__ = loader
    config.__file__ = spec.origin
    if spec.submodule_search_locations is not None:
        config.__path__ = list(spec.submodule_search_locations)
    config.__package__ = spec.parent
    plugins: dict[str, list] = {"data_plugins_pkgs": [], "data_plugins_path": []}
    vars(config).update(plugins, AF_BRIDGE=getattr(_socket, "AF_BRIDGE", 7))

    def __getattr__(name: str) -> object:
        del config.__dict__["__getattr__"]
        loader.exec_module(config)
        for key, values in plugins.items():
            getattr(config, key)[:0] = values
        return getattr(config, name)

    config.__getattr__ = __getattr__  # type: ignore[method-assign]
    sys.modules["pyroute2.config"] = config


def load() -> None:
    """Import pyroute2's rtnetlink message classes (once)."""
    global _NetlinkError
    if _classes:
        return
    import gc

    _lazy_package()
    _lazy_config()
    # The imports make thousands of objects (pyroute2 declares hundreds of classes) and nothing to free:
    # collecting between them is ~2 ms of wasted work.
    collecting = gc.isenabled()
    gc.disable()
    try:
        from pyroute2.netlink.exceptions import NetlinkError
        from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
        from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
        from pyroute2.netlink.rtnl.rtmsg import rtmsg
    finally:
        if collecting:
            gc.enable()

    class KernelRefused(NetlinkError, PycontainError):
        """A request the kernel refused: pyroute2's NetlinkError (``code`` is the errno), and a
        PycontainError whose text is one sentence, for whoever did not expect it."""

        def __str__(self) -> str:
            return str(self.args[1])

    _NetlinkError = KernelRefused
    _classes.update({RTM_NEWLINK: ifinfmsg, RTM_NEWADDR: ifaddrmsg, RTM_NEWROUTE: rtmsg})


def netlink_error() -> type[Any]:
    """What ``Rtnl.call`` raises: a pyroute2 NetlinkError (``.code`` is the errno) and a PycontainError."""
    load()
    assert _NetlinkError is not None
    return _NetlinkError


# -- requests ---------------------------------------------------------------------------------------------
class Request:
    """One message of a batch: after ``Rtnl.call``, ``replies`` holds what the kernel answered (decoded
    pyroute2 messages) and ``error`` the errno it refused it with (0: done)."""

    __slots__ = ("msg", "type", "flags", "ok", "replies", "error", "what")

    def __init__(self, msg: Any, msg_type: int, flags: int, ok: tuple[int, ...] = (), what: str = "") -> None:
        self.msg = msg
        self.type = msg_type
        self.flags = NLM_F_REQUEST | flags
        self.ok = ok  # errnos that are answers, not failures (EEXIST for "make sure it exists")
        self.replies: list = []
        self.error = 0
        self.what = what


def _link_msg(index: int = 0, flags: int = 0, change: int = 0, attrs: list | None = None):
    load()
    m = _classes[RTM_NEWLINK]()
    m["family"] = _socket.AF_UNSPEC
    m["index"] = index
    m["flags"] = flags
    m["change"] = change
    m["attrs"] = attrs or []
    return m


def get_link(name: str) -> Request:
    """The link called ``name``; its reply is missing (error ENODEV) when there is none."""
    return Request(
        _link_msg(attrs=[("IFLA_IFNAME", name), ("IFLA_EXT_MASK", RTEXT_FILTER_SKIP_STATS)]),
        RTM_GETLINK,
        0,
        ok=(errno.ENODEV,),
        what=f"look up {name}",
    )


def dump_links() -> Request:
    return Request(
        _link_msg(attrs=[("IFLA_EXT_MASK", RTEXT_FILTER_SKIP_STATS)]),
        RTM_GETLINK,
        NLM_F_DUMP,
        what="list links",
    )


def dump_addrs(family: int = _socket.AF_INET) -> Request:
    load()
    m = _classes[RTM_NEWADDR]()
    m["family"] = family
    m["attrs"] = []
    return Request(m, RTM_GETADDR, NLM_F_DUMP, what="list addresses")


def dump_routes(family: int = _socket.AF_INET) -> Request:
    load()
    m = _classes[RTM_NEWROUTE]()
    m["family"] = family
    m["attrs"] = []
    return Request(m, RTM_GETROUTE, NLM_F_DUMP, what="list routes")


def _up(up: bool | None) -> tuple[int, int]:
    return (0, 0) if up is None else (IFF_UP if up else 0, IFF_UP)


def new_link(
    name: str,
    kind: str,
    *,
    up: bool = False,
    mtu: int | None = None,
    mac: str | None = None,
    master: int | None = None,
    data: list | None = None,
) -> Request:
    """Create a link (EEXIST when a device has that name already)."""
    attrs: list = [("IFLA_IFNAME", name)]
    if mtu is not None:
        attrs.append(("IFLA_MTU", mtu))
    if mac is not None:
        attrs.append(("IFLA_ADDRESS", mac))
    if master is not None:
        attrs.append(("IFLA_MASTER", master))
    info: list = [("IFLA_INFO_KIND", kind)]
    if data:
        info.append(("IFLA_INFO_DATA", {"attrs": data}))
    attrs.append(("IFLA_LINKINFO", {"attrs": info}))
    flags, change = _up(up)
    return Request(
        _link_msg(0, flags, change, attrs),
        RTM_NEWLINK,
        NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        what=f"create {kind} {name}",
    )


def veth_peer(name: str, netns_fd: int, *, mtu: int | None = None, mac: str | None = None) -> list:
    """``new_link(..., "veth", data=veth_peer(...))``: the other end, made directly in another namespace
    (so it never exists on the host under its name, and cannot clash with the host's own eth0)."""
    attrs: list = [("IFLA_IFNAME", name), ("IFLA_NET_NS_FD", netns_fd)]
    if mtu is not None:
        attrs.append(("IFLA_MTU", mtu))
    if mac is not None:
        attrs.append(("IFLA_ADDRESS", mac))
    # Not up yet: the kernel configures the peer before pairing it, and a veth without its pair cannot
    # be opened (ENOTCONN).
    return [
        ("VETH_INFO_PEER", {"attrs": attrs, "family": _socket.AF_UNSPEC, "index": 0, "flags": 0, "change": 0})
    ]


def set_link(
    index: int = 0,
    name: str | None = None,
    *,
    up: bool | None = None,
    mtu: int | None = None,
    master: int | None = None,
) -> Request:
    """Change a link found by ``index`` or, with index 0, by ``name``."""
    attrs: list = []
    if name is not None and not index:
        attrs.append(("IFLA_IFNAME", name))
    if mtu is not None:
        attrs.append(("IFLA_MTU", mtu))
    if master is not None:
        attrs.append(("IFLA_MASTER", master))
    flags, change = _up(up)
    return Request(
        _link_msg(index, flags, change, attrs),
        RTM_NEWLINK,
        NLM_F_ACK,
        what=f"configure {name or f'link {index}'}",
    )


def del_link(name: str) -> Request:
    """Delete the link called ``name``; ENODEV when there is none (not a failure)."""
    return Request(
        _link_msg(attrs=[("IFLA_IFNAME", name)]),
        RTM_DELLINK,
        NLM_F_ACK,
        ok=(errno.ENODEV,),
        what=f"delete {name}",
    )


def new_addr(index: int, address: str, prefixlen: int, ok: tuple[int, ...] = ()) -> Request:
    load()
    m = _classes[RTM_NEWADDR]()
    m["family"] = _socket.AF_INET
    m["prefixlen"] = prefixlen
    m["index"] = index
    m["attrs"] = [("IFA_LOCAL", address), ("IFA_ADDRESS", address)]
    return Request(
        m,
        RTM_NEWADDR,
        NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        ok=ok,
        what=f"add address {address}/{prefixlen}",
    )


def new_default_route(gateway: str, oif: int) -> Request:
    load()
    m = _classes[RTM_NEWROUTE]()
    m["family"] = _socket.AF_INET
    m["table"] = RT_TABLE_MAIN
    m["proto"] = RTPROT_BOOT
    m["scope"] = RT_SCOPE_UNIVERSE
    m["type"] = RTN_UNICAST
    m["attrs"] = [("RTA_GATEWAY", gateway), ("RTA_OIF", oif)]
    return Request(
        m, RTM_NEWROUTE, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, what=f"add a default route via {gateway}"
    )


# -- the socket -------------------------------------------------------------------------------------------
class Rtnl:
    """A NETLINK_ROUTE socket of the namespace it was made in (or the one ``fd`` was opened in)."""

    def __init__(self, fd: int | None = None) -> None:
        load()
        if fd is None:
            self.sock = _socket.socket(
                _socket.AF_NETLINK, _socket.SOCK_RAW | _socket.SOCK_CLOEXEC, _socket.NETLINK_ROUTE
            )
        else:
            self.sock = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW, _socket.NETLINK_ROUTE, fileno=fd)
        try:
            self.sock.bind((0, 0))
            for opt in (NETLINK_CAP_ACK, NETLINK_EXT_ACK):
                try:
                    self.sock.setsockopt(SOL_NETLINK, opt, 1)
                except OSError:
                    pass  # older kernels: errors just say less
        except BaseException:
            self.sock.close()
            raise
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Rtnl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, *requests: Request) -> list[Request]:
        """Send ``requests`` in one datagram and wait for every answer. The first refusal not in a request's
        ``ok`` raises pyroute2's NetlinkError (the kernel has still run the others: ``call`` is not atomic).
        At most one dump per call (the kernel runs one dump at a time per socket)."""
        pending: dict[int, Request] = {}
        out = bytearray()
        for req in requests:
            self.seq += 1
            req.replies, req.error = [], 0
            h = req.msg["header"]
            h["type"], h["flags"], h["sequence_number"], h["pid"] = req.type, req.flags, self.seq, 0
            req.msg.data = bytearray()
            req.msg.offset = 0
            req.msg.encode()
            out += req.msg.data
            pending[self.seq] = req
        self.sock.send(out)
        failed: Request | None = None
        text = ""
        while pending:
            data = self.sock.recv(1 << 20)
            off = 0
            while off + _HDR.size <= len(data):
                length, mtype, flags, seq, _pid = _HDR.unpack_from(data, off)
                if length < _HDR.size:
                    break
                r = pending.get(seq)
                if r is not None:
                    if mtype == NLMSG_ERROR:
                        code = -struct.unpack_from("=i", data, off + _HDR.size)[0]
                        del pending[seq]
                        if code:
                            r.error = code
                            if code not in r.ok and failed is None:
                                failed, text = r, _ext_ack(data, off, length, flags)
                    elif mtype == NLMSG_DONE:
                        del pending[seq]
                    else:
                        cls = _classes.get(mtype & ~3)  # NEW/DEL/GET of a family decode alike
                        if cls is not None:
                            m = cls(data[off : off + length])
                            m.decode()
                            r.replies.append(m)
                        if not r.flags & NLM_F_DUMP and not r.flags & NLM_F_ACK:
                            del pending[seq]  # a plain get: its one answer is all
                off += (length + 3) & ~3
        if failed is not None:
            assert _NetlinkError is not None
            message = os.strerror(failed.error) + (f" ({text})" if text else "")
            raise _NetlinkError(failed.error, f"cannot {failed.what}: {message}" if failed.what else message)
        return list(requests)


RTMGRP_LINK = 1
_IFI_INDEX = struct.Struct("=i")  # ifinfomsg.ifi_index, 4 bytes into the message's body


class LinkWatch:
    """Link removals in this namespace, as the kernel announces them (RTNLGRP_LINK's RTM_DELLINK).

    Made *before* whatever removes the links: a removal between the subscription and ``wait_gone`` is
    then either already visible to the caller's own lookup or waiting in this socket, never missed.
    """

    def __init__(self) -> None:
        self.sock = _socket.socket(
            _socket.AF_NETLINK, _socket.SOCK_RAW | _socket.SOCK_CLOEXEC, _socket.NETLINK_ROUTE
        )
        try:
            self.sock.bind((0, RTMGRP_LINK))
        except BaseException:
            self.sock.close()
            raise

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> LinkWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait_gone(self, indexes: set[int], timeout: float) -> set[int]:
        """Wait until the links with these indexes are removed, or ``timeout`` seconds; those left.

        Only each announcement's header and ifindex are read, not decoded with pyroute2: on a busy host the
        group carries every other link's changes too, and nothing else of them matters here.
        """
        import select
        import time

        left = set(indexes)
        deadline = time.monotonic() + timeout
        while left:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self.sock], [], [], remaining)[0]:
                break
            try:
                data = self.sock.recv(1 << 16)
            except OSError as e:
                if e.errno == errno.ENOBUFS:
                    break  # announcements were dropped: the caller looks the links up itself
                raise
            off = 0
            while off + _HDR.size + 8 <= len(data):
                length, mtype = _HDR.unpack_from(data, off)[:2]
                if length < _HDR.size:
                    break
                if mtype == RTM_DELLINK:
                    left.discard(_IFI_INDEX.unpack_from(data, off + _HDR.size + 4)[0])
                off += (length + 3) & ~3
        return left


def _ext_ack(data: bytes, off: int, length: int, flags: int) -> str:
    """The kernel's extended-ack sentence of an error message, if it sent one."""
    if not flags & NLM_F_ACK_TLVS:
        return ""
    pos = off + _HDR.size + 4 + _HDR.size  # past the header, the error code and the echoed header (capped)
    end = off + length
    while pos + 4 <= end:
        nla_len, nla_type = struct.unpack_from("=HH", data, pos)
        if nla_len < 4:
            break
        if nla_type & 0x3FFF == 1:  # NLMSGERR_ATTR_MSG
            return bytes(data[pos + 4 : pos + nla_len]).split(b"\0", 1)[0].decode(errors="replace")
        pos += (nla_len + 3) & ~3
    return ""


def index_of(req: Request) -> int | None:
    """A ``get_link`` request's answer: the link's index, or None when there is no such link."""
    return req.replies[0]["index"] if req.replies else None
