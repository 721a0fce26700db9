"""Making a used sandbox as good as new for its next borrower, instead of destroying it and making another.

A pool's sandbox is reset only when everything a run can change is something this module renews or
checks, which ``baseline`` decides from what the kernel shows of the fresh sandbox (before any run):

- **files**: the root filesystem and every other mount are read-only, except tmpfs mounts (``/tmp``,
  ``/dev/shm``: unmounted and mounted anew, empty, with the same options), the mqueue filesystem
  (emptied), and ``/dev`` and its devpts, whose every entry (name, inode, type, mode, owner, device,
  size, mtime, ctime, link target, extended attributes) must be what it was, else the sandbox is
  destroyed instead. So a sandbox whose root is an overlay's writable layer (the default) is never
  reset: overlayfs does not allow its upper directory to be changed under a mounted overlay, and its
  dentry cache would keep showing the old files. The mqueue filesystem is one per IPC namespace
  (mounting it anew gives the same root back): its root's mode and owner must be what they were, and
  its times are set back.
- **processes**: the sandbox is frozen, everything but PID 1 and the idle loop's ``sleep`` (known by pid
  and start time) killed, thawed; a process whose leader thread exited is listed as a zombie and killed
  too; the orphans they leave must have been reaped. PID 1 and its ``sleep`` survive, so nothing may have changed them: runs go without
  ``CAP_AUDIT_WRITE``, which those keep (``RUN_CAP_DROP``). A process whose permitted capabilities are
  not a superset of another's needs ``CAP_SYS_PTRACE`` to ptrace it or open its ``/proc/PID/mem`` (or
  environ, fds, root), so no run can write into them however it is configured; a sandbox whose PID 1
  lacks that capability (one that runs as another user than root) is not reset. Its resource limits
  are another matter: prlimit(2) asks only for the same uid, so a run can shrink them (RLIMIT_AS: every
  ``sleep`` the idle loop starts fails, and it forks in a busy loop billed to the next run's cgroup);
  they must be what they were. Signals: the kernel keeps from a pid namespace's init those it has no
  handler for, and PID 1 acts at once on those it has (it exits: ``sandbox.IDLE_COMMAND``).
- **IPC**: System V shared memory, message queues and semaphores of the sandbox's IPC namespace are
  removed; POSIX message queues live in its mqueue filesystem (above).
- **sockets**: the sandbox's own network namespace must hold none once its processes are gone. TCP
  outlives them (TIME_WAIT for a minute: the next run's server cannot bind that port), as do IP
  fragments awaiting reassembly and sockets sent in flight to themselves until the kernel collects them.
- Nothing else a run could change outlives its processes: without ``CAP_SYS_ADMIN`` and
  ``CAP_NET_ADMIN`` it cannot mount, set the host name or configure the network namespace, the cgroup
  filesystem is read-only, the kernel keyring is closed by seccomp, and environment, working directory,
  limits and descriptors are each run's own.

What a reset leaves on purpose, as it cannot renew them short of a new sandbox: counters, which tell
the next borrower how much earlier runs used, never what they wrote (the cgroup's CPU time and memory
statistics, the pid namespace's last pid, System V IPC ids, the loopback's packet counts), and the idle
``sleep``'s scheduling state (nice, affinity, stopped), which nothing but that sleep uses.

The work (``reset``) needs ``setns`` into the sandbox's mount namespace, which a threaded process cannot
do: the pool's fork server does it, between its create requests. Whatever fails makes the sandbox one to
destroy (``NotResettable``), never one to lend.
"""

from __future__ import annotations

import os
import stat
import time

from .. import libc
from ..errors import PycontainError
from ..state import proc_start_time

# What a run's capabilities lack and PID 1's have (see the module's documentation).
RUN_CAP_DROP = "CAP_AUDIT_WRITE"
_CAP_AUDIT_WRITE = 29
# A reset that takes longer than this (a process that will not die) gives the sandbox up.
KILL_TIMEOUT = 2.0

_MOUNT_FLAGS = {
    "ro": libc.MS_RDONLY,
    "rw": 0,
    "nosuid": libc.MS_NOSUID,
    "nodev": libc.MS_NODEV,
    "noexec": libc.MS_NOEXEC,
    "noatime": libc.MS_NOATIME,
    "nodiratime": libc.MS_NODIRATIME,
    "relatime": libc.MS_RELATIME,
    "strictatime": libc.MS_STRICTATIME,
    "nosymfollow": libc.MS_NOSYMFOLLOW,
}


class NotResettable(PycontainError):
    """This sandbox cannot be reset (the message says why): it is destroyed instead."""


class _Mount:
    __slots__ = ("point", "root", "fstype", "source", "flags", "unknown", "data", "writable")

    def __init__(self, line: str) -> None:
        fields = line.split()
        sep = fields.index("-")
        self.point = _unescape(fields[4])
        self.root = _unescape(fields[3])
        opts = fields[5].split(",")
        self.writable = "ro" not in opts
        self.flags = 0
        self.unknown = [o for o in opts if o not in _MOUNT_FLAGS]
        for opt in opts:
            self.flags |= _MOUNT_FLAGS.get(opt, 0)
        self.fstype, self.source = fields[sep + 1], _unescape(fields[sep + 2])
        self.data = ",".join(o for o in fields[sep + 3].split(",") if o not in ("rw", "ro"))


def _unescape(field: str) -> str:
    """A mountinfo field: spaces, tabs, newlines and backslashes come as octal escapes (\\040)."""
    if "\\" not in field:
        return field
    import re

    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


class Baseline:
    """What a fresh sandbox looks like where a run could change it: its processes (PID 1 and the idle
    loop's child), its tmpfs mounts to renew, the mqueue mount to empty, and its /dev trees as they must
    stay."""

    def __init__(self, pid1: int, cgroup, renew: list[_Mount], mqueue: str, points: set[str]) -> None:
        self.pid1 = pid1
        self.limits = _limits(pid1)
        self.cgroup = cgroup
        procs_file = self.procs_file = cgroup.procs_files()[0]  # any hierarchy's: runs join them all
        self.renew = renew
        self.mqueue = mqueue
        st = os.lstat(_host(pid1, mqueue))
        self.mqueue_id = _mqueue_id(st)
        self.mqueue_times = (st.st_atime_ns, st.st_mtime_ns)
        # The network namespace's sockets (None: the host's, shared, whose sockets are not the sandbox's).
        own_net = os.stat(f"/proc/{pid1}/ns/net").st_ino != os.stat("/proc/self/ns/net").st_ino
        self.sockets = _sockets(pid1) if own_net else None
        self.points = points  # every mount point: the trees checked do not cross them
        self.idle = _members(procs_file)  # pid -> start time, of processes only PID 1 started
        self.fresh = {m.point: _fresh_tmpfs(pid1, m.point) for m in renew}
        self.checked: dict[str, dict] = {}  # /dev and its devpts: entry -> _meta


def baseline(pid1: int, cgroup) -> Baseline:
    """Read, through /proc, what the sandbox whose PID 1 has host pid ``pid1`` (and ``cgroup``, its
    cgroup manager) looks like now; raises ``NotResettable`` when a run could change
    something a reset does not renew or check."""
    with open(f"/proc/{pid1}/status") as f:
        caps = next(line for line in f if line.startswith("CapPrm:"))
    if not int(caps.split()[1], 16) >> _CAP_AUDIT_WRITE & 1:
        raise NotResettable(f"its PID 1 lacks {RUN_CAP_DROP}, so runs could write into it")
    for name in ("ipc", "mnt", "pid"):
        # A namespace shared with us is the host's: its IPC objects and mounts are not ours to renew.
        if os.stat(f"/proc/{pid1}/ns/{name}").st_ino == os.stat(f"/proc/self/ns/{name}").st_ino:
            raise NotResettable(f"it shares the host's {name} namespace")
    with open(f"/proc/{pid1}/mountinfo") as f:
        mounts = [_Mount(line) for line in f]
    renew: list[_Mount] = []
    mqueue = ""
    for m in mounts:
        if not m.writable or _is_checked(m):
            continue
        if m.fstype == "tmpfs" and m.root == "/":
            if m.unknown:
                raise NotResettable(
                    f"{m.point} is mounted with {m.unknown[0]!r}, which a reset cannot repeat"
                )
            renew.append(m)
        elif m.fstype == "mqueue":
            mqueue = m.point
        elif m.fstype == "tmpfs" and stat.S_ISCHR(os.lstat(_host(pid1, m.point)).st_mode):
            continue  # a device node bound over a file (a masked path: /dev/null on /proc/kcore)
        else:
            raise NotResettable(f"{m.point} is a writable {m.fstype} mount")
    if not mqueue:
        raise NotResettable("it has no mqueue mount through which its POSIX message queues can be removed")
    points = {m.point for m in mounts}
    for m in renew:
        if any(p.startswith(m.point.rstrip("/") + "/") for p in points):
            raise NotResettable(f"{m.point}, which a reset mounts anew, has mounts beneath it")
    base = Baseline(pid1, cgroup, renew, mqueue, points)
    base.checked = {m.point: _tree(pid1, m.point, points) for m in mounts if m.writable and _is_checked(m)}
    return base


def _is_checked(m: _Mount) -> bool:
    """/dev (a tmpfs with the device nodes) and devpts: checked entry by entry, not renewed."""
    return m.fstype == "devpts" or (m.fstype == "tmpfs" and m.root == "/" and m.point == "/dev")


def _host(pid1: int, path: str) -> str:
    """``path`` inside the sandbox as the host reaches it: through PID 1's root, never a host path."""
    return f"/proc/{pid1}/root{path}"


def _meta(path: str) -> tuple:
    """What a run could change of a file, short of a regular file's contents (none are checked). Times too:
    ``touch -d`` would carry 64 bits each, and any change of metadata (mode, owner, xattrs, times) sets the
    ctime, which nobody can set back. Not the atime, which reading a symlink updates (ours included)."""
    link = os.readlink(path) if os.path.islink(path) else None
    st = os.lstat(path)
    xattrs = sorted(
        (k, os.getxattr(path, k, follow_symlinks=False)) for k in os.listxattr(path, follow_symlinks=False)
    )
    return (
        st.st_ino, st.st_mode, st.st_uid, st.st_gid, st.st_rdev, st.st_size, st.st_mtime_ns, st.st_ctime_ns,
        link, xattrs,
    )  # fmt: skip


def _tree(pid1: int, top: str, mountpoints: set[str]) -> dict:
    """Every entry beneath ``top`` (not crossing mounts) with ``_meta``."""
    out: dict[str, tuple] = {top: _meta(_host(pid1, top))}

    def walk(path: str) -> None:
        for name in sorted(os.listdir(_host(pid1, path))):
            p = f"{path.rstrip('/')}/{name}"
            if p in mountpoints:
                out[p] = ("mountpoint",)
                continue
            out[p] = meta = _meta(_host(pid1, p))
            if stat.S_ISDIR(meta[1]):
                walk(p)

    walk(top)
    return out


def _fresh_tmpfs(pid1: int, point: str) -> tuple:
    """A tmpfs as a run found it: its root's metadata and atime too (utimensat sets it: a channel), and
    how many inodes and blocks it uses. Equal before and after a run: nothing there to renew."""
    path = _host(pid1, point)
    fs = os.statvfs(path)
    return (_meta(path), os.lstat(path).st_atime_ns, fs.f_files - fs.f_ffree, fs.f_blocks - fs.f_bfree)


def _read(path: str) -> bytes:
    """A /proc file's bytes (a few hundred: one read), without the cost of a Python file object."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, 1 << 16)
    finally:
        os.close(fd)


def _limits(pid1: int) -> bytes:
    return _read(f"/proc/{pid1}/limits")


# What outlives a network namespace's processes, as /proc/net/sockstat{,6} count it: TCP connections
# ("inuse" counts those closing, "tw" those in TIME_WAIT) and IP fragments awaiting reassembly. Not
# "orphan" (the host's count), "sockets: used" nor UDP's or RAW's: freed after an RCU grace period, they
# lag behind the processes (as netlink's do, which ``ip`` uses).
_OUTLIVING = {
    (b"TCP", b"inuse"),
    (b"TCP", b"tw"),
    (b"FRAG", b"inuse"),
    (b"TCP6", b"inuse"),
    (b"FRAG6", b"inuse"),
}


def _sockets(pid1: int) -> tuple[int, list[tuple[bytes, bytes, bytes]]]:
    """What could outlive the processes in the sandbox's network namespace: how many unix sockets are
    bound or connected (one sent in flight to itself stays until the kernel's garbage collector finds
    it), and the counts ``_OUTLIVING`` names."""
    counts = []
    for name in ("sockstat", "sockstat6"):
        try:
            data = _read(f"/proc/{pid1}/net/{name}")
        except FileNotFoundError:  # sockstat6: a kernel without IPv6
            continue
        for line in data.splitlines():
            proto, _, rest = line.partition(b":")
            fields = rest.split()
            for key, value in zip(fields[::2], fields[1::2], strict=True):
                if (proto, key) in _OUTLIVING:
                    counts.append((proto, key, value))
    return _read(f"/proc/{pid1}/net/unix").count(b"\n") - 1, counts


def _children(pid1: int) -> set[int]:
    """PID 1's children, zombies included (the cgroup's list leaves those out)."""
    return {int(p) for p in _read(f"/proc/{pid1}/task/{pid1}/children").split()}


def _members(procs_file: str) -> dict[int, int]:
    """The cgroup's processes: pid -> start time (a pid's identity: pids are reused, start times not).

    A zombie listed there is a thread group whose leader exited while other threads of it still run
    (the kernel leaves out groups with no live thread): a member like any other, to be killed."""
    with open(procs_file) as f:
        pids = [int(p) for p in f.read().split()]
    started = {pid: proc_start_time(pid, allow_zombie=True) for pid in pids}
    return {pid: t for pid, t in started.items() if t is not None}  # None: exited meanwhile


def reset(base: Baseline, own_mnt: int, own_ipc: int) -> None:
    """Kill every process of the sandbox but PID 1 and the idle loop's, remove its IPC objects, renew its
    tmpfs mounts that runs used, empty its mqueue mount and check its /dev; ``own_mnt``/``own_ipc`` are
    the caller's namespaces, rejoined before returning. Raises ``NotResettable``; the caller must be
    single-threaded (setns into a mount namespace)."""
    pid1 = base.pid1
    try:
        if _limits(pid1) != base.limits:
            raise NotResettable("a run changed its PID 1's resource limits")
    except OSError as e:
        raise NotResettable(f"its PID 1 is gone ({e.strerror})") from None
    _kill_all_but_idle(base)
    ns = {}
    try:
        for name in ("ipc", "mnt"):
            ns[name] = os.open(f"/proc/{pid1}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)
        used = [m for m in base.renew if _fresh_tmpfs(pid1, m.point) != base.fresh[m.point]]
        mq = os.lstat(_host(pid1, base.mqueue))
        # Its size counts its queues (mqueue's directory is flat): none, no need to list them.
        queues = os.listdir(_host(pid1, base.mqueue)) if _mqueue_id(mq) != base.mqueue_id else []
    except OSError as e:
        for fd in ns.values():
            os.close(fd)
        raise NotResettable(f"its PID 1 is gone ({e.strerror})") from None
    cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        libc.setns(ns["ipc"], libc.CLONE_NEWIPC)
        try:
            _remove_sysv_ipc()
        finally:
            libc.setns(own_ipc, libc.CLONE_NEWIPC)
        if used or queues:
            libc.setns(ns["mnt"], libc.CLONE_NEWNS)
            try:
                for m in used:
                    libc.umount2(m.point, libc.MNT_DETACH | libc.UMOUNT_NOFOLLOW)
                    libc.mount(m.source, m.point, "tmpfs", m.flags, m.data)
                for name in queues:
                    os.unlink(os.path.join(base.mqueue, name))
            finally:
                libc.setns(own_mnt, libc.CLONE_NEWNS)
                os.fchdir(cwd)
        _check_mqueue_root(base, os.lstat(_host(pid1, base.mqueue)) if queues else mq)
        if base.sockets is not None:
            unix, counts = _sockets(pid1)
            if (unix, counts) != base.sockets:
                kept = ", ".join(f"{p.decode()} {k.decode()} {v.decode()}" for p, k, v in counts)
                raise NotResettable(f"its network namespace keeps sockets ({unix} unix, {kept})")
        for m in used:
            base.fresh[m.point] = _fresh_tmpfs(pid1, m.point)
        for top, before in base.checked.items():
            now = _tree(pid1, top, base.points)
            if now != before:
                changed = sorted(set(now) ^ set(before)) or [p for p in now if now[p] != before[p]]
                raise NotResettable(f"a run changed {changed[0]}")
    except OSError as e:
        raise NotResettable(f"{e.strerror or e} ({e.filename or 'reset'})") from None
    finally:
        os.close(cwd)
        for fd in ns.values():
            os.close(fd)


def _mqueue_id(st: os.stat_result) -> tuple[int, int, int, int, int]:
    """The mqueue root's inode, mode, owner and size (extended attributes: mqueue has none)."""
    return (st.st_ino, st.st_mode, st.st_uid, st.st_gid, st.st_size)


def _check_mqueue_root(base: Baseline, st: os.stat_result) -> None:
    """The mqueue root (``st``, emptied) as it was: its times set back (creating and removing queues
    changes them, and ``touch -d`` would carry 64 bits each), the rest compared; its ctime, which
    nobody can set back, only tells when this reset ran."""
    if _mqueue_id(st) != base.mqueue_id:
        raise NotResettable(f"a run changed {base.mqueue} (its mode or owner)")
    if (st.st_atime_ns, st.st_mtime_ns) != base.mqueue_times:
        os.utime(_host(base.pid1, base.mqueue), ns=base.mqueue_times, follow_symlinks=False)


def _kill_all_but_idle(base: Baseline) -> None:
    """With anything in the cgroup but PID 1 and the idle loop's processes: freeze it (nothing forks
    meanwhile), SIGKILL those, thaw, and wait until they are gone and reaped (PID 1 reaps the orphans;
    runs' own children were reaped by the runs). What PID 1 starts afterwards is idle too: nothing else
    is left."""
    try:
        members = _members(base.procs_file)
        victims: dict[int, int] = {}
        if not members.keys() - {base.pid1} <= {p for p, t in members.items() if base.idle.get(p) == t}:
            base.cgroup.freeze()
            try:
                members = _members(base.procs_file)
                victims = {p: t for p, t in members.items() if p != base.pid1 and base.idle.get(p) != t}
                for p in victims:
                    try:
                        os.kill(p, 9)
                    except ProcessLookupError:
                        pass
            finally:
                base.cgroup.thaw()
            members = _members(base.procs_file)
        deadline = time.monotonic() + KILL_TIMEOUT
        while True:
            left = [p for p, t in victims.items() if members.get(p) == t]
            # A process leaves the cgroup's list before its children go to PID 1, which reaps them: no
            # zombie may be left either (unreaped, they hold pids the next run's pids limit counts).
            if not left and _children(base.pid1) <= members.keys():
                base.idle = members
                return
            if time.monotonic() > deadline:
                raise NotResettable(
                    f"{len(left)} of its processes would not die"
                    if left
                    else "its PID 1 leaves zombies unreaped"
                )
            time.sleep(0.0005)
            members = _members(base.procs_file)
    except OSError as e:
        raise NotResettable(f"cannot stop its processes: {e.strerror}") from None


def _remove_sysv_ipc() -> None:
    """Remove every System V IPC object of our (the sandbox's) IPC namespace, as /proc/sysvipc lists them:
    those files show the reader's namespace."""
    for kind in ("shm", "msg", "sem"):
        with open(f"/proc/sysvipc/{kind}") as f:
            ids = [int(line.split()[1]) for line in f.readlines()[1:]]
        for ident in ids:
            libc.ipc_remove(kind, ident)
