"""Running a guest under QEMU: the shared microvm command line, the console reader, the KVM probe."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field

from pycontain.errors import PycontainError
from pycontain.vm.cpio import Cpio
from pycontain.vm.kernel import (
    ACCELS,
    READY,
    RESULT,
    VMUnavailable,
    busybox,
    ensure_kernel,
    find_qemu,
    host_tsc_khz,
)


# -- running a guest ----------------------------------------------------------------------------
@dataclass
class GuestResult:
    rc: int | None  # the command's exit status (None: no result line, e.g. a hung or crashed guest)
    output: str  # the whole serial console, \r removed
    qemu_rc: int | None
    timed_out: bool
    boot_seconds: float | None  # QEMU start to the READY line
    wall_seconds: float
    accel: str = "tcg"
    controllers: list[str] = field(default_factory=list)  # what the READY line listed after "controllers="

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.output.splitlines()[-lines:])


def qemu_argv(
    kernel_image: str,
    initrd: str,
    append: list[str],
    *,
    accel: str = "tcg",
    memory_mb: int = 256,
    cpus: int = 1,
) -> list[str]:
    """The microvm command line every pycontain guest shares: serial console on stdio, no devices but the
    ones added after it, no reboot (a guest's reboot or power-off ends QEMU)."""
    if accel not in ACCELS:
        raise ValueError(f"accelerator {accel!r} is not one of {', '.join(ACCELS)}")
    cmdline = [
        "console=ttyS0",
        "panic=-1",
        "rdinit=/init",
        "quiet",
        "mitigations=off",
        f"pycontain.epoch={int(time.time())}",
        *append,
    ]
    khz = host_tsc_khz()
    if khz and accel == "tcg":
        cmdline.append(f"tsc_early_khz={khz}")
    return [
        find_qemu(),
        "-M",
        "microvm",
        "-accel",
        accel,
        *(["-cpu", "host"] if accel == "kvm" else []),
        "-m",
        str(memory_mb),
        "-smp",
        str(cpus),
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-serial",
        "stdio",
        "-monitor",
        "none",
        "-no-reboot",
        "-kernel",
        kernel_image,
        "-initrd",
        initrd,
        "-append",
        " ".join(cmdline),
    ]


class Guest:
    """One running QEMU guest: its console collected by a thread, markers waited for, killed on timeout.

    Only the QEMU process this object started is ever signalled."""

    def __init__(self, argv: list[str], accel: str = "tcg", echo: bool = False) -> None:
        self.accel = accel
        self.echo = echo
        self.chunks: list[bytes] = []
        self.remove_after: list[str] = []  # files the guest used (removed once it is gone)
        self.ready_at: float | None = None
        self._cond = threading.Condition()
        self.start = time.monotonic()
        # A session of its own: a terminal's Ctrl-C reaches pycontain alone, which then kills QEMU and
        # removes what the guest used, the same way every time.
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._seen = b""
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _pump(self) -> None:
        stream = self.proc.stdout
        assert stream is not None
        for chunk in iter(lambda: stream.read1(65536), b""):  # type: ignore[attr-defined]
            with self._cond:
                self.chunks.append(chunk)
                self._seen = (self._seen + chunk)[-8192:]
                if self.ready_at is None and READY.encode() in self._seen:
                    self.ready_at = time.monotonic()
                self._cond.notify_all()
            if self.echo:
                sys.stderr.write(chunk.decode(errors="replace"))
                sys.stderr.flush()
        with self._cond:
            self._cond.notify_all()

    def output(self) -> str:
        with self._cond:
            return b"".join(self.chunks).decode(errors="replace").replace("\r", "")

    def wait_for(self, marker: str, timeout: float) -> float | None:
        """Seconds from QEMU's start until ``marker`` appeared on the console, or None (timeout, guest gone)."""
        deadline = time.monotonic() + timeout
        needle = marker.encode()
        scanned = 0
        with self._cond:
            while True:
                data = b"".join(self.chunks)
                i = data.find(needle, max(0, scanned - len(needle)))
                if i >= 0:
                    return time.monotonic() - self.start
                scanned = len(data)
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    return None
                self._cond.wait(min(left, 0.2))

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        self.proc.wait()
        self._reader.join(timeout=10)
        if self.proc.stdout:
            self.proc.stdout.close()
        for path in self.remove_after:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        self.remove_after.clear()

    def wait(self, timeout: float, boot_timeout: float | None = None) -> GuestResult:
        """Wait for the guest to power off (killing it after ``timeout`` s, or ``boot_timeout`` s without
        READY) and return what happened."""
        boot_timeout = timeout if boot_timeout is None else min(boot_timeout, timeout)
        timed_out = False
        try:
            while self.proc.poll() is None:
                now = time.monotonic() - self.start
                if now > timeout or (self.ready_at is None and now > boot_timeout):
                    timed_out = True
                    with self._cond:
                        self.chunks.append(
                            f"\n[host: guest killed after {now:.0f}s: "
                            f"{'no ' + READY + ' line' if self.ready_at is None else 'command did not finish'}]\n".encode()
                        )
                    break
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=0.2)
        finally:
            self.kill()
        wall = time.monotonic() - self.start
        output = self.output()
        found = re.findall(rf"^{RESULT} rc=(\d+)$", output, re.M)
        m = re.search(rf"^{READY}(?: controllers=(.*))?$", output, re.M)
        return GuestResult(
            rc=int(found[-1]) if found else None,
            output=output,
            qemu_rc=self.proc.returncode,
            timed_out=timed_out,
            wall_seconds=wall,
            accel=self.accel,
            boot_seconds=(self.ready_at - self.start) if self.ready_at else None,
            controllers=(m.group(1) or "").split() if m else [],
        )


def probe_kvm(timeout: float = 20.0) -> str | None:
    """None when QEMU really runs a guest with KVM here; otherwise why not (one line). A guest must reach
    its /init: /dev/kvm can exist and QEMU still abort or hang with it (e.g. kvm_pvm, which only runs
    specially built guest kernels)."""
    if not os.path.exists("/dev/kvm"):
        return "no /dev/kvm (no KVM module loaded, or not allowed in this machine)"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "/dev/kvm is not readable and writable by this user"
    kernel = ensure_kernel()
    c = Cpio()
    for d in ("proc", "dev"):
        c.dir(d)
    c.chardev("dev/console", 5, 1)
    c.file("init", f"#!/.vm/busybox sh\necho {READY}\n/.vm/busybox poweroff -f\n".encode(), 0o755)
    with open(busybox(), "rb") as f:
        c.file(".vm/busybox", f.read(), 0o755)
    with tempfile.TemporaryDirectory(prefix="pycontain-kvm-") as tmp:
        initrd = os.path.join(tmp, "initramfs.cpio")
        with open(initrd, "wb") as f:
            f.write(c.bytes())
        result = Guest(qemu_argv(kernel.image, initrd, [], accel="kvm", memory_mb=128)).wait(timeout)
    if result.boot_seconds is not None:
        return None
    lines = [ln.strip() for ln in result.output.splitlines() if ln.strip() and not ln.startswith("[host:")]
    why = "it hung" if result.timed_out else f"QEMU exited with {result.qemu_rc}"
    return f"QEMU with -accel kvm did not boot a guest ({why}{': ' + lines[-1][:160] if lines else ''})"


def choose_accel(wanted: str = "auto") -> tuple[str, str]:
    """(accelerator, why) for ``wanted`` = auto | kvm | tcg; ``kvm`` fails clearly where it does not work."""
    if wanted == "tcg":
        return "tcg", "software emulation (TCG) as asked"
    if wanted not in ("auto", "kvm"):
        raise PycontainError(f"unknown accelerator {wanted!r}: use auto, kvm or tcg")
    why = probe_kvm()
    if why is None:
        return "kvm", "KVM (probed: a guest booted with it)"
    if wanted == "kvm":
        raise VMUnavailable(f"KVM does not work here: {why} (use --vm tcg)")
    return "tcg", f"software emulation (TCG): {why}"
