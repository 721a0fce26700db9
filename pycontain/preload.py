"""pycontain's own modules served from one file, the preload: ~0.25 ms less for each module a command imports.

Python's path finder, for every module, scans its package's directory listing, stats the source, opens and
reads its ``.pyc`` and checks it: ~0.3 ms a module on the dev machine (40 empty modules: 0.30 ms each, 0.045
ms served from code already in memory), in pure-Python importlib code. ``pycontain run`` imports ~45 of
pycontain's modules, ``exec``, ``state`` and ``ps`` 15-25: that is more than the work of ``state``.

``install`` (``pycontain/__init__.py`` calls it, before any other of our modules is imported) reads
``__pycache__/preload.TAG.bin`` once and puts a finder first on ``sys.meta_path``. The file holds, for each
module of this tree's packages (``pycontain.*``, ``rootfs_builder.*``) a command has imported before, the
body of its ``.pyc`` (its code, marshalled) with the source's path, mtime and size. The finder serves a module
from it only when its source still has that mtime (to the nanosecond) and size, and lies in the directory the
normal import would search (the parent package's ``__path__``); otherwise, and for top-level packages, the
normal finders run, as without the preload. A served module is the one the path finder would give: a
``SourceFileLoader`` (``__file__``, ``__cached__``, tracebacks' source lines, resources), only its code
comes from the preload instead of the ``.pyc``.

``refresh`` (the command line's fast paths call it on their way out) rewrites the file when this process
imported a module of ours the preload did not have (new, or changed since): the entries still valid, plus
those modules' ``.pyc`` bodies, checked against their sources as importlib checks a ``.pyc``. Nothing is
written with ``-B`` / PYTHONDONTWRITEBYTECODE, nor where the user may not write (a root-owned install run by
a user): the preload then stays as it is, and imports cost what they cost without it. The file has the same
trust as the ``.pyc`` files beside it: whoever can write there can change what pycontain runs either way.
"""

from __future__ import annotations

import _frozen_importlib_external as _external  # importlib's own, loaded at start: costs no import
import marshal
import posix
import sys

# Not os: state, ps and exec load none (see fastos), and this module is on every command's path.
from . import fastos

# The packages served: the runtime and its image store (both on run's path), of the tree this module is in.
PACKAGES = ("pycontain", "rootfs_builder")
_TREE = fastos.dirname(fastos.dirname(fastos.abspath(__file__)))


def path_for(package_dir: str) -> str:
    """The preload of the package in ``package_dir``: where its bytecode goes (its ``__pycache__``, or under
    ``sys.pycache_prefix`` when one is set, as the ``.pyc`` files are)."""
    cache = fastos.dirname(_external.cache_from_source(fastos.join(package_dir, "__init__.py")))
    return fastos.join(cache, f"preload.{sys.implementation.cache_tag}.opt{sys.flags.optimize}.bin")


_PATH = path_for(fastos.dirname(fastos.abspath(__file__)))
# What this file's version of the format holds before its table: refused if it differs (another Python).
_HEADER = (_external.MAGIC_NUMBER, sys.flags.optimize, 1)

# name -> (source path, mtime_ns, size, offset, length of its code); None until install() has read a valid
# file. The file: the length of the marshalled (header, table), them, then the modules' code one after
# another, each read (pread) when it is imported: a command imports a part of them, and reading the whole
# file at once would put it in ~160 new pages, each a page fault (~4 us on the dev VM).
_table: dict[str, tuple[str, int, int, int, int]] | None = None
_base = 0  # where the codes start
_identity: tuple[int, int, int, int] | None = None  # the file read (st_dev, st_ino, st_size, st_mtime_ns)
_served: set[str] = set()


def _open() -> int:
    """The preload file, if it is still the one install() read (a refresh may have replaced it since)."""
    fd = posix.open(_PATH, posix.O_RDONLY | posix.O_CLOEXEC)
    st = posix.fstat(fd)
    if (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) != _identity:
        posix.close(fd)
        raise FileNotFoundError(_PATH)
    return fd


def _code(fd: int, offset: int, length: int) -> bytes:
    data = posix.pread(fd, length, _base + offset)
    if len(data) != length:
        raise EOFError(_PATH)
    return data


class _Loader(_external.SourceFileLoader):
    """importlib's loader of a source file whose code comes from the preload instead of its ``.pyc``."""

    def get_code(self, fullname: str):
        assert _table is not None
        try:
            fd = _open()
            try:
                data = _code(fd, *_table[fullname][3:])
            finally:
                posix.close(fd)
            return marshal.loads(data)
        except (OSError, EOFError, ValueError, TypeError):
            return super().get_code(fullname)  # replaced since, or damaged: the module's own .pyc, as usual


class _Finder:
    @staticmethod
    def find_spec(name: str, path=None, target=None):
        if path is None or _table is None:
            return None  # a top-level package: sys.path decides where it comes from
        entry = _table.get(name)
        if entry is None:
            return None
        source, mtime_ns, size = entry[:3]
        directory = fastos.dirname(source)
        is_package = source.rpartition("/")[2] == "__init__.py"
        if (fastos.dirname(directory) if is_package else directory) not in path:
            return None
        try:
            st = posix.stat(source)
        except OSError:
            return None
        if st.st_mtime_ns != mtime_ns or st.st_size != size:
            return None  # changed since: the path finder compiles it, and refresh() takes the new code
        _served.add(name)
        return _external.spec_from_file_location(
            name,
            source,
            loader=_Loader(name, source),
            submodule_search_locations=[directory] if is_package else None,
        )

    @staticmethod
    def invalidate_caches() -> None:
        pass


def install() -> None:
    """Serve our modules from the preload, if there is a valid one (else imports go as they would)."""
    global _table, _base, _identity
    if _table is not None:
        return
    try:
        fd = posix.open(_PATH, posix.O_RDONLY | posix.O_CLOEXEC)
        try:
            st = posix.fstat(fd)
            head = posix.read(fd, 32768)
            size = int.from_bytes(head[:4], "little")
            if 4 + size > len(head):
                head += posix.pread(fd, 4 + size - len(head), len(head))
        finally:
            posix.close(fd)
        header, table = marshal.loads(head[4 : 4 + size])
        if header != _HEADER or not isinstance(table, dict):
            return
        if any(offset + length > st.st_size - 4 - size for _, _, _, offset, length in table.values()):
            return  # truncated
    except (OSError, EOFError, ValueError, TypeError):
        return  # none yet, or unreadable, damaged, not ours: the next refresh() replaces it
    _table, _base, _identity = table, 4 + size, (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    sys.meta_path.insert(0, _Finder)


def _ours(name: str, module: object) -> str | None:
    """The source of ``name`` if it is a submodule of our packages loaded from this tree, else None."""
    if "." not in name or name.partition(".")[0] not in PACKAGES or name in (__name__, fastos.__name__):
        return None  # (these modules are imported before the preload is read: never served from it)
    source = getattr(module, "__file__", None)
    if not isinstance(source, str) or not source.endswith(".py") or not source.startswith(_TREE + "/"):
        return None
    return source


def refresh() -> None:
    """Rewrite the preload if this process imported one of our modules it did not serve. Cheap when it did
    not (a look at ``sys.modules``); never fails: a preload not written only leaves imports as slow as before."""
    if sys.dont_write_bytecode:
        return
    fresh = {}
    for name, module in list(sys.modules.items()):
        if name not in _served:
            source = _ours(name, module)
            if source is not None:
                fresh[name] = (source, getattr(module, "__cached__", None))
    if not fresh or not posix.access(fastos.dirname(_PATH), posix.W_OK):
        return
    try:
        _write(fresh)
    except (OSError, EOFError, ValueError):
        pass


def _write(fresh: dict[str, tuple[str, str | None]]) -> None:
    entries: dict[str, tuple[str, int, int, bytes]] = {}
    try:
        fd = _open() if _table else -1
    except OSError:
        fd = -1  # replaced meanwhile by another command's refresh: what this one imported is written anew
    try:
        for name, (source, mtime_ns, size, offset, length) in (_table or {}).items() if fd >= 0 else ():
            try:
                st = posix.stat(source)
            except OSError:
                continue  # its source is gone
            if name not in fresh and (st.st_mtime_ns, st.st_size) == (mtime_ns, size):
                entries[name] = (source, mtime_ns, size, _code(fd, offset, length))
    finally:
        if fd >= 0:
            posix.close(fd)
    kept = len(entries)
    for name, (source, cached) in fresh.items():
        entry = _pyc_code(source, cached)
        if entry is not None:
            entries[name] = entry
    if len(entries) == kept and kept == len(_table or {}):
        return  # nothing new (a module without a .pyc to take its code from): no rewrite at every command
    table, offset = {}, 0
    for name, (source, mtime_ns, size, code) in entries.items():
        table[name] = (source, mtime_ns, size, offset, len(code))
        offset += len(code)
    index = marshal.dumps((_HEADER, table))
    data = b"".join([len(index).to_bytes(4, "little"), index, *(entry[3] for entry in entries.values())])
    fastos.write_replace(_PATH, data, 0o644)  # readers see the old preload or the new one, never half of one


def _pyc_code(source: str, cached: str | None) -> tuple[str, int, int, bytes] | None:
    """The preload entry of ``source`` from its ``.pyc``, if that holds this source's code: importlib's
    own check (magic number, a timestamp-based ``.pyc`` of the source's mtime and size), then the stat kept
    to the nanosecond for the finder's check."""
    if not cached:
        return None
    try:
        st = posix.stat(source)
        with open(cached, "rb") as f:
            data = f.read()
    except OSError:
        return None
    if (
        len(data) < 16
        or data[:4] != _external.MAGIC_NUMBER
        or int.from_bytes(data[4:8], "little") != 0  # hash-based .pyc: left to importlib
        or int.from_bytes(data[8:12], "little") != int(st.st_mtime) & 0xFFFFFFFF
        or int.from_bytes(data[12:16], "little") != st.st_size & 0xFFFFFFFF
    ):
        return None
    return (source, st.st_mtime_ns, st.st_size, data[16:])
