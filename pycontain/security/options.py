"""What the user asked for: ``SecurityOptions`` (from the CLI, the Python API or an OCI bundle), the
``--ulimit`` and ``--security-opt`` parsers, and docker's defaults for masked and read-only paths."""

from __future__ import annotations

from ..errors import InvalidArgument
from .caps import cap_name

# docker's masked and read-only paths (moby's oci/defaults.go).
DEFAULT_MASKED_PATHS = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",  # per-CPU counts of the host's interrupts: a side channel on host activity
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
DEFAULT_READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

# docker's --ulimit names (and "as", which OCI bundles can set) → RLIMIT_* numbers (asm-generic: x86,
# arm, riscv, s390, powerpc; the few machines that number them otherwise ask the resource module).
ULIMITS = {
    "cpu": 0,
    "fsize": 1,
    "data": 2,
    "stack": 3,
    "core": 4,
    "rss": 5,
    "nproc": 6,
    "nofile": 7,
    "memlock": 8,
    "as": 9,
    "locks": 10,
    "sigpending": 11,
    "msgqueue": 12,
    "nice": 13,
    "rtprio": 14,
    "rttime": 15,
}
RLIM_INFINITY = (1 << 64) - 1

SECCOMP_DEFAULT = "default"
SECCOMP_UNCONFINED = "unconfined"


class SecurityOptions:
    """The security settings of a container, as given; JSON-able through ``to_dict``/``from_dict``.

    ``capabilities`` (OCI's five sets, when given exactly) overrides ``cap_add``/``cap_drop``;
    ``seccomp_profile`` (an OCI ``linux.seccomp`` section or a docker profile, already parsed)
    overrides the profile ``seccomp`` names, unless ``seccomp`` is ``"unconfined"``.
    """

    __slots__ = (
        "cap_add",
        "cap_drop",
        "privileged",
        "no_new_privs",
        "seccomp",
        "ulimits",
        "capabilities",
        "seccomp_profile",
    )

    def __init__(
        self,
        cap_add: list[str] | None = None,
        cap_drop: list[str] | None = None,
        privileged: bool = False,
        no_new_privs: bool | None = None,
        seccomp: str = SECCOMP_DEFAULT,
        ulimits: list[str] | None = None,
        capabilities: dict | None = None,
        seccomp_profile: dict | None = None,
    ) -> None:
        self.cap_add = list(cap_add or [])
        self.cap_drop = list(cap_drop or [])
        self.privileged = privileged
        # docker's --privileged turns no_new_privs off unless it is asked for explicitly.
        self.no_new_privs = (not privileged) if no_new_privs is None else bool(no_new_privs)
        self.seccomp = seccomp
        self.ulimits = list(ulimits or [])
        self.capabilities = capabilities
        self.seccomp_profile = seccomp_profile

    @classmethod
    def from_cli(
        cls, cap_add=(), cap_drop=(), privileged: bool = False, security_opts=(), ulimits=()
    ) -> SecurityOptions:
        """docker's flags: --cap-add, --cap-drop, --privileged, --security-opt, --ulimit. Raises
        InvalidArgument, one line naming the bad value, for anything malformed."""
        add = [cap_name(c, "--cap-add") for c in cap_add]
        drop = [cap_name(c, "--cap-drop") for c in cap_drop]
        no_new_privs = None
        seccomp = SECCOMP_DEFAULT
        profile = None
        for opt in security_opts:
            key, sep, value = _split_security_opt(opt)
            if key == "no-new-privileges":
                v = value.strip().lower() if sep else "true"
                if v not in ("true", "false"):
                    raise InvalidArgument(
                        f"invalid --security-opt {opt!r}: no-new-privileges takes true or false"
                    )
                no_new_privs = v == "true"
            elif key == "seccomp" and sep and value:
                if value == SECCOMP_UNCONFINED:
                    seccomp, profile = SECCOMP_UNCONFINED, None
                else:
                    seccomp, profile = value, load_profile(value)
            else:
                raise InvalidArgument(
                    f"invalid --security-opt {opt!r}: pycontain knows "
                    "no-new-privileges[=true|false] and seccomp=unconfined|PROFILE.json"
                )
        for spec in ulimits:
            parse_ulimit(spec)
        return cls(add, drop, privileged, no_new_privs, seccomp, list(ulimits), None, profile)

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__slots__}

    @classmethod
    def from_dict(cls, d: dict) -> SecurityOptions:
        return cls(**{k: d[k] for k in cls.__slots__ if k in d})

    def __repr__(self) -> str:
        return f"SecurityOptions({', '.join(f'{k}={getattr(self, k)!r}' for k in self.__slots__)})"


def _split_security_opt(opt: str) -> tuple[str, str, str]:
    # docker also accepts the old KEY:VALUE form.
    key, sep, value = opt.partition("=")
    if not sep and ":" in opt:
        key, sep, value = opt.partition(":")
    return key.strip().lower(), sep, value.strip()


def parse_ulimit(spec: str) -> tuple[str, int, int]:
    """docker's ``--ulimit NAME=SOFT[:HARD]`` → (name, soft, hard); -1 or "unlimited" is RLIM_INFINITY."""
    name, eq, value = str(spec).partition("=")
    name = name.strip().lower()
    if not eq or not value.strip():
        raise InvalidArgument(f"invalid --ulimit {spec!r}: expected NAME=SOFT[:HARD], e.g. nofile=1024:2048")
    if name not in ULIMITS:
        raise InvalidArgument(
            f"invalid --ulimit {spec!r}: unknown limit {name!r} (use one of {', '.join(sorted(ULIMITS))})"
        )
    soft_s, colon, hard_s = value.partition(":")
    soft = _limit_value(soft_s, spec)
    hard = _limit_value(hard_s, spec) if colon else soft
    if soft > hard:
        raise InvalidArgument(
            f"invalid --ulimit {spec!r}: the soft limit {soft_s.strip()} is above the hard "
            f"limit {hard_s.strip()}"
        )
    return name, soft, hard


def _limit_value(text: str, spec: str) -> int:
    t = text.strip().lower()
    if t in ("-1", "unlimited", "infinity"):
        return RLIM_INFINITY
    if not t.isascii() or not t.isdigit():
        raise InvalidArgument(
            f"invalid --ulimit {spec!r}: {text.strip()!r} is not a number (or -1 for unlimited)"
        )
    return min(int(t), RLIM_INFINITY)


def load_profile(path: str) -> dict:
    """Read a seccomp profile file (docker's format or an OCI linux.seccomp section)."""
    from .. import fastjson

    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise InvalidArgument(f"cannot read seccomp profile {path!r}: {e.strerror}") from None
    try:
        doc = fastjson.loads(text)
    except ValueError as e:
        raise InvalidArgument(f"seccomp profile {path!r} is not valid JSON: {e}") from None
    if not isinstance(doc, dict) or "defaultAction" not in doc:
        raise InvalidArgument(f"seccomp profile {path!r}: expected an object with a defaultAction")
    return doc
