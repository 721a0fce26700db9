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

  (for exec's joiner, ``process.finish_and_exec``; a container's first process takes the same steps in
  pycontain-init --finish, given ``Prepared.helper_options``: ``process.finish_in_helper``).
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

from .. import libc
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

# statvfs's flag bits are the mount flags': those a read-only remount must keep.
_ST_KEEP = libc.MS_NOSUID | libc.MS_NODEV | libc.MS_NOEXEC | libc.MS_NOATIME | libc.MS_NODIRATIME


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

    def helper_options(self) -> list[str]:
        """These settings as pycontain-init's options (``--exec``, ``--finish``), but the seccomp program's
        descriptor, which the caller adds (``--seccomp=FD,OFFSET``) when ``program`` is not None."""
        every = (1 << 64) - 1  # RLIM_INFINITY is the all-ones 64-bit value
        opts = [
            f"--caps={self.bounding},{self.permitted},{self.effective},{self.inheritable},{self.ambient}",
            f"--last-cap={self.last_cap}",
            *(["--exact-caps"] if self.exact_caps else []),
            *(["--nnp"] if self.no_new_privs else []),
            *(
                f"--rlimit={res},{soft & every},{hard & every},{spec}"
                for res, soft, hard, spec in self.rlimits
            ),
        ]
        if self.program is not None:
            opts.append(f"--seccomp-flags={self.seccomp_flags}")
            if self.seccomp_early:
                opts.append("--seccomp-early")
        return opts

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
# Capabilities, keep-caps and no_new_privs go through python-prctl (its ``_prctl`` extension: libcap's
# cap_set_proc for the three sets, prctl(2) for the rest, each option's argument checked). Its 1.8.1 has
# no PR_CAP_AMBIENT: the ambient set, and loading the seccomp filter, go through pycontain.libc.
# Only exec's Python path (``process.exec``) uses these: a container's first process drops its privileges in
# pycontain-init (``process.finish_in_helper``, from ``Prepared.helper_options``), and a run never loads
# ``_prctl``.


def before_setuid(p: Prepared) -> None:
    """Still root, before setgroups/setgid/setuid: rlimits, the bounding set, keep-caps; and the
    seccomp filter when no_new_privs is off (the kernel then wants CAP_SYS_ADMIN to load it)."""
    import _prctl

    for resource, soft, hard, spec in p.rlimits:
        try:
            libc.setrlimit(resource, soft, hard)
        except OSError as e:
            raise PycontainError(
                f"cannot set --ulimit {spec}: {os.strerror(e.errno or 0)} (pycontain's own hard limit "
                "is the most it can give without CAP_SYS_RESOURCE)"
            ) from None
    for cap in range(p.last_cap + 1):
        if not p.bounding >> cap & 1 and _capbset(_prctl, _prctl.PR_CAPBSET_READ, cap):
            _capbset(_prctl, _prctl.PR_CAPBSET_DROP, cap)
    # Keep the permitted set across setuid to a non-root user; after_setuid trims it.
    _checked("PR_SET_KEEPCAPS", _prctl.prctl, _prctl.PR_SET_KEEPCAPS, 1)
    if p.seccomp_early:
        _load_seccomp(p)


def _capbset(_prctl, option: int, cap: int) -> int:
    """PR_CAPBSET_READ or _DROP; python-prctl refuses a capability newer than its build: libc takes it."""
    if cap > _prctl.CAP_LAST_CAP:
        return libc.prctl("PR_CAPBSET", option, cap)
    return _checked("PR_CAPBSET", _prctl.prctl, option, cap) or 0


def after_setuid(p: Prepared, uid: int) -> None:
    """After setuid: the permitted, effective and inheritable sets exactly, the ambient set cleared (or
    OCI's). A non-root user gets an empty effective set, as with docker, unless OCI's sets say otherwise."""
    import _prctl

    effective = p.effective if (uid == 0 or p.exact_caps) else 0
    known = range(min(p.last_cap, _prctl.CAP_LAST_CAP) + 1)
    sets = (effective, p.permitted, p.inheritable)
    # set_caps(effective, permitted, inheritable to raise, then the same three to clear): every known
    # capability is named once, so the sets come out exactly as asked whatever they were.
    _checked(
        "capset",
        _prctl.set_caps,
        *([c for c in known if m >> c & 1] for m in sets),
        *([c for c in known if not m >> c & 1] for m in sets),
    )
    _checked("PR_SET_KEEPCAPS", _prctl.prctl, _prctl.PR_SET_KEEPCAPS, 0)
    try:
        libc.prctl("PR_CAP_AMBIENT", libc.PR_CAP_AMBIENT, libc.PR_CAP_AMBIENT_CLEAR_ALL)
    except OSError as e:  # pragma: no cover - kernels before 4.3 have no ambient set
        if e.errno != errno.EINVAL or p.ambient:
            raise
    for cap in range(p.last_cap + 1):
        if p.ambient >> cap & 1:
            libc.prctl("PR_CAP_AMBIENT_RAISE", libc.PR_CAP_AMBIENT, libc.PR_CAP_AMBIENT_RAISE, cap)


def last(p: Prepared) -> None:
    """The very last step before execve: no_new_privs, then the seccomp filter."""
    import _prctl

    if p.no_new_privs:
        _checked("PR_SET_NO_NEW_PRIVS", _prctl.prctl, _prctl.PR_SET_NO_NEW_PRIVS, 1)
    if p.program is not None and not p.seccomp_early:
        _load_seccomp(p)


def _checked(what: str, call, *args: object) -> int | None:
    """``call(*args)``, its OSError naming ``what`` (python-prctl's say only the errno)."""
    try:
        return call(*args)
    except OSError as e:
        raise OSError(e.errno, f"{what}: {os.strerror(e.errno or 0)}") from None


def _load_seccomp(p: Prepared) -> None:
    assert p._fprog is not None  # only called when prepare() compiled a program
    try:
        libc.seccomp_set_filter(ctypes.addressof(p._fprog), p.seccomp_flags)
    except OSError as e:
        if e.errno == errno.ENOSYS and p.seccomp_flags:  # pragma: no cover - libc.py has no number here
            raise Unsupported(
                "seccomp flags are not supported on this machine: remove linux.seccomp.flags"
            ) from None
        raise PycontainError(f"cannot load the seccomp filter: {os.strerror(e.errno or 0)}") from None


# -- masked and read-only paths -------------------------------------------------------------------


def mask_paths(masked: list[str] | None = None, readonly: list[str] | None = None) -> None:
    """After pivot_root, inside the container: hide ``masked`` (a file gets /dev/null bound over it, a
    directory a read-only empty tmpfs) and make ``readonly`` read-only (a bind mount of itself,
    remounted read-only with its nosuid/nodev/noexec kept). Paths that do not exist are skipped.
    None means docker's lists (DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS)."""
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
