"""Where the store keeps the default root filesystem and a root filesystem's manifest, and the cheap check
that one is intact: what ``rootfs_builder`` (on every ``pycontain run``'s path) and the busybox builder share.
"""

import io  # loaded by the interpreter at start-up: free
import os

DEFAULT_NAME = "default"
# Where stores built before 2026-12 kept the manifest: at the tree's top, so inside every container.
OLD_MANIFEST = ".pycontain-rootfs.json"
DEFAULT_DATA_ROOT = "/var/lib/pycontain"
_SIZE_KEY = b'"busybox_size": '


def data_root(data_root: str | None = None) -> str:
    """The data root: the parameter, else ``$PYCONTAIN_DATA``, else ``/var/lib/pycontain``."""
    return os.path.abspath(data_root or os.environ.get("PYCONTAIN_DATA") or DEFAULT_DATA_ROOT)


def default_path(data_root_: str | None = None) -> str:
    """Where the ``default`` root filesystem lives (built or not)."""
    return os.path.join(data_root(data_root_), "rootfs", DEFAULT_NAME)


def manifest_path(path: str) -> str:
    """The manifest of the root filesystem at ``path``: ``<path>.json``, beside the tree."""
    return os.path.normpath(path) + ".json"


def open_manifest(path: str) -> io.BufferedReader:
    """The manifest of the root filesystem at ``path``, opened for reading (binary).

    A manifest an older pycontain left inside the tree is moved beside it first (once: the lstat that finds
    none is the whole cost afterwards); it wins over one already beside, having been written with the tree
    now in place. A store that cannot be written is read where it is. Raises ``FileNotFoundError``.
    """
    old = os.path.join(path, OLD_MANIFEST)
    if os.path.lexists(old):
        try:
            os.replace(old, manifest_path(path))
        except FileNotFoundError:
            pass  # another process moved it just now
        except OSError:
            return open(old, "rb")  # a read-only store
    return open(manifest_path(path), "rb")


def is_intact(path: str) -> bool:
    """The cheap check run on every use: manifest present, bin/busybox of the recorded size, bin/sh."""
    try:
        with open_manifest(path) as f:
            head = f.read(4096)
        i = head.find(_SIZE_KEY)
        if i < 0:
            return False
        j = k = i + len(_SIZE_KEY)
        while k < len(head) and 48 <= head[k] <= 57:
            k += 1
        if k == j:
            return False
        st = os.stat(os.path.join(path, "bin", "busybox"))
        if (st.st_mode & 0o170000) != 0o100000 or st.st_size != int(head[j:k]) or not st.st_mode & 0o111:
            return False
        os.stat(os.path.join(path, "bin", "sh"))  # present and resolving (to busybox)
    except (OSError, ValueError):
        return False
    return True
