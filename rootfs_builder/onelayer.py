"""Layers written as tar streams, and images of one such layer (a tarball, a directory, a Debian bootstrap,
a closure of host binaries, a build step's files).

Below ``sources`` (which detects what a source is) and beside ``debian`` and ``closure`` (which make the
trees): each of them imports this module, and it imports none of them.
"""

from __future__ import annotations

import json
import os
import tarfile
import threading
from collections.abc import Callable
from typing import BinaryIO

from pycontain import DEFAULT_PATH
from pycontain.errors import InvalidArgument
from rootfs_builder.layer import Reader, write_then_close
from rootfs_builder.progress import Reporter
from rootfs_builder.store import Store, arch, normalize_config


class WriterPipe:
    """What ``write(stream)`` writes (in a thread), read like a file: a layer streamed into the store without
    a temporary file. ``close()`` raises what the writer raised, so a layer cut short is never kept."""

    def __init__(self, write: Callable[[BinaryIO], None], what: str = "the source") -> None:
        r, w = os.pipe()
        self.r = os.fdopen(r, "rb", buffering=1 << 16)
        self.w = os.fdopen(w, "wb", buffering=1 << 16)
        self.what = what
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(write,), daemon=True)
        self.thread.start()

    def _run(self, write: Callable[[BinaryIO], None]) -> None:
        self.error = write_then_close(write, self.w)

    def read(self, n: int = -1) -> bytes:
        return self.r.read(n)

    def close(self) -> None:
        self.r.close()
        self.thread.join()
        if self.error is not None:
            if isinstance(self.error, OSError):
                raise InvalidArgument(
                    f"cannot read {self.error.filename or self.what}: {self.error.strerror or self.error}"
                ) from None
            raise self.error


def tar_pipe(fill: Callable[[tarfile.TarFile], None]) -> WriterPipe:
    """A tar stream written by ``fill(tarfile)`` (for directories, closures, built files)."""

    def write(out: BinaryIO) -> None:
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
            fill(tf)

    return WriterPipe(write)


def add_tree(tf: tarfile.TarFile, root: str) -> None:
    """A directory's tree into ``tf`` (sorted, symlinks not followed, hard links kept, file capabilities)."""

    def keep_caps(ti: tarfile.TarInfo) -> tarfile.TarInfo:
        path = os.path.join(root, ti.name) if ti.name != "." else root
        if ti.isreg():
            try:
                cap = os.getxattr(path, "security.capability", follow_symlinks=False)
                ti.pax_headers["SCHILY.xattr.security.capability"] = cap.decode("utf-8", "surrogateescape")  # type: ignore[index]  # a dict (typeshed: Mapping)
            except OSError:
                pass
        return ti

    tf.add(root, arcname=".", recursive=True, filter=keep_caps)


def tree_pipe(root: str) -> WriterPipe:
    """A directory's tree (``add_tree``) as a tar stream."""
    return tar_pipe(lambda tf: add_tree(tf, root))


def synth_config(diff_ids: list[str], config: dict | None, comment: str) -> bytes:
    inner = {k: v for k, v in normalize_config(config or {"Env": [f"PATH={DEFAULT_PATH}"]}).items() if v}
    doc = {
        "architecture": arch(),
        "os": "linux",
        "config": inner,
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{d}" for d in diff_ids]},
        "history": [{"created_by": comment}],
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def import_single_layer(
    store: Store,
    opener: Callable[[], Reader],
    what: str,
    name: str | None,
    source: str,
    config: dict | None,
    progress: Reporter,
    size: int | None,
    comment: str,
) -> dict:
    advance = progress.task(f"unpacking {os.path.basename(what.rstrip('/')) or what}", size)
    diff, usize, _new = store.add_layer(opener, what, progress=advance)
    return store.add_image(
        synth_config([diff], config, comment), [diff], name=name, source=source, sizes=[usize]
    )
