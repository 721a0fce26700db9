"""A throwaway Linux guest with a pure cgroup v2 hierarchy, for testing pycontain's v2 driver on this host.

The host is hybrid (v1 controllers, a controller-less cgroup2), so the v2 limits can only be exercised in a
kernel of our own: Debian's ``linux-image-amd64`` booted under ``qemu-system-x86_64 -M microvm`` with software
emulation (TCG; this host's /dev/kvm is kvm_pvm, which QEMU cannot use), ``cgroup_no_v1=all`` and cgroup2 at
/sys/fs/cgroup with every controller enabled at the root.

- The kernel package is fetched with ``apt-get download`` (never installed on the host) and reduced to what a
  boot needs: the uncompressed ELF ``vmlinux`` (the bzImage's xz payload, which boots ~3 s faster under
  emulation than the bzImage) and the virtio-mmio / 9p modules with their dependencies. That is cached in
  ``<data root>/cache/vm/<package>/`` (``$PYCONTAIN_VM_CACHE`` overrides), so later runs need no network.
- The initramfs is built in memory for every boot (newc cpio): ``guest_init.sh`` as /init, the static busybox
  of pycontain's default root filesystem, the modules, and the command to run. Its root stays the guest's
  root: writable (RAM) for /tmp, /run, /root, /var; the host directories in ``shares`` (default: /usr, /etc,
  the repository, the venv) are mounted over 9p **read-only** at the same paths, so the project's venv
  python runs unchanged. There is no network device and no disk: the guest cannot write to the host.
- The result comes back on the serial console: ``PYCONTAIN-VM-READY`` once the cgroups are set up and
  ``PYCONTAIN-VM-RESULT rc=N`` when the command ends; then the guest powers off. A guest that does not end
  within ``timeout`` seconds is killed (only the QEMU process this module started).
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import lzma
import os
import platform
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
INIT_SCRIPT = os.path.join(HERE, "guest_init.sh")
QEMU = "qemu-system-x86_64"
QEMU_PACKAGE = "qemu-system-x86"
KERNEL_META_PACKAGE = "linux-image-amd64"
# What the guest needs from the kernel's modules (the rest of the closure comes from their "depends=").
GUEST_MODULES = ("virtio_mmio", "9pnet_virtio", "9p")
CACHE_FORMAT = "1"
READY = "PYCONTAIN-VM-READY"
RESULT = "PYCONTAIN-VM-RESULT"


class VMUnavailable(Exception):
    """QEMU or the kernel cannot be had on this host (the caller skips, saying why)."""


@dataclass
class Kernel:
    package: str
    image: str  # the ELF vmlinux (or, when it could not be extracted, the bzImage)
    modules: list[str]  # in load order


@dataclass
class GuestResult:
    rc: int | None  # the command's exit status (None: no result line, e.g. a hung or crashed guest)
    output: str  # the whole serial console, \r removed
    qemu_rc: int | None
    timed_out: bool
    boot_seconds: float | None  # QEMU start to the READY line (kernel, modules, 9p, cgroups)
    wall_seconds: float
    controllers: list[str] = field(default_factory=list)  # the guest's root cgroup.subtree_control

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.output.splitlines()[-lines:])


# -- host discovery -----------------------------------------------------------------------------
def cache_dir() -> str:
    explicit = os.environ.get("PYCONTAIN_VM_CACHE")
    if explicit:
        return os.path.abspath(explicit)
    data = os.path.abspath(os.environ.get("PYCONTAIN_DATA") or "/var/lib/pycontain")
    return os.path.join(data, "cache", "vm")


def _apt_env() -> dict[str, str]:
    return {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}


def find_qemu(install: bool = True) -> str:
    """The qemu-system-x86_64 binary; installs Debian's qemu-system-x86 (as root) when it is missing."""
    if platform.machine() not in ("x86_64", "AMD64"):
        raise VMUnavailable(f"the cgroup v2 guest needs an x86_64 host (this is {platform.machine()})")
    path = shutil.which(QEMU)
    if path:
        return path
    if not install or os.geteuid() != 0 or not shutil.which("apt-get"):
        raise VMUnavailable(f"{QEMU} is not installed (apt-get install --no-install-recommends {QEMU_PACKAGE})")
    p = subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", QEMU_PACKAGE],
                       capture_output=True, text=True, env=_apt_env(), timeout=600)
    path = shutil.which(QEMU)
    if not path:
        last = (p.stderr or p.stdout).strip().splitlines()[-1:] or ["no output"]
        raise VMUnavailable(f"{QEMU} is not installed and apt-get install {QEMU_PACKAGE} failed ({last[0]})")
    return path


def host_tsc_khz() -> int | None:
    """The host's CPU clock in kHz (/proc/cpuinfo "cpu MHz"), for the guest's ``tsc_early_khz=``."""
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"^cpu MHz\s*:\s*([0-9.]+)", f.read(), re.M)
    except OSError:
        return None
    return int(float(m.group(1)) * 1000) if m else None


def busybox() -> str:
    """The static busybox of pycontain's default root filesystem (built, from busybox-static, if needed)."""
    if REPO not in sys.path:
        sys.path.insert(0, REPO)
    try:
        import rootfs_builder

        path = os.path.join(rootfs_builder.resolve("default"), "bin", "busybox")
    except Exception as e:  # NotFound, Unsupported, no apt: the caller skips with the reason
        raise VMUnavailable(f"no static busybox for the guest's /init ({e})") from None
    if not os.path.isfile(path):
        raise VMUnavailable(f"no static busybox at {path}")
    return path


# -- the kernel ---------------------------------------------------------------------------------
def kernel_package() -> str:
    """The versioned image package ``linux-image-amd64`` depends on (e.g. linux-image-6.1.0-56-amd64)."""
    forced = os.environ.get("PYCONTAIN_VM_KERNEL_PACKAGE")
    if forced:
        return forced
    try:
        out = subprocess.run(["apt-cache", "depends", KERNEL_META_PACKAGE], capture_output=True, text=True,
                             env=_apt_env(), timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        raise VMUnavailable(f"apt-cache cannot resolve {KERNEL_META_PACKAGE} ({e})") from None
    m = re.search(r"Depends:\s*(linux-image-\S+)", out)
    if not m:
        raise VMUnavailable(f"apt knows no {KERNEL_META_PACKAGE} (run apt-get update, or set PYCONTAIN_VM_KERNEL_PACKAGE)")
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
            raise VMUnavailable(f"kernel module {name} is not in {modules_root} (is it built in? then drop it from GUEST_MODULES)")
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
    image = next((p for p in (os.path.join(d, "vmlinux"), os.path.join(d, "vmlinuz")) if os.path.isfile(p)), None)
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
    p = subprocess.run(["apt-get", "download", "-q", package], cwd=work, capture_output=True, text=True,
                       env=_apt_env(), timeout=900)
    debs = glob.glob(os.path.join(work, "*.deb"))
    if p.returncode != 0 or not debs:
        last = [ln for ln in (p.stderr or p.stdout).splitlines() if ln.startswith("E:")][-1:] or ["no .deb"]
        raise VMUnavailable(f"apt-get download {package} failed ({last[0]})")
    tree = os.path.join(work, "x")
    p = subprocess.run(["dpkg-deb", "-x", debs[0], tree], capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise VMUnavailable(f"dpkg-deb -x {os.path.basename(debs[0])} failed ({p.stderr.strip()})")
    images = glob.glob(os.path.join(tree, "boot", "vmlinuz-*"))
    mod_roots = glob.glob(os.path.join(tree, "lib", "modules", "*")) or glob.glob(os.path.join(tree, "usr", "lib", "modules", "*"))
    if not images or not mod_roots:
        raise VMUnavailable(f"{package} holds no boot/vmlinuz-* or lib/modules/* (not a kernel image package?)")
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


def default_shares() -> list[str]:
    """Host directories the guest needs, mounted read-only at the same paths: /usr, /etc, the repository,
    this Python's prefix (the venv, when it lives outside the repository) and any top-level /bin, /lib...
    that is a real directory rather than merged-usr's symlink."""
    shares = ["/usr", "/etc", REPO]
    for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        p = "/" + top
        if os.path.isdir(p) and not os.path.islink(p):
            shares.append(p)
    for p in (sys.prefix, os.path.dirname(os.path.realpath(sys.executable))):
        if not any(p == s or p.startswith(s.rstrip("/") + "/") for s in shares):
            shares.append(p)
    return shares


def build_initramfs(kernel: Kernel, command: str, shares: list[str], files: dict[str, str | bytes] | None = None) -> bytes:
    c = Cpio()
    for d, mode in (("proc", 0o555), ("sys", 0o555), ("dev", 0o755), ("tmp", 0o1777), ("run", 0o755),
                    ("root", 0o700), ("var", 0o755), ("var/tmp", 0o1777), ("var/lib", 0o755), ("mnt", 0o755)):
        c.dir(d, mode)
    c.chardev("dev/console", 5, 1)  # the kernel opens it for /init's stdin/stdout/stderr before devtmpfs
    for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        if os.path.islink("/" + top):  # merged /usr: /bin -> usr/bin and friends, as on the host
            c.symlink(top, os.readlink("/" + top))
    for path in shares:
        c.dir(path)
    with open(INIT_SCRIPT, "rb") as f:
        c.file("init", f.read(), 0o755)
    with open(busybox(), "rb") as f:
        c.file(".vm/busybox", f.read(), 0o755)
    for m in kernel.modules:
        with open(m, "rb") as f:
            c.file(".vm/modules/" + os.path.basename(m), f.read())
    c.file(".vm/shares", "".join(f"s{i} {p}\n" for i, p in enumerate(shares)).encode())
    c.file(".vm/run.sh", command.encode(), 0o755)
    for path, data in (files or {}).items():
        c.file(path, data.encode() if isinstance(data, str) else data, 0o755)
    return c.bytes()


# -- booting ------------------------------------------------------------------------------------
def boot(
    command: str,
    *,
    shares: list[str] | None = None,
    files: dict[str, str | bytes] | None = None,
    timeout: float = 300,
    boot_timeout: float = 120,
    memory_mb: int = 512,
    cpus: int = 2,
    echo: bool = False,
) -> GuestResult:
    """Boot the guest, run ``command`` (a busybox sh script) in it as root, and return what happened.

    ``command`` runs after the guest's cgroup2 is mounted at /sys/fs/cgroup with every controller in the
    root's subtree_control, in the root cgroup, with cwd = the repository. The guest is killed after
    ``timeout`` seconds, or ``boot_timeout`` seconds when its setup has not finished (a hung boot).
    ``echo`` copies the console to stderr as it arrives (for debugging).
    """
    qemu = find_qemu()
    kernel = ensure_kernel()
    shares = [os.path.abspath(s) for s in (shares if shares is not None else default_shares())]
    for s in shares:
        if not os.path.isdir(s):
            raise ValueError(f"share {s!r} is not a directory")
    with tempfile.TemporaryDirectory(prefix="pycontain-vm-") as tmp:
        initrd = os.path.join(tmp, "initramfs.cpio")
        with open(initrd, "wb") as f:
            f.write(build_initramfs(kernel, command, shares, files))
        cmdline = ["console=ttyS0", "panic=-1", "rdinit=/init", "cgroup_no_v1=all", "quiet", "mitigations=off",
                   f"pycontain.epoch={int(time.time())}", f"pycontain.cwd={REPO}"]
        khz = host_tsc_khz()
        if khz:
            cmdline.append(f"tsc_early_khz={khz}")
        argv = [qemu, "-M", "microvm", "-accel", "tcg", "-m", str(memory_mb), "-smp", str(cpus),
                "-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio", "-monitor", "none",
                "-no-reboot", "-kernel", kernel.image, "-initrd", initrd, "-append", " ".join(cmdline)]
        for i, path in enumerate(shares):
            argv += ["-fsdev", f"local,id=f{i},path={path},security_model=none,readonly=on,multidevs=remap",
                     "-device", f"virtio-9p-device,fsdev=f{i},mount_tag=s{i}"]
        return _run_qemu(argv, timeout, min(boot_timeout, timeout), echo)


def _run_qemu(argv: list[str], timeout: float, boot_timeout: float, echo: bool) -> GuestResult:
    chunks: list[bytes] = []
    ready_at: list[float] = []
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def pump() -> None:
        assert proc.stdout is not None
        seen = b""
        for chunk in iter(lambda: proc.stdout.read1(65536), b""):  # type: ignore[union-attr]
            chunks.append(chunk)
            if echo:
                sys.stderr.write(chunk.decode(errors="replace"))
                sys.stderr.flush()
            if not ready_at:
                seen = (seen + chunk)[-4096:]
                if READY.encode() in seen:
                    ready_at.append(time.monotonic())

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    timed_out = False
    try:
        while proc.poll() is None:
            now = time.monotonic() - start
            if now > timeout or (not ready_at and now > boot_timeout):
                timed_out = True
                chunks.append(f"\n[host: guest killed after {now:.0f}s: "
                              f"{'no ' + READY + ' line' if not ready_at else 'command did not finish'}]\n".encode())
                proc.kill()  # only the QEMU this call started
                break
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.2)
        proc.wait()
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
    reader.join(timeout=10)
    if proc.stdout:
        proc.stdout.close()
    wall = time.monotonic() - start
    output = b"".join(chunks).decode(errors="replace").replace("\r", "")
    rc = None
    m = re.findall(rf"^{RESULT} rc=(\d+)$", output, re.M)
    if m:
        rc = int(m[-1])
    controllers: list[str] = []
    m2 = re.search(rf"^{READY} controllers=(.*)$", output, re.M)
    if m2:
        controllers = m2.group(1).split()
    return GuestResult(rc=rc, output=output, qemu_rc=proc.returncode, timed_out=timed_out,
                       boot_seconds=(ready_at[0] - start) if ready_at else None, wall_seconds=wall,
                       controllers=controllers)


if __name__ == "__main__":  # python tests/vm/guest.py 'sh command'  -- boot once and show the console
    r = boot(" ".join(sys.argv[1:]) or "cat /sys/fs/cgroup/cgroup.subtree_control", echo=True)
    print(f"\nrc={r.rc} qemu_rc={r.qemu_rc} timed_out={r.timed_out} boot={r.boot_seconds} wall={r.wall_seconds:.1f}s",
          file=sys.stderr)
    sys.exit(0 if r.rc == 0 else 1)
