"""A directory in overlayfs form (a container's upper directory, a built tree) added to the store as a layer.

The directory is written as an OCI layer tar (``export.layer_tar``: 0/0 character devices become ``.wh.NAME``,
``trusted.overlay.opaque=y`` a ``.wh..wh..opq`` entry) and streamed through ``Store.add_layer``, so a
container's changes get the same checks, the same content address and the same on-disk form as any
imported layer.
"""

from __future__ import annotations

import os

from pycontain.errors import InvalidArgument
from rootfs_builder.onelayer import WriterPipe
from rootfs_builder.store import Store


def layer_from_dir(
    store: Store, path: str, what: str, *, skip: frozenset[str] = frozenset(), upper: bool = False
) -> tuple[str, int]:
    """Add the overlayfs-form tree ``path`` to the store as a layer; return (diff_id, size)."""
    from rootfs_builder.export import layer_tar

    if not os.path.isdir(path):
        raise InvalidArgument(f"{what}: {path} is not a directory")
    diff, size, _new = store.add_layer(
        lambda: WriterPipe(lambda out: layer_tar(path, out, skip, upper), "the layer"), what
    )
    return diff, size
