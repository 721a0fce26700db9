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
two callers at once, nor is anything of one borrower's left for the next: on release a sandbox with a
read-only root (``read_only=True`` or ``disk=``) is reset, everything but its PID 1 killed, its tmpfs
mounts and IPC objects renewed, its /dev checked (``pycontain.sandbox.reset`` says why that is enough),
and lent again as a new ``Sandbox`` object, the old one closed for good; any other (a writable overlay
root cannot be reset), or one a run changed beyond what a reset renews, has its processes killed at
once, and a worker removes it and prepares a fresh one (``reuse=False``: always). A reset takes 1-2 ms
in the fork server, a fresh sandbox 20-30 ms of work in two processes. Preparation is triggered by
releases (and by callers waiting with none ready), not by acquires, so the caller who just took a
sandbox does not share the CPU and the GIL with a container start. While a pool is open a thread keeps
cgroup migration fast (``pool._MigrationWarmer``). Runs go without ``CAP_AUDIT_WRITE``, which PID 1
keeps, so that no run can ptrace PID 1 or open its memory.

Requirements on the image: ``sh``, ``sleep`` (PID 1), ``cat``, ``mkdir``, ``dirname``, ``chmod``
(``put_file``/``get_file``): busybox has them all.

A pool's sandboxes are created (and reset) by a single-threaded fork server (``pycontain.sandbox.forkserver``),
so no lock held by one of the caller's threads is ever copied, held, into a container's first process. Runs exec
into a sandbox from the caller's thread; those children only make system calls and exec. The pool's own
lock is never held across a fork, a create or a destroy.
"""

from __future__ import annotations

from .pool import SandboxPool
from .result import Result
from .sandbox import DEFAULT_MAX_OUTPUT, Sandbox, build_config

__all__ = ["DEFAULT_MAX_OUTPUT", "Result", "Sandbox", "SandboxPool", "build_config"]
