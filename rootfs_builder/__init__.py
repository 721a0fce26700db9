"""Root filesystems for ``pycontain run``: the built-in busybox one (``default``) or a directory.

``resolve(ref)`` sits on every ``pycontain run``'s start path, so the already-built case costs a few
``os.stat`` calls and a small file read: nothing here imports hashlib, json, subprocess or typing at
module import time. Building (``rootfs_builder.busybox``) is imported only when a build is needed.

Layout under the data root (``$PYCONTAIN_DATA``, default ``/var/lib/pycontain``)::

    <data>/cache/debs/busybox-static_*.deb   the downloaded package (reused)
    <data>/rootfs/.lock                      flock held while building
    <data>/rootfs/default/                   the built root filesystem
    <data>/rootfs/default.json               its manifest: beside the tree, never inside (it would show at
                                             ``/`` in every container, export and commit)
    <data>/layers/<sha256>/                  image layers, unpacked once, shared (see rootfs_builder.store)
    <data>/images/index.json                 the image store's index: names, ids, layers, configs

``resolve_image(ref)`` maps a ``pycontain run`` image argument to an ``ImageRef``: the layers to stack with
overlayfs (lowest first) and the image's config. It reads the index with the C JSON scanner only; importing,
tagging and removing images live in ``rootfs_builder.sources`` / ``rootfs_builder.store``.
"""

import os

# The store's layout, which the default image's builder (busybox) shares: a module below both.
from .layout import (
    DEFAULT_NAME,
    OLD_MANIFEST,
    data_root,
    default_path,
    is_intact,
    manifest_path,
    open_manifest,
)

__all__ = [
    "DEFAULT_NAME",
    "OLD_MANIFEST",
    "ImageRef",
    "build_default",
    "data_root",
    "default_path",
    "manifest_path",
    "open_manifest",
    "resolve",
    "resolve_image",
    "verify",
]


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
        raise NotFound(
            f"root filesystem is not a directory: {ref!r} (give a directory, or 'default' "
            "for the built-in busybox one)"
        )
    raise NotFound(
        f"no such root filesystem: {ref!r} (give a directory, or 'default' for the built-in busybox one)"
    )


class ImageRef:
    """What ``pycontain run`` needs of an image: its layers (absolute directories, lowest first), its config
    (Entrypoint, Cmd, Env, WorkingDir, User, ExposedPorts, Volumes; empty for plain directories), a name
    and an id (the sha256 of its config for stored images; ``"default"``, or the directory, otherwise)."""

    __slots__ = ("name", "id", "layers", "config")

    def __init__(self, name: str, id: str, layers: list, config: dict) -> None:
        self.name = name
        self.id = id
        self.layers = layers
        self.config = config

    def to_dict(self) -> dict:
        return {"name": self.name, "id": self.id, "layers": list(self.layers), "config": dict(self.config)}

    def __repr__(self) -> str:
        return f"ImageRef(name={self.name!r}, id={self.id[:12]!r}, layers={len(self.layers)})"


def _looks_like_path(ref: str) -> bool:
    return ref.startswith(("/", "./", "../", "~")) or ref in (".", "..")


def _from_store(ref: str, data_root_: str | None) -> ImageRef | None:
    index_path = os.path.join(data_root(data_root_), "images", "index.json")
    try:
        with open(index_path, "rb") as f:
            text = f.read().decode()
    except FileNotFoundError:
        return None
    from pycontain.fastjson import loads
    from rootfs_builder.store_lookup import find

    try:
        index = loads(text)
    except ValueError:
        from pycontain.errors import PycontainError

        raise PycontainError(
            f"the image index {index_path} is damaged (not JSON): move it away and re-import the images"
        ) from None
    image_id, found_as = find(index, ref)
    if image_id is None:
        return None
    rec = index["images"][image_id]
    layers_dir = os.path.join(data_root(data_root_), "layers")
    layers = [os.path.join(layers_dir, d) for d in rec["layers"]]
    for d in layers:
        if not os.path.isdir(d):
            from pycontain.errors import PycontainError

            raise PycontainError(
                f"image {ref!r} is damaged: its layer {os.path.basename(d)[:12]} is missing "
                f"(remove it with 'pycontain rmi {image_id[:12]}' and import it again)"
            )
    return ImageRef(found_as or image_id, image_id, layers, dict(rec.get("config") or {}))


def resolve_image(ref: str, data_root: str | None = None) -> ImageRef:
    """Map a ``pycontain run`` image argument to its layers and config.

    ``"default"`` is the built-in busybox root filesystem (built on first use); a path (starting with ``/``,
    ``./``, ``../`` or ``~``) is a root filesystem directory; anything else is an image of the store (name,
    name:tag or id prefix) and, failing that, a directory of that name. Raises ``NotFound`` otherwise.
    """
    if ref == DEFAULT_NAME:
        return ImageRef(DEFAULT_NAME, DEFAULT_NAME, [resolve(DEFAULT_NAME, data_root)], {})
    if ref and not _looks_like_path(ref):
        found = _from_store(ref, data_root)
        if found is not None:
            return found
    ref_path = os.path.expanduser(ref) if ref and _looks_like_path(ref) else ref
    if ref_path and os.path.isdir(ref_path):
        path = os.path.realpath(ref_path)
        return ImageRef(ref, path, [path], {})
    from pycontain.errors import NotFound

    if ref_path and os.path.exists(ref_path):
        raise NotFound(
            f"image {ref!r} is a file, not a root filesystem directory (import an archive first: "
            f"'pycontain import {ref} NAME')"
        )
    raise NotFound(
        f"no such image: {ref!r} (see 'pycontain images'; import one with 'pycontain import PATH "
        "NAME', or give a root filesystem directory, or 'default' for the built-in busybox one)"
    )


def build_default(data_root: str | None = None, force: bool = False, progress: bool = True) -> str:
    """Build the ``default`` busybox root filesystem unless it is already intact (or ``force``)."""
    from rootfs_builder.busybox import ensure_default

    return ensure_default(data_root, force=force, progress=progress)[0]


def verify(path: str) -> list[str]:
    """Full check of a built root filesystem (``"default"`` or a path): sha256, every applet link, the
    tree. Returns the problems found, one line each; an empty list means it is intact."""
    from rootfs_builder.busybox import verify as _verify

    return _verify(default_path() if path == DEFAULT_NAME else path)
