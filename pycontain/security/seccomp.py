"""seccomp: a profile (docker's format or OCI's ``linux.seccomp``) compiled to its final BPF program.

libseccomp (through pyseccomp) builds the program, in the parent; the default profile's program is
cached, since importing pyseccomp alone costs 10-20 ms.

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

from .. import fastos
from ..errors import InvalidArgument, PycontainError, Unsupported
from .caps import CAPABILITIES

# Where compiled default filters are kept: a tmpfs, cleared at boot (a filter depends on the kernel).
# PYCONTAIN_SECCOMP_CACHE changes it; an empty value turns the cache off.
DEFAULT_CACHE_DIR = "/run/pycontain-seccomp"

SECCOMP_FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": 1,
    "SECCOMP_FILTER_FLAG_LOG": 2,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4,
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": 32,
}

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
# The digest of the sources, read once: this process runs the code it loaded, whatever the files say now
# (and a process that execs many containers reads 36 KB less each time).
_digest: list[str] = []


def default_program(bounding: int, cache_dir: str | None = None) -> bytes:
    """The default profile's program for a container with the capabilities ``bounding``: from this
    process's memory, else from the cache directory, else compiled (and cached)."""
    if not _digest:
        here = os.path.dirname(os.path.abspath(__file__))
        try:
            _digest.append(
                sources_digest([os.path.join(here, f) for f in ("seccomp.py", "seccomp_default.py")])
            )
        except OSError:  # pragma: no cover - running from a zip
            _digest.append("0")
    u = os.uname()
    key = f"{u.machine}-{u.release}-{bounding:x}-{_digest[0]}".replace("/", "_")
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


def sources_digest(paths: list[str]) -> str:
    """A digest of the files the default program is made from: the cache key changes exactly when their
    content does (their mtimes change with every checkout and install, and left a stale file each)."""
    try:
        from _blake2 import blake2b  # the C module itself: importing hashlib loads OpenSSL (~4 ms)
    except ImportError:  # pragma: no cover - a Python built without it
        from hashlib import blake2b
    h = blake2b(digest_size=16)
    for p in paths:
        with open(p, "rb") as f:
            h.update(f.read())
    return h.hexdigest()


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
        fastos.write_replace(path, program, 0o600)
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
