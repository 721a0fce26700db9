"""The command line's ``exec``: pycontain-init's ``--exec`` mode takes the process over (no Python fork).

``pycontain exec`` spends most of its time importing what joining and dropping privileges take in Python
(ctypes, python-prctl, the security and process packages). Here the command line reads the container's
state, opens from the host's view what must be opened there (the namespaces of the container's PID 1,
its cgroup files, /dev/null), and executes the sealed copy of pycontain-init (``pycontain.init``) in its
own place, with the command's environment. That program relays stdio, forwards signals and exits with
the command's status; a process of its own, invisible to the container, joins the cgroup and the
namespaces, resolves the user in the container's /etc/passwd and drops every privilege exactly as
``pycontain.process.finish_and_exec`` does; the command's process is born confined in the container's
pid namespace (see ``exec_main`` in pycontain-init.c).

The security settings are resolved once per container by ``pycontain.security.apply.prepare`` and kept
in its state directory (``exec-security-<bounding set>``: the options for the program, then the
compiled seccomp program), so that no later exec imports the security package.

What this path does not take stays with ``Container.exec`` (``pycontain.process.exec``): a terminal (its
pty is opened in the container's devpts), --detach, runc's --process/--console-socket/--pid-file/
--preserve-fds and --log (engines' calls), and library callers.
"""

from __future__ import annotations

import posix

from . import fastos
from .errors import InvalidArgument, InvalidState
from .state import PAUSED, RUNNING

# typing.TYPE_CHECKING without importing typing; type checkers know the idiom.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

    from .state import ContainerState

# The namespaces joined, in exec's order (pycontain.process.exec): pid only sets where the command is
# born; mount, last but one, moves root and working directory into the container; cgroup after the
# cgroup itself is joined (the joiner writes the cgroup files first).
JOIN_ORDER = ("pid", "ipc", "uts", "net", "cgroup", "mnt", "time")

# The cached settings' file: the program's options, NUL-separated, then two NULs, then the BPF program
# (at most BPF_MAXINSNS instructions of 8 bytes); a bigger file is none of ours.
_END = b"\0\0"
_MAX_SETTINGS = 65536 + 4096 * 8


class ExecPlan:
    """A new process's settings in a running container (``exec_plan``)."""

    __slots__ = ("env", "cwd", "user", "security", "extra_gids", "umask")

    def __init__(
        self,
        env: dict[str, str],
        cwd: str,
        user: str | None,
        security: dict | None,
        extra_gids: list[int],
        umask: int | None,
    ) -> None:
        self.env = env
        self.cwd = cwd
        self.user = user
        self.security = security
        self.extra_gids = extra_gids
        self.umask = umask


def exec_plan(
    st: ContainerState,
    args: list[str],
    *,
    env: list[str] | None = None,
    cwd: str | None = None,
    user: str | None = None,
    tty: bool = False,
) -> ExecPlan:
    """What an exec gives its process, checked: the container runs, the working directory is absolute, the
    user well-formed; the environment, working directory, user, security settings (their JSON form),
    additional groups and umask, create's unless given. ``Container.exec`` and ``exec_in_place`` start
    the process from it (here, not in container.py: the command line's exec does not load that)."""
    from . import DEFAULT_PATH, merge_env

    if not args:
        raise InvalidArgument("no command given to exec")
    if cwd is not None and not cwd.startswith("/"):
        # As create's (OCI process.cwd is absolute): checked here, where the error names it in full; in
        # the child a relative one would be made beneath the root, or fail with the message cut short.
        raise InvalidArgument(f"working directory must be an absolute path: {cwd!r}")
    status = st.status_now()
    if status == PAUSED:
        raise InvalidState(f"container {st.name} is paused: unpause it first")
    if status != RUNNING:
        raise InvalidState(f"container {st.name} is not running (status: {status})")
    cfg = st.shown  # (the saved form's fields: no ContainerConfig, nor the config module, for them)
    if user is not None:
        from .config_check import parse_user  # (an exec without -u needs none of the config's checks)

        parse_user(user)
    full_env = merge_env(
        [f"PATH={DEFAULT_PATH}", f"HOSTNAME={cfg.hostname}"] + (["TERM=xterm"] if tty else []) + cfg.env,
        env or [],
    )
    return ExecPlan(
        full_env,
        cwd or cfg.cwd,
        user if user is not None else cfg.user,
        # (the child's side takes the JSON form, which it checks: an OCI process.json's overrides come as one)
        cfg.security,
        cfg.extra_gids,
        cfg.umask,
    )


def exec_in_place(
    st: ContainerState,
    state_dir: str,
    args: list[str],
    *,
    env: list[str],
    cwd: str | None,
    user: str | None,
    interactive: bool,
) -> NoReturn:
    """Replace this process with pycontain-init ``--exec``, which runs ``args`` in the container ``st``
    (whose state directory is ``state_dir``) attached to our stdio and exits with its status; raises
    (having started nothing) what ``Container.exec`` would."""
    plan = exec_plan(st, args, env=env, cwd=cwd, user=user)
    fds: list[int] = []
    try:
        opts = (
            ["--stdin"] if interactive else [f"--null={_keep(fds, posix.open('/dev/null', posix.O_RDONLY))}"]
        )
        opts += _namespace_options(st, fds)
        if st.cgroup:
            from .cgroup_record import join_files

            for path in join_files(st.cgroup):
                opts.append(f"--cgroup={_keep(fds, posix.open(path, posix.O_WRONLY))}")
        opts += _security_options(state_dir, plan.security, fds)
        if plan.user:
            opts.append(f"--user={plan.user}")
        opts += [f"--group={g}" for g in plan.extra_gids]
        if plan.umask is not None:
            opts.append(f"--umask={plan.umask}")
        opts.append(f"--cwd={plan.cwd}")
        from . import init

        helper = init.sealed_copy()
    except BaseException:
        for fd in fds:
            posix.close(fd)
        raise
    from .state import crash_point

    crash_point("exec-checked")
    if fastos.getenv("PYCONTAIN_CRASH_AT") == "exec-started":
        opts.append("--crash-when-started")
    import sys

    from . import preload

    # The command line's way out on this path (it never returns to cli.entry): the modules it loaded come
    # from the preload next time.
    preload.refresh()
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        posix.execve(helper, [init.ARGV0, "--exec", *opts, "--", *args], plan.env)
    except OSError as e:
        # It takes the command's arguments and environment: those execve refuses (E2BIG) are the command's.
        from .errors import EXIT_CANNOT_EXECUTE, ExecFailed

        raise ExecFailed(f"cannot execute {args[0]!r}: {e.strerror}", EXIT_CANNOT_EXECUTE) from None


def _namespace_options(st: ContainerState, fds: list[int]) -> list[str]:
    """The options naming the namespaces of the container's PID 1 that are not ours, opened now."""
    pid = st.pid
    opts = []
    try:
        if _ns_inode(pid, "user") != _ns_inode("self", "user"):
            # Its root's ids (or its lowest mapped ones), read here: the joiner, in the container's mount
            # namespace but not its pid namespace, has no /proc of its own to read them from.
            from . import userns

            uid, gid = userns.root_ids(str(pid))
            denied = userns.setgroups_denied(str(pid))
            ufd = _keep(fds, posix.open(f"/proc/{pid}/ns/user", posix.O_RDONLY))
            opts.append(f"--userns={ufd},{uid},{gid},{int(denied)}")
        for name in JOIN_ORDER:
            # A namespace the container shares with us (OCI configs may leave some out) is not joined.
            if _ns_inode(pid, name) != _ns_inode("self", name):
                opts.append(f"--ns={_keep(fds, posix.open(f'/proc/{pid}/ns/{name}', posix.O_RDONLY))}")
    except FileNotFoundError:
        pass
    else:
        if st.alive():
            return opts
    # Gone, or its pid is another process's now: what was opened would not be the container's.
    raise InvalidState("the container stopped before exec could join it")


def _keep(fds: list[int], fd: int) -> int:
    """``fd``, inherited by the helper, and recorded to be closed if exec fails before executing it."""
    fds.append(fd)
    posix.set_inheritable(fd, True)
    return fd


def _ns_inode(pid: int | str, name: str) -> int:
    return posix.stat(f"/proc/{pid}/ns/{name}").st_ino


def _security_options(state_dir: str, security: dict | None, fds: list[int]) -> list[str]:
    """The program's options for the container's capabilities, rlimits, no_new_privs and seccomp filter,
    from its state directory; resolved (``security.apply.prepare``) and kept there at the first exec.
    Keyed by our own bounding set, which bounds what a container can be given."""
    bounding = _own_bounding_set()
    path = fastos.join(state_dir, f"exec-security-{bounding:x}")
    try:
        # Non-blocking: a FIFO in its place (a damaged state directory) is opened at once and refused
        # below, never waited on.
        fd = posix.open(path, posix.O_RDONLY | posix.O_NOFOLLOW | posix.O_NONBLOCK)
    except FileNotFoundError:
        pass
    except OSError:
        _unlink(path)  # a symbolic link, or a file we may not read (root's, in a rootless user's directory)
    else:
        opts = _read_settings(_keep(fds, fd))
        if opts is not None:
            return opts
        fds.remove(fd)
        posix.close(fd)
        _unlink(path)
    # Resolved anew, in a file of our own, and used through the descriptor it was written with: not read
    # back by its name, which its directory's owner could have replaced again meanwhile.
    fd, data = _write_settings(path, security)
    return _options(_keep(fds, fd), data)


def _unlink(path: str) -> None:
    try:
        posix.unlink(path)
    except FileNotFoundError:
        pass  # a concurrent exec's doing


def _read_settings(fd: int) -> list[str] | None:
    """The options in the settings' file ``fd``, or None if it is not ours: written whole (renamed into
    place) by us, writable by nobody else, a regular file no larger than any we write (a sparse terabyte
    would be read whole)."""
    st = posix.fstat(fd)
    if (
        st.st_mode & fastos.S_IFMT != fastos.S_IFREG
        or st.st_uid != posix.geteuid()
        or st.st_mode & 0o022
        or st.st_size > _MAX_SETTINGS
    ):
        return None
    data = posix.pread(fd, st.st_size, 0)
    _header, end, program = data.partition(_END)
    return _options(fd, data) if end and not len(program) % 8 else None


def _options(fd: int, data: bytes) -> list[str]:
    """The options in ``data``, a whole settings' file, whose descriptor ``fd`` the program reads its
    seccomp program from."""
    header, _end, program = data.partition(_END)
    opts = [a.decode() for a in header.split(b"\0")]
    if program:
        opts.append(f"--seccomp={fd},{len(header) + len(_END)}")
    return opts


def _own_bounding_set() -> int:
    _, found, rest = fastos.read_file("/proc/self/status").partition(b"\nCapBnd:")
    if not found:  # pragma: no cover - every Linux since 2.6.25 shows it
        raise OSError("no CapBnd in /proc/self/status")
    return int(rest.split(None, 1)[0], 16)


def _write_settings(path: str, security: dict | None) -> tuple[int, bytes]:
    """Resolve ``security`` (its JSON form; None: the defaults) and write the settings' file at ``path``
    (atomically: a concurrent exec finds a whole file or none); a descriptor of it, and what it holds."""
    from .process.exec import prepare_security

    p = prepare_security(security)
    data = b"\0".join(o.encode() for o in p.helper_options()) + _END + (p.program or b"")
    tmp = f"{path}.{posix.getpid()}.tmp"
    fd = posix.open(
        tmp, posix.O_RDWR | posix.O_CREAT | posix.O_EXCL | posix.O_NOFOLLOW | posix.O_CLOEXEC, 0o600
    )
    try:
        view = memoryview(data)
        while view:
            view = view[posix.write(fd, view) :]
        posix.rename(tmp, path)
    except BaseException:
        posix.close(fd)
        raise
    return fd, data
