"""Unpack one image layer (a tar stream, maybe compressed) into an empty directory, safely, for overlayfs.

``unpack(src, dest)`` reads the stream once: the compressed bytes are hashed (the blob digest), decompressed
(gzip, zstd, xz, bzip2 or none, told apart by their magic bytes), hashed again (the diff_id) and applied
member by member with an explicit loop, never ``tarfile.extractall``:

* names are relative to the layer: absolute names and ``..`` components are refused;
* nothing is written through a symbolic link: every parent of a member must be a real directory made by
  this layer (so ``etc -> /etc`` followed by ``etc/passwd`` is refused, not written to the host);
* a hard link must point at an earlier member of the same layer, by a path that passes the same checks;
* device nodes under ``dev/`` are skipped (pycontain gives every container its own ``/dev``); anywhere
  else they are refused; fifos are kept;
* whiteouts become overlayfs's: ``.wh.NAME`` a 0/0 character device ``NAME``, ``.wh..wh..opq`` the
  ``trusted.overlay.opaque=y`` xattr on its directory; other ``.wh..wh.`` entries (aufs's) are dropped;
* extended attributes from the archive are restored only in the ``user.`` namespace and
  ``security.capability``: never ``trusted.`` ones (``trusted.overlay.*`` would steer overlayfs);
* an archive that stops where a header should be, with or without the end-of-archive blocks, is accepted
  (Debian's umoci writes layers without them); one that stops inside a member is corrupt.

Errors are ``BadImage`` with one line naming the member. The caller owns ``dest`` and removes it on error.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import subprocess
import tarfile
import threading
from collections.abc import Callable
from typing import IO, BinaryIO, Protocol, TypeVar, cast

from pycontain.errors import InvalidArgument, Unsupported
from pycontain.units import format_size

CHUNK = 1 << 20
_Sink = TypeVar("_Sink", bound=IO[bytes])
WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
_KEPT_XATTRS = ("user.", "security.capability")


def write_then_close(write: Callable[[_Sink], None], dest: _Sink) -> BaseException | None:
    """Run ``write(dest)`` on a feeder thread and close ``dest``; return what it raised, for the reader to re-raise.

    A broken pipe is not an error: the reader stopped early and reports why itself.
    """
    try:
        write(dest)
    except BrokenPipeError:
        pass
    except BaseException as e:
        return e
    finally:
        try:
            dest.close()
        except OSError:
            pass
    return None


class BadImage(InvalidArgument):
    """An archive or layer that is corrupt, truncated, does not match its digest, or is unsafe to unpack."""


class LayerInfo:
    __slots__ = ("diff_id", "blob_digest", "size", "entries", "skipped_devices")

    def __init__(self, diff_id: str, blob_digest: str, size: int, entries: int, skipped_devices: int) -> None:
        self.diff_id = diff_id  # sha256 hex of the uncompressed tar
        self.blob_digest = blob_digest  # sha256 hex of the bytes as read (compressed or not)
        self.size = size  # uncompressed size
        self.entries = entries
        self.skipped_devices = skipped_devices


class Reader(Protocol):
    """What the layer readers need of a stream: ``read``. Files, pipes, the decompressors and the readers
    below all qualify."""

    def read(self, n: int = -1, /) -> bytes: ...


class Stream(Reader, Protocol):
    """A Reader that ``tarfile.open(fileobj=...)`` also takes: every io class is one."""

    def write(self, b: bytes, /) -> object: ...
    def tell(self) -> int: ...
    def seek(self, pos: int, /) -> object: ...
    def close(self) -> object: ...


class HashingReader(io.RawIOBase):
    """A read-only stream that hashes and counts what passes through it (and reports progress)."""

    def __init__(self, f: Reader, progress: Callable[[int], None] | None = None) -> None:
        super().__init__()
        self.f = f
        self.hash = hashlib.sha256()
        self.count = 0
        self.progress = progress

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        if data:
            self.hash.update(data)
            self.count += len(data)
            if self.progress is not None:
                self.progress(len(data))
        return data

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def drain(self) -> None:
        while self.read(CHUNK):
            pass


class _Prefixed(io.RawIOBase):
    """``prefix`` followed by the rest of ``f``: lets us sniff magic bytes off a non-seekable stream."""

    def __init__(self, prefix: bytes, f: Reader) -> None:
        super().__init__()
        self.prefix = prefix
        self.f = f

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self.prefix:
            if n < 0:
                data, self.prefix = self.prefix + self.f.read(), b""
                return data
            data, self.prefix = self.prefix[:n], self.prefix[n:]
            return data
        return self.f.read(n)

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


class _BlockPadded(io.RawIOBase):
    """``f`` zero-padded to a whole 512-byte block at its end.

    umoci 0.4.7 never closes its tar writer: its layers stop right after the last member's data, without
    that member's padding or the end-of-archive blocks, and ``tarfile`` calls that truncated. GNU tar's
    rule is kept: the archive may stop only after a member's data, so ``unpack`` checks ``real_end``
    against where the last member's data ends (a member cut short is still corrupt).
    """

    def __init__(self, f: Reader) -> None:
        super().__init__()
        self.f = f
        self.real_end = 0  # bytes read from f
        self.padding = -1  # zero bytes still to give once f is exhausted; -1 until then

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self.padding < 0:
            data = self.f.read(n)
            if data:
                self.real_end += len(data)
                return data
            self.padding = -self.real_end % 512
        give = self.padding if n < 0 else min(n, self.padding)
        self.padding -= give
        return bytes(give)

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


class _ZstdProcess(io.RawIOBase):
    """Decompress zstd through the ``zstd`` program when the ``zstandard`` module is not installed."""

    def __init__(self, f: Reader) -> None:
        super().__init__()
        try:
            self.proc = subprocess.Popen(
                ["zstd", "-d", "-c", "-q"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        except FileNotFoundError:
            raise Unsupported(
                "a zstd-compressed layer needs the zstd program or the zstandard module "
                "(apt-get install zstd)"
            ) from None
        assert self.proc.stdin and self.proc.stdout and self.proc.stderr  # all three are pipes
        self.stdin, self.stdout, self.stderr = self.proc.stdin, self.proc.stdout, self.proc.stderr
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._feed, args=(f,), daemon=True)
        self.thread.start()

    def _feed(self, f: Reader) -> None:
        def copy(dest: IO[bytes]) -> None:
            while data := f.read(CHUNK):
                dest.write(data)

        self.error = write_then_close(copy, self.stdin)

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        return self.stdout.read(n)

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def finish(self) -> None:
        while self.stdout.read(CHUNK):
            pass
        self.thread.join()
        err = self.stderr.read().decode(errors="replace").strip()
        code = self.proc.wait()
        if self.error is not None:
            raise self.error
        if code != 0:
            raise BadImage(f"zstd: {err.splitlines()[-1] if err else f'exit status {code}'}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def decompressed(raw: Reader) -> tuple[Stream, str]:
    """The decompressed stream of ``raw`` and the compression's name, told apart by magic bytes."""
    head = b""
    while len(head) < 6:
        more = raw.read(6 - len(head))
        if not more:
            break
        head += more
    src = _Prefixed(head, raw)
    if head[:2] == b"\x1f\x8b":
        import gzip

        return gzip.GzipFile(fileobj=src, mode="rb"), "gzip"
    if head[:4] == b"\x28\xb5\x2f\xfd":
        try:
            import zstandard
        except ImportError:
            return _ZstdProcess(src), "zstd"
        return zstandard.ZstdDecompressor().stream_reader(
            cast(BinaryIO, src), read_across_frames=True
        ), "zstd"
    if head[:6] == b"\xfd7zXZ\x00":
        import lzma

        return lzma.LZMAFile(src), "xz"  # type: ignore[arg-type]  # typeshed wants IO[bytes]: read is all it uses
    if head[:3] == b"BZh":
        import bz2

        return bz2.BZ2File(src), "bzip2"
    return src, "none"


def _parts(name: str, what: str, member: str) -> list[str]:
    if name.startswith("/"):
        raise BadImage(f"{what}: tar member {member!r} has an absolute path: refusing to unpack it")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise BadImage(f"{what}: tar member {member!r} escapes the layer with '..': refusing to unpack it")
    return parts


class _Unpacker:
    def __init__(self, dest: str, what: str) -> None:
        self.dest = dest
        self.what = what
        self.root = os.geteuid() == 0
        self.dirs: dict[str, tarfile.TarInfo] = {}
        self.entries = 0
        self.skipped_devices = 0

    def fail(self, member: str, why: str) -> BadImage:
        return BadImage(f"{self.what}: tar member {member!r} {why}: refusing to unpack it")

    def parent(self, parts: list[str], member: str) -> str:
        """The directory that will hold ``parts[-1]``: every component checked, missing ones created."""
        path = self.dest
        for i, comp in enumerate(parts[:-1]):
            path = os.path.join(path, comp)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                os.mkdir(path, 0o755)
                continue
            if stat.S_ISLNK(st.st_mode):
                raise self.fail(
                    member, f"would be written through the symbolic link {'/'.join(parts[: i + 1])!r}"
                )
            if not stat.S_ISDIR(st.st_mode):
                raise self.fail(
                    member, f"would be written under {'/'.join(parts[: i + 1])!r}, which is not a directory"
                )
        return path

    def clear(self, path: str, keep_dir: bool) -> bool:
        """Remove what a later member replaces; True when ``path`` is a directory that is kept."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return True
            import shutil

            shutil.rmtree(path)
            for key in [k for k in self.dirs if k == path or k.startswith(path + "/")]:
                del self.dirs[key]
        else:
            os.unlink(path)
        return False

    def owner(self, path: str, ti: tarfile.TarInfo, fd: int | None = None) -> None:
        if not self.root:
            return
        if fd is not None:
            os.fchown(fd, ti.uid, ti.gid)
        else:
            os.chown(path, ti.uid, ti.gid, follow_symlinks=False)

    def xattrs(self, path: str, ti: tarfile.TarInfo) -> None:
        for key, value in ti.pax_headers.items():
            if not key.startswith("SCHILY.xattr."):
                continue
            name = key[len("SCHILY.xattr.") :]
            if not name.startswith(_KEPT_XATTRS):
                continue
            data = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
            try:
                os.setxattr(path, name, data, follow_symlinks=False)
            except OSError:
                pass  # a filesystem without user xattrs: the file itself is what matters

    def member(self, ti: tarfile.TarInfo, tf: tarfile.TarFile) -> None:
        name = ti.name
        parts = _parts(name, self.what, name)
        self.entries += 1
        if not parts:  # "." or "/": the layer's root directory
            if ti.isdir():
                self.dirs[self.dest] = ti
            return
        base = parts[-1]
        if base.startswith(WHITEOUT):
            parent = self.parent(parts, name)
            if base == OPAQUE:
                os.setxattr(parent, OPAQUE_XATTR, b"y", follow_symlinks=False)
                return
            if base.startswith(OPAQUE[:8]):  # .wh..wh.plnk, .wh..wh.aufs: aufs's own metadata
                return
            hidden = base[len(WHITEOUT) :]
            if hidden in ("", ".", ".."):
                raise self.fail(name, "is a malformed whiteout")
            target = os.path.join(parent, hidden)
            if not os.path.lexists(target):  # a file of this very layer wins over its whiteout
                os.mknod(target, stat.S_IFCHR | 0o000, os.makedev(0, 0))
            return
        parent = self.parent(parts, name)
        path = os.path.join(parent, base)
        if ti.isdir():
            if not self.clear(path, keep_dir=True):
                os.mkdir(path, 0o700)
            self.owner(path, ti)
            os.chmod(path, ti.mode & 0o7777)
            self.xattrs(path, ti)
            self.dirs[path] = ti
            return
        if ti.ischr() or ti.isblk():
            if parts[0] == "dev":
                self.skipped_devices += 1
                return
            raise self.fail(name, "is a device node outside /dev")
        if ti.islnk():
            lparts = _parts(ti.linkname, self.what, name)
            if not lparts:
                raise self.fail(name, "is a hard link to the layer's root")
            src = os.path.join(self.dest, *lparts)
            if os.path.dirname(src) != self.parent(lparts, name) or not os.path.lexists(src):
                raise self.fail(name, f"is a hard link to {ti.linkname!r}, which is not in this layer")
            if stat.S_ISDIR(os.lstat(src).st_mode):
                raise self.fail(name, "is a hard link to a directory")
            if os.path.abspath(src) == os.path.abspath(path):
                return
            self.clear(path, keep_dir=False)
            os.link(src, path, follow_symlinks=False)
            return
        self.clear(path, keep_dir=False)
        if ti.issym():
            os.symlink(ti.linkname, path)
            self.owner(path, ti)
        elif ti.isfifo():
            os.mkfifo(path, 0o600)
            self.owner(path, ti)
            os.chmod(path, ti.mode & 0o7777)
        elif ti.isreg():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                f = tf.extractfile(ti)
                if f is not None:
                    while data := f.read(CHUNK):
                        _write_all(fd, data)
                self.owner(path, ti, fd)
                os.fchmod(fd, ti.mode & 0o7777)
                os.utime(fd, (ti.mtime, ti.mtime))
            finally:
                os.close(fd)
        else:
            raise self.fail(name, f"has an unsupported type {ti.type!r}")
        self.xattrs(path, ti)
        if not ti.isreg():
            try:
                os.utime(path, (ti.mtime, ti.mtime), follow_symlinks=False)
            except OSError:
                pass

    def finish(self) -> None:
        for path in sorted(self.dirs, key=len, reverse=True):  # deepest first: children touch parents' mtime
            ti = self.dirs[path]
            if path == self.dest:
                self.owner(path, ti)
                os.chmod(path, ti.mode & 0o7777)
            try:
                os.utime(path, (ti.mtime, ti.mtime), follow_symlinks=False)
            except OSError:
                pass
        if self.dest not in self.dirs:
            os.chmod(self.dest, 0o755)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def unpack(
    src: Reader,
    dest: str,
    what: str,
    *,
    expect_blob: str | None = None,
    expect_diff: str | None = None,
    progress: Callable[[int], None] | None = None,
    max_size: int | None = None,
) -> LayerInfo:
    """Unpack the layer read from ``src`` into the empty directory ``dest``; verify its digests (hex).

    ``max_size``: the most bytes the uncompressed layer, and the files it holds, may have (a small
    compressed blob can unpack to any size)."""
    blob = HashingReader(src, progress)
    stream, kind = decompressed(blob)
    diff = HashingReader(stream)
    padded = _BlockPadded(diff)
    unpacker = _Unpacker(dest, what)
    try:
        try:
            data_end = 0
            with tarfile.open(fileobj=padded, mode="r|", errorlevel=2) as tf:
                files = 0
                for ti in tf:
                    files += ti.size if ti.isreg() else 0  # a sparse file's size: what it fills on disk
                    if max_size is not None and max(files, diff.count) > max_size:
                        raise BadImage(
                            f"{what}: the layer unpacks to more than {format_size(max_size)}, the limit "
                            "(raise it with PYCONTAIN_MAX_LAYER_SIZE, e.g. 64g)"
                        )
                    unpacker.member(ti, tf)
                    data_end = ti.offset_data + (ti.size if ti.isreg() else 0)
            diff.drain()
            if padded.real_end < data_end:
                raise tarfile.ReadError("unexpected end of data")
            if isinstance(stream, _ZstdProcess):
                stream.finish()
            blob.drain()
        except tarfile.ReadError as e:
            if unpacker.entries == 0 and str(e) in ("empty file",):
                raise BadImage(f"{what}: the layer is empty (not a tar archive)") from None
            raise BadImage(f"{what}: corrupt or truncated archive ({e})") from None
        except (tarfile.TarError, EOFError, ValueError) as e:
            raise BadImage(f"{what}: corrupt or truncated archive ({e or type(e).__name__})") from None
        except BadImage:
            raise
        except Exception as e:
            if isinstance(e, OSError) and e.errno is not None:
                raise  # the store's own filesystem failed, not the archive
            raise BadImage(f"{what}: corrupt {kind}-compressed data ({e or type(e).__name__})") from None
        unpacker.finish()
    except BaseException:
        if isinstance(stream, _ZstdProcess):
            stream.kill()
        raise
    info = LayerInfo(
        diff.hash.hexdigest(), blob.hash.hexdigest(), diff.count, unpacker.entries, unpacker.skipped_devices
    )
    if expect_blob is not None and info.blob_digest != expect_blob:
        raise BadImage(
            f"{what}: digest mismatch: the blob is sha256:{info.blob_digest}, its descriptor says "
            f"sha256:{expect_blob} (a corrupt or tampered image)"
        )
    if expect_diff is not None and info.diff_id != expect_diff:
        raise BadImage(
            f"{what}: digest mismatch: the uncompressed layer is sha256:{info.diff_id}, the image "
            f"config says sha256:{expect_diff} (a corrupt or tampered image)"
        )
    return info
