"""Virtual machines for pycontain's appliances: a Debian kernel, an initramfs, QEMU, and the VM export.

The same appliance that runs as a container also boots as a virtual machine, so the two can be compared
(``pycontain bench``) and so the cgroup v2 driver can be tested on a pure-v2 kernel (``tests/vm``).

- **Kernel**: Debian's ``linux-image-amd64`` (its versioned dependency), fetched with ``apt-get download``
  and unpacked with ``dpkg-deb -x`` in a temporary directory: never installed on the host. Kept from it, in
  ``<data root>/cache/vm/<package>/`` (``$PYCONTAIN_VM_CACHE`` overrides): the ELF ``vmlinux`` taken out of
  the bzImage's payload (an uncompressed kernel boots ~3 s faster under emulation) and the modules a guest
  loads (virtio-mmio, virtio-blk, ext4, 9p, virtio-net: ``GUEST_MODULES`` and their ``depends=`` closure; Debian builds
  them as modules, so an initramfs loads them).
- **VM export** (``export_vm``): ``disk.img`` (ext4 made with ``mke2fs -d`` from the image's flattened
  layers), ``vmlinux``, ``initramfs.cpio`` (a static busybox as /init that loads the modules, mounts the
  disk and runs the image's Entrypoint/Cmd with its Env and WorkingDir in a chroot of it), ``boot.sh`` (the
  QEMU command line) and ``appliance.json``. Every boot starts from the exported disk: QEMU's
  ``snapshot=on`` keeps a boot's writes in a temporary file, as a container's writes stay in its own layer.
  A virtio-net card on QEMU's user-mode network (slirp: no host privileges, no host interface) gives the
  guest 10.0.2.15 with 10.0.2.2 as its gateway and 10.0.2.3 as its DNS server; published ports
  (``Appliance.start(ports=...)``, ``vm boot -p``) are forwarded from 127.0.0.1 on the host.
- **QEMU**: ``qemu-system-x86_64 -M microvm`` with ``-accel kvm`` only where KVM really works (``probe_kvm``
  boots a guest with it: on some hosts /dev/kvm exists but QEMU aborts or hangs with it) and software
  emulation (TCG) otherwise. The guest reports on its serial console: ``PYCONTAIN-VM-READY`` once set up,
  ``PYCONTAIN-VM-RESULT rc=N`` when its command ends; then it powers off.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import lzma
import os
import platform
import re
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass, field

from pycontain.errors import PycontainError

QEMU = "qemu-system-x86_64"
QEMU_PACKAGE = "qemu-system-x86"
KERNEL_META_PACKAGE = "linux-image-amd64"
# What guests need from the kernel's modules (the rest of the closure comes from their "depends="); crc32c
# is ext4's and jbd2's soft dependency, which "depends=" does not list.
GUEST_MODULES = ("virtio_mmio", "9pnet_virtio", "9p", "virtio_blk", "crc32c_generic", "ext4", "virtio_net")
CACHE_FORMAT = "3"
READY = "PYCONTAIN-VM-READY"
RESULT = "PYCONTAIN-VM-RESULT"
ACCELS = ("tcg", "kvm")


class VMUnavailable(PycontainError):
    """QEMU, the kernel or KVM cannot be had on this host (the message says why and what to do)."""


@dataclass
class Kernel:
    package: str
    image: str  # the ELF vmlinux (or, when it could not be extracted, the bzImage)
    modules: list[str]  # in load order


# -- host discovery -----------------------------------------------------------------------------
def cache_dir() -> str:
    explicit = os.environ.get("PYCONTAIN_VM_CACHE")
    if explicit:
        return os.path.abspath(explicit)
    from rootfs_builder import data_root

    return os.path.join(data_root(), "cache", "vm")


def _apt_env() -> dict[str, str]:
    return {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}


def find_qemu(install: bool = True) -> str:
    """The qemu-system-x86_64 binary; installs Debian's qemu-system-x86 (as root) when it is missing."""
    if platform.machine() not in ("x86_64", "AMD64"):
        raise VMUnavailable(f"the VM guests need an x86_64 host (this is {platform.machine()})")
    path = shutil.which(QEMU)
    if path:
        return path
    if not install or os.geteuid() != 0 or not shutil.which("apt-get"):
        raise VMUnavailable(
            f"{QEMU} is not installed (apt-get install --no-install-recommends {QEMU_PACKAGE})"
        )
    p = subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", QEMU_PACKAGE],
        capture_output=True,
        text=True,
        env=_apt_env(),
        timeout=600,
    )
    path = shutil.which(QEMU)
    if not path:
        last = (p.stderr or p.stdout).strip().splitlines()[-1:] or ["no output"]
        raise VMUnavailable(f"{QEMU} is not installed and apt-get install {QEMU_PACKAGE} failed ({last[0]})")
    return path


def host_tsc_khz() -> int | None:
    """The host's CPU clock in kHz (/proc/cpuinfo "cpu MHz"), for the guest's ``tsc_early_khz=``: without
    it a guest's TSC calibration under a busy host can take forever."""
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"^cpu MHz\s*:\s*([0-9.]+)", f.read(), re.M)
    except OSError:
        return None
    return int(float(m.group(1)) * 1000) if m else None


def busybox() -> str:
    """The static busybox of pycontain's default root filesystem (built, from busybox-static, if needed)."""
    import rootfs_builder

    try:
        path = os.path.join(rootfs_builder.resolve("default"), "bin", "busybox")
    except PycontainError as e:
        raise VMUnavailable(f"no static busybox for the guest's /init ({e})") from None
    if not os.path.isfile(path):
        raise VMUnavailable(
            f"no static busybox at {path} (rebuild it: pycontain-rootfs build default --force)"
        )
    return path


# -- the kernel ---------------------------------------------------------------------------------
def kernel_package() -> str:
    """The versioned image package ``linux-image-amd64`` depends on (e.g. linux-image-6.1.0-56-amd64)."""
    forced = os.environ.get("PYCONTAIN_VM_KERNEL_PACKAGE")
    if forced:
        return forced
    try:
        out = subprocess.run(
            ["apt-cache", "depends", KERNEL_META_PACKAGE],
            capture_output=True,
            text=True,
            env=_apt_env(),
            timeout=60,
        ).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        raise VMUnavailable(f"apt-cache cannot resolve {KERNEL_META_PACKAGE} ({e})") from None
    m = re.search(r"Depends:\s*(linux-image-\S+)", out)
    if not m:
        raise VMUnavailable(
            f"apt knows no {KERNEL_META_PACKAGE} (run apt-get update, or set PYCONTAIN_VM_KERNEL_PACKAGE)"
        )
    return m.group(1)


def extract_vmlinux(bzimage: bytes) -> bytes | None:
    """The ELF vmlinux inside a bzImage (xz or gzip payload), or None when it cannot be unpacked here."""
    if bzimage[0x202:0x206] != b"HdrS" or struct.unpack_from("<H", bzimage, 0x206)[0] < 0x208:
        return None
    setup_sects = bzimage[0x1F1] or 4
    offset, length = struct.unpack_from("<II", bzimage, 0x248)
    start = (setup_sects + 1) * 512 + offset
    payload = bzimage[start : start + length]
    try:
        if payload.startswith(b"\xfd7zXZ\x00"):
            out = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(payload)
        elif payload.startswith(b"\x1f\x8b"):
            out = zlib.decompressobj(31).decompress(payload)
        else:  # zstd, lz4, lzo, bzip2: no decompressor in the stdlib; boot the bzImage instead
            return None
    except (lzma.LZMAError, zlib.error, EOFError):
        return None
    return out if out.startswith(b"\x7fELF") else None


def _modinfo_depends(data: bytes) -> list[str]:
    """The ``depends=`` of a .ko (its ELF .modinfo section)."""
    if data[:4] != b"\x7fELF" or data[4] != 2:
        return []
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize) for i in range(shnum)]
    strtab_off = sections[shstrndx][4]
    for name_off, _type, _flags, _addr, off, size in sections:
        end = data.index(b"\0", strtab_off + name_off)
        if data[strtab_off + name_off : end] == b".modinfo":
            for item in data[off : off + size].split(b"\0"):
                if item.startswith(b"depends="):
                    return [d for d in item[8:].decode().split(",") if d]
    return []


def _read_module(path: str) -> bytes:
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".xz"):
        return lzma.decompress(data)
    if path.endswith(".gz"):
        return zlib.decompress(data, 31)
    if path.endswith(".zst"):
        raise VMUnavailable(f"module {path} is zstd-compressed (no zstd decompressor in the stdlib)")
    return data


def module_closure(modules_root: str, wanted: tuple[str, ...] = GUEST_MODULES) -> list[tuple[str, bytes]]:
    """(name, uncompressed .ko) for ``wanted`` and their dependencies, dependencies first."""
    index: dict[str, str] = {}
    for path in glob.glob(os.path.join(modules_root, "**", "*.ko*"), recursive=True):
        name = re.sub(r"\.ko(\.(xz|gz|zst))?$", "", os.path.basename(path)).replace("-", "_")
        index[name] = path
    order: list[tuple[str, bytes]] = []
    done: set[str] = set()

    def visit(name: str, chain: tuple[str, ...]) -> None:
        name = name.replace("-", "_")
        if name in done:
            return
        if name in chain:
            raise VMUnavailable(f"module dependency cycle: {' -> '.join(chain + (name,))}")
        if name not in index:
            raise VMUnavailable(
                f"kernel module {name} is not in {modules_root} (is it built in? then drop it from GUEST_MODULES)"
            )
        data = _read_module(index[name])
        for dep in _modinfo_depends(data):
            visit(dep, chain + (name,))
        done.add(name)
        order.append((name, data))

    for name in wanted:
        visit(name, ())
    return order


def _load_cached(d: str) -> Kernel | None:
    try:
        with open(os.path.join(d, ".complete")) as f:
            if f.read().strip() != CACHE_FORMAT:
                return None
        with open(os.path.join(d, "modules.order")) as f:
            modules = [os.path.join(d, "modules", n) for n in f.read().split()]
    except OSError:
        return None
    image = next(
        (p for p in (os.path.join(d, "vmlinux"), os.path.join(d, "vmlinuz")) if os.path.isfile(p)), None
    )
    if image is None or not all(os.path.isfile(m) for m in modules):
        return None
    return Kernel(os.path.basename(d), image, modules)


def ensure_kernel() -> Kernel:
    """The guest kernel from the cache, or downloaded (``apt-get download``), unpacked and cached first.

    Any complete cached kernel is used as is (no apt, no network); set ``PYCONTAIN_VM_KERNEL_PACKAGE`` to
    pick another package, or remove the cache directory to refetch.
    """
    root = cache_dir()
    forced = os.environ.get("PYCONTAIN_VM_KERNEL_PACKAGE")
    if not forced and os.path.isdir(root):
        for d in sorted(glob.glob(os.path.join(root, "linux-image-*")), reverse=True):
            k = _load_cached(d)
            if k:
                return k
    try:
        os.makedirs(root, exist_ok=True)
    except OSError as e:
        raise VMUnavailable(f"cannot create the VM cache {root} ({e.strerror})") from None
    with open(os.path.join(root, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent first runs download once
        package = kernel_package()
        target = os.path.join(root, package)
        k = _load_cached(target)
        if k:
            return k
        work = tempfile.mkdtemp(prefix=".fetch-", dir=root)
        try:
            return _fetch_kernel(package, target, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)


def _fetch_kernel(package: str, target: str, work: str) -> Kernel:
    os.chmod(work, 0o755)  # apt's _apt user may then download straight into it
    p = subprocess.run(
        ["apt-get", "download", "-q", package],
        cwd=work,
        capture_output=True,
        text=True,
        env=_apt_env(),
        timeout=900,
    )
    debs = glob.glob(os.path.join(work, "*.deb"))
    if p.returncode != 0 or not debs:
        last = [ln for ln in (p.stderr or p.stdout).splitlines() if ln.startswith("E:")][-1:] or ["no .deb"]
        raise VMUnavailable(f"apt-get download {package} failed ({last[0]})")
    tree = os.path.join(work, "x")
    p = subprocess.run(["dpkg-deb", "-x", debs[0], tree], capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise VMUnavailable(f"dpkg-deb -x {os.path.basename(debs[0])} failed ({p.stderr.strip()})")
    images = glob.glob(os.path.join(tree, "boot", "vmlinuz-*"))
    mod_roots = glob.glob(os.path.join(tree, "lib", "modules", "*")) or glob.glob(
        os.path.join(tree, "usr", "lib", "modules", "*")
    )
    if not images or not mod_roots:
        raise VMUnavailable(
            f"{package} holds no boot/vmlinuz-* or lib/modules/* (not a kernel image package?)"
        )
    staging = os.path.join(work, "out")
    os.makedirs(os.path.join(staging, "modules"))
    with open(images[0], "rb") as f:
        bz = f.read()
    elf = extract_vmlinux(bz)
    with open(os.path.join(staging, "vmlinux" if elf else "vmlinuz"), "wb") as f:
        f.write(elf or bz)
    names = []
    for i, (name, data) in enumerate(module_closure(mod_roots[0])):
        fname = f"{i:02d}-{name}.ko"
        with open(os.path.join(staging, "modules", fname), "wb") as f:
            f.write(data)
        names.append(fname)
    with open(os.path.join(staging, "modules.order"), "w") as f:
        f.write("\n".join(names) + "\n")
    with open(os.path.join(staging, "release"), "w") as f:
        f.write(os.path.basename(mod_roots[0]) + "\n")
    with open(os.path.join(staging, ".complete"), "w") as f:
        f.write(CACHE_FORMAT + "\n")
    if os.path.isdir(target):
        shutil.rmtree(target)
    os.rename(staging, target)
    k = _load_cached(target)
    assert k is not None
    return k


# -- the initramfs ------------------------------------------------------------------------------
class Cpio:
    """A newc ("070701") cpio archive, built in memory: the format the kernel unpacks as initramfs."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.ino = 1
        self.dirs: set[str] = set()

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        name_b = name.encode() + b"\0"
        fields = (self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name_b), 0)
        self.ino += 1
        header = b"070701" + b"".join(b"%08X" % v for v in fields)
        self.parts += [header, name_b, b"\0" * (-(110 + len(name_b)) % 4), data, b"\0" * (-len(data) % 4)]

    def dir(self, path: str, mode: int = 0o755) -> None:
        path = path.strip("/")
        if not path or path in self.dirs:
            return
        self.dir(os.path.dirname(path))
        self.dirs.add(path)
        self._entry(path, 0o040000 | mode)

    def file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        path = path.strip("/")
        self.dir(os.path.dirname(path))
        self._entry(path, 0o100000 | mode, data)

    def symlink(self, path: str, target: str) -> None:
        path = path.strip("/")
        self.dir(os.path.dirname(path))
        self._entry(path, 0o120777, target.encode())

    def chardev(self, path: str, major: int, minor: int, mode: int = 0o600) -> None:
        path = path.strip("/")
        self.dir(os.path.dirname(path))
        self._entry(path, 0o020000 | mode, rdev=(major, minor))

    def bytes(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return b"".join(self.parts)


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


# -- the appliance's /init ----------------------------------------------------------------------
APPLIANCE_INIT = r"""#!/.vm/busybox sh
# /init of a pycontain VM appliance: load the modules, mount the disk, run the appliance in a chroot of it.
B=/.vm/busybox
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
off() { $B sync; $B poweroff -f; $B reboot -f; while :; do $B sleep 1; done; }
fail() { echo "PYCONTAIN-VM-ERROR $*"; echo "PYCONTAIN-VM-RESULT rc=125"; off; }
$B mount -t proc proc /proc || fail "mount proc"
$B mount -t sysfs sysfs /sys || fail "mount sysfs"
$B mount -t devtmpfs devtmpfs /dev || fail "mount devtmpfs"
for m in /.vm/modules/*.ko; do $B insmod "$m" || fail "insmod $m"; done
for word in $($B cat /proc/cmdline); do
    case "$word" in
        pycontain.epoch=*) $B date -s "@${word#*=}" >/dev/null 2>&1 ;;
        pycontain.net=user) NET=user ;;
    esac
done
i=0
while [ ! -b /dev/vda ]; do  # virtio-blk probes asynchronously
    i=$((i+1)); [ $i -lt 500 ] || fail "no /dev/vda (is the disk attached?)"; $B usleep 10000
done
$B mkdir -p /newroot
$B mount -t ext4 /dev/vda /newroot || fail "mount /dev/vda"
for d in proc sys dev tmp run .pycontain-vm; do $B mkdir -p /newroot/$d; done
$B mount -t proc proc /newroot/proc
$B mount -t sysfs sysfs /newroot/sys
$B mount -t devtmpfs devtmpfs /newroot/dev
$B mkdir -p /newroot/dev/pts /newroot/dev/shm
$B mount -t devpts -o newinstance,ptmxmode=0666 devpts /newroot/dev/pts
$B mount -t tmpfs -o mode=1777 tmpfs /newroot/dev/shm
$B mount -t tmpfs -o mode=755 tmpfs /newroot/run
$B cp $B /newroot/.pycontain-vm/busybox
$B cat /.vm/preamble.sh > /newroot/.pycontain-vm/run.sh
if [ -f /.vm/command.sh ]; then  # a command given for this boot (a second cpio appended to the initramfs)
    $B cat /.vm/command.sh >> /newroot/.pycontain-vm/run.sh
else
    $B cat /.vm/entry.sh >> /newroot/.pycontain-vm/run.sh
fi
$B hostname "$($B cat /.vm/hostname)"
$B ip link set lo up 2>/dev/null
if [ "$NET" = user ]; then  # QEMU's slirp network: fixed addresses, no DHCP round trip
    i=0
    while [ ! -e /sys/class/net/eth0 ]; do
        i=$((i+1)); [ $i -lt 500 ] || fail "no eth0 (is the network card attached?)"; $B usleep 10000
    done
    $B ip link set eth0 up && $B ip addr add 10.0.2.15/24 dev eth0 && $B ip route add default via 10.0.2.2 \
        || fail "configure eth0"
    [ -d /newroot/etc ] && echo "nameserver 10.0.2.3" > /newroot/etc/resolv.conf
fi
echo "PYCONTAIN-VM-READY"
$B chroot /newroot /.pycontain-vm/busybox sh /.pycontain-vm/run.sh
echo "PYCONTAIN-VM-RESULT rc=$?"
off
"""


def _preamble(config: dict) -> str:
    """The image's Env and WorkingDir as sh, run before the entrypoint or a given command."""
    lines = ["export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root"]
    for item in config.get("Env") or []:
        key, sep, value = str(item).partition("=")
        if sep and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            lines.append(f"export {key}={shlex.quote(value)}")
    workdir = config.get("WorkingDir") or "/"
    lines.append(f"cd {shlex.quote(workdir)} 2>/dev/null || cd /")
    return "\n".join(lines) + "\n"


def _entry(config: dict) -> str:
    argv = [str(a) for a in (config.get("Entrypoint") or []) + (config.get("Cmd") or [])] or ["/bin/sh"]
    return "exec " + " ".join(shlex.quote(a) for a in argv) + "\n"


def _tree_bytes(root: str) -> tuple[int, int]:
    """(bytes, inodes) under ``root``, without following symlinks."""
    total = count = 0
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            count += 1
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(dirpath, name))
                total += st.st_blocks * 512
    return total, count


@contextlib.contextmanager
def _flattened(layers: list[str]):
    """One directory with the image's layers merged (a read-only overlay mount for several layers)."""
    if len(layers) == 1:
        yield layers[0]
        return
    from pycontain import libc

    with tempfile.TemporaryDirectory(prefix="pycontain-vm-flat-") as mnt:
        lower = ":".join(reversed(layers))  # overlayfs lists the top layer first
        libc.mount("overlay", mnt, "overlay", libc.MS_RDONLY, f"lowerdir={lower}")
        try:
            yield mnt
        finally:
            libc.umount2(mnt, libc.MNT_DETACH)


@dataclass
class Appliance:
    """A VM export on disk (``export_vm`` writes one, ``load_appliance`` reads one)."""

    dir: str
    image: str
    image_id: str
    kernel_package: str
    disk_bytes: int

    @property
    def disk(self) -> str:
        return os.path.join(self.dir, "disk.img")

    @property
    def kernel(self) -> str:
        return os.path.join(self.dir, "vmlinux")

    @property
    def initrd(self) -> str:
        return os.path.join(self.dir, "initramfs.cpio")

    def argv(
        self,
        initrd: str | None = None,
        *,
        accel: str = "tcg",
        memory_mb: int = 256,
        cpus: int = 1,
        ports: list[tuple[int, int]] | tuple[()] = (),
    ) -> list[str]:
        """QEMU's command line; ``ports``: (host, guest) TCP ports forwarded from 127.0.0.1."""
        netdev = "user,id=net0" + "".join(f",hostfwd=tcp:127.0.0.1:{h}-:{g}" for h, g in ports)
        return qemu_argv(
            self.kernel,
            initrd or self.initrd,
            ["pycontain.net=user"],
            accel=accel,
            memory_mb=memory_mb,
            cpus=cpus,
        ) + [
            "-drive",
            f"file={self.disk},format=raw,if=none,id=disk0,snapshot=on",
            "-device",
            "virtio-blk-device,drive=disk0",
            "-netdev",
            netdev,
            "-device",
            "virtio-net-device,netdev=net0",
        ]

    def start(
        self,
        command: str | None = None,
        *,
        accel: str = "tcg",
        memory_mb: int = 256,
        cpus: int = 1,
        echo: bool = False,
        ports: list[tuple[int, int]] | tuple[()] = (),
    ) -> Guest:
        """Boot the appliance; ``command`` (sh, run in it instead of its entrypoint) travels as a second cpio
        archive appended to the initramfs (the kernel unpacks every archive it finds there); ``ports``:
        (host, guest) TCP ports forwarded from 127.0.0.1."""
        initrd = None
        if command is not None:
            c = Cpio()
            c.file(".vm/command.sh", command.encode(), 0o644)
            fd, initrd = tempfile.mkstemp(prefix="pycontain-vm-initrd-", suffix=".cpio")
            with os.fdopen(fd, "wb") as out, open(self.initrd, "rb") as base:
                shutil.copyfileobj(base, out)
                out.write(c.bytes())
        try:
            guest = Guest(
                self.argv(initrd, accel=accel, memory_mb=memory_mb, cpus=cpus, ports=ports),
                accel=accel,
                echo=echo,
            )
        except BaseException:
            if initrd:
                os.unlink(initrd)
            raise
        if initrd:
            guest.remove_after.append(initrd)
        return guest

    def run(
        self,
        command: str | None = None,
        *,
        accel: str = "tcg",
        timeout: float = 300,
        memory_mb: int = 256,
        cpus: int = 1,
        echo: bool = False,
    ) -> GuestResult:
        """Boot, run the entrypoint (or ``command``), power off: the result with the whole console."""
        return self.start(command, accel=accel, memory_mb=memory_mb, cpus=cpus, echo=echo).wait(
            timeout, boot_timeout=120
        )


def exposed_tcp_ports(config: dict) -> list[int]:
    """The image's ExposedPorts that are TCP ("8080/tcp", "8080"), sorted."""
    ports = set()
    for key in config.get("ExposedPorts") or {}:
        number, _, proto = str(key).partition("/")
        if proto in ("", "tcp") and number.isdigit() and 0 < int(number) < 65536:
            ports.add(int(number))
    return sorted(ports)


def load_appliance(directory: str) -> Appliance:
    path = os.path.join(directory, "appliance.json")
    try:
        with open(path) as f:
            meta = json.load(f)
        return Appliance(
            dir=os.path.abspath(directory),
            image=meta["image"],
            image_id=meta["image_id"],
            kernel_package=meta["kernel_package"],
            disk_bytes=int(meta["disk_bytes"]),
        )
    except FileNotFoundError:
        raise VMUnavailable(
            f"{directory} is not a VM export (no appliance.json): make one with "
            "'pycontain vm export IMAGE DIR'"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise VMUnavailable(f"{path} is damaged ({e}): export the image again") from None


def export_vm(
    ref: str, dest: str, data_root: str | None = None, *, hostname: str | None = None, extra_mb: int = 64
) -> Appliance:
    """Write the VM appliance of image ``ref`` to directory ``dest`` (created; must be empty or absent)."""
    import rootfs_builder

    image = rootfs_builder.resolve_image(ref, data_root)
    if os.path.exists(dest) and os.listdir(dest):
        raise PycontainError(f"{dest} exists and is not empty: give a new directory for the VM export")
    mke2fs = shutil.which("mke2fs") or shutil.which("mkfs.ext4")
    if not mke2fs:
        raise VMUnavailable("mke2fs is not installed (apt-get install e2fsprogs)")
    kernel = ensure_kernel()
    os.makedirs(dest, exist_ok=True)
    try:
        with _flattened(image.layers) as tree:
            used, inodes = _tree_bytes(tree)
            size_mb = int(used * 1.25 / (1 << 20)) + extra_mb
            disk = os.path.join(dest, "disk.img")
            p = subprocess.run(
                [
                    mke2fs,
                    "-q",
                    "-F",
                    "-t",
                    "ext4",
                    "-L",
                    "pycontain",
                    "-N",
                    str(inodes + 4096),
                    "-E",
                    "root_owner=0:0",
                    "-d",
                    tree,
                    disk,
                    f"{size_mb}M",
                ],
                capture_output=True,
                text=True,
                timeout=900,
            )
            if p.returncode != 0:
                raise PycontainError(
                    f"mke2fs failed for the VM disk of {ref!r}: {p.stderr.strip().splitlines()[-1:]}"
                )
        shutil.copyfile(kernel.image, os.path.join(dest, "vmlinux"))
        c = Cpio()
        for d, mode in (("proc", 0o555), ("sys", 0o555), ("dev", 0o755), ("tmp", 0o1777)):
            c.dir(d, mode)
        c.chardev("dev/console", 5, 1)
        c.file("init", APPLIANCE_INIT.encode(), 0o755)
        with open(busybox(), "rb") as f:
            c.file(".vm/busybox", f.read(), 0o755)
        for m in kernel.modules:
            with open(m, "rb") as f:
                c.file(".vm/modules/" + os.path.basename(m), f.read())
        c.file(".vm/preamble.sh", _preamble(image.config).encode())
        c.file(".vm/entry.sh", _entry(image.config).encode())
        short = image.name.rsplit("/", 1)[-1].split(":", 1)[0]  # "registry/app:1.0" -> "app"
        name = hostname or re.sub(r"[^a-z0-9-]+", "-", short.lower()).strip("-")[:63] or "appliance"
        c.file(".vm/hostname", name.encode())
        with open(os.path.join(dest, "initramfs.cpio"), "wb") as f:
            f.write(c.bytes())
        appliance = Appliance(
            dir=os.path.abspath(dest),
            image=image.name,
            image_id=image.id,
            kernel_package=kernel.package,
            disk_bytes=os.path.getsize(disk),
        )
        boot = appliance.argv(ports=[(p, p) for p in exposed_tcp_ports(image.config)])
        boot[0] = QEMU
        for flag, value in (("-kernel", "vmlinux"), ("-initrd", "initramfs.cpio")):
            boot[boot.index(flag) + 1] = value
        boot[boot.index("-drive") + 1] = "file=disk.img,format=raw,if=none,id=disk0,snapshot=on"
        boot[boot.index("-append") + 1] = " ".join(
            w
            for w in boot[boot.index("-append") + 1].split()
            if not w.startswith(("pycontain.epoch=", "tsc_early_khz="))
        )
        with open(os.path.join(dest, "boot.sh"), "w") as f:
            f.write(
                "#!/bin/sh\n# Boot this appliance (software emulation; add '-accel kvm -cpu host' where KVM works).\n"
                "# Its exposed TCP ports are forwarded from the same ports on 127.0.0.1.\n"
                'cd "$(dirname "$0")" && exec ' + " ".join(shlex.quote(a) for a in boot) + "\n"
            )
        os.chmod(os.path.join(dest, "boot.sh"), 0o755)
        with open(os.path.join(dest, "appliance.json"), "w") as f:
            json.dump(
                {
                    "image": image.name,
                    "image_id": image.id,
                    "kernel_package": kernel.package,
                    "disk_bytes": appliance.disk_bytes,
                    "config": image.config,
                },
                f,
                indent=2,
            )
        return appliance
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise


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
