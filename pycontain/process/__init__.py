"""Starting processes in containers: create's sequence, exec's sequence, and the channel between.

- ``create``: a container's first process, ``start_container`` and the child's steps (``CREATE_STEPS``);
- ``exec``: a new process in a running container (``exec_in``);
- here, what both share (every path needs it, and each module loaded costs start-up time): the fork
  (into a pid namespace: ``fork_for``), the child's wrapper (``run_child``: any failure reported on the
  channel, never a return into the caller's code), stdio and the terminal's channel, the cgroup
  (``join_cgroup``), the parent's wait until the child has executed (``parent_side``), and the last
  steps of every process, privileges drop and execve: in pycontain-init for a container's first process
  (``finish_in_helper``), in Python for exec's joiner (``finish_and_exec``), in the same order.

Parent and child talk over one SOCK_SEQPACKET pair of named messages (``pycontain.channel``: GO,
READY, PID, ERROR, and the end of the channel when the command is executed). Privileges drop in one
order for every process: user and groups, umask, working directory, capabilities, rlimits, no_new_privs,
and the seccomp filter last, just before execve (``finish_and_exec``; ``finish_main`` of pycontain-init.c
for a container's first process, which executes it in its place: ``finish_in_helper``).

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
      │                                                     execve of pycontain-init --finish from its
      │                                                     sealed copy: the privileges drop (in C), then
      │◀──────────────────────────────── end of channel      execve of the command, or with --init of
      ▼ waits for PID 1                                     the sealed copy again, which forks the command

exec (``exec_in``), joining before being seen::

    pycontain ──fork──▶ joiner (outside the container's pid namespace: nothing inside can see it)
      │                   not dumpable; stdio; joins the cgroup
      │                   setns: [user, if it owns the others] pid (only its children's) ipc uts net
      │                          cgroup mnt (root and cwd now the container's) time [user, else]
      │                   opens the pty in the container's devpts (master ──▶ pycontain)
      │                   finish_and_exec: the privileges drop (in Python), host fds closed, then
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

# Everything the child needs after pivot_root must be imported before it: the host's files are gone then.
from .. import channel, libc, rootfs, trace, userns, users
from ..cgroup_record import moves_itself
from ..errors import (
    EXIT_CANNOT_EXECUTE,
    EXIT_NOT_FOUND,
    EXIT_RUNTIME,
    ExecFailed,
    InvalidArgument,
    PycontainError,
)
from ..security import apply as security_apply


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


def run_child(errw: int, name: str, body) -> None:
    """Run ``body`` in a forked child named ``name`` (what ps shows until it executes the command);
    whatever happens, the child never returns into the caller's code."""
    code = EXIT_RUNTIME
    # PYCONTAIN_DEBUG: the child's own traceback, on the container's stderr (imported now: once the child
    # is in the container's root, the host's modules are out of reach)
    tb = __import__("traceback") if os.environ.get("PYCONTAIN_DEBUG") else None
    try:
        try:
            libc.set_name(name)
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


def setup_stdio(stdio: Stdio) -> None:
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


def open_terminal(sock_fd: int, console_size: list[int] | None = None) -> None:
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


def pty_channel(stdio: Stdio) -> tuple:
    """A socket pair over which a child hands its pty master to us (None, None without a terminal)."""
    if not stdio.tty:
        return None, None
    import fcntl  # noqa: F401 - the child takes its terminal after pivot_root, when nothing can be imported
    import socket
    import struct  # noqa: F401 - idem
    import termios  # noqa: F401 - idem

    return socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)


def parent_side(
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
            reap_failed(p)
        raise
    return Child(pids[-1], master)


def _recv_pty(sock) -> int | None:
    """Take the container's pty master, give it our terminal's size, and let the child go on."""
    import socket

    _msg, fds, _flags, _addr = socket.recv_fds(sock, 16, 1)
    if not fds:
        return None
    if os.isatty(0):
        copy_winsize(0, fds[0])
    sock.sendall(b"G")
    return fds[0]


def copy_winsize(src_fd: int, dst_fd: int) -> None:
    """Give terminal ``dst_fd`` the size of ``src_fd`` (ours, to the pty a container was given)."""
    import fcntl
    import termios

    try:
        size = fcntl.ioctl(src_fd, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(dst_fd, termios.TIOCSWINSZ, size)
    except OSError:
        pass


def _wait_started(chan: int, ready_ok: bool = False, pids: list[int] | None = None) -> None:
    """Block until the child has exec'd (the channel ends) or failed (ERROR, then it exits). Closes
    ``chan``. PID messages (exec's joiner sends the pid it forked) are appended to ``pids``.

    With ``ready_ok`` a READY message (set up, waiting for 'start') ends the wait too.
    The caller reaps a failed child (``reap_failed``): until then its pid cannot be recycled.
    """
    error: PycontainError | None = None
    try:
        while True:
            msg = channel.recv(chan)
            if msg is None:
                break
            kind, payload = msg
            if kind == channel.PID and pids is not None:
                # Once, and only a child of ours: the command's process holds the channel until its
                # execve, and one of the container's with CAP_SYS_PTRACE could make it name any pid.
                if len(pids) == 1 and payload.isdigit() and _our_child(int(payload)):
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


def _our_child(pid: int) -> bool:
    """Whether ``pid`` is a child of ours (waitid, without reaping it)."""
    try:
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except OSError:  # ChildProcessError: not ours; EINVAL: not a pid
        return False
    return pid > 0


def reap_failed(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


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


def fork_for(plan: NsPlan) -> int:
    if plan.pid == "":
        return _fork_into_new_pidns()
    if plan.pid:
        fd = open_ns(plan.pid, libc.CLONE_NEWPID)
        try:
            return _fork_into_pidns(fd)
        finally:
            os.close(fd)
    return os.fork()


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
        from .. import rootless

        if not rootless.unprivileged():
            raise


def _fork_into_new_pidns() -> int:
    return _fork_with_pidns(lambda: libc.unshare(libc.CLONE_NEWPID))


def _fork_into_pidns(ns_fd: int) -> int:
    return _fork_with_pidns(lambda: libc.setns(ns_fd, libc.CLONE_NEWPID))


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


def open_ns(path: str, flag: int) -> int:
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
    name = args[0]  # (what an error names: the init's copy takes the command's arguments and environment)
    if init_fd is not None:
        from ..init import ARGV0, CHANNEL_FD

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
    except OSError as e:
        raise _exec_failed(name, e) from None


def _exec_failed(name: str, e: OSError) -> ExecFailed:
    """An execve's failure as the user reads it, with docker's status (127: not found, else 126)."""
    if isinstance(e, FileNotFoundError):
        return ExecFailed(
            f"cannot execute {name!r}: no such file (or its interpreter is missing)", EXIT_NOT_FOUND
        )
    if isinstance(e, PermissionError):
        return ExecFailed(f"cannot execute {name!r}: permission denied", EXIT_CANNOT_EXECUTE)
    return ExecFailed(f"cannot execute {name!r}: {e.strerror}", EXIT_CANNOT_EXECUTE)


def finish_in_helper(
    args: list[str],
    env: dict[str, str],
    cwd: str,
    user: str | None,
    errw: int,
    helper_fd: int,
    extra_gids: list[int] | None = None,
    umask: int | None = None,
    sec: security_apply.Prepared | None = None,
    init: bool = False,
    keep_fds: range | tuple[int, ...] = (),
) -> None:
    """``finish_and_exec``'s steps taken in C: executes ``helper_fd``, the sealed pycontain-init (see
    pycontain.init), as ``pycontain-init --finish`` in this process's place, which drops to the command's
    privileges exactly as ``finish_and_exec`` does and executes the command (with ``init``, itself again
    as PID 1 above it). A container's first process ends here: a run loads no python-prctl, and none of
    the drop is interpreted. The channel ``errw`` goes on as the helper's fd 3 (or the first after those
    passed on: ``keep_fds``), and with it the failures, with finish_and_exec's messages and statuses."""
    from ..init import ARGV0, CHANNEL_FD

    opts = [f"--cwd={cwd}", *(f"--group={g}" for g in extra_gids or ())]
    if user:
        opts.append(f"--user={user}")
    if umask is not None:
        opts.append(f"--umask={umask}")
    chan = max((CHANNEL_FD, *(fd + 1 for fd in keep_fds)))
    lead = [ARGV0] if chan == CHANNEL_FD else [ARGV0, f"--fd={chan}"]
    if helper_fd == chan:
        helper_fd = os.dup(helper_fd)
    os.dup2(errw, chan)  # (inheritable: the helper's channel)
    for fd in keep_fds:
        os.set_inheritable(fd, True)
    if sec is not None:
        opts += sec.helper_options()
        if sec.program is not None:
            # (a memfd: made after the channel's dup2, so that it never takes the channel's number)
            program = os.memfd_create("pycontain-seccomp", 0)
            os.write(program, sec.program)
            opts.append(f"--seccomp={program},0")
    if init:
        os.set_inheritable(helper_fd, True)
        opts.append(f"--init={helper_fd}")
    try:
        os.execve(helper_fd, [*lead, "--finish", *opts, "--", *args], env)
    except OSError as e:  # (E2BIG: an environment too large for the command is too large for us too)
        raise _exec_failed(args[0], e) from None


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
