"""A container's first process: the parent's side (``start_container``) and the child's steps, in order.

The steps run in the child, one after another, from ``CREATE_STEPS``; the diagram in ``pycontain.process``
and ARCHITECTURE.md say what each does and why there.
"""

from __future__ import annotations

import os
import sys

# Everything the child needs after pivot_root must be imported before it: the host's files are gone then.
from .. import channel, libc, merge_env, procattr, rootfs, trace, userns
from ..errors import PycontainError
from ..security import apply as security_apply
from . import (
    Child,
    NsPlan,
    Stdio,
    finish_in_helper,
    fork_for,
    join_cgroup,
    moves_itself,
    open_ns,
    open_terminal,
    parent_side,
    pty_channel,
    reap_failed,
    run_child,
    setup_stdio,
)

# typing.TYPE_CHECKING without importing typing; type checkers know the idiom.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..config_fields import TimeOffsets


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
    from .. import DEFAULT_PATH

    plan = NsPlan(config.namespaces)
    env = merge_env(
        [f"PATH={DEFAULT_PATH}"]
        + ([f"HOSTNAME={config.hostname}"] if config.hostname else [])
        + (["TERM=xterm"] if stdio.tty else []),
        config.env,
    )
    sec = security_apply.prepare(config.security)
    join_fds = [(open_ns(path, flag), flag) for path, flag in plan.join]
    userns_fd = None
    if plan.user is not None:
        try:
            userns_fd = (
                userns.create(config.id_mappings)
                if plan.user == ""
                else open_ns(plan.user, libc.CLONE_NEWUSER)
            )
        except BaseException:
            for fd, _ in join_fds:
                os.close(fd)
            raise
        join_fds.append((userns_fd, 0))  # closed with the others in the parent; the child joins it last
    errr, errw = channel.pair()
    parent_sock, child_sock = pty_channel(stdio)
    moved_by_us = [f for f in cgroup_procs if not moves_itself(f)]
    from .. import init

    try:
        # pycontain-init, which the child executes to drop its privileges and execute the command
        # (finish_in_helper), and which stays as PID 1 with --init
        helper_fd = init.sealed_copy()
    except BaseException:
        for fd, _ in join_fds:
            os.close(fd)
        raise
    join_fds.append((helper_fd, -1))  # closed with the others in the parent; the child execs it
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        pid = fork_for(plan)
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
                config, plan, stdio, env, sec, errw, join_fds, userns_fd, helper_fd, child_sock,
                container_dir, cgroup_procs, start_fifo,
            )  # fmt: skip
            for step in CREATE_STEPS:
                step(first)

        run_child(errw, "pycontain-start", body)
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
        reap_failed(pid)
        raise
    return parent_side(pid, errr, child_sock, parent_sock, ready_ok=start_fifo is not None)


class _FirstProcess:
    """What the steps of a container's first process share (in the child, after the fork)."""

    __slots__ = (
        "config", "plan", "stdio", "env", "sec", "chan", "join_fds", "userns_fd", "helper_fd",
        "pty_sock", "container_dir", "cgroup_procs", "start_fifo", "fifo_fd", "fds_dir", "userns_later",
    )  # fmt: skip

    def __init__(
        self, config, plan: NsPlan, stdio: Stdio, env: dict[str, str], sec: security_apply.Prepared, chan: int,
        join_fds: list[tuple[int, int]], userns_fd: int | None, helper_fd: int, pty_sock,
        container_dir: str, cgroup_procs: list[str], start_fifo: str | None,
    ) -> None:  # fmt: skip
        self.config, self.plan, self.stdio, self.env, self.sec = config, plan, stdio, env, sec
        self.chan, self.join_fds, self.userns_fd, self.helper_fd = chan, join_fds, userns_fd, helper_fd
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
    setup_stdio(p.stdio)
    if p.config.oom_score_adj is not None:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(p.config.oom_score_adj))


def _enter_namespaces(p: _FirstProcess) -> None:
    """Join the namespaces given by path (the user namespace waits), make the new ones."""
    for fd, flag in p.join_fds:
        if fd not in (p.userns_fd, p.helper_fd):
            libc.setns(fd, flag)
            os.close(fd)
    if p.plan.unshare:
        try:
            libc.unshare(p.plan.unshare)
        except OSError as e:
            from ..errors import Unsupported

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
    """The privileges drop and execve, in pycontain-init (``finish_in_helper``)."""
    config = p.config
    finish_in_helper(
        config.args, p.env, config.cwd, config.user, p.chan, p.helper_fd, config.extra_gids, config.umask,
        p.sec, config.init, keep_fds=range(3, 3 + config.preserve_fds),
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


def _take_terminal(sock_fd: int, console_size: list[int] | None = None) -> None:
    """Open a pty in the container's own devpts, hand its master to the parent, make it our terminal."""
    import fcntl
    import termios

    open_terminal(sock_fd, console_size)
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


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
