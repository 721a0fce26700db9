"""exec into a running container: ``Container.exec`` (with create's privileges unless told otherwise)
and ``Container.exec_run`` (wait, output captured), the ``Container``'s methods kept apart from its
lifecycle (``pycontain.container``)."""

from __future__ import annotations

import _signal as signal  # the C module: the signal package loads enum (2-3 ms on the start path)
import os
import time

from .errors import InvalidArgument, InvalidState, PycontainError
from .state import PAUSED, RUNNING, crash_point

# typing.TYPE_CHECKING without importing typing; type checkers know the idiom.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from . import process
    from .config_fields import ProcAttrs
    from .state import ContainerState


class ExecMixin:
    """``Container``'s exec methods (a Container is what they run in)."""

    if TYPE_CHECKING:
        state: ContainerState

        @property
        def name(self) -> str: ...

        def status(self) -> str: ...
        def cgroup(self): ...

    def exec(
        self,
        args: list[str],
        *,
        env: list[str] | None = None,
        cwd: str | None = None,
        user: str | None = None,
        tty: bool = False,
        interactive: bool = False,
        detach: bool = False,
        stdio: process.Stdio | None = None,
        security: dict | None = None,
        extra_gids: list[int] | None = None,
        umask: int | None = None,
        preserve_fds: int = 0,
        proc_attrs: ProcAttrs | None = None,
    ) -> process.Child:
        """Start ``args`` in the running container (all its namespaces, its cgroup) with what create gave
        its first process: security settings, additional groups and umask, unless given here (an OCI
        process.json's own).

        The caller reaps the returned child (``process.wait_status``). ``stdio`` overrides where its
        fds 0-2 come from (e.g. pipes to capture output); ``preserve_fds`` of the caller's descriptors
        after stderr (3, 4, ...) are passed on to it (runc's exec --preserve-fds); ``proc_attrs``: its
        I/O priority and scheduling policy (pycontain.procattr.check of an OCI process.json).
        """
        from . import DEFAULT_PATH, process
        from .config_check import merge_env, parse_user
        from .process.exec import exec_in

        if not args:
            raise InvalidArgument("no command given to exec")
        if cwd is not None and not cwd.startswith("/"):
            # As create's (OCI process.cwd is absolute): checked here, where the error names it in full; in
            # the child a relative one would be made beneath the root, or fail with the message cut short.
            raise InvalidArgument(f"working directory must be an absolute path: {cwd!r}")
        status = self.status()
        if status == PAUSED:
            raise InvalidState(f"container {self.name} is paused: unpause it first")
        if status != RUNNING:
            raise InvalidState(f"container {self.name} is not running (status: {status})")
        cfg = self.state.config
        if user is not None:
            parse_user(user)
        full_env = merge_env(
            [f"PATH={DEFAULT_PATH}", f"HOSTNAME={cfg.hostname}"] + (["TERM=xterm"] if tty else []) + cfg.env,
            env or [],
        )
        cg = self.cgroup()
        if stdio is None:
            stdio = process.Stdio(
                stdin_null=not interactive, log_path="/dev/null" if detach else None, tty=tty
            )
        crash_point("exec-checked")
        child = exec_in(
            self.state.pid,
            cg.procs_files() if cg else [],
            args,
            full_env,
            cwd or cfg.cwd,
            user if user is not None else cfg.user,
            stdio,
            # (the child's side takes the JSON form: an OCI process.json's overrides come as one)
            security if security is not None else (cfg.security.to_dict() if cfg.security else None),
            extra_gids if extra_gids is not None else cfg.extra_gids,
            umask if umask is not None else cfg.umask,
            keep_fds=tuple(range(3, 3 + preserve_fds)),
            proc_attrs=proc_attrs,
        )
        crash_point("exec-started")
        return child

    def exec_run(
        self,
        args: list[str],
        *,
        env: list[str] | None = None,
        cwd: str | None = None,
        user: str | None = None,
        input: bytes | None = None,
        timeout: float | None = None,
    ) -> ExecResult:
        """Run ``args`` in the running container, wait for it and return its exit status and output.

        ``input`` is its stdin (else /dev/null). After ``timeout`` seconds it is killed and
        ``PycontainError`` raised; the process is reaped on every path.
        """
        import select

        from . import process

        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        in_r, in_w = os.pipe2(os.O_CLOEXEC) if input is not None else (None, None)
        stdio = process.Stdio(stdin_null=input is None, stdin_fd=in_r, stdout_fd=out_w, stderr_fd=err_w)
        try:
            child = self.exec(args, env=env, cwd=cwd, user=user, stdio=stdio)
        except BaseException:
            for fd in (out_r, err_r, in_w):
                if fd is not None:
                    os.close(fd)
            raise
        finally:
            for fd in (out_w, err_w, in_r):
                if fd is not None:
                    os.close(fd)
        if in_w is not None:
            try:
                os.write(in_w, input or b"")  # a pipe holds 64 KiB: larger inputs belong in a volume
            except BrokenPipeError:
                pass
            os.close(in_w)
        fds = {out_r: bytearray(), err_r: bytearray()}
        out, err = bytearray(), bytearray()
        deadline = None if timeout is None else time.monotonic() + timeout
        timed_out = False
        try:
            while fds and not timed_out:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                ready, _, _ = select.select(list(fds), [], [], left)
                if not ready:
                    timed_out = True
                for fd in ready:
                    data = os.read(fd, 65536)
                    if data:
                        fds[fd] += data
                    else:
                        (out if fd == out_r else err).extend(fds.pop(fd))
                        os.close(fd)
        finally:
            if fds:
                for fd in fds:
                    os.close(fd)
                try:
                    os.kill(child.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            code = process.wait_status(child.pid)
        if timed_out:
            raise PycontainError(f"{args[0]!r} in container {self.name} did not finish within {timeout} s")
        return ExecResult(code, bytes(out), bytes(err))


class ExecResult:
    """What ``Container.exec_run`` returns: the exit status (128+N for signal N) and the captured output."""

    __slots__ = ("exit_code", "stdout", "stderr")

    def __init__(self, exit_code: int, stdout: bytes, stderr: bytes) -> None:
        self.exit_code = exit_code
        self.stdout = stdout
        self.stderr = stderr

    @property
    def output(self) -> str:
        """stdout as text."""
        return self.stdout.decode(errors="replace")

    def __repr__(self) -> str:
        return f"ExecResult(exit_code={self.exit_code}, stdout={self.stdout!r}, stderr={self.stderr!r})"
