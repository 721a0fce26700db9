"""A host-binary closure: host binaries plus every shared library they need (and the loader), as one layer.

Libraries are found with ``ldd`` (run on host binaries only, which are trusted). Every path is copied as it
resolves on the host: symbolic links on the way (``/lib -> usr/lib`` on merged-/usr systems, ``libz.so.1 ->
libz.so.1.2.13``) are kept as links, with their targets. For a Python interpreter the modules it loads at
start-up come along, and its whole standard library (with the libraries its extension modules link, such
as libssl for ``_ssl``) but for what a program does not import: tests, IDLE, tkinter, the static
libpython and installed packages.
"""

from __future__ import annotations

import os
import stat
import subprocess
import tarfile
from collections.abc import Callable

from pycontain.errors import InvalidArgument, NotFound, PycontainError
from rootfs_builder.layer import Reader
from rootfs_builder.progress import Reporter
from rootfs_builder.store import Store

ETC = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    "etc/group": "root:x:0:\nnogroup:x:65534:\n",
    "etc/hosts": "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    "etc/resolv.conf": "",
}
DIRS = {"proc": 0o555, "sys": 0o555, "dev": 0o755, "tmp": 0o1777, "etc": 0o755, "root": 0o700}
# Standard library parts left out of a Python closure: not imported by programs (tests, demos, IDLE,
# tkinter without Tk, the static libpython for embedding, pip's bootstrap) or not the stdlib at all.
_PY_SKIPPED = frozenset(
    {
        "__pycache__",
        "test",
        "idlelib",
        "tkinter",
        "turtledemo",
        "ensurepip",
        "lib2to3",
        "site-packages",
        "dist-packages",
    }
)
_PY_STDLIB = (
    "import sysconfig\nprint(sysconfig.get_paths()['stdlib'])\nprint(sysconfig.get_paths()['platstdlib'])"
)
_PY_STARTUP = (
    "import sys\n"
    "print('\\n'.join(m.__file__ for m in list(sys.modules.values()) if getattr(m, '__file__', None)))"
)


def _ldd(path: str) -> list[str]:
    try:
        proc = subprocess.run(["ldd", path], capture_output=True, text=True, timeout=60, check=False)
    except FileNotFoundError:
        raise PycontainError(
            "ldd not found: it is needed to find a binary's libraries (apt-get install libc-bin)"
        ) from None
    libs = []
    for line in proc.stdout.splitlines():
        line = line.strip()
        if "=>" in line:
            target = line.split("=>", 1)[1].strip().split(" (", 1)[0].strip()
            if target == "not found":
                raise PycontainError(f"{path} needs {line.split()[0]}, which ldd cannot find on this host")
            if target.startswith("/"):
                libs.append(target)
        elif line.startswith("/"):
            libs.append(line.split(" (", 1)[0].strip())  # the loader
    return libs


def _is_elf(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def _shebang(path: str) -> str | None:
    """A script's interpreter (``#!/bin/sh`` -> ``/bin/sh``), so that a script's closure runs too."""
    try:
        with open(path, "rb") as f:
            head = f.read(256)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    words = head[2:].split(b"\n", 1)[0].split()
    return words[0].decode(errors="replace") if words and words[0].startswith(b"/") else None


class Closure:
    """The set of host paths to copy, with every symlink on their way."""

    def __init__(self) -> None:
        self.entries: dict[str, str] = {}  # absolute host path -> "dir" | "file" | "link" | "tree"
        self.elves: list[str] = []

    def add(self, path: str, tree: bool = False, depth: int = 0, skip: frozenset[str] = frozenset()) -> None:
        """Copy ``path`` (a whole ``tree`` for a directory, less subdirectories named in ``skip`` and
        ``__pycache__``) and the links on its way; ELF files' libraries are found later."""
        if depth > 40:
            raise PycontainError(f"too many levels of symbolic links copying {path!r}")
        parts = [p for p in os.path.normpath(path).split("/") if p]
        cur = "/"
        for i, comp in enumerate(parts):
            nxt = os.path.join(cur, comp)
            try:
                st = os.lstat(nxt)
            except FileNotFoundError:
                raise NotFound(f"no such file on this host: {path!r}") from None
            last = i == len(parts) - 1
            if stat.S_ISLNK(st.st_mode):
                self.entries[nxt] = "link"
                target = os.readlink(nxt)
                resolved = os.path.normpath(target if target.startswith("/") else os.path.join(cur, target))
                self.add(os.path.join(resolved, *parts[i + 1 :]), tree, depth + 1, skip)
                return
            if stat.S_ISDIR(st.st_mode) and not last:
                self.entries.setdefault(nxt, "dir")
                cur = nxt
                continue
            if stat.S_ISDIR(st.st_mode):
                self.entries[nxt] = "tree" if tree else "dir"
                if tree:
                    for dirpath, dirnames, filenames in os.walk(nxt):
                        dirnames[:] = [
                            d
                            for d in dirnames
                            if d != "__pycache__" and d not in skip and not d.startswith("config-")
                        ]
                        for name in filenames + dirnames:
                            p = os.path.join(dirpath, name)
                            kind = "link" if os.path.islink(p) else ("dir" if os.path.isdir(p) else "file")
                            if self.entries.setdefault(p, kind) == "file" and _is_elf(p):
                                self.elves.append(p)
                return
            if not stat.S_ISREG(st.st_mode):
                raise InvalidArgument(f"cannot copy {nxt!r}: not a regular file, directory or link")
            if self.entries.get(nxt) != "file":
                self.entries[nxt] = "file"
                if _is_elf(nxt):
                    self.elves.append(nxt)
                elif not tree:
                    interpreter = _shebang(nxt)
                    if interpreter:
                        self.add(interpreter, False, depth + 1)
            return

    def resolve_libraries(self) -> None:
        done: set[str] = set()
        while self.elves:
            elf = self.elves.pop()
            if elf in done:
                continue
            done.add(elf)
            for lib in _ldd(elf):
                self.add(lib)

    def fill(self, tf: tarfile.TarFile) -> None:
        for rel, mode in sorted(DIRS.items()):
            if "/" + rel not in self.entries:
                ti = tarfile.TarInfo(rel)
                ti.type, ti.mode = tarfile.DIRTYPE, mode
                tf.addfile(ti)
        for path in sorted(self.entries):
            tf.add(path, arcname=path.lstrip("/"), recursive=False)
        for rel, text in ETC.items():
            if "/" + rel not in self.entries:
                data = text.encode()
                ti = tarfile.TarInfo(rel)
                ti.size, ti.mode = len(data), 0o644
                import io

                tf.addfile(ti, io.BytesIO(data))


def _python_files(binary: str) -> tuple[list[str], list[str]]:
    """(the modules ``binary`` loads at start-up, its standard library directories)."""
    return _python_startup_files(binary), [
        d for d in dict.fromkeys(_python_output(binary, _PY_STDLIB)) if d.startswith("/") and os.path.isdir(d)
    ]


def _python_output(binary: str, code: str) -> list[str]:
    try:
        out = subprocess.run(
            [binary, "-I", "-c", code],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={"PATH": "/usr/bin:/bin"},
        ).stdout
    except OSError:
        return []
    return out.splitlines()


def _python_startup_files(binary: str) -> list[str]:
    """Modules loaded at start-up, some outside the stdlib directory (Debian's sitecustomize in /etc)."""
    return [f for f in _python_output(binary, _PY_STARTUP) if f.startswith("/") and os.path.exists(f)]


def import_closure(
    store: Store,
    binaries: list[str],
    name: str | None,
    bar: Reporter,
    *,
    files: list[str] | None = None,
    config: dict | None = None,
) -> dict:
    from pycontain import DEFAULT_PATH
    from rootfs_builder.onelayer import import_single_layer

    opener, resolved, source = closure_opener(binaries, bar, files)
    if config is None:
        config = {"Env": [f"PATH={DEFAULT_PATH}"], "Cmd": [resolved[0]]}
    return import_single_layer(
        store, opener, source, name, source, config, bar, None, f"pycontain closure {' '.join(resolved)}"
    )


def closure_opener(
    binaries: list[str], bar: Reporter, files: list[str] | None = None
) -> tuple[Callable[[], Reader], list[str], str]:
    """(opener of the closure's layer tar, the binaries' host paths, the source string)."""
    from rootfs_builder.onelayer import tar_pipe

    closure = Closure()
    resolved = []
    for b in binaries:
        if not b:
            continue
        path = b if "/" in b else (__import__("shutil").which(b) or b)
        if not os.path.isfile(path):
            raise NotFound(f"no such binary on this host: {b!r}")
        path = os.path.abspath(path)
        resolved.append(path)
        closure.add(path)
        if os.path.basename(os.path.realpath(path)).startswith("python"):
            startup, stdlib = _python_files(path)
            for f in startup:
                closure.add(f)
            for d in stdlib:
                closure.add(d, tree=True, skip=_PY_SKIPPED)
    if not resolved:
        raise InvalidArgument("closure: name at least one binary (closure:/usr/bin/python3)")
    for f in files or []:
        closure.add(os.path.abspath(f), tree=True)
    bar.status("closure: finding shared libraries")
    closure.resolve_libraries()
    return (lambda: tar_pipe(closure.fill)), resolved, "closure:" + ",".join(resolved)
