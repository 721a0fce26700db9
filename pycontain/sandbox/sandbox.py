"""One sandbox: a container whose PID 1 idles, and ``run``, an exec into it (see the package's documentation)."""

from __future__ import annotations

import _signal as signal
import asyncio
import os
import select
import threading
import time
import weakref
from typing import TypedDict

from .. import process
from ..errors import ExecFailed, InvalidArgument, InvalidState, PycontainError
from .io import collect, executor, last_line
from .reset import RUN_CAP_DROP
from .result import Meter, Result, read_file

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Unpack

    from .pool import SandboxPool

# PID 1 of every sandbox: waits forever, reaps orphans (ash reaps any child while it waits), exits on TERM.
# It waits with the ``wait`` builtin, which a trapped signal (TERM, or INT, which ash catches) interrupts
# at once: while a foreground command runs, ash defers the trap until that command ends, so a TERM
# sent by one borrower's run would end PID 1 an hour later, in another borrower's (reset, not remade).
IDLE_COMMAND = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done"]
DEFAULT_MAX_OUTPUT = 1 << 20
READONLY_TMP_SIZE = "64m"


# -- one sandbox ---------------------------------------------------------------------------------------
def _env_list(env: dict[str, str] | list[str] | None) -> list[str]:
    if env is None:
        return []
    if isinstance(env, dict):
        return [f"{k}={v}" for k, v in env.items()]
    return list(env)


class Options(TypedDict, total=False):
    """A sandbox's options, as ``Sandbox``, ``SandboxPool`` and ``build_config`` take them (see ``Sandbox``)."""

    memory: str | int | None
    cpus: str | float | None
    pids: int | None
    disk: str | int | None
    network: str
    env: dict[str, str] | list[str] | None
    workdir: str
    read_only: bool
    user: str | None
    cgroup_parent: str | None
    cgroup_manager: str


def build_config(image: str, **options: Unpack[Options]):
    """The ContainerConfig of a sandbox (validated): limits, mounts and namespaces as ``Sandbox`` documents."""
    from ..api import make_config
    from ..cgroups.resources import Resources

    unknown = sorted(options.keys() - Options.__optional_keys__)
    if unknown:
        raise TypeError(f"unexpected sandbox option(s): {', '.join(unknown)}")
    memory, cpus, pids = options.get("memory"), options.get("cpus"), options.get("pids")
    disk, network = options.get("disk"), options.get("network", "none")
    read_only = options.get("read_only", False)
    opts: dict = {}
    if memory is not None:
        opts["memory"] = memory
        opts["memory_swap"] = memory  # no swap: the limit is the limit
    if cpus is not None:
        opts["cpus"] = cpus
    if pids is not None:
        opts["pids_limit"] = pids
    resources = Resources.from_options(**opts).to_dict() if opts else None
    tmpfs = []
    if disk is not None:
        from ..units import parse_size

        size = parse_size(disk, "disk")
        tmpfs.append(f"/tmp:size={size}")
        read_only = True
    elif read_only:
        tmpfs.append(f"/tmp:size={READONLY_TMP_SIZE}")
    if network not in ("none", "host"):
        raise InvalidArgument(f"invalid network {network!r}: use 'none' (only loopback) or 'host'")
    return make_config(
        image,
        IDLE_COMMAND,
        entrypoint="",  # the idle loop is PID 1 whatever the image's entrypoint (an appliance's would run it)
        env=_env_list(options.get("env")),
        workdir=options.get("workdir", "/"),
        user=options.get("user"),
        tmpfs=tmpfs,
        read_only=read_only,
        detach=True,
        resources=resources,
        cgroup_parent=options.get("cgroup_parent"),
        cgroup_manager=options.get("cgroup_manager", "auto"),
        network=network,  # host: spec.docker leaves the network namespace out
    )


def _zombie(pid: int) -> bool:
    data = read_file(f"/proc/{pid}/stat")
    return data is None or data[data.rfind(b")") + 2 :][:1] in (b"Z", b"X")


class _Handle:
    """What destroying a sandbox needs, kept apart from the Sandbox so a finalizer can hold it."""

    def __init__(self, container, pid1: int, pidfd: int | None = None) -> None:
        self.container = container
        self.pid1 = pid1
        # A pool's PID 1 is the fork server's child, not ours: we signal and watch it through a pidfd.
        self.pidfd = pidfd
        self.lock = threading.Lock()
        self.reaped = False
        self.removed = False

    def kill_pid1(self) -> None:
        """SIGKILL PID 1, which makes the kernel kill every other process of its pid namespace."""
        with self.lock:
            if self.reaped:
                return
            try:
                if self.pidfd is not None:
                    signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
                else:  # our unreaped child: its pid cannot have been recycled
                    os.kill(self.pid1, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def poll_pid1(self, timeout: int | None) -> bool:
        """Under ``lock``: whether PID 1 has exited, waiting up to ``timeout`` ms (None: until it does)."""
        if self.reaped:
            return True
        if self.pidfd is not None:
            poller = select.poll()
            poller.register(self.pidfd, select.POLLIN)
            exited = bool(poller.poll(timeout))
        else:
            try:
                exited = os.waitpid(self.pid1, 0 if timeout is None else os.WNOHANG)[0] != 0
            except ChildProcessError:
                exited = True
        self.reaped = exited
        return exited

    def signal_all(self) -> None:
        """SIGKILL every process of the sandbox, without waiting for anything."""
        self.kill_pid1()
        cg = self.container.cgroup()
        if cg is not None:
            try:
                cg.kill_all(signal.SIGKILL)
            except OSError:
                pass

    def kill(self) -> None:
        """SIGKILL every process of the sandbox, reap its PID 1, wait until its cgroup is empty; idempotent.

        PID 1 of a pid namespace only finishes dying once every process of the namespace is reaped, and
        ``run``'s exec'd processes are reaped by the threads that run them: a caller that has an exec'd
        child of its own reaps it before calling this (``signal_all`` first).
        """
        self.signal_all()
        with self.lock:
            self.poll_pid1(None)
        cg = self.container.cgroup()
        if cg is None:
            return
        deadline = time.monotonic() + 5
        while True:  # whatever joined the cgroup without being in the pid namespace
            try:
                if not cg.exists() or not [p for p in cg.pids() if not _zombie(p)]:
                    return
                cg.kill_all(signal.SIGKILL)
            except OSError:
                return
            if time.monotonic() > deadline:
                return
            time.sleep(0.002)

    def destroy(self) -> None:
        self.kill()
        with self.lock:
            if self.removed:
                return
            self.removed = True
        try:
            self.container.remove(force=True)
        except PycontainError:
            pass  # removed meanwhile (rm -f from elsewhere)
        finally:
            if self.pidfd is not None:
                os.close(self.pidfd)


class Sandbox:
    """One throw-away container that runs commands (see the package's documentation).

    ``image``: ``"default"`` or a root filesystem directory. ``memory`` ("64m"), ``cpus`` (1.5), ``pids``
    (max processes), ``disk`` (size of the writable /tmp; makes the root read-only), ``network`` ("none" or
    "host"), ``env`` (dict or KEY=VALUE list), ``workdir``, ``read_only``, ``user`` (UID[:GID] or a name
    from the image's passwd), ``root``: the state root (default /var/lib/pycontain/containers).
    ``config`` (a ``build_config`` result) replaces the options; ``forkserver`` creates the container (a
    pool's: see ``pycontain.sandbox.forkserver``), and with ``reuse`` records it so it can be reset
    (``not_resettable`` says why not, when it cannot).
    """

    def __init__(
        self,
        image: str = "default",
        *,
        root: str | None = None,
        config=None,
        forkserver=None,
        reuse: bool = False,
        **options: Unpack[Options],
    ) -> None:
        # python-prctl: every run's forked child needs it; imported here once, instead of in each child.
        import _prctl  # noqa: F401

        from ..container import Container

        self.image = image
        self.root = root
        self.pool: SandboxPool | None = None  # the pool that lent it; close() gives it back there
        config = config or build_config(image, **options)
        # Why a pool may not reset it for another borrower (None: it may; see pycontain.sandbox.reset).
        self.not_resettable: str | None = "not made by a pool"
        if forkserver is not None:
            cid, pid1, pidfd, self.not_resettable = forkserver.create(config.to_dict(), root, reuse)
            handle = _Handle(Container.get(cid, root), pid1, pidfd)
        else:
            stdio = process.Stdio(stdin_null=True, log_path="/dev/null")
            container, child = Container.create(config, root, stdio=stdio)
            handle = _Handle(container, child.pid)
        self._adopt(handle, None)

    def _adopt(self, handle: _Handle, meter: Meter | None) -> None:
        self._handle = handle
        self._dead: str | None = None
        self._closed = False
        self._runs = 0  # going on now, each in its caller's thread
        self._runs_lock = threading.Lock()
        self._finalizer = weakref.finalize(self, handle.destroy)
        try:
            if meter is None:
                cg = handle.container.cgroup()
                meter = Meter(cg) if cg is not None else None
            self._meter = meter
            # Runs go without one capability PID 1 keeps, so none can ptrace PID 1 or write its memory.
            saved = handle.container.state.config.security
            security = saved.to_dict() if saved is not None else {}
            security["cap_drop"] = [*security.get("cap_drop", ()), RUN_CAP_DROP]
            self._run_security = security
        except BaseException:
            self._finalizer()
            raise

    def _reborn(self) -> Sandbox:
        """A new Sandbox for this one's container, which a pool has reset; this object stays closed for
        good (its borrower may keep it: it must never reach the next borrower's runs)."""
        sb = Sandbox.__new__(Sandbox)
        sb.image, sb.root, sb.pool, sb.not_resettable = self.image, self.root, None, None
        sb._adopt(self._handle, self._meter)
        return sb

    def _disown(self, idle: bool = False) -> bool:
        """Closed for good, its container no longer destroyed when this object goes (a pool resets it);
        with ``idle``, only when no run is going on, else False (nothing done)."""
        with self._runs_lock:
            if idle and self._runs:
                return False
            self._closed = True
        self._finalizer.detach()
        return True

    # -- identity ------------------------------------------------------------------------------
    @property
    def container(self):
        return self._handle.container

    @property
    def id(self) -> str:
        return self._handle.container.id

    @property
    def pid(self) -> int:
        """The host pid of the sandbox's PID 1."""
        return self._handle.pid1

    @property
    def alive(self) -> bool:
        return not self._closed and self._dead is None

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"dead ({self._dead})" if self._dead else "alive"
        return f"<Sandbox {self.id[:12]} {self.image} {state}>"

    # -- running -------------------------------------------------------------------------------
    def run(
        self,
        cmd: list[str] | str,
        input: bytes | str | None = None,
        timeout: float | None = None,
        env: dict[str, str] | list[str] | None = None,
        max_output: int = DEFAULT_MAX_OUTPUT,
        cwd: str | None = None,
        user: str | None = None,
    ) -> Result:
        """Run ``cmd`` (a list, or a string for ``sh -c``) in the sandbox and collect its result.

        ``input`` is written to its stdin (closed after; /dev/null when None). ``timeout`` (seconds): past
        it every process of the sandbox is killed and the sandbox is dead. A command that cannot be
        executed gives returncode 126 or 127 with the reason on stderr, as a shell does.
        """
        if isinstance(cmd, str):
            cmd = ["sh", "-c", cmd]
        if not cmd:
            raise InvalidArgument("no command given to Sandbox.run")
        if max_output < 0:
            raise InvalidArgument(f"invalid max_output {max_output}: use 0 or more bytes")
        with self._runs_lock:
            self._check_usable()
            self._runs += 1
        try:
            return self._run(cmd, input, timeout, env, max_output, cwd, user)
        finally:
            with self._runs_lock:
                self._runs -= 1

    def _run(
        self,
        cmd: list[str],
        input: bytes | str | None,
        timeout: float | None,
        env: dict[str, str] | list[str] | None,
        max_output: int,
        cwd: str | None,
        user: str | None,
    ) -> Result:
        if isinstance(input, str):
            input = input.encode()
        meter = self._meter
        before = meter.counters() if meter else (None, None, None)
        peak_fd = meter.start_peak() if meter else None
        in_r = in_w = None
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        if input is not None:
            in_r, in_w = os.pipe()
        stdio = process.Stdio(stdin_null=input is None, stdin_fd=in_r, stdout_fd=out_w, stderr_fd=err_w)
        start = time.monotonic()
        try:
            child = self._handle.container.exec(
                cmd, env=_env_list(env), cwd=cwd, user=user, stdio=stdio, security=self._run_security
            )
        except ExecFailed as e:
            for fd in (in_r, in_w, out_r, out_w, err_r, err_w):
                if fd is not None:
                    os.close(fd)
            if peak_fd is not None:
                os.close(peak_fd)
            return Result(e.exit_code, b"", (str(e) + "\n").encode(), wall_time=time.monotonic() - start)
        except BaseException:
            for fd in (in_r, in_w, out_r, out_w, err_r, err_w):
                if fd is not None:
                    os.close(fd)
            if peak_fd is not None:
                os.close(peak_fd)
            if not self._pid1_alive():
                self._dead = "its PID 1 exited"
            raise
        for fd in (in_r, out_w, err_w):
            if fd is not None:
                os.close(fd)
        out, err, truncated, timed_out, ended = collect(
            child.pid, in_w, input, out_r, err_r, max_output, None if timeout is None else start + timeout
        )
        if timed_out:
            self._dead = "a run timed out, which killed every process of the sandbox"
            self._handle.signal_all()
        code = process.wait_status(child.pid)
        if timed_out:
            self._handle.kill()
        wall = (ended or time.monotonic()) - start
        after = meter.counters() if meter else (None, None, None)
        peak = meter.end_peak(peak_fd) if meter else None
        cpu = None if before[0] is None or after[0] is None else (after[0] - before[0]) / 1e9
        oom = before[1] is not None and after[1] is not None and after[1] > before[1]
        pids = before[2] is not None and after[2] is not None and after[2] > before[2]
        if not timed_out and self._dead is None and not self._pid1_alive():
            self._dead = "its PID 1 was killed (the OOM killer?)"
        return Result(code, out, err, truncated, wall, cpu, peak, oom, timed_out, pids)

    async def run_async(self, cmd: list[str] | str, **kwargs: object) -> Result:
        """``run`` in a worker thread, for asyncio."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor(), lambda: self.run(cmd, **kwargs))  # type: ignore[arg-type]

    def _check_usable(self) -> None:
        if self._closed:
            raise InvalidState(f"sandbox {self.id[:12]} is closed")
        if self._dead is not None:
            raise InvalidState(f"sandbox {self.id[:12]} is dead: {self._dead}; use a new one")

    def _pid1_alive(self) -> bool:
        h = self._handle
        with h.lock:  # never reap it while kill() may signal it: its pid could be recycled in between
            return not h.poll_pid1(0)

    # -- files ---------------------------------------------------------------------------------
    def put_file(self, path: str, data: bytes | str, mode: int = 0o644, timeout: float | None = 30) -> None:
        """Write ``data`` to ``path`` in the sandbox (its parent directories made), through ``sh`` and ``cat``
        running inside it: paths resolve as the sandbox sees them, never on the host."""
        if isinstance(data, str):
            data = data.encode()
        script = 'mkdir -p -- "$(dirname -- "$1")" && cat > "$1" && chmod "$2" "$1"'
        r = self.run(["sh", "-c", script, "sh", path, f"{mode:o}"], input=data, timeout=timeout)
        if r.returncode != 0:
            raise PycontainError(
                f"cannot write {path} in sandbox {self.id[:12]}: "
                f"{last_line(r.stderr) or f'exit status {r.returncode}'}"
            )

    def get_file(self, path: str, max_size: int = 64 << 20, timeout: float | None = 30) -> bytes:
        """The bytes of ``path`` in the sandbox (``cat`` inside it); at most ``max_size``, else an error."""
        r = self.run(["cat", "--", path], timeout=timeout, max_output=max_size)
        if r.truncated:
            raise PycontainError(f"{path} in sandbox {self.id[:12]} is larger than {max_size} bytes")
        if r.returncode != 0:
            raise PycontainError(
                f"cannot read {path} in sandbox {self.id[:12]}: "
                f"{last_line(r.stderr) or f'exit status {r.returncode}'}"
            )
        return r.stdout

    # -- lifetime ------------------------------------------------------------------------------
    def kill(self) -> None:
        """Kill every process of the sandbox now (it is dead afterwards)."""
        if self._dead is None:
            self._dead = "it was killed"
        self._handle.kill()

    def close(self) -> None:
        """Remove the sandbox (its processes, cgroup, writable layer, state); idempotent. A sandbox
        borrowed from a pool goes back to it, which resets it for another borrower or destroys it, in the
        background."""
        with self._runs_lock:  # no run starts after this
            if self._closed:
                return
            self._closed = True
        if self.pool is not None:
            self.pool.take_back(self)
        else:
            self._finalizer()

    def destroy(self) -> None:
        """Remove the sandbox now, borrowed or not (what a pool does with the sandboxes given back)."""
        self._closed = True
        self._finalizer()

    def kill_pid1(self) -> None:
        """SIGKILL its PID 1 without waiting: the kernel then kills every process of its pid namespace."""
        self._handle.kill_pid1()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(executor(), self.close)

    async def __aenter__(self) -> Sandbox:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
