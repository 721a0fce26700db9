"""Run untrusted code from Python: throw-away sandboxes, and a pool that keeps them ready.

    from pycontain.sandbox import Sandbox, SandboxPool

    with Sandbox("default", memory="64m", pids=32) as sb:    # one container, idle
        r = sb.run(["sh", "-c", "echo hi; cat"], input=b"data", timeout=2)
        r.returncode, r.stdout, r.timed_out, r.oom_killed, r.peak_memory

    pool = SandboxPool(size=4, image="default", memory="64m")
    with pool.acquire() as sb:                                   # a prepared one, at the cost of a pop
        sb.run(["/bin/true"])
    async with pool.acquire_async() as sb:                       # the same from asyncio
        await sb.run_async(["echo", "hi"])
    pool.close()

A sandbox is one container (``Container.create``: every namespace, its cgroup with the limits, its
root filesystem) whose PID 1 is a busybox ``sh`` loop that sleeps and reaps orphans. ``run`` is an
``exec`` into it with pipes for stdin, stdout and stderr; its figures come from the sandbox's cgroup.

Choices worth knowing:

- **timeout**: when a run exceeds it, every process of the sandbox is killed (PID 1 first, which makes
  the kernel kill its whole pid namespace, then whatever is left in the cgroup). The sandbox is dead
  after that: further runs raise ``InvalidState``; ``close()`` still cleans up. ``timed_out=True``.
- **output cap**: each of stdout and stderr keeps at most ``max_output`` bytes; past that the pipe is
  closed, so the writer gets SIGPIPE/EPIPE (like ``cmd | head -c N``) and ``truncated=True``.
- **background processes** a run leaves behind stay in the sandbox; if they hold the run's pipes,
  output is collected for at most ``DRAIN_GRACE`` seconds after the command itself exited.
- **figures** (``cpu_time``, ``peak_memory``, ``oom_killed``, ``pids_limited``) are the sandbox's
  cgroup's, over the run: they include background processes (and concurrent runs in the same sandbox).
- **disk**: ``disk="16m"`` makes the root filesystem read-only and mounts a tmpfs of that size on
  ``/tmp``, the only writable place (its pages are charged to the memory limit too). Without ``disk``
  the root is the usual copy-on-write overlay (writes land in the state root, on disk by default); ``read_only=True`` without ``disk`` gets a 64 MiB
  ``/tmp``.
- **memory**: no swap (memory+swap = memory), so a limit means what it says.
- **network**: ``"none"`` (its own network namespace with only ``lo``, the default) or ``"host"``.

``SandboxPool`` keeps ``size`` sandboxes started by worker threads. A borrowed sandbox is never given to
another caller: on release its processes are killed at once, and a worker removes it and prepares a
fresh one. Preparation is triggered by releases (and by callers waiting with none ready), not by
acquires, so the caller who just took a sandbox does not share the CPU and the GIL with a container
start. While a pool is open a thread keeps cgroup migration fast (``_MigrationWarmer``).

Requirements on the image: ``sh``, ``sleep`` (PID 1), ``cat``, ``mkdir``, ``dirname``, ``chmod``
(``put_file``/``get_file``): busybox has them all.

A pool's sandboxes are created by a single-threaded fork server (``pycontain.forkserver``), so no lock
held by one of the caller's threads is ever copied, held, into a container's first process. Runs exec
into a sandbox from the caller's thread; those children only make system calls and exec. The pool's own
lock is never held across a fork, a create or a destroy.
"""

from __future__ import annotations

import _signal as signal
import asyncio
import base64
import collections
import os
import select
import threading
import time
import weakref
from dataclasses import dataclass

from . import process
from .errors import ExecFailed, InvalidArgument, InvalidState, PycontainError
from .forkserver import ForkServer

# PID 1 of every sandbox: waits forever, reaps orphans (ash reaps any child while it waits), exits on TERM.
IDLE_COMMAND = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 3600; done"]
DEFAULT_MAX_OUTPUT = 1 << 20
DRAIN_GRACE = 0.25  # seconds to keep reading pipes that background processes hold after the command exited
READONLY_TMP_SIZE = "64m"
_CHUNK = 65536


@dataclass
class Result:
    """What one ``Sandbox.run`` did.

    returncode: the command's exit status, 128+N when signal N killed it (137 for the OOM killer and for a
    timeout's SIGKILL), 126/127 when it could not be executed / found. stdout, stderr: bytes, each at
    most ``max_output``. wall_time, cpu_time: seconds (cpu_time from the cgroup: user + system of every
    process of the sandbox during the run). peak_memory: bytes, the cgroup's peak during the run (None
    where the kernel does not report it).
    """

    returncode: int
    stdout: bytes = b""
    stderr: bytes = b""
    truncated: bool = False
    wall_time: float = 0.0
    cpu_time: float | None = None
    peak_memory: int | None = None
    oom_killed: bool = False
    timed_out: bool = False
    pids_limited: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def to_dict(self, binary: str = "utf-8") -> dict:
        """JSON-ready: outputs decoded as UTF-8 with U+FFFD for invalid bytes, or ``binary="base64"``."""
        if binary == "base64":
            out, err = (base64.b64encode(b).decode("ascii") for b in (self.stdout, self.stderr))
        elif binary == "utf-8":
            out, err = (b.decode("utf-8", errors="replace") for b in (self.stdout, self.stderr))
        else:
            raise InvalidArgument(f"invalid binary encoding {binary!r}: use 'utf-8' or 'base64'")
        return {
            "returncode": self.returncode,
            "stdout": out,
            "stderr": err,
            "encoding": binary,
            "truncated": self.truncated,
            "wall_time": round(self.wall_time, 6),
            "cpu_time": None if self.cpu_time is None else round(self.cpu_time, 6),
            "peak_memory": self.peak_memory,
            "oom_killed": self.oom_killed,
            "timed_out": self.timed_out,
            "pids_limited": self.pids_limited,
        }


# -- the sandbox's cgroup figures ------------------------------------------------------------------------
def _read(path: str) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)


def _keyed(data: bytes | None, key: bytes) -> int | None:
    if data is None:
        return None
    for line in data.splitlines():
        k, _, v = line.partition(b" ")
        if k == key:
            try:
                return int(v)
            except ValueError:
                return None
    return None


def _int(data: bytes | None) -> int | None:
    try:
        return int(data) if data is not None else None
    except ValueError:
        return None


class _Meter:
    """Counters of one cgroup (v1 or v2) read before and after a run: cpu ns, OOM kills, refused forks."""

    def __init__(self, cg) -> None:
        dirs = getattr(cg, "dirs", None)
        if dirs is not None:  # v1
            self.v2 = False
            self.cpu = os.path.join(dirs["cpuacct"], "cpuacct.usage") if "cpuacct" in dirs else None
            mem = dirs.get("memory")
            self.peak = os.path.join(mem, "memory.max_usage_in_bytes") if mem else None
            self.oom = os.path.join(mem, "memory.oom_control") if mem else None
            self.pids = os.path.join(dirs["pids"], "pids.events") if "pids" in dirs else None
        else:
            self.v2 = True
            d = cg.dir
            self.cpu = os.path.join(d, "cpu.stat")
            self.peak = os.path.join(d, "memory.peak")
            self.oom = os.path.join(d, "memory.events")
            self.pids = os.path.join(d, "pids.events")

    def counters(self) -> tuple[int | None, int | None, int | None]:
        """(cpu ns, oom kills, forks refused by pids.max)."""
        if self.v2:
            usec = _keyed(_read(self.cpu), b"usage_usec") if self.cpu else None
            cpu = None if usec is None else usec * 1000
        else:
            cpu = _int(_read(self.cpu)) if self.cpu else None
        oom = _keyed(_read(self.oom), b"oom_kill") if self.oom else None
        pids = _keyed(_read(self.pids), b"max") if self.pids else None
        return cpu, oom, pids

    def start_peak(self) -> int | None:
        """Reset the peak so it covers the run: an fd to read it from on v2 (fd-local reset), None on v1."""
        if self.peak is None:
            return None
        if self.v2:
            try:
                fd = os.open(self.peak, os.O_RDWR | os.O_CLOEXEC)
            except OSError:
                return None
            try:
                os.write(fd, b"reset\n")  # kernels >= 6.12: a peak local to this fd
            except OSError:
                pass  # older ones: the cgroup's lifetime peak
            return fd
        try:
            fd = os.open(self.peak, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)
        except OSError:
            pass
        return None

    def end_peak(self, fd: int | None) -> int | None:
        if fd is not None:
            try:
                return _int(os.pread(fd, 64, 0))
            except OSError:
                return None
            finally:
                os.close(fd)
        return _int(_read(self.peak)) if self.peak and not self.v2 else None


# -- one sandbox ---------------------------------------------------------------------------------------
def _env_list(env: dict[str, str] | list[str] | None) -> list[str]:
    if env is None:
        return []
    if isinstance(env, dict):
        return [f"{k}={v}" for k, v in env.items()]
    return list(env)


def build_config(
    image: str,
    *,
    memory: str | int | None = None,
    cpus: str | float | None = None,
    pids: int | None = None,
    disk: str | int | None = None,
    network: str = "none",
    env: dict[str, str] | list[str] | None = None,
    workdir: str = "/",
    read_only: bool = False,
    user: str | None = None,
    cgroup_parent: str | None = None,
    cgroup_manager: str = "auto",
):
    """The ContainerConfig of a sandbox (validated): limits, mounts and namespaces as ``Sandbox`` documents."""
    from .api import make_config
    from .cgroups.resources import Resources

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
        from .units import parse_size

        size = parse_size(disk, "disk")
        tmpfs.append(f"/tmp:size={size}")
        read_only = True
    elif read_only:
        tmpfs.append(f"/tmp:size={READONLY_TMP_SIZE}")
    if network not in ("none", "host"):
        raise InvalidArgument(f"invalid network {network!r}: use 'none' (only loopback) or 'host'")
    cfg = make_config(
        image,
        IDLE_COMMAND,
        entrypoint="",  # the idle loop is PID 1 whatever the image's entrypoint (an appliance's would run it)
        env=_env_list(env),
        workdir=workdir,
        user=user,
        tmpfs=tmpfs,
        read_only=read_only,
        detach=True,
        resources=resources,
        cgroup_parent=cgroup_parent,
        cgroup_manager=cgroup_manager,
    )
    if network == "host":
        cfg.namespaces.pop("network", None)
    return cfg


def _zombie(pid: int) -> bool:
    data = _read(f"/proc/{pid}/stat")
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
    """One throw-away container that runs commands (see the module's documentation).

    ``image``: ``"default"`` or a root filesystem directory. ``memory`` ("64m"), ``cpus`` (1.5), ``pids``
    (max processes), ``disk`` (size of the writable /tmp; makes the root read-only), ``network`` ("none" or
    "host"), ``env`` (dict or KEY=VALUE list), ``workdir``, ``read_only``, ``user`` (UID[:GID] or a name
    from the image's passwd), ``root``: the state root (default /var/lib/pycontain/containers).
    """

    def __init__(
        self,
        image: str = "default",
        *,
        memory: str | int | None = None,
        cpus: str | float | None = None,
        pids: int | None = None,
        disk: str | int | None = None,
        network: str = "none",
        env: dict[str, str] | list[str] | None = None,
        workdir: str = "/",
        read_only: bool = False,
        user: str | None = None,
        root: str | None = None,
        _config=None,
        _forkserver=None,
    ) -> None:
        from .container import Container

        self.image = image
        self.root = root
        self._pool: SandboxPool | None = None
        self._dead: str | None = None
        self._closed = False
        config = _config or build_config(
            image,
            memory=memory,
            cpus=cpus,
            pids=pids,
            disk=disk,
            network=network,
            env=env,
            workdir=workdir,
            read_only=read_only,
            user=user,
        )
        if _forkserver is not None:
            cid, pid1, pidfd = _forkserver.create(config.to_dict(), root)
            self._handle = _Handle(Container.get(cid, root), pid1, pidfd)
        else:
            stdio = process.Stdio(stdin_null=True, log_path="/dev/null")
            container, child = Container.create(config, root, stdio=stdio)
            self._handle = _Handle(container, child.pid)
        self._finalizer = weakref.finalize(self, self._handle.destroy)
        try:
            cg = self._handle.container.cgroup()
            self._meter = _Meter(cg) if cg is not None else None
        except BaseException:
            self._finalizer()
            raise

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
        self._check_usable()
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
            child = self._handle.container.exec(cmd, env=_env_list(env), cwd=cwd, user=user, stdio=stdio)
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
        out, err, truncated, timed_out, ended = _collect(
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
        return await loop.run_in_executor(_executor(), lambda: self.run(cmd, **kwargs))  # type: ignore[arg-type]

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
                f"{_last_line(r.stderr) or f'exit status {r.returncode}'}"
            )

    def get_file(self, path: str, max_size: int = 64 << 20, timeout: float | None = 30) -> bytes:
        """The bytes of ``path`` in the sandbox (``cat`` inside it); at most ``max_size``, else an error."""
        r = self.run(["cat", "--", path], timeout=timeout, max_output=max_size)
        if r.truncated:
            raise PycontainError(f"{path} in sandbox {self.id[:12]} is larger than {max_size} bytes")
        if r.returncode != 0:
            raise PycontainError(
                f"cannot read {path} in sandbox {self.id[:12]}: "
                f"{_last_line(r.stderr) or f'exit status {r.returncode}'}"
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
        borrowed from a pool goes back to it, which destroys it in the background."""
        if self._closed:
            return
        self._closed = True
        pool = self._pool
        if pool is not None:
            pool._release(self)
        else:
            self._finalizer()

    def _destroy(self) -> None:
        self._closed = True
        self._finalizer()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(_executor(), self.close)

    async def __aenter__(self) -> Sandbox:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _last_line(data: bytes) -> str:
    lines = [ln for ln in data.decode(errors="replace").splitlines() if ln.strip()]
    return lines[-1].strip() if lines else ""


def _collect(
    pid: int,
    in_w: int | None,
    data: bytes | None,
    out_r: int,
    err_r: int,
    max_output: int,
    deadline: float | None,
) -> tuple[bytes, bytes, bool, bool, float | None]:
    """Feed stdin, read stdout/stderr (capped) until the process exits and its pipes are drained, or the
    deadline passes. Returns (stdout, stderr, truncated, timed_out, exit time); closes the fds it got."""
    pidfd = os.pidfd_open(pid)
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    bufs = {out_r: bytearray(), err_r: bytearray()}
    for fd in bufs:
        poller.register(fd, select.POLLIN)
    open_fds = set(bufs)
    view = memoryview(data) if data else None
    if in_w is not None:
        if view:
            os.set_blocking(in_w, False)
            poller.register(in_w, select.POLLOUT)
        else:
            os.close(in_w)
            in_w = None
    truncated = timed_out = False
    ended: float | None = None

    def close(fd: int) -> None:
        poller.unregister(fd)
        os.close(fd)
        open_fds.discard(fd)

    try:
        while open_fds or ended is None:
            now = time.monotonic()
            limit = deadline
            if ended is not None:
                limit = ended + DRAIN_GRACE if limit is None else min(limit, ended + DRAIN_GRACE)
            if limit is not None and now >= limit:
                if ended is None:
                    timed_out = True
                break
            wait = -1 if limit is None else max(1, int((limit - now) * 1000) + 1)
            for fd, _ev in poller.poll(wait):
                if fd == pidfd:
                    ended = time.monotonic()
                    poller.unregister(pidfd)
                elif fd == in_w:
                    try:
                        n = os.write(in_w, view[:_CHUNK])  # type: ignore[index]
                        view = view[n:]  # type: ignore[index]
                    except BlockingIOError:
                        continue
                    except OSError:  # EPIPE: it closed its stdin
                        view = None
                    if not view:
                        close(in_w)
                        in_w = None
                elif fd in open_fds:
                    try:
                        chunk = os.read(fd, _CHUNK)
                    except OSError:
                        chunk = b""
                    if not chunk:
                        close(fd)
                        continue
                    buf = bufs[fd]
                    room = max_output - len(buf)
                    if len(chunk) > room:
                        buf += chunk[:room]
                        truncated = True
                        close(fd)  # the writer gets SIGPIPE/EPIPE: no more work for us
                    else:
                        buf += chunk
    finally:
        if in_w is not None:
            os.close(in_w)
        for fd in list(open_fds):
            if timed_out:
                continue  # read what was written before the kill, below
            poller.unregister(fd)
            os.close(fd)
        os.close(pidfd)
    if timed_out:
        # The caller kills every process; what they wrote before is still ours to read. Non-blocking: a
        # process that survives the kill for a moment must not hold us.
        for fd in list(open_fds):
            os.set_blocking(fd, False)
            stop = time.monotonic() + 1.0
            while len(bufs[fd]) < max_output and time.monotonic() < stop:
                try:
                    chunk = os.read(fd, _CHUNK)
                except BlockingIOError:
                    break
                except OSError:
                    break
                if not chunk:
                    break
                bufs[fd] += chunk[: max_output - len(bufs[fd])]
            os.close(fd)
    return bytes(bufs[out_r]), bytes(bufs[err_r]), truncated, timed_out, ended


_EXECUTOR = None
_EXECUTOR_LOCK = threading.Lock()


def _executor():
    global _EXECUTOR
    with _EXECUTOR_LOCK:
        if _EXECUTOR is None:
            from concurrent.futures import ThreadPoolExecutor

            _EXECUTOR = ThreadPoolExecutor(max_workers=64, thread_name_prefix="pycontain-sandbox")
        return _EXECUTOR


# -- keeping cgroup migration fast ----------------------------------------------------------------------
class _MigrationWarmer:
    """Keeps the kernel's cgroup migration lock out of its idle state while pools are open.

    Every exec into a sandbox moves the new process into the sandbox's cgroup. The lock that migration
    takes for writing (``cgroup_threadgroup_rwsem``) falls back to its fast-reader mode after about one
    RCU grace period without a writer, and the next writer then waits a full grace period: 5-15 ms on the
    hosts we measured, as much as the whole run. A thread of ours re-joining the cgroup it is already in
    every ``PERIOD`` seconds (a no-op migration) keeps the lock in writer-ready mode, as cgroup v2's
    ``favordynmods`` mount option does for good; the cost is ~100 small writes a second and a memory
    barrier on every fork and exit. Shared by all pools (reference-counted); stops with the last one.
    """

    PERIOD = 0.01

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0
        self.stop: threading.Event | None = None

    def acquire(self) -> None:
        with self.lock:
            self.users += 1
            if self.users == 1:
                self.stop = threading.Event()
                threading.Thread(
                    target=self._run, args=(self.stop,), name="pycontain-cgroup-warmer", daemon=True
                ).start()

    def release(self) -> None:
        with self.lock:
            self.users -= 1
            if self.users == 0 and self.stop is not None:
                self.stop.set()
                self.stop = None

    def _run(self, stop: threading.Event) -> None:
        target = _own_thread_cgroup_file()
        if target is None:
            return
        path, value = target
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        except OSError:
            return
        try:
            while not stop.wait(self.PERIOD):
                try:
                    os.write(fd, value)
                except OSError:
                    return
        finally:
            os.close(fd)


def _own_thread_cgroup_file() -> tuple[str, bytes] | None:
    """A file whose write moves this thread (or, on cgroup v2, this process) where it already is."""
    tid = threading.get_native_id()
    try:
        with open("/proc/thread-self/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    v2 = None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for c in ("pids", "freezer", "cpu", "memory"):
            if c in controllers.split(","):
                d = os.path.join("/sys/fs/cgroup", c, path.lstrip("/"))
                if os.path.exists(os.path.join(d, "tasks")):
                    return os.path.join(d, "tasks"), str(tid).encode()
        if controllers == "":
            v2 = path
    if v2 is not None and os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return os.path.join("/sys/fs/cgroup", v2.lstrip("/"), "cgroup.procs"), str(os.getpid()).encode()
    return None


_WARMER = _MigrationWarmer()


# -- the pool ------------------------------------------------------------------------------------------
class SandboxPool:
    """``size`` sandboxes kept started in the background; ``acquire`` lends one to one caller.

    ``with pool.acquire(timeout=None) as sb:`` (or ``sb = pool.acquire(); ...; sb.close()``) waits for a
    prepared sandbox; leaving the block hands it back, and it is destroyed in the background while a
    fresh one is prepared. ``async with pool.acquire_async() as sb`` (or ``await pool.acquire_async()``) for
    asyncio. ``workers`` threads prepare and destroy sandboxes. ``keep_warm`` (default on) keeps the
    kernel's cgroup migration lock ready while the pool is open (see ``_MigrationWarmer``: it saves
    5-15 ms on a run that follows a quiet spell). ``close()`` destroys every sandbox, borrowed ones
    included. Other keyword arguments are ``Sandbox``'s.
    """

    def __init__(
        self,
        size: int = 2,
        image: str = "default",
        *,
        root: str | None = None,
        workers: int = 1,
        keep_warm: bool = True,
        **sandbox_kwargs: object,
    ) -> None:
        if size < 0:
            raise InvalidArgument(f"invalid pool size {size}: use 0 or more")
        if workers < 1:
            raise InvalidArgument(f"invalid workers {workers}: use 1 or more")
        self.size = size
        self.image = image
        self.root = root
        # Built once, here: a bad option fails now, in the caller's thread, not in a worker.
        self._config_dict = build_config(image, **sandbox_kwargs).to_dict()  # type: ignore[arg-type]
        self._cond = threading.Condition()
        self._ready: collections.deque[Sandbox] = collections.deque()
        self._dirty: collections.deque[Sandbox] = collections.deque()
        self._lent: weakref.WeakSet[Sandbox] = weakref.WeakSet()
        self._waiting = 0
        self._creating = 0
        self._busy = 0
        self._closed = False
        self._refill = True
        self._error: BaseException | None = None
        self._failures = 0
        self._retry_at = 0.0
        self.created = 0
        self.destroyed = 0
        # Before our threads start; its own single thread forks the sandboxes (see pycontain.forkserver).
        self._forkserver = ForkServer()
        self._threads = [
            threading.Thread(target=self._work, name=f"pycontain-pool-{i}", daemon=True)
            for i in range(workers)
        ]
        self._warm = keep_warm
        if keep_warm:
            _WARMER.acquire()
        for t in self._threads:
            t.start()
        import atexit

        atexit.register(self.close)

    # -- borrowing -----------------------------------------------------------------------------
    def acquire(self, timeout: float | None = None) -> Sandbox:
        """A prepared sandbox, for this caller alone (a context manager: leaving it releases it).

        Waits up to ``timeout`` seconds (None: as long as it takes); raises ``TimeoutError`` then, and the
        last preparation error when sandboxes cannot be made.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._waiting += 1
            if not self._ready:
                self._cond.notify_all()  # a worker prepares one for us
            try:
                while True:
                    if self._closed:
                        raise InvalidState("the sandbox pool is closed")
                    if self._ready:
                        sb = self._ready.popleft()
                        self._lent.add(sb)
                        return sb
                    if self._error is not None and self._creating == 0:
                        raise PycontainError(f"the sandbox pool cannot prepare sandboxes: {self._error}")
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise TimeoutError(f"no sandbox became ready within {timeout} s")
                    self._cond.wait(remaining)
            finally:
                self._waiting -= 1

    def acquire_async(self, timeout: float | None = None) -> _AsyncAcquire:
        """``async with pool.acquire_async() as sb`` or ``sb = await pool.acquire_async()``."""
        return _AsyncAcquire(self, timeout)

    def release(self, sandbox: Sandbox) -> None:
        """Give a borrowed sandbox back (what leaving its ``with`` block does)."""
        sandbox.close()

    def _release(self, sb: Sandbox) -> None:
        # Its processes die now (a signal, no waiting): a backlog of sandboxes to destroy holds no
        # running code, only what the worker removes (zombie, cgroup, state).
        sb._handle.kill_pid1()
        with self._cond:
            self._lent.discard(sb)
            if not self._closed:
                self._dirty.append(sb)
                self._cond.notify_all()
                return
        sb._destroy()

    # -- state ---------------------------------------------------------------------------------
    @property
    def ready(self) -> int:
        """How many sandboxes are prepared now."""
        return len(self._ready)

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait until ``size`` sandboxes are prepared and nothing waits to be destroyed (a warm, quiet pool)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not (len(self._ready) >= self.size and not self._dirty and self._busy == 0) or self._closed:
                if self._closed:
                    return False
                if self._error is not None and self._creating == 0 and len(self._ready) < self.size:
                    raise PycontainError(f"the sandbox pool cannot prepare sandboxes: {self._error}")
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining if remaining is not None else 1.0)
            return True

    # -- the workers ---------------------------------------------------------------------------
    def _next_job(self) -> tuple[str, Sandbox | None] | None:
        """Under the lock: what to do next, or None when closed.

        Callers waiting with nothing ready come first (a sandbox each) unless released sandboxes pile up
        (more than two per worker: their processes are dead already, but not their cgroups and state);
        then destroying released ones;
        then topping the pool up to ``size``, which happens at start, after a release and after a failed
        preparation, never because of an acquire: a preparation forks and holds the GIL for a while,
        and starting one while the caller who just acquired a sandbox runs its command would slow it.
        """
        while True:
            if self._closed:
                return None
            have = len(self._ready) + self._creating
            can_create = time.monotonic() >= self._retry_at
            backlog = len(self._dirty) > 2 * len(self._threads or (1,))
            if can_create and self._waiting > have and not backlog:
                self._creating += 1
                return "create", None
            if self._dirty:
                self._refill = True
                return "destroy", self._dirty.popleft()
            if self._refill and have >= self.size:
                self._refill = False
            if self._refill and can_create:
                self._creating += 1
                return "create", None
            wait = None
            if self._refill or self._waiting > have:
                wait = max(0.0, self._retry_at - time.monotonic())
            self._cond.wait(wait)

    def _work(self) -> None:
        from .config import ContainerConfig

        while True:
            with self._cond:
                job = self._next_job()
                if job is None:
                    return
                self._busy += 1
            kind, sb = job
            try:
                if kind == "destroy":
                    try:
                        sb._destroy()  # type: ignore[union-attr]
                    except Exception:
                        pass
                    with self._cond:
                        self.destroyed += 1
                    continue
                try:
                    new = Sandbox(
                        self.image,
                        root=self.root,
                        _config=ContainerConfig.from_dict(self._config_dict),
                        _forkserver=self._forkserver,
                    )
                except Exception as e:
                    with self._cond:
                        self._creating -= 1
                        self._error = e
                        self._failures += 1
                        self._retry_at = time.monotonic() + min(0.05 * 2**self._failures, 5.0)
                        self._refill = True
                        self._cond.notify_all()
                    continue
                with self._cond:
                    self._creating -= 1
                    self.created += 1
                    self._error = None
                    self._failures = 0
                    if self._closed:
                        closed = True
                    else:
                        closed = False
                        new._pool = self
                        self._ready.append(new)
                    self._cond.notify_all()
                if closed:
                    new._destroy()
            finally:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify_all()

    # -- closing -------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop preparing, and destroy every sandbox: prepared, waiting for destruction, and lent."""
        with self._cond:
            if self._closed and not self._threads:
                return
            self._closed = True
            self._cond.notify_all()
            threads, self._threads = self._threads, []
            warm, self._warm = self._warm, False
        if warm:
            _WARMER.release()
        for t in threads:
            if t is not threading.current_thread():
                t.join()
        with self._cond:
            doomed = list(self._ready) + list(self._dirty) + list(self._lent)
            self._ready.clear()
            self._dirty.clear()
            self._cond.notify_all()
        for sb in doomed:
            try:
                sb._destroy()
            except Exception:
                pass
        self._forkserver.close()
        import atexit

        atexit.unregister(self.close)

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> SandboxPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(_executor(), self.close)


class _AsyncAcquire:
    """Awaitable and async context manager around ``SandboxPool.acquire``, waiting in a worker thread."""

    def __init__(self, pool: SandboxPool, timeout: float | None) -> None:
        self.pool = pool
        self.timeout = timeout
        self.sandbox: Sandbox | None = None

    async def _get(self) -> Sandbox:
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(_executor(), self.pool.acquire, self.timeout)
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            # Cancelled while a thread still waits: whatever it gets goes straight back.
            def give_back(f) -> None:
                if not f.cancelled() and f.exception() is None:
                    f.result().close()

            fut.add_done_callback(give_back)
            raise

    def __await__(self):
        return self._get().__await__()

    async def __aenter__(self) -> Sandbox:
        self.sandbox = await self._get()
        return self.sandbox

    async def __aexit__(self, *exc: object) -> None:
        if self.sandbox is not None:
            sb, self.sandbox = self.sandbox, None
            await sb.aclose()


__all__ = ["DEFAULT_MAX_OUTPUT", "Result", "Sandbox", "SandboxPool", "build_config"]
