"""``SandboxPool``: sandboxes kept ready by worker threads, lent to one caller at a time."""

from __future__ import annotations

import asyncio
import collections
import os
import threading
import time
import weakref

from ..errors import InvalidArgument, InvalidState, PycontainError
from .forkserver import ForkServer
from .io import executor
from .sandbox import Sandbox, build_config

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Unpack

    from .sandbox import Options


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
    """A file whose write moves this process where it already is: on cgroup v2 only. On v1 a sandbox's
    processes join their cgroups themselves through ``tasks`` (``process.moves_itself``), which takes no
    migration lock at all: keeping it warm there would only cost every fork and exit a memory barrier."""
    try:
        with open("/proc/thread-self/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "" and os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
            return os.path.join("/sys/fs/cgroup", path.lstrip("/"), "cgroup.procs"), str(os.getpid()).encode()
    return None


_WARMER = _MigrationWarmer()


# -- the pool ------------------------------------------------------------------------------------------
class SandboxPool:
    """``size`` sandboxes kept started in the background; ``acquire`` lends one to one caller.

    ``with pool.acquire(timeout=None) as sb:`` (or ``sb = pool.acquire(); ...; sb.close()``) waits for a
    prepared sandbox; leaving the block hands it back, and it is reset for the next borrower in the
    background (with ``reuse``, when it can be: see ``pycontain.sandbox.reset``), or destroyed while a
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
        reuse: bool = True,
        **options: Unpack[Options],
    ) -> None:
        if size < 0:
            raise InvalidArgument(f"invalid pool size {size}: use 0 or more")
        if workers < 1:
            raise InvalidArgument(f"invalid workers {workers}: use 1 or more")
        self.size = size
        self.image = image
        self.root = root
        self.reuse = reuse
        # Built once, here: a bad option fails now, in the caller's thread, not in a worker.
        self._config_dict = build_config(image, **options).to_dict()
        self._cond = threading.Condition()
        self._ready: collections.deque[Sandbox] = collections.deque()
        self._dirty: collections.deque[Sandbox] = collections.deque()  # to destroy
        self._used: collections.deque[Sandbox] = collections.deque()  # to reset for the next borrower
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
        self.reused = 0
        # Before our threads start; its own single thread forks the sandboxes (see pycontain.sandbox.forkserver).
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

    def take_back(self, sb: Sandbox) -> None:
        """A lent sandbox's ``close()`` comes here: it is reset for another borrower, or destroyed, in the
        background."""
        with self._cond:
            self._lent.discard(sb)
            # Not while a run of the borrower's is still going (another thread of theirs): its command
            # would be killed by the reset, or start after it, in the next borrower's sandbox.
            if not self._closed and sb.not_resettable is None and sb._dead is None and sb._disown(idle=True):
                self._used.append(sb)  # the borrower's object stays closed; a new one is lent after the reset
                self._cond.notify_all()
                return
        # Its processes die now (a signal, no waiting): a backlog of sandboxes to destroy holds no
        # running code, only what the worker removes (zombie, cgroup, state).
        sb.kill_pid1()
        with self._cond:
            if not self._closed:
                self._dirty.append(sb)
                self._cond.notify_all()
                return
        _discard(sb)

    # -- state ---------------------------------------------------------------------------------
    @property
    def ready(self) -> int:
        """How many sandboxes are prepared now."""
        return len(self._ready)

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait until ``size`` sandboxes are prepared and nothing waits to be destroyed (a warm, quiet pool)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while (
                not (len(self._ready) >= self.size and not self._dirty and not self._used and self._busy == 0)
                or self._closed
            ):
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
            if self._used:  # the quickest way to a ready sandbox: no fork, no mount of a root
                self._creating += 1
                return "reset", self._used.popleft()
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
        from ..config import ContainerConfig

        while True:
            with self._cond:
                job = self._next_job()
                if job is None:
                    return
                self._busy += 1
            kind, sb = job
            try:
                if kind == "destroy":
                    _discard(sb)  # type: ignore[arg-type]
                    with self._cond:
                        self.destroyed += 1
                    continue
                try:
                    if kind == "reset":
                        assert sb is not None
                        try:
                            self._forkserver.reset(sb.id, self.root, sb.pid)
                            new = sb._reborn()
                        except Exception:  # NotResettable (a run changed what a reset cannot renew), or worse
                            _discard(sb)
                            with self._cond:
                                self._creating -= 1
                                self.destroyed += 1
                                self._refill = True
                            continue
                    else:
                        new = Sandbox(
                            self.image,
                            root=self.root,
                            config=ContainerConfig.from_dict(self._config_dict),
                            forkserver=self._forkserver,
                            reuse=self.reuse,
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
                    if kind == "reset":
                        self.reused += 1
                    else:
                        self.created += 1
                    self._error = None
                    self._failures = 0
                    if self._closed:
                        closed = True
                    else:
                        closed = False
                        new.pool = self
                        self._ready.append(new)
                    self._cond.notify_all()
                if closed:
                    _discard(new)
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
            doomed = list(self._ready) + list(self._dirty) + list(self._used) + list(self._lent)
            self._ready.clear()
            self._dirty.clear()
            self._used.clear()
            self._cond.notify_all()
        for sb in doomed:
            _discard(sb)
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
        await loop.run_in_executor(executor(), self.close)


def _discard(sb: Sandbox) -> None:
    """Destroy ``sb``'s container now, whether or not its object still owns it (``Sandbox._disown``)."""
    sb._disown()
    try:
        sb._handle.destroy()
    except Exception:
        pass


class _AsyncAcquire:
    """Awaitable and async context manager around ``SandboxPool.acquire``, waiting in a worker thread."""

    def __init__(self, pool: SandboxPool, timeout: float | None) -> None:
        self.pool = pool
        self.timeout = timeout
        self.sandbox: Sandbox | None = None

    async def _get(self) -> Sandbox:
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(executor(), self.pool.acquire, self.timeout)
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
