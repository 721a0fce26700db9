"""The only module that calls libc directly (through ctypes), and the one home of the kernel's numbers:
clone flags, mount flags and attributes, prctl options, ioctl requests, system call numbers.

Every wrapper raises ``OSError`` with the errno and the argument that failed, so callers can turn it
into a sentence for the user. (python-prctl's ``_prctl``, which ``security.apply`` uses for capabilities,
securebits and no_new_privs, brings its own copies of the PR_* numbers it takes.)
"""

from __future__ import annotations

import ctypes
import errno
import os

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080
# Every namespace flag of clone(2) but CLONE_NEWTIME (which clone(2) cannot take, only unshare and clone3).
CLONE_NAMESPACE_FLAGS = (
    CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET
)

# mount(2)'s flags (linux/mount.h), every one: spec.model's option table and security/apply.py take them from here.
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_POSIXACL = 1 << 16
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_I_VERSION = 1 << 23
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25

MNT_DETACH = 2
UMOUNT_NOFOLLOW = 8

# prctl(2) options that go through ctypes: the ambient set (python-prctl 1.8.1 has no PR_CAP_AMBIENT),
# loading a seccomp filter, and the process's name (for which a run need not load python-prctl).
PR_SET_NAME = 15
PR_SET_SECCOMP = 22
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4
SECCOMP_MODE_FILTER = 2
SECCOMP_SET_MODE_FILTER = 1

# ioctl(2) requests: on namespace files (linux/nsfs.h) and terminals (asm-generic/ioctls.h).
NS_GET_USERNS = 0xB701  # a new descriptor of the owning user namespace
NS_GET_NSTYPE = 0xB703  # the CLONE_NEW* flag of the namespace
TIOCSTI = 0x5412  # push bytes into the terminal's input queue
TIOCLINUX = 0x541C  # the Linux console's selection and paste buffer
IFF_UP = 0x1  # an interface's flag (linux/if.h), set through SIOCSIFFLAGS here and netlink in network.rtnl

# x86_64 and aarch64 syscall numbers for the calls glibc 2.36 has no wrapper for.
_SYSCALLS = {
    "x86_64": {
        "pivot_root": 155,
        "pidfd_open": 434,
        "open_tree": 428,
        "move_mount": 429,
        "mount_setattr": 442,
        "ioprio_set": 251,
        "sched_setattr": 314,
        "set_mempolicy": 238,
        "seccomp": 317,
        "bpf": 321,
    },
    "aarch64": {
        "pivot_root": 41,
        "pidfd_open": 434,
        "open_tree": 428,
        "move_mount": 429,
        "mount_setattr": 442,
        "ioprio_set": 30,
        "sched_setattr": 274,
        "set_mempolicy": 237,
        "seccomp": 277,
        "bpf": 280,
    },
    # Only seccomp(2) with flags is asked for on these.
    "riscv64": {"seccomp": 277},
    "s390x": {"seccomp": 348},
    "ppc64le": {"seccomp": 358},
}
_AT_FDCWD = -100
_AT_EMPTY_PATH = 0x1000
_AT_RECURSIVE = 0x8000
_OPEN_TREE_CLONE = 1
_MOVE_MOUNT_F_EMPTY_PATH = 0x4
_MOUNT_ATTR_IDMAP = 0x00100000
# mount_setattr(2)'s attributes (linux/mount.h), for recursive mount options such as rro
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR__ATIME = 0x70
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR_NODIRATIME = 0x80
MOUNT_ATTR_NOSYMFOLLOW = 0x00200000

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p)
_libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)
_libc.unshare.argtypes = (ctypes.c_int,)
_libc.setns.argtypes = (ctypes.c_int, ctypes.c_int)
_libc.sethostname.argtypes = (ctypes.c_char_p, ctypes.c_size_t)
_libc.syscall.restype = ctypes.c_long


def _check(ret: int, what: str, path: str | None = None) -> None:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", path)


def _b(s: str | None) -> bytes | None:
    return None if s is None else os.fsencode(s)


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    _check(_libc.setns(fd, nstype), "setns")


def mount(
    source: str | None, target: str, fstype: str | None = None, flags: int = 0, data: str | None = None
) -> None:
    _check(_libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)), f"mount {fstype or ''}", target)


def escape_overlay(path: str) -> str:
    """``path`` as an overlayfs mount option takes it: its ``\\``, ``,`` and ``:`` escaped."""
    for ch in "\\,:":
        path = path.replace(ch, "\\" + ch)
    return path


def umount2(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(_b(target), flags), "umount", target)


def ipc_remove(kind: str, ident: int) -> None:
    """Remove System V IPC object ``ident`` of our IPC namespace; ``kind``: "shm", "msg" or "sem"."""
    ipc_rmid = 0
    if kind == "sem":
        ret = _libc.semctl(ident, 0, ipc_rmid)
    else:
        ret = (_libc.shmctl if kind == "shm" else _libc.msgctl)(ident, ipc_rmid, None)
    if ret < 0 and ctypes.get_errno() not in (errno.EINVAL, errno.EIDRM):  # removed meanwhile
        _check(ret, f"{kind}ctl IPC_RMID")


def _syscall_number(name: str) -> int:
    machine = os.uname().machine
    try:
        return _SYSCALLS[machine][name]
    except KeyError:
        raise OSError(38, f"{name} is not wired up for {machine}") from None


def pivot_root(new_root: str, put_old: str) -> None:
    nr = _syscall_number("pivot_root")
    _check(_libc.syscall(ctypes.c_long(nr), _b(new_root), _b(put_old)), "pivot_root", new_root)


def pidfd_open(pid: int) -> int:
    """A pidfd for ``pid`` (os.pidfd_open where Python has it, the raw syscall otherwise)."""
    if hasattr(os, "pidfd_open"):
        return os.pidfd_open(pid)
    nr = _syscall_number("pidfd_open")
    fd = _libc.syscall(ctypes.c_long(nr), ctypes.c_int(pid), ctypes.c_uint(0))
    _check(fd, "pidfd_open")
    return fd


def seqpacket_pair() -> tuple[int, int]:
    """A close-on-exec AF_UNIX SOCK_SEQPACKET socket pair: one message per write, kept whole."""
    fds = (ctypes.c_int * 2)()
    _check(_libc.socketpair(1, 5 | 0o2000000, 0, fds), "socketpair")  # AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC
    return fds[0], fds[1]


PROC_SUPER_MAGIC = 0x9FA0


def fstatfs_type(fd: int) -> int:
    """The file system type (``f_type``, a magic number such as PROC_SUPER_MAGIC) that ``fd`` is on."""
    buf = ctypes.create_string_buffer(256)  # struct statfs is 120 bytes on 64-bit Linux; f_type comes first
    _check(_libc.fstatfs(ctypes.c_int(fd), buf), "fstatfs")
    return ctypes.c_long.from_buffer(buf).value


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, len(raw)), "sethostname")


_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914


def interface_up(name: str) -> None:
    """Bring a network interface up with two ioctls: far cheaper than loading a netlink library."""
    import fcntl
    import struct

    fd = _libc.socket(2, 2 | 0o2000000, 0)  # AF_INET, SOCK_DGRAM | SOCK_CLOEXEC
    _check(fd, "socket")
    try:
        req = struct.pack("16sH22x", name.encode(), 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(fd, _SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(fd, _SIOCSIFFLAGS, struct.pack("16sH22x", name.encode(), flags | IFF_UP))
    finally:
        os.close(fd)


def setdomainname(name: str) -> None:
    raw = name.encode()
    _libc.setdomainname.argtypes = (ctypes.c_char_p, ctypes.c_size_t)
    _check(_libc.setdomainname(raw, len(raw)), "setdomainname")


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def _mount_setattr(fd: int, path: str, flags: int, attr: _MountAttr) -> None:
    _check(
        _libc.syscall(
            ctypes.c_long(_syscall_number("mount_setattr")),
            ctypes.c_int(fd),
            _b(path),
            ctypes.c_uint(flags),
            ctypes.byref(attr),
            ctypes.c_size_t(ctypes.sizeof(attr)),
        ),
        "mount_setattr",
        path,
    )


def mount_setattr(path: str, attr_set: int, attr_clr: int) -> None:
    """Change the attributes of the mount at ``path`` and of every mount beneath it (AT_RECURSIVE): what a
    remount cannot do for the submounts of a recursive bind."""
    _mount_setattr(_AT_FDCWD, path, _AT_RECURSIVE, _MountAttr(attr_set, attr_clr, 0, 0))


def idmapped_bind(source: str, target: str, userns_fd: int, recursive: bool = True) -> None:
    """Bind ``source`` (with its submounts when ``recursive``) at ``target`` with its file owners shifted
    through the id mappings of the user namespace ``userns_fd`` (an idmapped mount: the files on disk do
    not change)."""
    rec = _AT_RECURSIVE if recursive else 0
    fd = _libc.syscall(
        ctypes.c_long(_syscall_number("open_tree")),
        ctypes.c_int(_AT_FDCWD),
        _b(source),
        ctypes.c_uint(_OPEN_TREE_CLONE | rec | os.O_CLOEXEC),
    )
    _check(fd, "open_tree", source)
    try:
        _mount_setattr(fd, "", _AT_EMPTY_PATH | rec, _MountAttr(_MOUNT_ATTR_IDMAP, 0, 0, userns_fd))
        _check(
            _libc.syscall(
                ctypes.c_long(_syscall_number("move_mount")),
                ctypes.c_int(fd),
                b"",
                ctypes.c_int(_AT_FDCWD),
                _b(target),
                ctypes.c_uint(_MOVE_MOUNT_F_EMPTY_PATH),
            ),
            "move_mount",
            target,
        )
    finally:
        os.close(fd)


def ioprio_set(ioprio: int) -> None:
    """The calling process's I/O priority (IOPRIO_WHO_PROCESS, itself)."""
    nr = _syscall_number("ioprio_set")
    _check(
        _libc.syscall(ctypes.c_long(nr), ctypes.c_int(1), ctypes.c_int(0), ctypes.c_int(ioprio)), "ioprio_set"
    )


class SchedAttr(ctypes.Structure):
    """struct sched_attr, its first version (SCHED_ATTR_SIZE_VER0, 48 bytes)."""

    _fields_ = [
        ("size", ctypes.c_uint32),
        ("sched_policy", ctypes.c_uint32),
        ("sched_flags", ctypes.c_uint64),
        ("sched_nice", ctypes.c_int32),
        ("sched_priority", ctypes.c_uint32),
        ("sched_runtime", ctypes.c_uint64),
        ("sched_deadline", ctypes.c_uint64),
        ("sched_period", ctypes.c_uint64),
    ]


def sched_setattr(attr: SchedAttr) -> None:
    """The calling thread's scheduling policy and parameters."""
    attr.size = ctypes.sizeof(attr)
    nr = _syscall_number("sched_setattr")
    _check(
        _libc.syscall(ctypes.c_long(nr), ctypes.c_int(0), ctypes.byref(attr), ctypes.c_uint(0)),
        "sched_setattr",
    )


def set_mempolicy(mode: int, nodes: list[int]) -> None:
    """The calling thread's NUMA memory policy (``mode`` with its MPOL_F_* flags) over ``nodes``."""
    words = [0] * (max(nodes, default=-1) // 64 + 1) if nodes else []
    for n in nodes:
        words[n // 64] |= 1 << (n % 64)
    mask = (ctypes.c_ulong * len(words))(*words) if words else None
    nr = _syscall_number("set_mempolicy")
    # maxnode counts one past the last bit the kernel reads (it drops the top one, as numactl does)
    maxnode = 64 * len(words) + 1 if words else 0
    _check(
        _libc.syscall(ctypes.c_long(nr), ctypes.c_int(mode), mask, ctypes.c_ulong(maxnode)), "set_mempolicy"
    )


def bpf(cmd: int, attr: bytes) -> int:
    """bpf(2) with ``attr`` as its union bpf_attr; returns what the command returns (a descriptor for
    BPF_PROG_LOAD)."""
    buf = ctypes.create_string_buffer(attr, len(attr))
    ret = _libc.syscall(
        ctypes.c_long(_syscall_number("bpf")), ctypes.c_int(cmd), buf, ctypes.c_uint(len(attr))
    )
    _check(ret, "bpf")
    return ret


def setrlimit(resource: int, soft: int, hard: int) -> None:
    """setrlimit(2) through glibc's 64-bit call, which takes RLIM_INFINITY as is."""
    lim = (ctypes.c_uint64 * 2)(soft, hard)
    _check(_libc.setrlimit64(resource, ctypes.byref(lim)), "setrlimit")


def prctl(what: str, option: int, a2: int = 0, a3: int = 0, a4: int = 0, a5: int = 0) -> int:
    """prctl(2) for the options python-prctl lacks; ``what`` names the option in the error."""
    ret = _libc.prctl(option, ctypes.c_ulong(a2), ctypes.c_ulong(a3), ctypes.c_ulong(a4), ctypes.c_ulong(a5))
    _check(ret, f"prctl({what})")
    return ret


def set_name(name: str) -> None:
    """prctl(PR_SET_NAME): what ps shows for this process (cut to 15 bytes by the kernel)."""
    _check(_libc.prctl(PR_SET_NAME, ctypes.c_char_p(name.encode()), 0, 0, 0), "prctl(PR_SET_NAME)")


def seccomp_set_filter(fprog_address: int, flags: int = 0) -> None:
    """Load the seccomp filter whose struct sock_fprog is at ``fprog_address``: prctl(2) without flags,
    seccomp(2) with them (which only it takes)."""
    if flags:
        nr = _syscall_number("seccomp")
        ret = _libc.syscall(
            ctypes.c_long(nr),
            ctypes.c_uint(SECCOMP_SET_MODE_FILTER),
            ctypes.c_uint(flags),
            ctypes.c_void_p(fprog_address),
        )
    else:
        ret = _libc.prctl(
            PR_SET_SECCOMP, ctypes.c_ulong(SECCOMP_MODE_FILTER), ctypes.c_ulong(fprog_address), 0, 0
        )
    _check(ret, "seccomp")
