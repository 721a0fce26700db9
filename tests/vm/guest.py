"""A throwaway Linux guest with a pure cgroup v2 hierarchy, for testing pycontain's v2 driver on this host.

The host is hybrid (v1 controllers, a controller-less cgroup2), so the v2 limits can only be exercised in a
kernel of our own: Debian's ``linux-image-amd64`` booted under ``qemu-system-x86_64 -M microvm`` with software
emulation (TCG; this host's /dev/kvm is kvm_pvm, which QEMU cannot use), ``cgroup_no_v1=all`` and cgroup2 at
/sys/fs/cgroup with every controller enabled at the root.

- The kernel, its modules, the cpio writer and the QEMU runner are ``pycontain.vm``'s (the same ones
  the VM appliance export and ``pycontain bench`` use): Debian's kernel package, fetched with ``apt-get
  download`` (never installed on the host) and cached under ``<data root>/cache/vm/``.
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

import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from pycontain.vm import (  # noqa: E402  (after the path set-up: tests/ may be run from anywhere)
    RESULT,
    Cpio,
    Guest,
    GuestResult,
    Kernel,
    VMUnavailable,
    busybox,
    ensure_kernel,
    qemu_argv,
)

INIT_SCRIPT = os.path.join(HERE, "guest_init.sh")
__all__ = ["RESULT", "GuestResult", "VMUnavailable", "boot", "build_initramfs", "default_shares"]


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


def build_initramfs(
    kernel: Kernel, command: str, shares: list[str], files: dict[str, str | bytes] | None = None
) -> bytes:
    c = Cpio()
    for d, mode in (
        ("proc", 0o555),
        ("sys", 0o555),
        ("dev", 0o755),
        ("tmp", 0o1777),
        ("run", 0o755),
        ("root", 0o700),
        ("var", 0o755),
        ("var/tmp", 0o1777),
        ("var/lib", 0o755),
        ("mnt", 0o755),
    ):
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
    kernel = ensure_kernel()
    shares = [os.path.abspath(s) for s in (shares if shares is not None else default_shares())]
    for s in shares:
        if not os.path.isdir(s):
            raise ValueError(f"share {s!r} is not a directory")
    with tempfile.TemporaryDirectory(prefix="pycontain-vm-") as tmp:
        initrd = os.path.join(tmp, "initramfs.cpio")
        with open(initrd, "wb") as f:
            f.write(build_initramfs(kernel, command, shares, files))
        argv = qemu_argv(
            kernel.image,
            initrd,
            ["cgroup_no_v1=all", f"pycontain.cwd={REPO}"],
            memory_mb=memory_mb,
            cpus=cpus,
        )
        for i, path in enumerate(shares):
            argv += [
                "-fsdev",
                f"local,id=f{i},path={path},security_model=none,readonly=on,multidevs=remap",
                "-device",
                f"virtio-9p-device,fsdev=f{i},mount_tag=s{i}",
            ]
        return Guest(argv, echo=echo).wait(timeout, boot_timeout)


if __name__ == "__main__":  # python tests/vm/guest.py 'sh command'  -- boot once and show the console
    r = boot(" ".join(sys.argv[1:]) or "cat /sys/fs/cgroup/cgroup.subtree_control", echo=True)
    print(
        f"\nrc={r.rc} qemu_rc={r.qemu_rc} timed_out={r.timed_out} boot={r.boot_seconds} wall={r.wall_seconds:.1f}s",
        file=sys.stderr,
    )
    sys.exit(0 if r.rc == 0 else 1)
