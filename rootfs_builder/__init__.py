"""Root filesystems for ``pycontain run``: the built-in busybox one (``default``) or a directory.

``resolve(ref)`` sits on every ``pycontain run``'s start path, so the already-built case costs a few
``os.stat`` calls and a small file read: nothing here imports hashlib, json, subprocess or typing at
module import time. Building (``rootfs_builder.busybox``) is imported only when a build is needed.

Layout under the data root (``$PYCONTAIN_DATA``, default ``/var/lib/pycontain``)::

    <data>/cache/debs/busybox-static_*.deb   the downloaded package (reused)
    <data>/rootfs/.lock                      flock held while building
    <data>/rootfs/default/                   the built root filesystem
    <data>/rootfs/default/.pycontain-rootfs.json   its manifest
"""

import os

__all__ = ["DEFAULT_NAME", "MANIFEST", "build_default", "data_root", "default_path", "resolve", "verify"]

DEFAULT_NAME = "default"
MANIFEST = ".pycontain-rootfs.json"
DEFAULT_DATA_ROOT = "/var/lib/pycontain"
_SIZE_KEY = b'"busybox_size": '


def data_root(data_root: str | None = None) -> str:
    """The data root: the parameter, else ``$PYCONTAIN_DATA``, else ``/var/lib/pycontain``."""
    return os.path.abspath(data_root or os.environ.get("PYCONTAIN_DATA") or DEFAULT_DATA_ROOT)


def default_path(data_root_: str | None = None) -> str:
    """Where the ``default`` root filesystem lives (built or not)."""
    return os.path.join(data_root(data_root_), "rootfs", DEFAULT_NAME)


def is_intact(path: str) -> bool:
    """The cheap check run on every use: manifest present, bin/busybox of the recorded size, bin/sh."""
    try:
        with open(os.path.join(path, MANIFEST), "rb") as f:
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


def resolve(ref: str, data_root: str | None = None) -> str:
    """Map a ``--rootfs``/image argument to an absolute directory.

    ``"default"`` builds the busybox root filesystem on first use (or when damaged) and returns its path;
    an existing directory returns its realpath; anything else raises ``NotFound``.
    """
    if ref == DEFAULT_NAME:
        path = default_path(data_root)
        if is_intact(path):
            return path
        from rootfs_builder.busybox import ensure_default

        return ensure_default(data_root, force=False, progress=True)[0]
    if ref and os.path.isdir(ref):
        return os.path.realpath(ref)
    from pycontain.errors import NotFound

    if ref and os.path.exists(ref):
        raise NotFound(f"root filesystem is not a directory: {ref!r} (give a directory, or 'default' "
                       "for the built-in busybox one)")
    raise NotFound(f"no such root filesystem: {ref!r} (give a directory, or 'default' for the built-in "
                   "busybox one)")


def build_default(data_root: str | None = None, force: bool = False, progress: bool = True) -> str:
    """Build the ``default`` busybox root filesystem unless it is already intact (or ``force``)."""
    from rootfs_builder.busybox import ensure_default

    return ensure_default(data_root, force=force, progress=progress)[0]


def verify(path: str) -> list[str]:
    """Full check of a built root filesystem (``"default"`` or a path): sha256, every applet link, the
    tree. Returns the problems found, one line each; an empty list means it is intact."""
    from rootfs_builder.busybox import verify as _verify

    return _verify(default_path() if path == DEFAULT_NAME else path)
