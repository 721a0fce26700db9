"""``pycontain vm export IMAGE DIR`` and ``pycontain vm boot DIR [-- CMD]``: an appliance as a virtual machine.

The export is ``pycontain.vm``'s: an ext4 disk made from the image's layers, Debian's kernel, and an
initramfs that mounts the disk and runs the image's Entrypoint/Cmd (Env and WorkingDir applied) in it.
``boot`` runs it under QEMU (KVM only where a probe boot works, software emulation otherwise), shows the
guest's console and exits with the appliance's exit status (125 when the guest failed to boot, 124 when it
timed out, 130/143 when Ctrl-C/SIGTERM stopped it). ``-- CMD ARGS...`` runs that argv, exactly, instead of
the entrypoint; ``-p HOSTPORT:GUESTPORT`` forwards 127.0.0.1's port to the guest's (QEMU's user-mode
network). Registered on the typer ``app`` when imported.
"""

from __future__ import annotations

import re
import sys
from typing import Annotated

import typer

from .app import app
from .base import command

vm_app = typer.Typer(
    help="Export images as bootable VM appliances and boot them under QEMU.", no_args_is_help=True
)
app.add_typer(vm_app, name="vm")


@command(vm_app, "export")
def export(
    image: Annotated[
        str, typer.Argument(help="The image (name, id, 'default' or a root filesystem directory).")
    ],
    dest: Annotated[
        str, typer.Argument(help="A new directory for disk.img, vmlinux, initramfs.cpio, boot.sh.")
    ],
    hostname: Annotated[
        str | None, typer.Option("--hostname", help="The guest's hostname (default: the image's name).")
    ] = None,
) -> None:
    """Export IMAGE as a VM appliance in DEST (boot it with 'pycontain vm boot DEST' or DEST/boot.sh)."""
    from ..interrupts import unwinding
    from ..vm import export_vm

    with unwinding():
        a = export_vm(image, dest, hostname=hostname)
    print(
        f"{a.dir}: disk.img ({a.disk_bytes >> 20} MiB ext4), vmlinux ({a.kernel_package}), initramfs.cpio, boot.sh"
    )


@command(vm_app, "boot", context_settings={"allow_interspersed_args": False})
def boot(
    directory: Annotated[str, typer.Argument(help="A VM export (made by 'pycontain vm export').")],
    command: Annotated[
        list[str] | None,
        typer.Argument(help="The command and its arguments, instead of the entrypoint (after --)."),
    ] = None,
    publish: Annotated[
        list[str] | None,
        typer.Option(
            "-p",
            "--publish",
            metavar="[127.0.0.1:]HOSTPORT:GUESTPORT",
            help="Forward a TCP port of 127.0.0.1 to the guest's (repeatable).",
        ),
    ] = None,
    accel: Annotated[
        str, typer.Option("--accel", help="auto (KVM if it really works, else TCG), kvm or tcg.")
    ] = "auto",
    memory: Annotated[int, typer.Option("-m", "--memory", help="Guest memory in MiB.")] = 256,
    cpus: Annotated[int, typer.Option("--cpus", help="Guest CPUs.")] = 1,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds before the guest is killed (exit 124).")
    ] = 600,
) -> int:
    """Boot a VM appliance, show its console, exit with its exit status."""
    from ..interrupts import unwinding
    from ..vm import choose_accel, load_appliance

    ports = [_port_pair(p) for p in publish or []]
    appliance = load_appliance(directory)
    chosen, why = choose_accel(accel)
    print(f"pycontain: booting {appliance.image} with {why}", file=sys.stderr)
    words = command[1:] if command and command[0] == "--" else (command or [])
    with unwinding():
        guest = appliance.start(argv=words, accel=chosen, memory_mb=memory, cpus=cpus, echo=True, ports=ports)
        result = guest.wait(timeout, boot_timeout=180)
    if result.timed_out:
        return 124
    return 125 if result.rc is None else result.rc


def _port_pair(spec: str) -> tuple[int, int]:
    from ..errors import InvalidArgument

    m = re.fullmatch(r"(?:127\.0\.0\.1:)?(\d{1,5}):(\d{1,5})(?:/tcp)?", spec)
    if not m or not all(0 < int(n) < 65536 for n in m.groups()):
        raise InvalidArgument(
            f"invalid -p {spec!r}: use HOSTPORT:GUESTPORT (TCP, forwarded from 127.0.0.1), e.g. 8080:8080"
        )
    return int(m.group(1)), int(m.group(2))
