"""The VM appliance: an image's layers on an ext4 disk, the kernel, an initramfs running its entrypoint."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

from pycontain.errors import PycontainError
from pycontain.vm.cpio import Cpio
from pycontain.vm.guest import Guest, GuestResult, qemu_argv
from pycontain.vm.kernel import QEMU, VMUnavailable, busybox, ensure_kernel

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
        argv: list[str] | None = None,
    ) -> Guest:
        """Boot the appliance; ``command`` (sh, run in it instead of its entrypoint) travels as a second cpio
        archive appended to the initramfs (the kernel unpacks every archive it finds there); ``argv``: that
        argv exactly instead (stdin empty, as for 'docker run' without -i); ``ports``: (host, guest) TCP
        ports forwarded from 127.0.0.1."""
        if argv:
            command = f"exec {shlex.join(argv)} </dev/null\n"
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
