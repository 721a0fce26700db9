"""Where ``pycontain bench`` runs its workloads: the bare host, pycontain, runc / crun, a QEMU VM.

Every target offers the same four operations: run a script to its end (``run``), a no-op from start to exit
(``noop``), and an idle instance started and stopped again (``start_idle`` / ``Instance.stop``) whose host
processes are known, for memory and density. Each uses the appliance's own root filesystem: the host runs its
busybox in place, the containers run it as their root (runc and crun from a writable copy in an OCI bundle
generated here), the VM boots its VM export.
"""

from __future__ import annotations

import abc
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

from pycontain.bench.workloads import READY_MARK
from pycontain.errors import PycontainError

IDLE = f"echo {READY_MARK}; exec sleep 1000000"
# The workloads are the command itself, as on the host, in the OCI bundles and in the VM (whose given
# command replaces the entrypoint too): an appliance's entrypoint must not take them as arguments.
NO_ENTRYPOINT = ("--entrypoint", "")
UNIFIED_CONTROLLERS = "/sys/fs/cgroup/unified/cgroup.controllers"


@dataclass
class RunOut:
    rc: int | None
    output: str
    seconds: float


@dataclass
class Instance:
    """An idle instance: how long it took to be up, the host processes it costs, how to stop it."""

    ready_seconds: float
    pids: list[int]
    stop: object = field(repr=False)  # Callable[[], None]


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (a container's init and what it started)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def memory_kib(pids: list[int]) -> tuple[int, int]:
    """(PSS, RSS) in KiB summed over ``pids`` (their smaps_rollup; shared pages split between sharers)."""
    pss = rss = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1])
                    elif line.startswith("Rss:"):
                        rss += int(line.split()[1])
        except (OSError, ValueError):
            continue
    return pss, rss


def _wait_line(stream, marker: str, timeout: float) -> bool:
    """Read ``stream`` (a pipe) until a line holds ``marker``; False on EOF or timeout."""
    import selectors

    deadline = time.monotonic() + timeout
    buf = b""
    with selectors.DefaultSelector() as sel:
        sel.register(stream, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                continue
            chunk = os.read(stream.fileno(), 65536)
            if not chunk:
                return False
            buf = (buf + chunk)[-4096:]
            if marker.encode() in buf:
                return True
    return False


def _run(argv: list[str], timeout: float, env: dict | None = None, cwd: str | None = None) -> RunOut:
    t0 = time.perf_counter()
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        return RunOut(None, out + "\n[timed out]", time.perf_counter() - t0)
    return RunOut(p.returncode, p.stdout + p.stderr, time.perf_counter() - t0)


class Target(abc.ABC):
    name = "?"
    kind = "?"  # host | container | vm
    label = ""  # shown with every figure (the accelerator, for the VM)

    @abc.abstractmethod
    def run(self, script: str, timeout: float = 600) -> RunOut:
        """Run ``script`` (busybox sh) to its end."""

    @abc.abstractmethod
    def noop(self) -> float:
        """Seconds from start to exit of an instance that does nothing."""

    @abc.abstractmethod
    def start_idle(self, index: int, timeout: float = 120) -> Instance:
        """An idle instance, up (it said so), with the host processes it costs."""

    def start_service(self, host_port: int, guest_port: int, timeout: float = 180) -> Instance | None:
        """The appliance's own entrypoint with ``guest_port`` published on 127.0.0.1:``host_port``, timed
        until the service answers there; None where the target cannot publish a port."""
        return None

    def close(self) -> None:  # noqa: B027 - most targets make something to remove; the host makes nothing
        """Remove what the target made (bundles, state roots)."""


def wait_answer(port: int, started: float, timeout: float) -> float | None:
    """Seconds from ``started`` (perf_counter) until a TCP client on 127.0.0.1:``port`` gets a reply to
    an HTTP request (any bytes: the service answered), or None after ``timeout`` seconds."""
    import socket

    while time.perf_counter() - started < timeout:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as c:
                c.sendall(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                if c.recv(1):
                    return time.perf_counter() - started
        except OSError:
            pass  # refused (not listening yet), reset or closed by a forwarder with nothing behind it
        time.sleep(0.005)
    return None


class HostTarget(Target):
    name, kind = "host", "host"

    def __init__(self, rootfs: str, work: str) -> None:
        self.rootfs = rootfs
        self.work = os.path.join(work, "host")
        os.makedirs(self.work, exist_ok=True)
        self.sh = os.path.join(rootfs, "bin", "sh")
        self.true = os.path.join(rootfs, "bin", "true")
        if not (os.access(self.sh, os.X_OK) and os.access(self.true, os.X_OK)):
            raise PycontainError(
                f"the bench needs an appliance with busybox (bin/sh, bin/true); {rootfs} has none"
            )
        self.env = {
            "PATH": f"{rootfs}/bin:{rootfs}/sbin",
            "ROOT": rootfs,
            "WORK": self.work,
            "HOME": self.work,
        }

    def run(self, script: str, timeout: float = 600) -> RunOut:
        return _run([self.sh, "-c", script], timeout, env=self.env, cwd=self.work)

    def noop(self) -> float:
        return _run([self.true], 30).seconds

    def start_idle(self, index: int, timeout: float = 120) -> Instance:
        t0 = time.perf_counter()
        p = subprocess.Popen([self.sh, "-c", IDLE], stdout=subprocess.PIPE, env=self.env, cwd=self.work)
        ok = _wait_line(p.stdout, READY_MARK, timeout)
        ready = time.perf_counter() - t0

        def stop() -> None:
            with contextlib.suppress(ProcessLookupError):
                p.kill()
            p.wait()
            if p.stdout:
                p.stdout.close()

        if not ok:
            stop()
            raise PycontainError("an idle host process did not start")
        return Instance(ready, [p.pid], stop)


class PycontainTarget(Target):
    """``pycontain run`` as a user runs it: the whole CLI process, network none (as runc's bundle)."""

    name, kind = "pycontain", "container"

    def __init__(self, image: str, work: str) -> None:
        self.image = image
        here = os.path.join(os.path.dirname(sys.executable), "pycontain")
        self.exe = [here] if os.access(here, os.X_OK) else [sys.executable, "-m", "pycontain"]
        self.root = os.path.join(work, "pycontain-state")
        self.base = [*self.exe, "--root", self.root]
        self.names: list[str] = []

    def run(self, script: str, timeout: float = 600) -> RunOut:
        return _run(
            [
                *self.base,
                "run",
                "--rm",
                *NO_ENTRYPOINT,
                "--network",
                "none",
                self.image,
                "--",
                "sh",
                "-c",
                script,
            ],
            timeout,
        )

    def noop(self) -> float:
        r = _run(
            [*self.base, "run", "--rm", *NO_ENTRYPOINT, "--network", "none", self.image, "--", "/bin/true"],
            60,
        )
        if r.rc != 0:
            raise PycontainError(f"pycontain run failed: {r.output.strip()[-200:]}")
        return r.seconds

    def start_idle(self, index: int, timeout: float = 120) -> Instance:
        name = f"pycontain-bench-{os.getpid()}-{index}"
        t0 = time.perf_counter()
        r = _run(
            [
                *self.base,
                "run",
                "-d",
                *NO_ENTRYPOINT,
                "--network",
                "none",
                "--name",
                name,
                self.image,
                "--",
                "sh",
                "-c",
                IDLE,
            ],
            timeout,
        )
        if r.rc != 0:
            raise PycontainError(f"pycontain run -d failed: {r.output.strip()[-200:]}")
        self.names.append(name)
        cid = r.output.split()[0]
        log = os.path.join(self.root, cid, "container.log")
        while time.perf_counter() - t0 < timeout:  # the service is up when it says so
            with contextlib.suppress(OSError), open(log, "rb") as f:
                if READY_MARK.encode() in f.read():
                    break
            time.sleep(0.001)
        ready = time.perf_counter() - t0
        from pycontain.container import Container

        try:
            pid = Container.get(cid, self.root).pid
        except PycontainError:
            self._remove(name)
            raise

        def stop() -> None:
            self._remove(name)

        return Instance(ready, descendants(pid), stop)

    def start_service(self, host_port: int, guest_port: int, timeout: float = 180) -> Instance | None:
        name = f"pycontain-bench-{os.getpid()}-svc-{host_port}"
        t0 = time.perf_counter()
        publish = f"127.0.0.1:{host_port}:{guest_port}"
        argv = [*self.base, "run", "-d", "--network", "bridge", "-p", publish, "--name", name, self.image]
        r = _run(argv, timeout)
        if r.rc != 0:
            raise PycontainError(f"pycontain run -d -p failed: {r.output.strip()[-200:]}")
        self.names.append(name)
        answered = wait_answer(host_port, t0, timeout)
        if answered is None:
            self._remove(name)
            raise PycontainError(f"the service on {publish} did not answer within {timeout:g}s")
        return Instance(answered, [], lambda: self._remove(name))

    def _remove(self, name: str) -> None:
        # the library, not the CLI: removal must work even when the command line does not
        from pycontain.container import Container
        from pycontain.errors import ContainerNotFound

        with contextlib.suppress(ContainerNotFound):
            Container.get(name, self.root).remove(force=True)
        with contextlib.suppress(ValueError):
            self.names.remove(name)

    def close(self) -> None:
        for name in list(self.names):
            self._remove(name)
        shutil.rmtree(self.root, ignore_errors=True)


class OciTarget(Target):
    """runc or crun on a bundle generated from the appliance (a writable copy of its root filesystem)."""

    kind = "container"

    def __init__(self, runtime: str, rootfs: str, work: str) -> None:
        self.name = runtime
        self.binary = shutil.which(runtime)
        if not self.binary:
            raise PycontainError(
                f"{runtime} is not installed (apt-get install {runtime}), or leave it out of --runtimes"
            )
        self.bundle = os.path.join(work, f"bundle-{runtime}")
        self.root = os.path.join(work, f"state-{runtime}")
        os.makedirs(self.bundle)
        subprocess.run(["cp", "-a", rootfs, os.path.join(self.bundle, "rootfs")], check=True)
        self.prefix: list[str] = []
        self._mask: str | None = None
        if runtime == "crun" and _hybrid_with_controllers():
            self.prefix = self._masked_cgroup2(work)
        self.ids: list[str] = []
        self.seq = 0

    def _masked_cgroup2(self, work: str) -> list[str]:
        """crun 1.8 refuses hybrid hosts whose cgroup2 mount lists controllers: run it in a private mount
        namespace where that file reads empty (then it uses the v1 hierarchies, as runc does). Nothing on the
        host changes; the namespace is bound to a file under ``work`` and unmounted by ``close``."""
        d = os.path.join(work, "crun-mntns")
        os.mkdir(d)
        subprocess.run(["mount", "--bind", d, d], check=True)
        self._mask = d
        subprocess.run(["mount", "--make-private", d], check=True)
        ns = os.path.join(d, "mnt")
        empty = os.path.join(d, "empty")
        open(ns, "w").close()
        open(empty, "w").close()
        subprocess.run(["unshare", f"--mount={ns}", "--propagation", "private", "true"], check=True)
        subprocess.run(
            ["nsenter", f"--mount={ns}", "mount", "--bind", empty, UNIFIED_CONTROLLERS], check=True
        )
        return ["nsenter", f"--mount={ns}"]

    def _config(self, args: list[str]) -> None:
        from pycontain.spec import default_spec

        doc = default_spec(args=args)
        doc["ociVersion"] = "1.0.2"  # crun 1.8 refuses newer versions it does not know
        doc["process"]["terminal"] = False
        doc["root"] = {"path": "rootfs", "readonly": False}
        with open(os.path.join(self.bundle, "config.json"), "w") as f:
            json.dump(doc, f)

    def _id(self) -> str:
        self.seq += 1
        return f"pycontain-bench-{self.name}-{os.getpid()}-{self.seq}"

    def _cmd(self, *args: str) -> list[str]:
        return [*self.prefix, self.binary or self.name, "--root", self.root, *args]

    def run(self, script: str, timeout: float = 600) -> RunOut:
        self._config(["sh", "-c", script])
        return _run(self._cmd("run", "--bundle", self.bundle, self._id()), timeout)

    def noop(self) -> float:
        self._config(["/bin/true"])
        r = _run(self._cmd("run", "--bundle", self.bundle, self._id()), 60)
        if r.rc != 0:
            raise PycontainError(f"{self.name} run failed: {r.output.strip()[-200:]}")
        return r.seconds

    def start_idle(self, index: int, timeout: float = 120) -> Instance:
        self._config(["sh", "-c", IDLE])
        cid = self._id()
        t0 = time.perf_counter()
        p = subprocess.Popen(
            self._cmd("run", "--detach", "--bundle", self.bundle, cid),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        ok = _wait_line(p.stdout, READY_MARK, timeout)
        ready = time.perf_counter() - t0
        p.wait()
        if p.stdout:
            p.stdout.close()
        self.ids.append(cid)

        def stop() -> None:
            _run(self._cmd("delete", "--force", cid), 60)
            with contextlib.suppress(ValueError):
                self.ids.remove(cid)

        if not ok:
            stop()
            raise PycontainError(f"{self.name} did not start an idle container")
        r = _run(self._cmd("state", cid), 60)
        try:
            pid = int(json.loads(r.output)["pid"])
        except (ValueError, KeyError, TypeError):
            stop()
            raise PycontainError(f"{self.name} state {cid} gave no pid: {r.output.strip()[-200:]}") from None
        return Instance(ready, descendants(pid), stop)

    def close(self) -> None:
        for cid in list(self.ids):
            _run(self._cmd("delete", "--force", cid), 60)
        if self._mask:
            subprocess.run(
                ["umount", "-l", os.path.join(self._mask, "mnt")], check=False, capture_output=True
            )
            subprocess.run(["umount", "-l", self._mask], check=False, capture_output=True)
        shutil.rmtree(self.bundle, ignore_errors=True)
        shutil.rmtree(self.root, ignore_errors=True)


def _hybrid_with_controllers() -> bool:
    try:
        with open(UNIFIED_CONTROLLERS) as f:
            return bool(f.read().strip())
    except OSError:
        return False


class VMTarget(Target):
    """The appliance's VM export under QEMU (``pycontain.vm``); every figure carries the accelerator."""

    name, kind = "vm", "vm"

    def __init__(self, image: str, work: str, accel: str, memory_mb: int = 256) -> None:
        from pycontain import vm

        self.accel = accel
        self.label = accel
        self.memory_mb = memory_mb
        t0 = time.perf_counter()
        self.appliance = vm.export_vm(image, os.path.join(work, "vm"))
        self.export_seconds = time.perf_counter() - t0
        self.guests: list = []
        self.hung = 0  # boots that hung and were retried (a TCG guest on a loaded host, rarely)

    def _boot(self, command: str, timeout: float):
        """Boot with ``command`` to its end; a guest that never reaches its /init is booted once more."""
        r = self.appliance.run(command, accel=self.accel, timeout=timeout, memory_mb=self.memory_mb)
        if r.timed_out and r.boot_seconds is None:
            self.hung += 1
            r = self.appliance.run(command, accel=self.accel, timeout=timeout, memory_mb=self.memory_mb)
        return r

    def run(self, script: str, timeout: float = 600) -> RunOut:
        r = self._boot(script, timeout)
        return RunOut(r.rc, r.output, r.wall_seconds)

    def noop(self) -> float:
        r = self._boot("true", 180)
        if r.rc != 0:
            raise PycontainError(f"the VM did not run a no-op (rc {r.rc}): {r.tail(3)}")
        return r.wall_seconds

    def start_idle(self, index: int, timeout: float = 180) -> Instance:
        guest = self.appliance.start(IDLE, accel=self.accel, memory_mb=self.memory_mb)
        ready = guest.wait_for("\n" + READY_MARK, timeout / 2)
        if ready is None and guest.ready_at is None:  # hung before its /init: once more
            guest.kill()
            self.hung += 1
            guest = self.appliance.start(IDLE, accel=self.accel, memory_mb=self.memory_mb)
            ready = guest.wait_for("\n" + READY_MARK, timeout / 2)
        self.guests.append(guest)

        def stop() -> None:
            guest.kill()
            with contextlib.suppress(ValueError):
                self.guests.remove(guest)

        if ready is None:
            tail = guest.output()[-300:]
            stop()
            raise PycontainError(f"the VM did not come up within {timeout:g}s: {tail}")
        time.sleep(0.5)  # let the guest go idle: its memory is what an idle guest keeps
        return Instance(ready, [guest.pid], stop)

    def start_service(self, host_port: int, guest_port: int, timeout: float = 180) -> Instance | None:
        t0 = time.perf_counter()
        guest = self.appliance.start(
            None, accel=self.accel, memory_mb=self.memory_mb, ports=[(host_port, guest_port)]
        )
        self.guests.append(guest)

        def stop() -> None:
            guest.kill()
            with contextlib.suppress(ValueError):
                self.guests.remove(guest)

        answered = wait_answer(host_port, t0, timeout)
        if answered is None:
            tail = guest.output()[-300:]
            stop()
            raise PycontainError(f"the VM's service did not answer within {timeout:g}s: {tail}")
        return Instance(answered, [guest.pid], stop)

    def close(self) -> None:
        for g in list(self.guests):
            g.kill()
        shutil.rmtree(self.appliance.dir, ignore_errors=True)


def make_work_dir() -> str:
    """A scratch directory on the same file system as the image store (the containers' writes land there)."""
    from rootfs_builder import data_root

    base = os.path.join(data_root(), "tmp")
    os.makedirs(base, exist_ok=True)
    return tempfile.mkdtemp(prefix="bench-", dir=base)
