"""The guest's parts from the host: QEMU, Debian's kernel and modules (fetched once, cached), busybox."""

from __future__ import annotations

import fcntl
import glob
import lzma
import os
import platform
import re
import shutil
import struct
import subprocess
import tempfile
import zlib
from dataclasses import dataclass

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
