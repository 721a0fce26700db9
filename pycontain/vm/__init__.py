"""Virtual machines for pycontain's appliances: a Debian kernel, an initramfs, QEMU, and the VM export.

One job per module: ``kernel`` (QEMU and the guest kernel from the host), ``cpio`` (the initramfs
writer), ``guest`` (running QEMU, the KVM probe), ``appliance`` (the VM export and its boot).

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

from pycontain.vm.appliance import Appliance, export_vm, exposed_tcp_ports, load_appliance
from pycontain.vm.cpio import Cpio
from pycontain.vm.guest import Guest, GuestResult, choose_accel, probe_kvm, qemu_argv
from pycontain.vm.kernel import (
    GUEST_MODULES,
    READY,
    RESULT,
    Kernel,
    VMUnavailable,
    busybox,
    ensure_kernel,
)

__all__ = [
    "GUEST_MODULES",
    "READY",
    "RESULT",
    "Appliance",
    "Cpio",
    "Guest",
    "GuestResult",
    "Kernel",
    "VMUnavailable",
    "busybox",
    "choose_accel",
    "ensure_kernel",
    "export_vm",
    "exposed_tcp_ports",
    "load_appliance",
    "probe_kvm",
    "qemu_argv",
]
