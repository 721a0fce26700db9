"""Files in and out of containers (``cp``), what a container changed (``diff``) and its processes (``top``).

``cp`` goes through ``tar`` run inside the running container: every path is resolved by a process that
sees only the container's root, so no symlink in the image can lead a copy to the host's files. The
host side extracts the archive the container sent member by member, refusing what tarfile's ``data``
filter refuses (absolute or ``..`` names, links leading out of the destination, device files), checked
here because Debian 12's Python (3.11.2) predates that filter; ownership becomes the caller's and
set-id bits are dropped, as ``docker cp`` does.
"""

from __future__ import annotations

import os
import posixpath
import stat
import tarfile
import tempfile

from .errors import InvalidArgument, NotFound, PycontainError


def _in_container(container, args: list[str], stdin_fd: int | None, stdout_fd: int) -> tuple[int, bytes]:
    from . import process

    err = tempfile.TemporaryFile()
    try:
        stdio = process.Stdio(
            stdin_null=stdin_fd is None, stdin_fd=stdin_fd, stdout_fd=stdout_fd, stderr_fd=err.fileno()
        )
        child = container.exec(args, stdio=stdio)
        code = process.wait_status(child.pid)
        err.seek(0)
        return code, err.read()
    finally:
        err.close()


def copy_from(container, path: str, dest: str) -> None:
    """``cp ID:PATH DEST``: PATH (a file or a directory) from the running container into DEST on the host
    (into it when DEST is a directory, else as DEST)."""
    if not path.startswith("/"):
        path = "/" + path
    parent, name = posixpath.split(posixpath.normpath(path))
    if not name:
        raise InvalidArgument("cp: give a file or directory inside the container, not '/'")
    with tempfile.TemporaryFile() as archive:
        code, err = _in_container(
            container, ["tar", "-c", "-f", "-", "-C", parent, name], None, archive.fileno()
        )
        if code != 0:
            msg = err.decode(errors="replace").strip().splitlines()
            raise NotFound(f"cp: cannot read {path} in container {container.name}: {msg[0] if msg else code}")
        archive.seek(0)
        into = os.path.isdir(dest)
        target_dir = dest if into else (os.path.dirname(os.path.abspath(dest)) or ".")
        if not os.path.isdir(target_dir):
            raise NotFound(f"cp: the destination directory {target_dir} does not exist")
        with tarfile.open(fileobj=archive) as tar:
            members = tar.getmembers()
            if not into:
                new = os.path.basename(dest)
                for m in members:
                    m.name = (
                        new + m.name[len(name) :]
                        if m.name == name or m.name.startswith(name + "/")
                        else m.name
                    )
            _extract_beneath(tar, members, target_dir, container.name)


def _extract_beneath(
    tar: tarfile.TarFile, members: list[tarfile.TarInfo], target_dir: str, name: str
) -> None:
    """Write ``members`` beneath ``target_dir``; each is checked just before it is written, so a symbolic
    link an earlier member made is resolved when a later one would go through it."""
    root = os.path.realpath(target_dir)

    def inside(path: str) -> bool:
        return os.path.commonpath([root, os.path.realpath(path)]) == root

    for m in members:
        dest = os.path.join(root, m.name)
        if (
            os.path.isabs(m.name)
            or ".." in m.name.split("/")
            or not inside(dest)
            or not (m.isreg() or m.isdir() or m.issym() or m.islnk())
            or (
                m.issym()
                and (os.path.isabs(m.linkname) or not inside(os.path.join(os.path.dirname(dest), m.linkname)))
            )
            or (m.islnk() and not inside(os.path.join(root, m.linkname)))
        ):
            raise PycontainError(
                f"cp: the archive from container {name} holds {m.name!r}, which is not a plain file, directory "
                f"or link beneath {target_dir}: refusing it (nothing after it was copied)"
            )
        m.mode &= 0o755  # no set-id bits, no group or world write
        m.uid, m.gid, m.uname, m.gname = os.getuid(), os.getgid(), "", ""
        tar.extract(m, root, numeric_owner=True)


def copy_to(container, src: str, path: str) -> None:
    """``cp SRC ID:PATH``: a host file or directory into the running container (into PATH when it is a
    directory there, else as PATH)."""
    if not os.path.lexists(src):
        raise NotFound(f"cp: {src} does not exist")
    if not path.startswith("/"):
        path = "/" + path
    probe = tempfile.TemporaryFile()
    with probe:
        code, _ = _in_container(container, ["test", "-d", path], None, probe.fileno())
    into = code == 0
    target_dir, name = (path, os.path.basename(os.path.normpath(src))) if into else posixpath.split(path)
    with tempfile.TemporaryFile() as archive:
        with tarfile.open(fileobj=archive, mode="w") as tar:
            tar.add(src, arcname=name)
        archive.seek(0)
        with tempfile.TemporaryFile() as out:
            code, err = _in_container(
                container, ["tar", "-x", "-f", "-", "-C", target_dir or "/"], archive.fileno(), out.fileno()
            )
    if code != 0:
        msg = err.decode(errors="replace").strip().splitlines()
        raise PycontainError(
            f"cp: cannot write {path} in container {container.name}: {msg[0] if msg else code}"
        )


def parse_cp_args(src: str, dest: str) -> tuple[str, str, str, str]:
    """Exactly one side is ``CONTAINER:PATH``: → (direction 'from'|'to', container ref, container path, host path)."""

    def split(arg: str) -> tuple[str, str] | None:
        ref, colon, path = arg.partition(":")
        if colon and ref and not arg.startswith(("/", ".")):
            return ref, path
        return None

    a, b = split(src), split(dest)
    if (a is None) == (b is None):
        raise InvalidArgument("cp: give one side as CONTAINER:PATH and the other as a host path")
    if a is not None:
        return "from", a[0], a[1], dest
    return "to", b[0], b[1], src  # type: ignore[index]


def copy(src: str, dest: str, root: str | None = None) -> None:
    """docker's ``cp SRC DEST``: one side is ``CONTAINER:PATH`` (a running container of state root ``root``),
    the other a host path."""
    from .container import Container

    direction, ref, inside, host = parse_cp_args(src, dest)
    c = Container.get(ref, root)
    if direction == "from":
        copy_from(c, inside, host)
    else:
        copy_to(c, host, inside)


def diff(container) -> list[str]:
    """docker's ``diff``: ``A path`` (added), ``C path`` (changed), ``D path`` (deleted), from the writable
    layer against the image's layers."""
    upper = os.path.join(container.dir, "upper")
    layers = container.state.config.layers
    if not os.path.isdir(upper):
        return []
    out = []
    for dirpath, dirnames, filenames in os.walk(upper):
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            rel = "/" + os.path.relpath(full, upper)
            st = os.lstat(full)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                out.append(f"D {rel}")  # an overlayfs whiteout
                continue
            below = any(os.path.lexists(os.path.join(layer, rel.lstrip("/"))) for layer in layers)
            out.append(f"{'C' if below else 'A'} {rel}")
        dirnames[:] = [d for d in dirnames if not _whiteout(os.path.join(dirpath, d))]
    return sorted(out, key=lambda line: line[2:])


def _whiteout(path: str) -> bool:
    st = os.lstat(path)
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def top(container) -> list[tuple[str, ...]]:
    """The container's processes as host pids with their user, parent and command line."""
    cg = container.cgroup()
    if container.status() not in ("running", "paused") or cg is None or not cg.exists():
        from .errors import InvalidState

        raise InvalidState(f"container {container.name} is not running")
    rows: list[tuple[str, ...]] = []
    for pid in sorted(cg.pids()):
        try:
            with open(f"/proc/{pid}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue  # ended meanwhile
        rows.append(
            (fields["Uid"].split()[0], str(pid), fields["PPid"].strip(), cmd or f"[{fields['Name'].strip()}]")
        )
    return rows
