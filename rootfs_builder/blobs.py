"""Where an image's blobs are read from: an OCI layout directory or a tar archive (``Blobs``).

Each one reads a file by its path relative to the layout, never outside it (no symbolic link followed out
of the directory, no archive member linking out of the archive), and stops at the size its descriptor
gives (``_Bounded``): an image is untrusted input. ``sources`` imports images through them.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import tarfile
from typing import IO, BinaryIO, Protocol, cast

from rootfs_builder.layer import BadImage


class Blobs(Protocol):
    """Files of an image layout or archive by relative path (``what`` names them in errors)."""

    def read(self, rel: str, what: str, limit: int = 16 << 20) -> bytes: ...
    def open(self, rel: str, what: str, size: int | None = None) -> IO[bytes]: ...
    def exists(self, rel: str) -> bool: ...
    def size(self, rel: str) -> int | None: ...
    def close(self) -> None: ...


class DirBlobs:
    """Files of an OCI layout directory. A layout is untrusted input: a blob that is a symbolic link (to
    /etc/shadow, /dev/zero) or anything but a regular file (a FIFO would block for ever) is refused, and
    every path component beneath the layout is opened without following links."""

    def __init__(self, root: str) -> None:
        self.root = root

    def read(self, rel: str, what: str, limit: int = 16 << 20) -> bytes:
        with self.open(rel, what) as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise BadImage(f"{what} is implausibly large (over {limit >> 20} MiB)")
        return data

    def open(self, rel: str, what: str, size: int | None = None) -> BinaryIO:
        """``rel`` for reading; with ``size`` (its descriptor's), a stream that fails past that many bytes."""
        parts = [p for p in rel.split("/") if p]
        fd = -1
        try:
            fd = os.open(self.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            for part in parts[:-1]:
                nxt = os.open(part, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
                os.close(fd)
                fd = nxt
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
            blob = os.open(parts[-1], flags, dir_fd=fd)
        except OSError as e:
            if e.errno == errno.ENOENT:
                raise BadImage(f"{what}: {rel} is missing from {self.root}") from None
            if e.errno in (errno.ELOOP, errno.ENOTDIR):  # O_NOFOLLOW met a symbolic link
                raise BadImage(
                    f"{what}: {rel} in {self.root} is (or passes through) a symbolic link: an image layout "
                    "holds only directories and regular files"
                ) from None
            raise BadImage(f"{what}: cannot open {rel} in {self.root}: {e.strerror}") from None
        finally:
            if fd >= 0:
                os.close(fd)
        if not stat.S_ISREG(os.fstat(blob).st_mode):
            os.close(blob)
            raise BadImage(f"{what}: {rel} in {self.root} is not a regular file")
        f = os.fdopen(blob, "rb")
        return f if size is None else cast(BinaryIO, _Bounded(f, size, what))  # a file that stops at size

    def _lstat(self, rel: str) -> os.stat_result | None:
        try:
            return os.lstat(os.path.join(self.root, rel))
        except OSError:
            return None

    def exists(self, rel: str) -> bool:
        st = self._lstat(rel)
        return st is not None and stat.S_ISREG(st.st_mode)

    def size(self, rel: str) -> int | None:
        st = self._lstat(rel)
        return st.st_size if st is not None and stat.S_ISREG(st.st_mode) else None

    def close(self) -> None:
        pass


class _Bounded(io.RawIOBase):
    """A blob read to at most its declared size: a longer one is an error, not a read without end."""

    def __init__(self, f: BinaryIO, size: int, what: str) -> None:
        super().__init__()
        self.f = f
        self.left = size
        self.size = size
        self.what = what

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        data = self.f.read(min(len(b), self.left + 1))
        if len(data) > self.left:
            raise BadImage(f"{self.what}: the blob is larger than its descriptor's size ({self.size} bytes)")
        self.left -= len(data)
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self.f.close()
        super().close()


class TarBlobs:
    """Members of an (uncompressed, seekable) image archive by name, following in-archive symlinks."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self.tf = tarfile.open(path, "r:")
            self.members = {}
            for ti in self.tf:
                self.members[os.path.normpath(ti.name.lstrip("/"))] = ti
        except (tarfile.TarError, EOFError) as e:
            raise BadImage(f"{path}: corrupt or truncated archive ({e})") from None
        self.tf.members = []  # type: ignore[attr-defined]  # the index above is all we need; don't keep two

    def _member(self, rel: str, what: str) -> tarfile.TarInfo:
        name = os.path.normpath(rel)
        for _ in range(10):
            ti = self.members.get(name)
            if ti is None:
                raise BadImage(f"{what}: {rel} is missing from the archive {self.path}")
            if ti.issym() or ti.islnk():
                base = os.path.dirname(name) if ti.issym() else ""
                name = os.path.normpath(os.path.join(base, ti.linkname)).lstrip("/")
                if name.startswith(".."):
                    raise BadImage(f"{what}: {rel} links outside the archive {self.path}")
                continue
            if not ti.isreg():
                raise BadImage(f"{what}: {rel} in {self.path} is not a file")
            return ti
        raise BadImage(f"{what}: too many links for {rel} in {self.path}")

    def open(self, rel: str, what: str, size: int | None = None) -> IO[bytes]:
        ti = self._member(rel, what)
        if size is not None and ti.size > size:
            raise BadImage(f"{what}: the blob is larger than its descriptor's size ({size} bytes)")
        return self._extract(ti)

    def _extract(self, ti: tarfile.TarInfo) -> IO[bytes]:
        f = self.tf.extractfile(ti)
        assert f is not None  # _member returns regular files only
        return f

    def read(self, rel: str, what: str, limit: int = 16 << 20) -> bytes:
        ti = self._member(rel, what)
        if ti.size > limit:
            raise BadImage(f"{what} is implausibly large (over {limit >> 20} MiB)")
        try:
            data = self._extract(ti).read()
        except (tarfile.TarError, EOFError, OSError) as e:
            raise BadImage(f"{self.path}: corrupt or truncated archive ({e})") from None
        if len(data) != ti.size:
            raise BadImage(f"{self.path}: truncated archive ({rel} is cut short)")
        return data

    def exists(self, rel: str) -> bool:
        return os.path.normpath(rel) in self.members

    def size(self, rel: str) -> int | None:
        try:
            return self._member(rel, rel).size
        except BadImage:
            return None

    def close(self) -> None:
        self.tf.close()
