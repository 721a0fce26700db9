"""Which device nodes a container may open or create: the device access rules of its cgroup.

Capabilities decide whether a process may call mknod (CAP_MKNOD, in docker's default set); the device
rules decide which nodes it may then *use*. Without them, a container's root could mknod the host's disk
(``b 8:0``) and read it. Defaults, as docker's: every access denied, then mknod of any node allowed
(``c *:* m``, ``b *:* m``) and read/write/mknod allowed for the nodes a container's /dev holds (null, zero,
full, random, urandom, tty, console, ptmx, pts, net/tun) plus any ``linux.devices`` node of an OCI bundle.
``--privileged`` leaves every device allowed.

cgroup v1 enforces the rules through the devices controller (``devices.deny`` / ``devices.allow``); cgroup
v2 through a BPF_CGROUP_DEVICE program attached to the container's cgroup (``cgroups.devfilter``). This
module is imported only when a container is created.
"""

from __future__ import annotations

from ..errors import InvalidArgument

# typing.TYPE_CHECKING without importing typing; type checkers know the idiom.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..spec.model import OciDevice

TYPES = ("a", "c", "b")
ACCESS = frozenset("rwm")


class DeviceRule:
    __slots__ = ("allow", "type", "major", "minor", "access")

    def __init__(
        self, allow: bool, type_: str = "a", major: int = -1, minor: int = -1, access: str = "rwm"
    ) -> None:
        self.allow = allow
        self.type = type_
        self.major = major
        self.minor = minor
        self.access = access

    def line(self) -> str:
        """The rule as the v1 devices.allow / devices.deny files take it (``c 1:3 rwm``, ``a``)."""
        if self.type == "a" and self.major < 0 and self.minor < 0 and self.access == "rwm":
            return "a"
        num = lambda n: "*" if n < 0 else str(n)  # noqa: E731
        return f"{self.type} {num(self.major)}:{num(self.minor)} {self.access}"

    def to_oci(self) -> dict:
        d: dict = {"allow": self.allow, "type": self.type, "access": self.access}
        if self.major >= 0:
            d["major"] = self.major
        if self.minor >= 0:
            d["minor"] = self.minor
        return d

    def __repr__(self) -> str:
        return f"DeviceRule({'allow' if self.allow else 'deny'} {self.line()})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DeviceRule) and self.to_oci() == other.to_oci()


def _allow(type_: str, major: int, minor: int, access: str = "rwm") -> DeviceRule:
    return DeviceRule(True, type_, major, minor, access)


# docker's default allow list (and runc's AllowedDevices): mknod anything, use only these.
DEFAULT_ALLOWED = (
    _allow("c", -1, -1, "m"),
    _allow("b", -1, -1, "m"),
    _allow("c", 1, 3),
    _allow("c", 1, 5),
    _allow("c", 1, 7),
    _allow("c", 1, 8),
    _allow("c", 1, 9),  # null zero full random urandom
    _allow("c", 5, 0),
    _allow("c", 5, 1),
    _allow("c", 5, 2),
    _allow("c", 136, -1),  # tty console ptmx pts/*
    _allow("c", 10, 200),  # net/tun
)
DENY_ALL = DeviceRule(False)


def parse_oci(items: object, where: str = "linux.resources.devices") -> list[DeviceRule]:
    """OCI ``linux.resources.devices`` entries ({allow, type, major, minor, access}) as rules."""
    if not isinstance(items, list):
        raise InvalidArgument(f"{where} must be a list of {{allow, type, major, minor, access}} objects")
    rules = []
    for i, item in enumerate(items):
        p = f"{where}[{i}]"
        if not isinstance(item, dict):
            raise InvalidArgument(
                f"{p} must be an object {{allow, type, major, minor, access}}, not {item!r}"
            )
        allow = item.get("allow")
        if not isinstance(allow, bool):
            raise InvalidArgument(f"{p}.allow must be true or false (it is required)")
        type_ = item.get("type", "a")
        if type_ not in TYPES:
            raise InvalidArgument(f"{p}.type must be one of a, c, b (got {type_!r})")
        nums = []
        for key in ("major", "minor"):
            n = item.get(key, -1)
            if n is None:
                n = -1
            if not isinstance(n, int) or isinstance(n, bool) or n < -1 or n > 0xFFFFFFFF:
                raise InvalidArgument(
                    f"{p}.{key} must be a device number (0 or more; leave it out for any), got {n!r}"
                )
            nums.append(n)
        access = item.get("access", "rwm") or "rwm"
        if not isinstance(access, str) or not set(access) <= ACCESS:
            raise InvalidArgument(f"{p}.access must be letters from r, w, m (got {access!r})")
        rules.append(DeviceRule(allow, type_, nums[0], nums[1], "".join(c for c in "rwm" if c in access)))
    return rules


def rules_for(privileged: bool, own: object, nodes: list[OciDevice]) -> list[DeviceRule] | None:
    """The rules a container's cgroup gets; None leaves its cgroup's (inherited) rules alone.

    The spec's own ``linux.resources.devices`` (``own``, checked here; ``spec.docker`` gives docker-style
    containers "deny all") first, then an allow rule per ``linux.devices`` node and the defaults (what
    runc does); a spec with neither leaves the rules alone. ``--privileged``: None (every device).
    """
    if privileged:
        return None
    allowed = [_allow(d.type, d.major, d.minor) for d in nodes if d.type in ("c", "b")]
    if own is None and not allowed:
        return None
    return parse_oci(own or []) + allowed + list(DEFAULT_ALLOWED)
