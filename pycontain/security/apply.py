"""The walls applied: resolved in the parent (``prepare``), handed to the kernel in the child.

Two halves, so that the forked child only makes system calls:

- in the parent, before the fork: ``SecurityOptions`` is resolved by ``prepare`` into a ``Prepared``:
  capability masks, rlimits, and the seccomp filter compiled to its final BPF program;
- in the child, in this order::

      rootfs.build(...)                    # pivot_root done
      apply.mask_paths(masked, ro)         # /proc/kcore & co. masked, /proc/sys & co. read-only
      apply.before_setuid(p)               # still root: rlimits, bounding set, keep-caps
      os.setgroups/setgid/setuid(...)
      apply.after_setuid(p, uid)           # permitted/effective/inheritable/ambient, exactly
      apply.last(p)                        # no_new_privs, then the seccomp filter
      os.execve(...)

  ``before_setuid`` loads the seccomp filter itself when no_new_privs is off: without no_new_privs
  the kernel only accepts a filter from a process with CAP_SYS_ADMIN, which the container's user
  no longer has after ``after_setuid`` (runc does the same). The profile must then allow the few
  calls left before execve, which the default profile does.

Every import this module does at run time happens in ``prepare``: after pivot_root the host's files,
Python's library included, are out of reach.
"""

from __future__ import annotations

import ctypes
import errno
import os

from ..errors import PycontainError, Unsupported
from .caps import CAPABILITIES, own_bounding_set, resolve_capabilities
from .options import (
    DEFAULT_MASKED_PATHS,
    DEFAULT_READONLY_PATHS,
    SECCOMP_DEFAULT,
    SECCOMP_UNCONFINED,
    ULIMITS,
    SecurityOptions,
    load_profile,
    parse_ulimit,
)
from .seccomp import compile_filter, default_program

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
_SECCOMP_NR = {"x86_64": 317, "aarch64": 277, "riscv64": 277, "s390x": 348, "ppc64le": 358}

# statvfs's flag bits that mount flags keep across a read-only remount.
_ST_KEEP = 2 | 4 | 8 | 1024 | 2048  # ST_NOSUID, ST_NODEV, ST_NOEXEC, ST_NOATIME, ST_NODIRATIME = the MS_ bits


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
    from .. import libc

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
