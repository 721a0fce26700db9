"""The container's walls beyond namespaces: capabilities, no_new_privs, seccomp, rlimits, masked paths.

Two halves, so that the forked child only makes system calls:

- in the parent, before the fork: ``SecurityOptions`` (what the user asked for, from the CLI or an OCI
  bundle) is resolved by ``prepare`` into a ``Prepared``: capability masks, rlimits, and the seccomp
  filter compiled to its final BPF program (libseccomp through pyseccomp builds it; the default
  profile's program is cached, since importing pyseccomp alone costs 10-20 ms);
- in the child, in this order::

      rootfs.build(...)                    # pivot_root done
      security.mask_paths(masked, ro)      # /proc/kcore & co. masked, /proc/sys & co. read-only
      security.before_setuid(p)            # still root: rlimits, bounding set, keep-caps
      os.setgroups/setgid/setuid(...)
      security.after_setuid(p, uid)        # permitted/effective/inheritable/ambient, exactly
      security.last(p)                     # no_new_privs, then the seccomp filter
      os.execve(...)

  ``before_setuid`` loads the seccomp filter itself when no_new_privs is off: without no_new_privs
  the kernel only accepts a filter from a process with CAP_SYS_ADMIN, which the container's user
  no longer has after ``after_setuid`` (runc does the same). The profile must then allow the few
  calls left before execve, which the default profile does.

Every import this module does at run time happens in ``prepare``: after pivot_root the host's files,
Python's library included, are out of reach.

The filter: libseccomp's program, with a short prelude in front of it (as runc does) that makes every
system call numbered above the highest one the profile names fail with ENOSYS instead of the
profile's default action, on each architecture of the filter. A call newer than the profile then
looks to the C library like a kernel without it, and it falls back (clone3 is the same by an
explicit rule). Calls the profile leaves out that are older than its newest one get EPERM.
"""

from __future__ import annotations

import ctypes
import errno
import os

from .errors import InvalidArgument, PermissionDenied, PycontainError, Unsupported

# Linux capabilities in kernel order: _CAP_NUMBER[name] is the capability's number.
CAPABILITIES = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)
_CAP_NUMBER = {name: i for i, name in enumerate(CAPABILITIES)}

# docker's default set (moby's oci/caps/defaults.go).
DEFAULT_CAPABILITIES = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)

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

# Where compiled default filters are kept: a tmpfs, cleared at boot (a filter depends on the kernel).
# PYCONTAIN_SECCOMP_CACHE changes it; an empty value turns the cache off.
DEFAULT_CACHE_DIR = "/run/pycontain-seccomp"

# prctl(2) and seccomp(2) constants.
PR_SET_KEEPCAPS = 8
PR_SET_SECCOMP = 22
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4
SECCOMP_MODE_FILTER = 2
SECCOMP_SET_MODE_FILTER = 1
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
SECCOMP_FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": 1,
    "SECCOMP_FILTER_FLAG_LOG": 2,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4,
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": 32,
}
_SECCOMP_NR = {"x86_64": 317, "aarch64": 277, "riscv64": 277, "s390x": 348, "ppc64le": 358}

# statvfs's flag bits that mount flags keep across a read-only remount.
_ST_KEEP = 2 | 4 | 8 | 1024 | 2048  # ST_NOSUID, ST_NODEV, ST_NOEXEC, ST_NOATIME, ST_NODIRATIME = the MS_ bits

# seccomp actions (linux/seccomp.h) and libseccomp's comparison operators.
_ACT_KILL_PROCESS = 0x80000000
_ACT_KILL_THREAD = 0x00000000
_ACT_TRAP = 0x00030000
_ACT_ERRNO = 0x00050000
_ACT_TRACE = 0x7FF00000
_ACT_LOG = 0x7FFC0000
_ACT_ALLOW = 0x7FFF0000
_OPERATORS = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}
# libseccomp's architecture tokens are the kernel's AUDIT_ARCH_* values (x32 aside: see _prelude).
_LE, _64BIT, _N32 = 0x40000000, 0x80000000, 0x20000000
_ARCH_TOKENS = {
    "X86": 3 | _LE,
    "X86_64": 62 | _64BIT | _LE,
    "X32": 62 | _LE,
    "ARM": 40 | _LE,
    "AARCH64": 183 | _64BIT | _LE,
    "MIPS": 8,
    "MIPS64": 8 | _64BIT,
    "MIPS64N32": 8 | _64BIT | _N32,
    "MIPSEL": 8 | _LE,
    "MIPSEL64": 8 | _64BIT | _LE,
    "MIPSEL64N32": 8 | _64BIT | _LE | _N32,
    "PARISC": 15,
    "PARISC64": 15 | _64BIT,
    "PPC": 20,
    "PPC64": 21 | _64BIT,
    "PPC64LE": 21 | _64BIT | _LE,
    "S390": 22,
    "S390X": 22 | _64BIT,
    "RISCV64": 243 | _64BIT | _LE,
}
# Go's names for machines, which docker profiles' "arches" conditions use.
_GOARCH = {
    "X86_64": "amd64",
    "X86": "386",
    "X32": "x32",
    "AARCH64": "arm64",
    "ARM": "arm",
    "MIPS": "mips",
    "MIPS64": "mips64",
    "MIPS64N32": "mips64n32",
    "MIPSEL": "mipsle",
    "MIPSEL64": "mips64le",
    "MIPSEL64N32": "mips64len32",
    "PPC": "ppc",
    "PPC64": "ppc64",
    "PPC64LE": "ppc64le",
    "S390": "s390",
    "S390X": "s390x",
    "RISCV64": "riscv64",
    "PARISC": "parisc",
    "PARISC64": "parisc64",
}
_X32_SYSCALL_BIT = 0x40000000
_BPF_MAXINSNS = 4096


# -- what the user asked for ----------------------------------------------------------------------


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
        add = [_cap_name(c, "--cap-add") for c in cap_add]
        drop = [_cap_name(c, "--cap-drop") for c in cap_drop]
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


def _cap_name(name: str, where: str) -> str:
    n = str(name).strip().upper()
    if n == "ALL":
        return n
    if not n.startswith("CAP_"):
        n = "CAP_" + n
    if n not in _CAP_NUMBER:
        raise InvalidArgument(
            f"invalid {where} {name!r}: not a capability (use a name from capabilities(7), "
            "with or without CAP_, e.g. NET_ADMIN, or ALL)"
        )
    return n


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
    from . import fastjson

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


# -- resolved in the parent -------------------------------------------------------------------------


class Prepared:
    """Everything the child needs, resolved before the fork: masks, limits and a BPF program."""

    __slots__ = (
        "bounding",
        "permitted",
        "effective",
        "inheritable",
        "ambient",
        "exact_caps",
        "last_cap",
        "rlimits",
        "no_new_privs",
        "program",
        "seccomp_flags",
        "seccomp_early",
        "_buf",
        "_fprog",
    )

    def __init__(self) -> None:
        self.bounding = self.permitted = self.effective = self.inheritable = self.ambient = 0
        self.exact_caps = False  # OCI's sets, applied as given whatever the user
        self.last_cap = len(CAPABILITIES) - 1
        self.rlimits: list[tuple[int, int, int, str]] = []  # (resource, soft, hard, the --ulimit text)
        self.no_new_privs = True
        self.program: bytes | None = None  # the complete seccomp BPF program; None: unconfined
        self.seccomp_flags = 0
        self.seccomp_early = False  # loaded by before_setuid (no no_new_privs: needs CAP_SYS_ADMIN)
        self._buf: ctypes.Array[ctypes.c_char] | None = None  # the program, kept alive for _fprog
        self._fprog: _SockFprog | None = None

    def capability_names(self, which: str = "effective") -> list[str]:
        mask = getattr(self, which)
        return [name for i, name in enumerate(CAPABILITIES) if mask >> i & 1]


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


def _mask(names: list[str] | tuple[str, ...], where: str) -> int:
    m = 0
    for n in names:
        m |= 1 << _CAP_NUMBER[_cap_name(n, where)]
    return m


def own_bounding_set() -> int:
    """The capabilities pycontain itself can hand out: its bounding set (CapBnd)."""
    with open("/proc/self/status", "rb") as f:
        for line in f:
            if line.startswith(b"CapBnd:"):
                return int(line.split()[1], 16)
    return (1 << len(CAPABILITIES)) - 1  # pragma: no cover - every Linux since 2.6.25 shows it


def resolve_capabilities(opts: SecurityOptions, available: int) -> tuple[int, int, int, int, int]:
    """(bounding, permitted, effective, inheritable, ambient) masks, docker's way.

    --privileged or --cap-add ALL: every capability in ``available``; --cap-drop ALL: only --cap-add;
    otherwise docker's default set less --cap-drop plus --cap-add (an add wins over a drop). A
    capability pycontain itself lacks cannot be added (PermissionDenied); OCI's exact sets are cut down
    to what is available, silently, as the kernel would refuse them anyway.
    """
    if opts.capabilities is not None:
        c = opts.capabilities
        sets = [
            _mask(c.get(k) or [], f"process.capabilities.{k}") & available
            for k in ("bounding", "permitted", "effective", "inheritable", "ambient")
        ]
        return sets[0], sets[1], sets[2], sets[3], sets[4]
    add = [_cap_name(c, "--cap-add") for c in opts.cap_add]
    drop = [_cap_name(c, "--cap-drop") for c in opts.cap_drop]
    if opts.privileged or "ALL" in add:
        caps = available & ~(0 if opts.privileged else _mask([d for d in drop if d != "ALL"], "--cap-drop"))
    else:
        base = (
            0
            if "ALL" in drop
            else _mask(DEFAULT_CAPABILITIES, "default") & available & ~_mask(drop, "--cap-drop")
        )
        wanted = _mask(add, "--cap-add")
        missing = wanted & ~available
        if missing:
            names = ", ".join(n for i, n in enumerate(CAPABILITIES) if missing >> i & 1)
            raise PermissionDenied(
                f"cannot add {names}: pycontain itself does not hold it (its bounding set, "
                "CapBnd in /proc/self/status, lacks it), so no container can have it"
            )
        caps = base | wanted
    return caps, caps, caps, 0, 0


def prepare(opts: SecurityOptions | None, cache_dir: str | None = None) -> Prepared:
    """Resolve ``opts`` (None: the defaults) for the child. Raises InvalidArgument, PermissionDenied or
    Unsupported with one line for what cannot be done."""
    opts = opts or SecurityOptions()
    p = Prepared()
    available = own_bounding_set()
    try:
        with open("/proc/sys/kernel/cap_last_cap", "rb") as f:
            p.last_cap = int(f.read())
    except OSError:  # pragma: no cover
        p.last_cap = max(available.bit_length() - 1, 0)
    available &= (1 << (p.last_cap + 1)) - 1
    p.bounding, p.permitted, p.effective, p.inheritable, p.ambient = resolve_capabilities(opts, available)
    p.exact_caps = opts.capabilities is not None
    p.no_new_privs = bool(opts.no_new_privs)

    if opts.ulimits:
        machine = os.uname().machine
        numbers = ULIMITS
        if machine.startswith(("mips", "sparc", "alpha")):  # pragma: no cover - they number rlimits otherwise
            import resource

            numbers = {n: getattr(resource, f"RLIMIT_{n.upper()}") for n in ULIMITS}
        limits: dict[int, tuple[int, int, int, str]] = {}
        for spec in opts.ulimits:
            name, soft, hard = parse_ulimit(spec)
            limits[numbers[name]] = (numbers[name], soft, hard, spec)  # a later one for the same limit wins
        p.rlimits = list(limits.values())

    if not opts.privileged and opts.seccomp != SECCOMP_UNCONFINED:
        if opts.seccomp_profile is not None:
            program, flags = compile_filter(opts.seccomp_profile, p.bounding).program_and_flags()
        elif opts.seccomp == SECCOMP_DEFAULT:
            program, flags = default_program(p.bounding, cache_dir), 0
        else:
            program, flags = compile_filter(load_profile(opts.seccomp), p.bounding).program_and_flags()
        if program is not None:
            p.program, p.seccomp_flags = program, flags
            p._buf = buf = ctypes.create_string_buffer(program, len(program))
            p._fprog = _SockFprog(len(program) // 8, ctypes.addressof(buf))
            p.seccomp_early = not p.no_new_privs
    return p


# -- seccomp: profile → BPF -----------------------------------------------------------------------


class Compiled:
    """A compiled profile: the BPF program (None when the profile allows everything), its flags, and
    what went into it, for tests and diagnostics."""

    __slots__ = ("program", "flags", "rules", "skipped", "max_nr", "arches", "default_action")

    def __init__(self) -> None:
        self.program: bytes | None = None
        self.flags = 0
        self.rules = 0  # (syscall, action, conditions) rules handed to libseccomp
        self.skipped: list[str] = []  # names libseccomp does not know
        self.max_nr: dict[str, int] = {}  # architecture → the highest syscall number the profile names
        self.arches: list[str] = []
        self.default_action = 0

    def program_and_flags(self) -> tuple[bytes | None, int]:
        return self.program, self.flags

    @property
    def instructions(self) -> int:
        return len(self.program or b"") // 8


_compiled_default: dict[str, bytes] = {}


def default_program(bounding: int, cache_dir: str | None = None) -> bytes:
    """The default profile's program for a container with the capabilities ``bounding``: from this
    process's memory, else from the cache directory, else compiled (and cached)."""
    here = os.path.dirname(os.path.abspath(__file__))
    u = os.uname()
    try:
        stamp = "-".join(
            str(os.stat(os.path.join(here, f)).st_mtime_ns) for f in ("security.py", "seccomp_default.py")
        )
    except OSError:  # pragma: no cover - running from a zip
        stamp = "0"
    key = f"{u.machine}-{u.release}-{bounding:x}-{stamp}".replace("/", "_")
    program = _compiled_default.get(key)
    if program is not None:
        return program
    if cache_dir is None:
        cache_dir = os.environ.get("PYCONTAIN_SECCOMP_CACHE", DEFAULT_CACHE_DIR)
    path = os.path.join(cache_dir, f"default-{key}.bpf") if cache_dir else None
    program = _read_cached(path) if path else None
    if program is None:
        from .seccomp_default import PROFILE

        program = compile_filter(PROFILE, bounding).program
        assert program is not None
        if path:
            _write_cached(cache_dir, path, program)
    _compiled_default[key] = program
    return program


def _read_cached(path: str) -> bytes | None:
    """A cached program, if it is ours: owned by us, writable by nobody else, a whole number of
    instructions (a filter that anyone could rewrite would be no wall)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        dst = os.stat(os.path.dirname(path))
        euid = os.geteuid()
        if (
            st.st_uid != euid
            or st.st_mode & 0o022
            or dst.st_uid != euid
            or dst.st_mode & 0o022
            or not 0 < st.st_size <= _BPF_MAXINSNS * 8
            or st.st_size % 8
        ):
            return None
        data = os.read(fd, st.st_size + 1)
        return data if len(data) == st.st_size else None
    finally:
        os.close(fd)


def _write_cached(cache_dir: str, path: str, program: bytes) -> None:
    try:
        os.makedirs(cache_dir, 0o700, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, program)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except OSError:
        pass  # a cache that cannot be written only costs time


def _kernel_version() -> tuple[int, int]:
    parts = []
    for piece in os.uname().release.split(".")[:2]:
        digits = ""
        for ch in piece:
            if not ch.isdigit():
                break
            digits += ch
        parts.append(int(digits or 0))
    return (parts + [0, 0])[0], (parts + [0, 0])[1]


def _version(text: object, where: str) -> tuple[int, int]:
    try:
        major, _, minor = str(text).partition(".")
        return int(major), int(minor.partition(".")[0] or 0)
    except ValueError:
        raise InvalidArgument(f"{where}: {text!r} is not a kernel version such as 4.8") from None


def _action(name: object, errno_ret: object, where: str) -> int:
    ret = errno.EPERM if errno_ret is None else errno_ret
    if not isinstance(ret, int) or isinstance(ret, bool) or not 0 <= ret <= 0xFFFF:
        raise InvalidArgument(f"{where}: errnoRet {errno_ret!r} is not an errno number")
    if name == "SCMP_ACT_ALLOW":
        return _ACT_ALLOW
    if name == "SCMP_ACT_ERRNO":
        return _ACT_ERRNO | ret
    if name in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
        return _ACT_KILL_THREAD
    if name == "SCMP_ACT_KILL_PROCESS":
        return _ACT_KILL_PROCESS
    if name == "SCMP_ACT_TRAP":
        return _ACT_TRAP
    if name == "SCMP_ACT_TRACE":
        return _ACT_TRACE | ret
    if name == "SCMP_ACT_LOG":
        return _ACT_LOG
    if name == "SCMP_ACT_NOTIFY":
        raise Unsupported(f"{where}: SCMP_ACT_NOTIFY needs a seccomp agent, which pycontain does not support")
    raise InvalidArgument(
        f"{where}: unknown action {name!r} (use SCMP_ACT_ALLOW, SCMP_ACT_ERRNO, "
        "SCMP_ACT_KILL, SCMP_ACT_KILL_PROCESS, SCMP_ACT_TRAP, SCMP_ACT_TRACE or SCMP_ACT_LOG)"
    )


def _arch_name(name: object, where: str) -> str:
    short = str(name).removeprefix("SCMP_ARCH_")
    if short not in _ARCH_TOKENS:
        raise InvalidArgument(
            f"{where}: unknown architecture {name!r} (use an SCMP_ARCH_* name such as SCMP_ARCH_X86_64)"
        )
    return short


def _applies(rule: dict, caps: set[str], goarch: str, kernel: tuple[int, int], where: str) -> bool:
    """docker's conditions: includes (every cap held, the machine listed, the kernel new enough) and
    excludes (no listed cap held, the machine not listed)."""
    inc = rule.get("includes") or {}
    exc = rule.get("excludes") or {}
    if any(c not in caps for c in inc.get("caps") or ()):
        return False
    if inc.get("arches") and goarch not in inc["arches"]:
        return False
    if inc.get("minKernel") and kernel < _version(inc["minKernel"], f"{where}.includes.minKernel"):
        return False
    if any(c in caps for c in exc.get("caps") or ()):
        return False
    return not (exc.get("arches") and goarch in exc["arches"])


def compile_filter(profile: dict, bounding: int, optimize: int = 2) -> Compiled:
    """Build ``profile`` with libseccomp for a container whose capabilities are ``bounding`` and
    return its complete BPF program, the ENOSYS prelude in front. Raises InvalidArgument.

    ``optimize`` 2 has libseccomp sort the calls into a binary tree (about 10 comparisons to find a
    call instead of a few hundred in a list: every system call the container makes pays for it);
    1 is libseccomp's default, a list in priority order."""
    import pyseccomp

    where = "seccomp profile"
    if not isinstance(profile, dict):
        raise InvalidArgument(f"{where}: expected an object with a defaultAction")
    out = Compiled()
    default = _action(profile.get("defaultAction"), profile.get("defaultErrnoRet"), f"{where}.defaultAction")
    out.default_action = default
    for flag in profile.get("flags") or ():
        if flag not in SECCOMP_FLAGS:
            raise (Unsupported if flag == "SECCOMP_FILTER_FLAG_NEW_LISTENER" else InvalidArgument)(
                f"{where}.flags: {flag!r} is not supported (use {', '.join(SECCOMP_FLAGS)})"
            )
        out.flags |= SECCOMP_FLAGS[flag]

    native = pyseccomp.system_arch()
    native_name = next((n for n, t in _ARCH_TOKENS.items() if t == native), "")
    goarch = _GOARCH.get(native_name, "")
    arches = [native_name]
    if profile.get("architectures"):
        arches += [_arch_name(a, f"{where}.architectures") for a in profile["architectures"]]
    else:
        for entry in profile.get("archMap") or ():
            if _arch_name(entry.get("architecture"), f"{where}.archMap") == native_name:
                arches += [_arch_name(a, f"{where}.archMap") for a in entry.get("subArchitectures") or ()]
    arches = list(dict.fromkeys(a for a in arches if a))
    out.arches = arches

    flt = pyseccomp.SyscallFilter(default)
    flt.set_attr(pyseccomp.Attr.CTL_NNP, 0)  # no_new_privs is ours to set, in last()
    for a in arches:
        if _ARCH_TOKENS[a] != native:
            try:
                flt.add_arch(_ARCH_TOKENS[a])
            except OSError as e:
                if e.errno != errno.EEXIST:
                    raise InvalidArgument(f"{where}: libseccomp cannot filter architecture {a}") from None

    lib = pyseccomp._libseccomp
    resolve_arch = lib.seccomp_syscall_resolve_name_arch
    resolve_arch.argtypes = (ctypes.c_uint32, ctypes.c_char_p)
    resolve_arch.restype = ctypes.c_int
    caps = {n for i, n in enumerate(CAPABILITIES) if bounding >> i & 1}
    kernel = _kernel_version()
    named: set[str] = set()
    resolved: dict[str, int] = {}
    for i, rule in enumerate(profile.get("syscalls") or ()):
        rw = f"{where}.syscalls[{i}]"
        if not isinstance(rule, dict):
            raise InvalidArgument(f"{rw}: expected an object with names and an action")
        names = rule.get("names") or ([rule["name"]] if rule.get("name") else [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise InvalidArgument(f"{rw}.names: expected a list of system call names")
        named.update(names)
        action = _action(rule.get("action"), rule.get("errnoRet"), f"{rw}.action")
        conditions = _conditions(pyseccomp, rule.get("args") or [], rw)
        if not _applies(rule, caps, goarch, kernel, rw) or action == default:
            continue
        for name in names:
            nr = resolved.get(name)
            if nr is None:
                nr = resolved[name] = pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name)
            if nr == -1:  # __NR_SCMP_ERROR: libseccomp has never heard of it
                if name not in out.skipped:
                    out.skipped.append(name)
                continue
            for args in conditions:
                try:
                    flt.add_rule(action, nr, *args)
                    out.rules += 1
                except OSError:
                    # A call none of the filter's architectures has (e.g. an arm-only one on x86).
                    if name not in out.skipped:
                        out.skipped.append(name)
    for a in arches:
        highest = max((resolve_arch(_ARCH_TOKENS[a], n.encode()) for n in named), default=-1)
        if highest >= 0:
            out.max_nr[a] = highest
    if optimize != 1:
        try:
            flt.set_attr(pyseccomp.Attr.CTL_OPTIMIZE, optimize)
        except OSError:  # pragma: no cover - libseccomp < 2.5 has only the list
            pass
    if default in (_ACT_ALLOW, _ACT_LOG) and not out.rules:
        return out  # nothing to filter
    body = _export_bpf(flt)
    prelude = _prelude(out.max_nr) if default not in (_ACT_ALLOW, _ACT_LOG) else b""
    out.program = prelude + body
    if out.instructions > _BPF_MAXINSNS:
        raise InvalidArgument(
            f"{where}: the filter has {out.instructions} BPF instructions, more than the "
            f"kernel's {_BPF_MAXINSNS}; name fewer system calls or conditions"
        )
    return out


def _conditions(pyseccomp, args: list, where: str) -> list[list]:
    """A rule's args → libseccomp comparisons: one rule with all of them (AND), or, when one argument
    is compared more than once, one rule per comparison (OR), as docker and runc do."""
    if not isinstance(args, list):
        raise InvalidArgument(f"{where}.args: expected a list")
    cmps = []
    for j, a in enumerate(args):
        aw = f"{where}.args[{j}]"
        if not isinstance(a, dict):
            raise InvalidArgument(f"{aw}: expected an object with index, value and op")
        index, value, two = a.get("index"), a.get("value", 0), a.get("valueTwo", 0) or 0
        if not isinstance(index, int) or not 0 <= index <= 5:
            raise InvalidArgument(f"{aw}.index: {index!r} is not an argument index 0-5")
        for v in (value, two):
            if not isinstance(v, int) or not 0 <= v < 1 << 64:
                raise InvalidArgument(f"{aw}: {v!r} is not an unsigned 64-bit value")
        op = _OPERATORS.get(a.get("op", ""))
        if op is None:
            raise InvalidArgument(
                f"{aw}.op: unknown operator {a.get('op')!r} (use one of {', '.join(_OPERATORS)})"
            )
        # MASKED_EQ compares (arg & value) with valueTwo; libseccomp takes the mask first too.
        cmps.append((index, pyseccomp.Arg(index, op, value, two)))
    if not cmps:
        return [[]]
    indexes = [i for i, _ in cmps]
    if len(set(indexes)) == len(indexes):
        return [[c for _, c in cmps]]
    return [[c] for _, c in cmps]


class _Fd:
    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        return self.fd


def _export_bpf(flt) -> bytes:
    fd = os.memfd_create("pycontain-seccomp", os.MFD_CLOEXEC)
    try:
        flt.export_bpf(_Fd(fd))
        size = os.lseek(fd, 0, os.SEEK_END)
        os.lseek(fd, 0, os.SEEK_SET)
        data = b""
        while len(data) < size:
            chunk = os.read(fd, size - len(data))
            if not chunk:
                break
            data += chunk
        return data
    finally:
        os.close(fd)


def _prelude(max_nr: dict[str, int]) -> bytes:
    """BPF that returns ERRNO(ENOSYS) for a system call numbered above ``max_nr[arch]`` and falls
    through to libseccomp's program otherwise (classic BPF: relative jumps, so it can go in front).

    x32 has no audit arch of its own: its calls arrive as AUDIT_ARCH_X86_64 with bit 30 set in the
    number, and libseccomp's x32 numbers include that bit, so the x86_64 block tests it first.
    """
    import struct

    blocks: list[list] = []  # each: instructions as (code, jt, jf, k), jt/jf are labels or offsets
    for arch, highest in max_nr.items():
        if arch == "X32":
            continue
        ins: list = [("jeq", _ARCH_TOKENS[arch]), ("ld_nr",)]
        if arch == "X86_64":
            ins.append(("x32",))
            ins.append(("gt", highest))
            x32 = max_nr.get("X32")
            ins.append(("gt", x32) if x32 is not None else ("ja_start",))
        else:
            ins.append(("gt", highest))
        blocks.append(ins)
    # Lay out: ld arch; blocks; ja START; ret ENOSYS; START.
    flat: list = [("ld_arch",)]
    starts = []
    for b in blocks:
        starts.append(len(flat))
        flat.extend(b)
    tail = len(flat)  # the "ja START" instruction
    enosys, start = tail + 1, tail + 2
    block_end = starts[1:] + [tail]
    prog = []
    for i, ins in enumerate(flat):
        kind = ins[0]
        blk = max(j for j, s in enumerate(starts) if s <= i) if starts and i >= starts[0] else -1
        if kind == "ld_arch":
            prog.append((0x20, 0, 0, 4))  # ld [4]: seccomp_data.arch
        elif kind == "ld_nr":
            prog.append((0x20, 0, 0, 0))  # ld [0]: seccomp_data.nr
        elif kind == "jeq":  # this block's arch? go on, else the next block
            prog.append((0x15, 0, block_end[blk] - i - 1, ins[1]))
        elif kind == "x32":  # jge X32 bit: skip the x86_64 test
            prog.append((0x35, 1, 0, _X32_SYSCALL_BIT))
        elif kind == "gt":  # jgt highest: ENOSYS, else START
            prog.append((0x25, enosys - i - 1, start - i - 1, ins[1]))
        elif kind == "ja_start":
            prog.append((0x05, 0, 0, start - i - 1))
    prog.append((0x05, 0, 0, 1))  # ja START: an architecture of none of the blocks
    prog.append((0x06, 0, 0, _ACT_ERRNO | errno.ENOSYS))
    for _code, jt, jf, _k in prog:
        if not (0 <= jt <= 255 and 0 <= jf <= 255):  # pragma: no cover - a handful of arches fit easily
            raise PycontainError("seccomp prelude too long")
    return b"".join(struct.pack("=HBBI", code, jt, jf, k) for code, jt, jf, k in prog)


# -- in the child ---------------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_prctl_fn = _libc.prctl
_prctl_fn.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong)
_prctl_fn.restype = ctypes.c_int


class _CapHeader(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _CapData(ctypes.Structure):
    _fields_ = (
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    )


def _prctl(what: str, option: int, a2: int = 0, a3: int = 0, a4: int = 0, a5: int = 0) -> int:
    ret = _prctl_fn(option, a2, a3, a4, a5)
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({what}): {os.strerror(err)}")
    return ret


def _capset(effective: int, permitted: int, inheritable: int) -> None:
    hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in (0, 1):
        shift = 32 * i
        data[i].effective = effective >> shift & 0xFFFFFFFF
        data[i].permitted = permitted >> shift & 0xFFFFFFFF
        data[i].inheritable = inheritable >> shift & 0xFFFFFFFF
    if _libc.capset(ctypes.byref(hdr), data) < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"capset: {os.strerror(err)}")


def before_setuid(p: Prepared) -> None:
    """Still root, before setgroups/setgid/setuid: rlimits, the bounding set, keep-caps; and the
    seccomp filter when no_new_privs is off (the kernel then wants CAP_SYS_ADMIN to load it)."""
    for resource, soft, hard, spec in p.rlimits:
        lim = (ctypes.c_uint64 * 2)(soft, hard)
        if _libc.setrlimit64(resource, ctypes.byref(lim)) < 0:
            err = ctypes.get_errno()
            raise PycontainError(
                f"cannot set --ulimit {spec}: {os.strerror(err)} (pycontain's own hard limit "
                "is the most it can give without CAP_SYS_RESOURCE)"
            )
    for cap in range(p.last_cap + 1):
        if not p.bounding >> cap & 1 and _prctl("PR_CAPBSET_READ", PR_CAPBSET_READ, cap) == 1:
            _prctl("PR_CAPBSET_DROP", PR_CAPBSET_DROP, cap)
    # Keep the permitted set across setuid to a non-root user; after_setuid trims it.
    _prctl("PR_SET_KEEPCAPS", PR_SET_KEEPCAPS, 1)
    if p.seccomp_early:
        _load_seccomp(p)


def after_setuid(p: Prepared, uid: int) -> None:
    """After setuid: the permitted, effective and inheritable sets exactly, the ambient set cleared (or
    OCI's). A non-root user gets an empty effective set, as with docker, unless OCI's sets say otherwise."""
    effective = p.effective if (uid == 0 or p.exact_caps) else 0
    _capset(effective, p.permitted, p.inheritable)
    _prctl("PR_SET_KEEPCAPS", PR_SET_KEEPCAPS, 0)
    try:
        _prctl("PR_CAP_AMBIENT", PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    except OSError as e:  # pragma: no cover - kernels before 4.3 have no ambient set
        if e.errno != errno.EINVAL or p.ambient:
            raise
    for cap in range(p.last_cap + 1):
        if p.ambient >> cap & 1:
            _prctl("PR_CAP_AMBIENT_RAISE", PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap)


def last(p: Prepared) -> None:
    """The very last step before execve: no_new_privs, then the seccomp filter."""
    if p.no_new_privs:
        _prctl("PR_SET_NO_NEW_PRIVS", PR_SET_NO_NEW_PRIVS, 1)
    if p.program is not None and not p.seccomp_early:
        _load_seccomp(p)


def _load_seccomp(p: Prepared) -> None:
    assert p._fprog is not None  # only called when prepare() compiled a program
    addr = ctypes.addressof(p._fprog)
    if p.seccomp_flags:
        nr = _SECCOMP_NR.get(os.uname().machine)
        if nr is None:  # pragma: no cover
            raise Unsupported("seccomp flags are not supported on this machine: remove linux.seccomp.flags")
        ret = _libc.syscall(
            ctypes.c_long(nr),
            ctypes.c_uint(SECCOMP_SET_MODE_FILTER),
            ctypes.c_uint(p.seccomp_flags),
            ctypes.c_void_p(addr),
        )
    else:
        ret = _prctl_fn(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, addr, 0, 0)
    if ret < 0:
        err = ctypes.get_errno()
        raise PycontainError(f"cannot load the seccomp filter: {os.strerror(err)}")


# -- masked and read-only paths -------------------------------------------------------------------


def mask_paths(masked: list[str] | None = None, readonly: list[str] | None = None) -> None:
    """After pivot_root, inside the container: hide ``masked`` (a file gets /dev/null bound over it, a
    directory a read-only empty tmpfs) and make ``readonly`` read-only (a bind mount of itself,
    remounted read-only with its nosuid/nodev/noexec kept). Paths that do not exist are skipped.
    None means docker's lists (DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS)."""
    from . import libc

    for path in DEFAULT_MASKED_PATHS if masked is None else masked:
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            continue  # (checked first: a missing /dev/null must fail loudly, not look like a missing path)
        if mode & 0o170000 == 0o040000:
            libc.mount("tmpfs", path, "tmpfs", libc.MS_RDONLY, "mode=755")
        else:
            libc.mount("/dev/null", path, None, libc.MS_BIND)
    for path in DEFAULT_READONLY_PATHS if readonly is None else readonly:
        if not os.path.exists(path):
            continue
        libc.mount(path, path, None, libc.MS_BIND | libc.MS_REC)
        keep = os.statvfs(path).f_flag & _ST_KEEP
        libc.mount(None, path, None, libc.MS_BIND | libc.MS_REMOUNT | libc.MS_RDONLY | libc.MS_REC | keep)
