"""The last steps of every container process, created or joined: privileges drop, then execve."""

from __future__ import annotations

import _signal as signal  # the C module: the signal package loads enum (2-3 ms on the start path)
import os

from .. import userns, users
from ..errors import EXIT_CANNOT_EXECUTE, EXIT_NOT_FOUND, ExecFailed, PycontainError
from ..security import apply as security_apply


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
