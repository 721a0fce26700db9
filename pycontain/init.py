"""``--init``: a minimal PID 1 that forwards signals to the command and reaps every zombie.

Without it the command itself is PID 1, which the kernel shields from signals it has no handler
for (so ``docker stop``-style SIGTERM is ignored) and which inherits every orphan to reap.

PID 1 is not pycontain's Python: every container's first process executes the small static program
``pycontain-init.c`` (see there; ``--finish``), which drops to the user, capabilities, no_new_privs and
seccomp filter of the container's command and executes it, or with ``--init`` executes itself again,
which forks the command. So PID 1 holds no more than the command, and its command line is its own short
one. The program is executed from a sealed memfd,
the way runc protects its own binary (CVE-2019-5736): ``/proc/1/exe`` is a private copy no one can
write, never a host file such as the Python interpreter, whose overwriting would run the container's
code as root at the next host command.

The program is compiled once with musl-gcc, or gcc (``make setup`` does it; otherwise the first use) into
``BUILD_DIR``, named by a checksum of its source (zlib's CRC-32: hashlib and subprocess would cost
~30 ms of imports on every exec; subprocess is imported only to build).
"""

from __future__ import annotations

import fcntl
import posix
import zlib

from . import fastos
from .errors import PycontainError

BUILD_DIR = "/var/lib/pycontain/helpers"
SOURCE = fastos.join(fastos.dirname(fastos.abspath(__file__)), "pycontain-init.c")
# The argv it is executed with: its name, then "--", then the command.
ARGV0 = "pycontain-init"
# The descriptor on which it finds pycontain's channel, unless told another (--fd=N).
CHANNEL_FD = 3
# musl's static programs are a tenth of glibc's (70 KB, not 700): every exec copies the program into its
# sealed memfd (~2 ms for glibc's here). gcc with glibc when musl-gcc is not installed.
COMPILERS = ("musl-gcc", "gcc")


def binary_path() -> str:
    """The compiled program, built now if this source has not been built yet."""
    with open(SOURCE, "rb") as f:
        source = f.read()
    path = fastos.join(BUILD_DIR, f"pycontain-init-{zlib.crc32(source):08x}-{len(source)}")
    if fastos.exists(path):
        return path
    import os
    import subprocess

    os.makedirs(BUILD_DIR, 0o755, exist_ok=True)
    tmp = f"{path}.{posix.getpid()}.tmp"
    for compiler in COMPILERS:
        try:
            r = subprocess.run(
                [compiler, "-static", "-Os", "-s", "-o", tmp, SOURCE],
                capture_output=True,
                text=True,
                check=False,
            )
            break
        except FileNotFoundError:
            continue
    else:
        raise PycontainError(
            "pycontain-init (which starts every container's command, and is --init's PID 1) must be built "
            "once, with gcc ('make setup' installs it)"
        ) from None
    if r.returncode != 0:
        raise PycontainError(
            f"cannot build pycontain-init from {SOURCE}: {(r.stderr.strip().splitlines() or ['gcc failed'])[-1]}"
        )
    posix.rename(tmp, path)  # atomic: a concurrent build finds a whole program or none
    return path


# This process's sealed copy (descriptor, device, inode), made at the first use: nothing can change a
# sealed memfd, so every container may execute the same one, and a process that starts many (a sandbox
# pool, an API user) copies the program once instead of at every exec.
_sealed: tuple[int, int, int] | None = None


def sealed_copy() -> int:
    """A new close-on-exec descriptor of a memfd holding the program, sealed against any change (executed
    with fexecve); the caller closes it."""
    global _sealed
    if _sealed is not None:
        fd, dev, ino = _sealed
        try:
            st = posix.fstat(fd)
            if (st.st_dev, st.st_ino) == (dev, ino):
                return posix.dup(fd)
        except OSError:
            pass
        # Its descriptor was closed behind our back (a daemon closing all of them): a new copy.
    fd = _new_sealed_copy()
    st = posix.fstat(fd)
    _sealed = (fd, st.st_dev, st.st_ino)
    return posix.dup(fd)


def _new_sealed_copy() -> int:
    src = posix.open(binary_path(), posix.O_RDONLY | posix.O_CLOEXEC)
    fd = -1
    try:
        fd = posix.memfd_create(ARGV0, posix.MFD_CLOEXEC | posix.MFD_ALLOW_SEALING)
        size = posix.fstat(src).st_size
        copied = 0
        while copied < size:  # sendfile: copied by the kernel, never through our memory
            n = posix.sendfile(fd, src, copied, size - copied)
            if n == 0:
                raise PycontainError(f"pycontain-init: {binary_path()} changed while it was copied")
            copied += n
        fcntl.fcntl(
            fd,
            fcntl.F_ADD_SEALS,
            fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE,
        )
    except BaseException:
        if fd >= 0:
            posix.close(fd)
        raise
    finally:
        posix.close(src)
    return fd
