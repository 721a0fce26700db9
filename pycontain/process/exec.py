"""exec: a new process in a running container, which joins it before anything inside can see it.

The library's path (``Container.exec``), and the command line's with a terminal, detached, runc's
process.json and preserved descriptors. The command line's plain ``exec`` takes
``pycontain.execjoin`` instead, the same steps in pycontain-init's C (``tests/test_exec_fast.py`` holds
the two to the same result).
"""

from __future__ import annotations

import os
import sys

from .. import channel, libc, procattr, userns
from ..security import apply as security_apply
from ..security.options import SecurityOptions
from . import (
    Child,
    Stdio,
    finish_and_exec,
    join_cgroup,
    open_terminal,
    parent_side,
    pty_channel,
    run_child,
    setup_stdio,
)

# typing.TYPE_CHECKING without importing typing; type checkers know the idiom.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..config_fields import ProcAttrs

# The order in which exec joins a container's namespaces: the mount namespace last but one, since
# after it /proc is the container's; cgroup after the process has joined the cgroup itself.
_JOIN_ORDER = (
    ("ipc", libc.CLONE_NEWIPC),
    ("uts", libc.CLONE_NEWUTS),
    ("net", libc.CLONE_NEWNET),
    ("cgroup", libc.CLONE_NEWCGROUP),
    ("mnt", libc.CLONE_NEWNS),
)


def prepare_security(security_dict: dict | None) -> security_apply.Prepared:
    """In the parent, before the fork: capability sets, rlimits and the compiled seccomp filter, so the
    child only makes system calls (a docker-style container without options gets docker's defaults)."""
    opts = SecurityOptions.from_dict(security_dict) if security_dict else None
    return security_apply.prepare(opts)


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
        from ..errors import InvalidState

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
            from ..errors import InvalidState

            raise InvalidState("the container stopped before exec could join it") from None
        # A rootless container's namespaces belong to its user namespace: join that first, to hold
        # capabilities over them. A remapped one's belong to the host's: join it last.
        user_first = "mnt" in ns_fds and _owner_inode(ns_fds["mnt"]) == os.fstat(ns_fds["user"]).st_ino
    from .. import init

    try:
        helper = init.sealed_copy()
    except BaseException:
        for fd in ns_fds.values():
            os.close(fd)
        raise
    errr, errw = channel.pair()
    parent_sock, child_sock = pty_channel(stdio)
    # python-prctl, which the joiner needs (dumpable, then the capabilities in finish_and_exec), loaded
    # here: 0.4 ms, against 1.4 ms in the forked child, where every page the import writes (its library's
    # relocations, the module tables) is copied.
    import _prctl  # noqa: F401

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
                setup_stdio(stdio)
                join_cgroup(cgroup_procs)
                procattr.apply(proc_attrs)
                _join(ns_fds, user_first, user_ids)
                if child_sock is not None:
                    open_terminal(child_sock.detach())
                # Everything but the pid namespace is the container's now, and privileges drop here; the
                # helper, executed from its sealed copy, forks the command into the pid namespace.
                finish_and_exec(
                    args, env, cwd, user, errw, extra_gids, umask, sec, helper,
                    ("--join", "--tty") if child_sock is not None else ("--join",), groups_denied,
                    keep_fds=keep_fds,
                )  # fmt: skip

            run_child(errw, "pycontain-exec", body)
    finally:
        for fd in ns_fds.values():
            os.close(fd)
        os.close(helper)
    os.close(errw)
    return parent_side(joiner, errr, child_sock, parent_sock, joiner=True)


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
