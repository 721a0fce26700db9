"""Starting processes in containers: create's sequence, exec's sequence, and the channel between.

Parent and child talk over one SOCK_SEQPACKET pair of named messages (``pycontain.channel``: GO,
READY, PID, ERROR, and the end of the channel when the command is executed). Privileges drop in one
place, ``finish_and_exec``, for every process: user and groups, umask, working directory, capabilities,
rlimits, no_new_privs, and the seccomp filter last, just before execve.

create / run (``start_container``)::

    pycontain ──unshare(CLONE_NEWPID), fork, setns back──▶ child = PID 1 of a new pid namespace
      │                                                     joins its v1 cgroups (tasks, "0")
      │                                                     setsid (or, with -t, later on its pty)
      │                                                     stdio: relayed pipes / log / pty
      │                                                     join namespaces given by path (type-checked)
      │                                                     unshare mnt uts ipc net [time]; hostname; lo
      ├─ moves the child into its v2 cgroup                 build the root filesystem, pivot_root,
      │                                                     masked and read-only paths
      ├─ GO ───────────────────────────────────────────────▶ unshare cgroup namespace
      │                                                     take the pty (master ──▶ pycontain)
      │                                                     enter the user namespace (become its root)
      │◀──────────────────────────────────────────── READY  (OCI create: blocks on the exec FIFO
      │                                                       until 'start' opens it)
      │                                                     finish_and_exec: privileges drop; execve of
      │◀──────────────────────────────── end of channel      the command, or with --init of
      │                                                     pycontain-init from its sealed copy, which
      ▼ waits for PID 1                                     forks the command (see pycontain.init)

exec (``exec_in``), joining before being seen::

    pycontain ──fork──▶ joiner (outside the container's pid namespace: nothing inside can see it)
      │                   not dumpable; stdio; joins the cgroup
      │                   setns: [user, if it owns the others] pid (only its children's) ipc uts net
      │                          cgroup mnt (root and cwd now the container's) time [user, else]
      │                   opens the pty in the container's devpts (master ──▶ pycontain)
      │                   finish_and_exec: create's privileges drop, host fds closed, then
      │                   execve of pycontain-init --join from its sealed memfd
      │                     └─clone(CLONE_PARENT)─▶ the command's process, pycontain's child,
      │◀─────────────── PID <host pid>                first thing the container can see: root, cwd
      │  (joiner exits; reaped)                        and executable are the container's or the
      │                                                sealed copy; setsid (+ TIOCSCTTY with -t);
      │◀─────────────── end of channel                 execve of the command
      ▼ waits for the command

Why a sealed memfd and not the interpreter: runc re-executes a sealed copy of its own binary so that a
container that opens /proc/<pid>/exe of a runtime process cannot reach (and overwrite) the host's
binary (CVE-2019-5736). pycontain's own executable is the host's Python interpreter, tens of
megabytes with its library, so it is never what the container sees: every process the container can
observe has either executed the command already or is the small static helper, copied into a memfd
sealed against writes. The ERROR and PID messages of the helper use the same channel, as fd 3.
"""

from __future__ import annotations

import _signal as signal  # the C module: the signal package loads enum (2-3 ms on the start path)
import os
import sys

# Everything the child needs after pivot_root must be imported before it: the host's files are gone then.
from . import channel, libc, procattr, rootfs, trace, userns, users
from .errors import (
    EXIT_CANNOT_EXECUTE,
    EXIT_NOT_FOUND,
    EXIT_RUNTIME,
    ExecFailed,
    InvalidArgument,
    PycontainError,
)
from .security import apply as security_apply
from .security.options import SecurityOptions

# typing.TYPE_CHECKING without importing typing; type checkers know the idiom.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from .config import ProcAttrs, TimeOffsets

# The order in which exec joins a container's namespaces: the mount namespace last but one, since
# after it /proc is the container's; cgroup after the process has joined the cgroup itself.
_JOIN_ORDER = (
    ("ipc", libc.CLONE_NEWIPC),
    ("uts", libc.CLONE_NEWUTS),
    ("net", libc.CLONE_NEWNET),
    ("cgroup", libc.CLONE_NEWCGROUP),
    ("mnt", libc.CLONE_NEWNS),
)


class Child:
    """A started process: its host pid, and the master side of its terminal when it has one."""

    __slots__ = ("pid", "pty_master")

    def __init__(self, pid: int, pty_master: int | None) -> None:
        self.pid = pid
        self.pty_master = pty_master


class Stdio:
    """Where the child's fds 0, 1 and 2 come from: inherited, /dev/null, a log file, or a terminal."""

    __slots__ = ("stdin_null", "log_path", "tty", "stdin_fd", "stdout_fd", "stderr_fd")

    def __init__(
        self,
        stdin_null: bool = False,
        log_path: str | None = None,
        tty: bool = False,
        stdin_fd: int | None = None,
        stdout_fd: int | None = None,
        stderr_fd: int | None = None,
    ) -> None:
        self.stdin_null = stdin_null
        self.log_path = log_path
        self.tty = tty
        # Explicit descriptors (pipes of a library caller) for the child's 0, 1 and 2.
        self.stdin_fd = stdin_fd
        self.stdout_fd = stdout_fd
        self.stderr_fd = stderr_fd


def _report(errw: int, code: int, message: str) -> None:
    try:
        channel.send(errw, channel.ERROR, f"{code}\t{message}")
    except BrokenPipeError:
        # Nobody reads the channel any more (an OCI container failing after 'create' returned): the
        # container's own stderr is then the only place left to say why.
        try:
            os.write(2, f"pycontain: {message}\n".encode(errors="replace"))
        except OSError:
            pass
    except OSError:
        pass


def _child(errw: int, name: str, body) -> None:
    """Run ``body`` in a forked child named ``name`` (what ps shows until it executes the command);
    whatever happens, the child never returns into the caller's code."""
    code = EXIT_RUNTIME
    # PYCONTAIN_DEBUG: the child's own traceback, on the container's stderr (imported now: once the child
    # is in the container's root, the host's modules are out of reach)
    tb = __import__("traceback") if os.environ.get("PYCONTAIN_DEBUG") else None
    try:
        try:
            # python-prctl, for the child's capabilities, no_new_privs and name: imported here, while the
            # host's files are still ours, and never on the parent's start path (~0.5 ms).
            import _prctl

            _prctl.prctl(_prctl.PR_SET_NAME, name)
            body()
        except BaseException:
            if tb is not None:
                tb.print_exc()
            raise
    except ExecFailed as e:
        code = e.exit_code
        _report(errw, code, str(e))
    except PycontainError as e:
        _report(errw, code, str(e))
    except OSError as e:
        where = f" ({e.filename})" if e.filename else ""
        _report(errw, code, f"{e.strerror or e}{where}")
    except BaseException as e:
        _report(errw, code, f"{type(e).__name__}: {e}")
    finally:
        os._exit(code)


def _setup_stdio(stdio: Stdio) -> None:
    for fd, target in ((stdio.stdin_fd, 0), (stdio.stdout_fd, 1), (stdio.stderr_fd, 2)):
        if fd is not None:
            os.dup2(fd, target)
    if stdio.stdin_null or stdio.log_path:
        fd = os.open("/dev/null", os.O_RDONLY)
        os.dup2(fd, 0)
        os.close(fd)
    if stdio.log_path:
        fd = os.open(stdio.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)


def _take_terminal(sock_fd: int, console_size: list[int] | None = None) -> None:
    """Open a pty in the container's own devpts, hand its master to the parent, make it our terminal."""
    import fcntl
    import termios

    _open_terminal(sock_fd, console_size)
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _open_terminal(sock_fd: int, console_size: list[int] | None = None) -> None:
    """Open a pty in the container's own devpts, hand its master to the parent, put its slave on 0-2.

    Runs after pivot_root: the caller has imported fcntl, socket and termios already.
    """
    import fcntl
    import socket
    import termios

    master, slave = os.openpty()
    if console_size:
        import struct

        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", console_size[0], console_size[1], 0, 0))
    with socket.socket(fileno=sock_fd) as sock:
        socket.send_fds(sock, [b"T"], [master])
        # Wait until the parent has sized the terminal: the command may ask for its size at once.
        sock.recv(1)
    os.close(master)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    rootfs.bind_console(os.ttyname(slave))
    if slave > 2:
        os.close(slave)


def _find_executable(name: str, env: dict[str, str]) -> str:
    if "/" in name:
        return name
    for d in env.get("PATH", "").split(":"):
        path = os.path.join(d or ".", name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    for d in env.get("PATH", "").split(":"):
        path = os.path.join(d or ".", name)
        if os.path.exists(path):
            raise ExecFailed(
                f"cannot execute {name!r}: {path} is not an executable file", EXIT_CANNOT_EXECUTE
            )
    raise ExecFailed(
        f"executable file not found in $PATH: {name!r} (PATH={env.get('PATH', '')})", EXIT_NOT_FOUND
    )


def prepare_security(security_dict: dict | None) -> security_apply.Prepared:
    """In the parent, before the fork: capability sets, rlimits and the compiled seccomp filter, so the
    child only makes system calls (a docker-style container without options gets docker's defaults)."""
    opts = SecurityOptions.from_dict(security_dict) if security_dict else None
    return security_apply.prepare(opts)


def finish_and_exec(
    args: list[str],
    env: dict[str, str],
    cwd: str,
    user: str | None,
    errw: int,
    extra_gids: list[int] | None = None,
    umask: int | None = None,
    sec: security_apply.Prepared | None = None,
    init_fd: int | None = None,
    init_args: tuple[str, ...] = (),
    groups_denied: bool | None = None,
    keep_fds: range | tuple[int, ...] = (),
) -> None:
    """The last steps of any container process: user, working directory, capabilities, fds, no_new_privs
    and seccomp (the very last step), then execve: of the command, or with ``init_fd`` (a sealed copy
    of pycontain-init, see pycontain.init) of the init that forks it, given ``init_args`` before "--".
    ``keep_fds`` are passed on to the command (runc's --preserve-fds).

    ``groups_denied``: whether setgroups is denied in our user namespace, for a caller that cannot read
    its own /proc/self (exec's joiner, outside the container's pid namespace); None: read it there."""
    u = users.resolve(user)
    for g in extra_gids or ():
        if g not in u.groups:
            u.groups.append(g)
    if umask is not None:
        os.umask(umask)
    env.setdefault("HOME", u.home)
    try:
        os.chdir(cwd)
    except FileNotFoundError:
        os.makedirs(cwd, 0o755, exist_ok=True)
        os.chdir(cwd)
    # A working directory inherited through a leaked host fd shows up as "(unreachable)" (CVE-2024-21626).
    if not os.getcwd().startswith("/"):
        raise PycontainError(f"working directory {cwd!r} is outside the container")
    if sec is not None:
        security_apply.before_setuid(sec)
    try:
        os.setgroups(u.groups)
    except PermissionError:
        # a rootless user namespace: an unprivileged mapping requires setgroups to be denied there, so the
        # groups stay as they were
        if not (groups_denied if groups_denied is not None else userns.setgroups_denied()):
            raise
    os.setgid(u.gid)
    os.setuid(u.uid)
    if sec is not None:
        security_apply.after_setuid(sec, u.uid)
    # No host file descriptor may survive into the container: only 0-2, those the caller passes on on
    # purpose (keep_fds), and the error pipe until exec (with the init's sealed copy, executed from its
    # descriptor and closed by that).
    _close_fds({errw} if init_fd is None else {errw, init_fd}, keep_fds)
    path: str | int = _find_executable(args[0], env)  # an fd once it is the sealed init
    if init_fd is not None:
        from .init import ARGV0, CHANNEL_FD

        # The channel survives the exec as the helper's fd 3, or the first after those passed on.
        chan = max((CHANNEL_FD, *(fd + 1 for fd in keep_fds)))
        if chan != CHANNEL_FD:
            init_args = (f"--fd={chan}", *init_args)
        if init_fd == chan:
            init_fd = os.dup(init_fd)
        os.dup2(errw, chan)
        os.set_inheritable(chan, True)
        path, args = init_fd, [ARGV0, *init_args, "--", *args]
    # Python ignores SIGPIPE and SIGXFSZ, and ignored signals survive execve: give the command the defaults.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    if sec is not None:
        security_apply.last(sec)
    try:
        os.execve(path, args, env)
    except FileNotFoundError:
        raise ExecFailed(
            f"cannot execute {args[0]!r}: no such file (or its interpreter is missing)", EXIT_NOT_FOUND
        ) from None
    except PermissionError:
        raise ExecFailed(f"cannot execute {args[0]!r}: permission denied", EXIT_CANNOT_EXECUTE) from None
    except OSError as e:
        raise ExecFailed(f"cannot execute {args[0]!r}: {e.strerror}", EXIT_CANNOT_EXECUTE) from None


def _close_fds(internal: set[int], keep: range | tuple[int, ...]) -> None:
    """Close every descriptor above 2 but ``internal`` ones (still close-on-exec) and ``keep``, which
    survive the execve."""
    start = 3
    for fd in sorted({*internal, *keep}):
        os.closerange(start, fd)
        start = fd + 1
    os.closerange(start, 65536)
    for fd in keep:
        os.set_inheritable(fd, True)


def _wait_started(chan: int, ready_ok: bool = False, pids: list[int] | None = None) -> None:
    """Block until the child has exec'd (the channel ends) or failed (ERROR, then it exits). Closes
    ``chan``. PID messages (exec's joiner sends the pid it forked) are appended to ``pids``.

    With ``ready_ok`` a READY message (set up, waiting for 'start') ends the wait too.
    The caller reaps a failed child (``_reap_failed``): until then its pid cannot be recycled.
    """
    error: PycontainError | None = None
    try:
        while True:
            msg = channel.recv(chan)
            if msg is None:
                break
            kind, payload = msg
            if kind == channel.PID and pids is not None:
                pids.append(int(payload))
            elif kind == channel.READY and ready_ok and error is None:
                return
            elif kind == channel.ERROR and error is None:
                # Read on to the end: a PID message may still come, naming a process to reap.
                code_s, _, text = payload.partition("\t")
                code = int(code_s) if code_s.isdigit() else EXIT_RUNTIME
                error = PycontainError(text) if code == EXIT_RUNTIME else ExecFailed(text, code)
            elif error is None:
                error = PycontainError(f"unexpected message {kind!r} from the container's process")
    finally:
        os.close(chan)
    if error is not None:
        raise error
    if ready_ok:
        # Ready comes before exec: a silent end is a process that died while being set up.
        raise PycontainError("the container's process died while it was being set up (see the kernel log)")


def _fork_with_pidns(enter_pidns) -> int:
    """Fork into the pid namespace ``enter_pidns`` sets up, then put the parent back in its own.

    unshare(CLONE_NEWPID) and setns(CLONE_NEWPID) only change the namespace of the caller's *next
    children*: the child is born inside, the parent stays outside and can still wait for it.
    """
    own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        enter_pidns()
        try:
            pid = os.fork()
        except BaseException:
            _back_to_own_pidns(own)
            raise
        if pid:
            _back_to_own_pidns(own)
        return pid
    finally:
        os.close(own)


def _back_to_own_pidns(own: int) -> None:
    try:
        libc.setns(own, libc.CLONE_NEWPID)
    except PermissionError:
        from . import rootless

        if not rootless.unprivileged():
            raise
        # Rootless: our own pid namespace belongs to the host's user namespace, where we hold no capability.
        # Our later children would be born in the container's; the CLI forks none after this point.


def _fork_into_new_pidns() -> int:
    return _fork_with_pidns(lambda: libc.unshare(libc.CLONE_NEWPID))


def _fork_into_pidns(ns_fd: int) -> int:
    return _fork_with_pidns(lambda: libc.setns(ns_fd, libc.CLONE_NEWPID))


def _pty_channel(stdio: Stdio) -> tuple:
    """A socket pair over which a child hands its pty master to us (None, None without a terminal)."""
    if not stdio.tty:
        return None, None
    import fcntl  # noqa: F401 - _take_terminal runs after pivot_root, when nothing can be imported
    import socket
    import struct  # noqa: F401 - idem
    import termios  # noqa: F401 - idem

    return socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)


def _parent_side(
    pid: int, errr: int, child_sock, parent_sock, ready_ok: bool = False, joiner: bool = False
) -> Child:
    """After the fork: take the pty master if any, wait until the child execs (or is ready); on any
    failure kill and reap it, so nothing of it outlives the error.

    With ``joiner`` (exec), ``pid`` is the joining process, which forks the command as our child, sends
    its pid and exits: that pid is the one returned."""
    master = None
    pids = [pid]
    try:
        if child_sock is not None:
            child_sock.close()
            try:
                master = _recv_pty(parent_sock)
            finally:
                parent_sock.close()
        _wait_started(errr, ready_ok=ready_ok, pids=pids)
        trace.step("exec'd")
        if joiner:
            if len(pids) != 2:
                raise PycontainError("the process joining the container died before it started the command")
            wait_status(pid)
    except BaseException:
        if master is not None:
            os.close(master)
        for p in pids:
            _reap_failed(p)
        raise
    return Child(pids[-1], master)


def _recv_pty(sock) -> int | None:
    """Take the container's pty master, give it our terminal's size, and let the child go on."""
    import socket

    _msg, fds, _flags, _addr = socket.recv_fds(sock, 16, 1)
    if not fds:
        return None
    if os.isatty(0):
        from .tty import copy_winsize

        copy_winsize(0, fds[0])
    sock.sendall(b"G")
    return fds[0]


def join_cgroup(procs_files: list[str], pid: int = 0) -> None:
    """Move ``pid`` into a cgroup by writing it to each hierarchy's ``cgroup.procs``; 0 moves ourselves,
    who must be single-threaded (a child just forked), through ``tasks`` where there is one (see
    ``moves_itself``)."""
    data = str(pid).encode()
    for path in procs_files:
        if pid == 0 and moves_itself(path):
            path = os.path.join(os.path.dirname(path), "tasks")
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)


def moves_itself(procs_file: str) -> bool:
    """Whether a process joins this hierarchy more cheaply itself than when moved by its parent.

    Writing a pid to ``cgroup.procs`` takes the kernel's global threadgroup lock, and the first time
    after a quiet spell that waits for an RCU grace period (6-16 ms measured on this v1 host, paid by
    every container start and exec, as by runc). A thread writing "0" (itself) to a v1 hierarchy's
    ``tasks`` file is moved without that lock (Linux 6.0 on; before, the same wait): 0.03-0.2 ms per
    hierarchy here. cgroup v2 has no ``tasks`` file, and its ``cgroup.threads`` only moves threads
    within a threaded subtree."""
    return os.path.exists(os.path.join(os.path.dirname(procs_file), "tasks"))


class NsPlan:
    """How a config's namespaces are made: the pid namespace by the parent, the rest by the child."""

    __slots__ = ("pid", "unshare", "cgroup", "join", "net", "user", "time")

    def __init__(self, namespaces: dict[str, str]) -> None:
        self.pid = namespaces.get("pid")  # None: the host's; "": a new one; a path: join it
        self.unshare = 0
        self.join: list[tuple[str, int]] = []
        for ns, flag in (
            ("mount", libc.CLONE_NEWNS),
            ("uts", libc.CLONE_NEWUTS),
            ("ipc", libc.CLONE_NEWIPC),
            ("network", libc.CLONE_NEWNET),
        ):
            where = namespaces.get(ns)
            if where == "":
                self.unshare |= flag
            elif where:
                self.join.append((where, flag))
        cg = namespaces.get("cgroup")
        self.cgroup = cg == ""  # a new cgroup namespace is made once the child sits in its cgroup
        if cg:
            self.join.append((cg, libc.CLONE_NEWCGROUP))
        self.net = namespaces.get("network") == ""
        # The user namespace is made (or opened) by the parent and joined last: see pycontain.userns.
        self.user = namespaces.get("user")
        # A new time namespace applies to the process from its exec on; its offsets must be set before.
        self.time = namespaces.get("time") == ""
        if self.time:
            self.unshare |= libc.CLONE_NEWTIME
        elif namespaces.get("time"):
            self.join.append((namespaces["time"], libc.CLONE_NEWTIME))


def _fork(plan: NsPlan) -> int:
    if plan.pid == "":
        return _fork_into_new_pidns()
    if plan.pid:
        fd = _open_ns(plan.pid, libc.CLONE_NEWPID)
        try:
            return _fork_into_pidns(fd)
        finally:
            os.close(fd)
    return os.fork()


_NS_NAMES = {
    libc.CLONE_NEWNS: "mount",
    libc.CLONE_NEWUTS: "uts",
    libc.CLONE_NEWIPC: "ipc",
    libc.CLONE_NEWNET: "network",
    libc.CLONE_NEWPID: "pid",
    libc.CLONE_NEWUSER: "user",
    libc.CLONE_NEWCGROUP: "cgroup",
    libc.CLONE_NEWTIME: "time",
}


def _open_ns(path: str, flag: int) -> int:
    """Open the namespace file ``path``, refusing one that is not a namespace of type ``flag``."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise PycontainError(f"cannot open namespace {path}: {e.strerror}") from None
    try:
        kind = fcntl.ioctl(fd, libc.NS_GET_NSTYPE)
    except OSError:
        kind = None
    if kind != flag:
        os.close(fd)
        what = f"a {_NS_NAMES[kind]} namespace" if kind in _NS_NAMES else "not a namespace"
        raise InvalidArgument(f"namespace path {path} for the {_NS_NAMES[flag]} namespace is {what}")
    return fd


def start_container(
    config, container_dir: str, cgroup_procs: list[str], stdio: Stdio, start_fifo: str | None = None
) -> Child:
    """Create the container's first process (PID 1 of its namespaces) and run ``config.args`` in it.

    The child joins its v1 cgroups itself, first, through their ``tasks`` files (``moves_itself``:
    no RCU grace period to wait for); the parent moves it into a v2 cgroup while the child builds its
    root filesystem, so the child's mounts fit inside that wait. The child unshares its cgroup
    namespace only once the parent says it has been moved.

    With ``start_fifo`` (OCI create), the child sets everything up, reports ready, and waits until
    ``start`` opens the FIFO before it execs; this function returns as soon as it is ready.
    """
    from . import DEFAULT_PATH
    from .config import merge_env

    plan = NsPlan(config.namespaces)
    env = merge_env(
        [f"PATH={DEFAULT_PATH}"]
        + ([f"HOSTNAME={config.hostname}"] if config.hostname else [])
        + (["TERM=xterm"] if stdio.tty else []),
        config.env,
    )
    sec = security_apply.prepare(config.security)
    join_fds = [(_open_ns(path, flag), flag) for path, flag in plan.join]
    userns_fd = None
    if plan.user is not None:
        try:
            userns_fd = (
                userns.create(config.id_mappings)
                if plan.user == ""
                else _open_ns(plan.user, libc.CLONE_NEWUSER)
            )
        except BaseException:
            for fd, _ in join_fds:
                os.close(fd)
            raise
        join_fds.append((userns_fd, 0))  # closed with the others in the parent; the child joins it last
    errr, errw = channel.pair()
    parent_sock, child_sock = _pty_channel(stdio)
    moved_by_us = [f for f in cgroup_procs if not moves_itself(f)]
    init_fd = None
    if config.init:
        from . import init

        try:
            init_fd = init.sealed_copy()
        except BaseException:
            for fd, _ in join_fds:
                os.close(fd)
            raise
        join_fds.append((init_fd, -1))  # closed with the others in the parent; the child execs it
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        pid = _fork(plan)
    except BaseException:
        for fd, _ in join_fds:
            os.close(fd)
        raise
    if pid == 0:

        def body() -> None:
            os.close(errr)
            if parent_sock is not None:
                parent_sock.close()
            first = _FirstProcess(
                config, plan, stdio, env, sec, errw, join_fds, userns_fd, init_fd, child_sock,
                container_dir, cgroup_procs, start_fifo,
            )  # fmt: skip
            for step in CREATE_STEPS:
                step(first)

        _child(errw, "pycontain-start", body)
    for fd, _ in join_fds:
        os.close(fd)
    os.close(errw)
    trace.step("forked")
    try:
        join_cgroup(moved_by_us, pid)
        trace.step("cgroup joined")
        channel.send(errr, channel.GO)
    except (BrokenPipeError, ConnectionResetError, ProcessLookupError):
        pass  # the child failed before it waited for us: its error record, read just below, says why
    except BaseException:
        _reap_failed(pid)
        raise
    return _parent_side(pid, errr, child_sock, parent_sock, ready_ok=start_fifo is not None)


class _FirstProcess:
    """What the steps of a container's first process share (in the child, after the fork)."""

    __slots__ = (
        "config", "plan", "stdio", "env", "sec", "chan", "join_fds", "userns_fd", "init_fd",
        "pty_sock", "container_dir", "cgroup_procs", "start_fifo", "fifo_fd", "fds_dir", "userns_later",
    )  # fmt: skip

    def __init__(
        self, config, plan: NsPlan, stdio: Stdio, env: dict[str, str], sec: security_apply.Prepared, chan: int,
        join_fds: list[tuple[int, int]], userns_fd: int | None, init_fd: int | None, pty_sock,
        container_dir: str, cgroup_procs: list[str], start_fifo: str | None,
    ) -> None:  # fmt: skip
        self.config, self.plan, self.stdio, self.env, self.sec = config, plan, stdio, env, sec
        self.chan, self.join_fds, self.userns_fd, self.init_fd = chan, join_fds, userns_fd, init_fd
        self.pty_sock, self.container_dir, self.cgroup_procs = pty_sock, container_dir, cgroup_procs
        self.start_fifo = start_fifo
        self.fifo_fd: int | None = None
        self.fds_dir: int | None = None
        # The user namespace is entered before 'created' (OCI: a created process is in all its
        # namespaces); the FIFO belongs to its root then (Container.create). One joined by path has
        # mappings we do not know: it is entered after 'start'.
        self.userns_later = userns_fd is not None and start_fifo is not None and not config.id_mappings


def _join_cgroup(p: _FirstProcess) -> None:
    """The hierarchies we join more cheaply ourselves (``moves_itself``), first: all we do after is
    charged to the container; the parent moves us into the others while we build the root."""
    join_cgroup([f for f in p.cgroup_procs if moves_itself(f)])


def _session_and_stdio(p: _FirstProcess) -> None:
    if not p.stdio.tty:
        # A session of its own, as runc does: the caller's terminal is no controlling terminal of the
        # container's (/dev/tty is ENXIO) and its closing cannot SIGHUP it. With a terminal,
        # _take_terminal starts the session.
        os.setsid()
    _setup_stdio(p.stdio)
    if p.config.oom_score_adj is not None:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(p.config.oom_score_adj))


def _enter_namespaces(p: _FirstProcess) -> None:
    """Join the namespaces given by path (the user namespace waits), make the new ones."""
    for fd, flag in p.join_fds:
        if fd not in (p.userns_fd, p.init_fd):
            libc.setns(fd, flag)
            os.close(fd)
    if p.plan.unshare:
        try:
            libc.unshare(p.plan.unshare)
        except OSError as e:
            from .errors import Unsupported

            raise Unsupported(
                f"cannot create the container's namespaces: {e.strerror} (the kernel lacks "
                "one of them, or this process may not make them; see 'pycontain check')"
            ) from None


def _name_and_network(p: _FirstProcess) -> None:
    config = p.config
    if config.hostname:
        libc.sethostname(config.hostname)
    if config.domainname:
        libc.setdomainname(config.domainname)
    if p.plan.net:
        libc.interface_up("lo")
    if p.plan.time and config.time_offsets:
        _set_time_offsets(config.time_offsets)
    if p.userns_fd is not None and "network" in config.namespaces:
        _open_unprivileged_net()


def _build_root(p: _FirstProcess) -> None:
    """The root filesystem, pivot_root into it, masked and read-only paths."""
    if p.start_fifo:
        p.fifo_fd = os.open(p.start_fifo, os.O_PATH | os.O_CLOEXEC)
        # Our fd directory, held open: a root entered by chroot alone (no mount namespace) has no /proc.
        p.fds_dir = os.open("/proc/self/fd", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    new_userns = p.userns_fd if p.plan.user == "" else None
    rootfs.build(p.config, p.container_dir, new_userns, p.cgroup_procs)
    if not (p.config.security and p.config.security.privileged):
        security_apply.mask_paths(p.config.masked_paths, p.config.readonly_paths)


def _wait_for_cgroup(p: _FirstProcess) -> None:
    """GO: the parent has moved us into our cgroup (or we did, ``_join_cgroup``); then what needs it."""
    if channel.recv(p.chan) != (channel.GO, ""):
        raise PycontainError("pycontain stopped before the container joined its cgroup")
    # In its cgroup by now: a v1 cpu cgroup refuses a real-time task that joins it, not one becoming so
    procattr.apply(p.config.proc_attrs)
    if p.plan.cgroup:
        libc.unshare(libc.CLONE_NEWCGROUP)


def _terminal(p: _FirstProcess) -> None:
    if p.pty_sock is not None:
        _take_terminal(p.pty_sock.detach(), p.config.console_size)


def _user_namespace(p: _FirstProcess) -> None:
    if p.userns_fd is not None and not p.userns_later:
        _enter_userns(p.userns_fd)


def _created(p: _FirstProcess) -> None:
    """OCI create: say READY, then block until 'start' opens the FIFO for reading."""
    if p.fifo_fd is None or p.fds_dir is None:
        return
    channel.send(p.chan, channel.READY)
    fd = os.open(str(p.fifo_fd), os.O_WRONLY | os.O_CLOEXEC, dir_fd=p.fds_dir)
    os.close(p.fds_dir)
    os.write(fd, b"0")
    os.close(fd)
    os.close(p.fifo_fd)
    if p.userns_later and p.userns_fd is not None:
        _enter_userns(p.userns_fd)


def _exec_command(p: _FirstProcess) -> None:
    config = p.config
    finish_and_exec(
        config.args, p.env, config.cwd, config.user, p.chan, config.extra_gids, config.umask, p.sec,
        p.init_fd, keep_fds=range(3, 3 + config.preserve_fds),
    )  # fmt: skip


# A container's first process, step by step (see the module docstring): a new step goes in its place here.
# The steps reach the kernel only through the modules they name (libc, os, rootfs, channel...):
# tests/test_child_steps.py puts recorders there and checks the order without root.
CREATE_STEPS = (
    _join_cgroup,
    _session_and_stdio,
    _enter_namespaces,
    _name_and_network,
    _build_root,
    _wait_for_cgroup,
    _terminal,
    _user_namespace,
    _created,
    _exec_command,
)


def _enter_userns(fd: int) -> None:
    libc.setns(fd, libc.CLONE_NEWUSER)
    os.close(fd)
    userns.become_root()


def _set_time_offsets(offsets: TimeOffsets) -> None:
    """linux.timeOffsets into the new time namespace, before any process has entered it (ours does at exec)."""
    lines = offsets.lines()
    try:
        with open("/proc/self/timens_offsets", "w") as f:
            f.write(lines)
    except OSError as e:
        raise PycontainError(
            f"cannot set the time namespace's offsets ({lines.strip()!r}): {e.strerror}"
        ) from None


def _open_unprivileged_net() -> None:
    """Container root in a user namespace holds no capability over its network namespace (the host's user
    namespace owns it): let every user bind low ports and ping there, as docker does for all containers."""
    for key, value in (("ip_unprivileged_port_start", "0"), ("ping_group_range", "0 2147483647")):
        try:
            with open(f"/proc/sys/net/ipv4/{key}", "w") as f:
                f.write(value)
        except OSError:
            pass  # an older kernel without the knob: low ports stay root-only


def _reap_failed(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def exec_in(
    pid: int,
    cgroup_procs: list[str],
    args: list[str],
    env: dict[str, str],
    cwd: str,
    user: str | None,
    stdio: Stdio,
    security_dict: dict | None = None,
    extra_gids: list[int] | None = None,
    umask: int | None = None,
    keep_fds: tuple[int, ...] = (),
    proc_attrs: ProcAttrs | None = None,
) -> Child:
    """Start ``args`` inside the running container whose PID 1 has host pid ``pid``, with what create
    gave its first process: additional groups, umask, capabilities, rlimits, no_new_privs, seccomp.
    ``keep_fds`` of ours are passed on to it, and ``proc_attrs`` (pycontain.procattr: an OCI
    process.json's ioPriority and scheduler) are set on it.

    Join before being seen: a joining process (a plain child of ours, outside the container's pid
    namespace, so nothing inside can see it) enters the cgroup and every namespace but pid (whose next
    child is born in the container's), which puts its root and working directory in the container,
    takes its terminal, drops to the command's privileges exactly as create does (finish_and_exec) and
    closes every descriptor but its stdio and the channel. Then it executes pycontain-init's sealed copy
    (see pycontain.init), which forks, with CLONE_PARENT, the first process the container can see: its
    root, cwd and executable are the container's or the sealed copy, never the host's (nothing to reach
    through /proc/<pid>/root or /proc/<pid>/exe, even with CAP_SYS_PTRACE). That process, our child,
    starts a session and executes the command; the helper sends its pid on the channel and exits.
    """
    sec = prepare_security(security_dict)
    ns_fds: dict[str, int] = {}
    try:
        for name in ("pid", *(n for n, _ in _JOIN_ORDER), "user", "time"):
            # A namespace the container shares with us (OCI configs may leave some out) is not joined.
            if os.stat(f"/proc/{pid}/ns/{name}").st_ino != os.stat(f"/proc/self/ns/{name}").st_ino:
                ns_fds[name] = os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        for fd in ns_fds.values():
            os.close(fd)
        from .errors import InvalidState

        raise InvalidState("the container stopped before exec could join it") from None
    user_first = False
    user_ids, groups_denied = None, None
    if "user" in ns_fds:
        # The joiner cannot read its own /proc/self once in the container's mount namespace (whose /proc
        # is of a pid namespace it is not in): what it needs from there is read here, from the container's.
        try:
            user_ids, groups_denied = userns.root_ids(str(pid)), userns.setgroups_denied(str(pid))
        except FileNotFoundError:
            for fd in ns_fds.values():
                os.close(fd)
            from .errors import InvalidState

            raise InvalidState("the container stopped before exec could join it") from None
        # A rootless container's namespaces belong to its user namespace: join that first, to hold
        # capabilities over them. A remapped one's belong to the host's: join it last.
        user_first = "mnt" in ns_fds and _owner_inode(ns_fds["mnt"]) == os.fstat(ns_fds["user"]).st_ino
    from . import init

    try:
        helper = init.sealed_copy()
    except BaseException:
        for fd in ns_fds.values():
            os.close(fd)
        raise
    errr, errw = channel.pair()
    parent_sock, child_sock = _pty_channel(stdio)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        joiner = os.fork()
        if joiner == 0:

            def body() -> None:
                os.close(errr)
                if parent_sock is not None:
                    parent_sock.close()
                # Not dumpable while we hold host resources: nothing may ptrace us or open our /proc files.
                import _prctl

                _prctl.prctl(_prctl.PR_SET_DUMPABLE, 0)
                _setup_stdio(stdio)
                join_cgroup(cgroup_procs)
                procattr.apply(proc_attrs)
                _join(ns_fds, user_first, user_ids)
                if child_sock is not None:
                    _open_terminal(child_sock.detach())
                # Everything but the pid namespace is the container's now, and privileges drop here; the
                # helper, executed from its sealed copy, forks the command into the pid namespace.
                finish_and_exec(
                    args, env, cwd, user, errw, extra_gids, umask, sec, helper,
                    ("--join", "--tty") if child_sock is not None else ("--join",), groups_denied,
                    keep_fds=keep_fds,
                )  # fmt: skip

            _child(errw, "pycontain-exec", body)
    finally:
        for fd in ns_fds.values():
            os.close(fd)
        os.close(helper)
    os.close(errw)
    return _parent_side(joiner, errr, child_sock, parent_sock, joiner=True)


def _join(ns_fds: dict[str, int], user_first: bool, user_ids: tuple[int, int] | None) -> None:
    """Enter the namespaces of ``ns_fds`` (name → descriptor) in a safe order, closing each descriptor.

    pid only sets where our children are born; mount, last but one, moves our root and working
    directory into the container; user comes first when it owns the others (rootless) and last when it
    does not (its capabilities would not reach the ones joined after it)."""
    if user_first:
        libc.setns(ns_fds["user"], libc.CLONE_NEWUSER)
    if "pid" in ns_fds:
        libc.setns(ns_fds["pid"], libc.CLONE_NEWPID)
    for name, flag in (*_JOIN_ORDER, ("time", libc.CLONE_NEWTIME)):
        if name in ns_fds:
            libc.setns(ns_fds[name], flag)
    if "user" in ns_fds:
        if not user_first:
            libc.setns(ns_fds["user"], libc.CLONE_NEWUSER)
        userns.become_root(user_ids)
    for fd in ns_fds.values():
        os.close(fd)


def _owner_inode(ns_fd: int) -> int:
    """The inode of the user namespace that owns namespace ``ns_fd`` (ioctl NS_GET_USERNS)."""
    import fcntl

    fd = fcntl.ioctl(ns_fd, libc.NS_GET_USERNS)  # a new descriptor
    try:
        return os.fstat(fd).st_ino
    finally:
        os.close(fd)


def wait_status(pid: int) -> int:
    """Wait for ``pid`` and return its exit status the shell way: the code, or 128+N for signal N."""
    while True:
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            return EXIT_RUNTIME
        if os.WIFEXITED(status):
            return os.WEXITSTATUS(status)
        if os.WIFSIGNALED(status):
            return 128 + os.WTERMSIG(status)


FORWARDED_SIGNALS = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGCONT,
)
