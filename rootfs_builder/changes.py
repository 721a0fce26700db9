"""A directory in overlayfs form (a container's upper directory, a built tree) added to the store as a layer.

The directory is written as an OCI layer tar (``export._layer_tar``: 0/0 character devices become ``.wh.NAME``,
``trusted.overlay.opaque=y`` a ``.wh..wh..opq`` entry) and streamed through ``Store.add_layer``, so a
container's changes get the same checks, the same content address and the same on-disk form as any
imported layer.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from pycontain.errors import InvalidArgument
from rootfs_builder.store import Store


class WriterPipe:
    """What ``write(out)`` writes to a stream (in a thread), read like a file; ``close()`` re-raises its error."""

    def __init__(self, write: Callable[[object], None]) -> None:
        r, w = os.pipe()
        self.r = os.fdopen(r, "rb", buffering=1 << 16)
        self.w = os.fdopen(w, "wb", buffering=1 << 16)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(write,), daemon=True)
        self.thread.start()

    def _run(self, write: Callable[[object], None]) -> None:
        try:
            write(self.w)
        except BrokenPipeError:
            pass
        except BaseException as e:  # noqa: BLE001 - re-raised in close()
            self.error = e
        finally:
            try:
                self.w.close()
            except OSError:
                pass

    def read(self, n: int = -1) -> bytes:
        return self.r.read(n)

    def close(self) -> None:
        self.r.close()
        self.thread.join()
        if self.error is not None:
            if isinstance(self.error, OSError):
                raise InvalidArgument(f"cannot read {self.error.filename or 'the layer'}: "
                                      f"{self.error.strerror or self.error}") from None
            raise self.error


def layer_from_dir(store: Store, path: str, what: str, *, skip: frozenset[str] = frozenset(),
                   upper: bool = False) -> tuple[str, int]:
    """Add the overlayfs-form tree ``path`` to the store as a layer; return (diff_id, size)."""
    from rootfs_builder.export import _layer_tar

    if not os.path.isdir(path):
        raise InvalidArgument(f"{what}: {path} is not a directory")
    diff, size, _new = store.add_layer(lambda: WriterPipe(lambda out: _layer_tar(path, out, skip, upper)), what)
    return diff, size
