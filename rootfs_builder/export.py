"""Export a stored image as an OCI image layout directory or an oci-archive (``skopeo``/``podman load`` read both),
or flattened: a root filesystem tarball (optionally compressed) or a squashfs image.

Each layer directory is written back as a tar (sorted, so the same layer gives the same bytes) with
overlayfs's whiteouts turned back into OCI's: a 0/0 character device ``NAME`` becomes ``.wh.NAME``, a
directory with ``trusted.overlay.opaque=y`` gets a ``.wh..wh..opq`` entry. Layers are gzip-compressed.
The config keeps everything of the imported one but ``rootfs.diff_ids``, which name the new tars.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from typing import IO, Any, cast

from pycontain.errors import AlreadyExists, InvalidArgument, PycontainError, Unsupported
from rootfs_builder.store import Store

_ALLOWED_XATTRS = ("user.", "security.capability")


class _HashWriter:
    def __init__(self, f) -> None:
        self.f = f
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        return self.f.write(data)

    def flush(self) -> None:
        self.f.flush()


def layer_tar(layer: str, out, skip: frozenset[str] = frozenset(), upper: bool = False) -> None:
    """Write ``layer`` as an OCI layer tar to the stream ``out``.

    ``skip``: paths (relative, no leading slash) left out. ``upper``: ``layer`` is a container's overlayfs
    upper directory, where a redirected directory or a metadata-only copy-up would make a wrong layer.
    """
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:

        def add(path: str, arcname: str) -> None:
            if arcname in skip:
                return
            st = os.lstat(path)
            if upper:
                for name in _xattrs(path):
                    if name in ("trusted.overlay.redirect", "trusted.overlay.metacopy"):
                        raise InvalidArgument(
                            f"/{arcname} in {layer} is an overlayfs {name[16:]} entry: "
                            "mount overlays without redirect_dir and metacopy to commit them"
                        )
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                ti = tarfile.TarInfo(
                    os.path.join(os.path.dirname(arcname), ".wh." + os.path.basename(arcname))
                )
                ti.mtime = int(st.st_mtime)
                tf.addfile(ti)
                return
            ti = tf.gettarinfo(path, arcname)
            if ti is None:  # a socket: not part of an image
                return
            ti.uname = ti.gname = ""
            for name in _xattrs(path):
                if name.startswith(_ALLOWED_XATTRS):
                    value = os.getxattr(path, name, follow_symlinks=False)
                    ti.pax_headers[f"SCHILY.xattr.{name}"] = value.decode("utf-8", "surrogateescape")  # type: ignore[index]  # a dict (typeshed: Mapping)
            if ti.isreg():
                with open(path, "rb") as f:
                    tf.addfile(ti, f)
            else:
                tf.addfile(ti)
            if stat.S_ISDIR(st.st_mode):
                try:
                    opaque = os.getxattr(path, "trusted.overlay.opaque", follow_symlinks=False) == b"y"
                except OSError:
                    opaque = False
                if opaque:
                    wh = tarfile.TarInfo(
                        os.path.join(arcname, ".wh..wh..opq") if arcname != "." else ".wh..wh..opq"
                    )
                    wh.mtime = int(st.st_mtime)
                    tf.addfile(wh)
                for entry in sorted(os.listdir(path)):
                    add(os.path.join(path, entry), entry if arcname == "." else f"{arcname}/{entry}")

        add(layer, ".")


def _xattrs(path: str) -> list[str]:
    try:
        return os.listxattr(path, follow_symlinks=False)
    except OSError:
        return []


def _image_blobs(store: Store, rec: dict, blobs: str, *, compress: bool) -> tuple[list[dict], bytes]:
    """Write the image's layers (gzip-compressed or plain tars) and config into ``blobs``, each file named by
    its sha256; return the layer descriptors and the config, whose ``rootfs.diff_ids`` name the new tars."""
    with open(os.path.join(store.images_dir, rec["id"], "config.json"), "rb") as f:
        config = json.loads(f.read())
    descs, diffs = [], []
    for diff in rec["layers"]:
        tmp = os.path.join(blobs, "layer.tmp")
        with open(tmp, "wb") as raw:
            packed = _HashWriter(raw)
            if compress:
                with gzip.GzipFile(fileobj=packed, mode="wb", mtime=0) as gz:
                    plain = _HashWriter(gz)
                    layer_tar(store.layer_path(diff), plain)
            else:
                plain = packed
                layer_tar(store.layer_path(diff), plain)
        digest = packed.hash.hexdigest()
        os.rename(tmp, os.path.join(blobs, digest))
        descs.append(
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if compress else ""),
                "digest": f"sha256:{digest}",
                "size": packed.size,
            }
        )
        diffs.append(f"sha256:{plain.hash.hexdigest()}")
    config.setdefault("rootfs", {})["type"] = "layers"
    config["rootfs"]["diff_ids"] = diffs
    config_bytes = json.dumps(config, separators=(",", ":")).encode()
    _put(blobs, config_bytes)
    return descs, config_bytes


def _ref_annotations(name: str) -> dict:
    """A manifest's names in an OCI index: the tag alone as ``org.opencontainers.image.ref.name`` (what
    ``skopeo inspect oci:DIR:TAG`` and ``podman load`` look up) and the whole name as containerd's."""
    repo, colon, tag = name.rpartition(":")
    if not colon or "/" in tag:
        return {"org.opencontainers.image.ref.name": name}
    return {"org.opencontainers.image.ref.name": tag, "io.containerd.image.name": name}


def _write_archive(work: str, members: tuple[str, ...], dest: str) -> None:
    tmp_archive = os.path.join(work, "archive.tar")
    with tarfile.open(tmp_archive, "w", format=tarfile.PAX_FORMAT) as tf:
        for name in members:
            tf.add(os.path.join(work, name), arcname=name)
    os.rename(tmp_archive, dest)


def export_image(
    ref: str, dest: str, data_root: str | None = None, *, archive: bool = False, tag: str | None = None
) -> dict:
    """Write image ``ref`` to ``dest`` (an OCI layout directory, or an oci-archive file with ``archive``).

    ``tag`` names it in the layout (default: the name ``ref`` found it by, else its first name, else
    ``latest``). Returns {"manifest": digest, "config": digest, "layers": [digests]}.
    """
    store = Store(data_root)
    rec = store.get(ref)
    if os.path.exists(dest) and (archive or os.listdir(dest)):
        raise AlreadyExists(f"{dest} already exists: export to a new path")
    found_as = store.find_name(store.load(), ref)[1]
    ref_name = tag or found_as or (rec["names"][0] if rec["names"] else "latest")
    parent = os.path.dirname(os.path.abspath(dest))
    work = tempfile.mkdtemp(prefix=".export-", dir=parent)
    moved = False
    try:
        blobs = os.path.join(work, "blobs", "sha256")
        os.makedirs(blobs)
        descs, config_bytes = _image_blobs(store, rec, blobs, compress=True)
        manifest: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": f"sha256:{hashlib.sha256(config_bytes).hexdigest()}",
                "size": len(config_bytes),
            },
            "layers": descs,
        }
        manifest_bytes = json.dumps(manifest, separators=(",", ":")).encode()
        m_digest = _put(blobs, manifest_bytes)
        index = {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": f"sha256:{m_digest}",
                    "size": len(manifest_bytes),
                    "annotations": _ref_annotations(ref_name),
                }
            ],
        }
        with open(os.path.join(work, "index.json"), "w") as f:
            json.dump(index, f)
        with open(os.path.join(work, "oci-layout"), "w") as f:
            json.dump({"imageLayoutVersion": "1.0.0"}, f)
        if archive:
            _write_archive(work, ("oci-layout", "index.json", "blobs"), dest)
        else:
            if os.path.isdir(dest):
                os.rmdir(dest)
            os.rename(work, dest)
            moved = True
    except OSError as e:
        raise InvalidArgument(f"cannot export to {dest}: {e.strerror or e}") from None
    finally:
        if not moved:
            shutil.rmtree(work, ignore_errors=True)
    return {
        "manifest": m_digest,
        "config": manifest["config"]["digest"][7:],
        "layers": [d["digest"][7:] for d in descs],
    }


def save_images(
    refs: list[str], dest: str, data_root: str | None = None, *, fmt: str = "docker-archive"
) -> None:
    """``pycontain save``: images into one docker-archive (``docker load``/``podman load`` read it; several
    images allowed, each with its names as RepoTags) or an oci-archive (one image, as podman writes)."""
    if fmt == "oci-archive":
        if len(refs) != 1:
            raise InvalidArgument("an oci-archive holds one image: save several as a docker-archive")
        export_image(refs[0], dest, data_root, archive=True)
        return
    if fmt != "docker-archive":
        raise InvalidArgument(f"unknown format {fmt!r}: use docker-archive or oci-archive")
    if not refs:
        raise InvalidArgument("name at least one image to save")
    store = Store(data_root)
    index = store.load()
    records = [(ref, store.get(ref, index)) for ref in refs]
    if os.path.lexists(dest):
        raise AlreadyExists(f"{dest} already exists: save to a new path")
    work = tempfile.mkdtemp(prefix=".save-", dir=os.path.dirname(os.path.abspath(dest)))
    try:
        blobs = os.path.join(work, "blobs", "sha256")
        os.makedirs(blobs)
        entries: dict[str, dict] = {}
        for ref, rec in records:
            found_as = store.find_name(index, ref)[1]
            if rec["id"] not in entries:
                descs, config_bytes = _image_blobs(store, rec, blobs, compress=False)
                entries[rec["id"]] = {
                    "Config": f"blobs/sha256/{hashlib.sha256(config_bytes).hexdigest()}",
                    "RepoTags": [],
                    "Layers": [f"blobs/sha256/{d['digest'][7:]}" for d in descs],
                }
            tags = entries[rec["id"]]["RepoTags"]
            for n in [found_as] if found_as else rec["names"]:
                if n not in tags:
                    tags.append(n)
        with open(os.path.join(work, "manifest.json"), "w") as f:
            json.dump(list(entries.values()), f)
        _write_archive(work, ("manifest.json", "blobs"), dest)
    except OSError as e:
        raise InvalidArgument(f"cannot save to {dest}: {e.strerror or e}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _put(blobs: str, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, digest), "wb") as f:
        f.write(data)
    return digest


# -- flattened exports: a rootfs tarball, a squashfs image ------------------------------------------------
COMPRESSORS = ("none", "gzip", "zstd", "xz")


def _merged_run(layers: list[str], work: str, fn: Callable[[str], None]) -> None:
    """Call ``fn(merged)`` in a child process whose private mount namespace has ``layers`` (lowest first)
    stacked read-only at ``merged``: the image as a container sees it, whiteouts applied, never on the host."""
    from pycontain import libc
    from pycontain.libc import escape_overlay

    merged, empty = os.path.join(work, "merged"), os.path.join(work, "empty")
    os.mkdir(merged, 0o700)
    os.mkdir(empty, 0o755)
    # overlayfs wants two lower directories when there is no upper one: an empty one goes at the bottom.
    lower = ":".join(escape_overlay(p) for p in [*reversed(layers), empty])
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child never returns into the caller's code
        code = 1
        try:
            os.close(r)
            libc.unshare(libc.CLONE_NEWNS)
            libc.mount(None, "/", None, libc.MS_REC | libc.MS_PRIVATE)
            libc.mount("overlay", merged, "overlay", libc.MS_RDONLY, f"lowerdir={lower}")
            fn(merged)
            code = 0
        except BaseException as e:
            os.write(w, (str(e) or type(e).__name__).encode(errors="replace"))
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        message = f.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise PycontainError(message or f"the export process failed ({os.waitstatus_to_exitcode(status)})")


def _check(
    argv: list[str], stdin: int | IO[Any] | None = None, stdout: int | IO[Any] | None = None
) -> subprocess.Popen:
    try:
        return subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE)
    except FileNotFoundError:
        pkg = {"mksquashfs": "squashfs-tools"}.get(argv[0], argv[0])
        raise Unsupported(f"{argv[0]} not found (apt-get install {pkg})") from None


def _finish(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        err = p.stderr.read().decode(errors="replace").strip() if p.stderr else ""
        if p.wait() != 0:
            raise PycontainError(
                f"{cast(list[str], p.args)[0]} failed: {err.splitlines()[-1] if err else f'exit status {p.returncode}'}"
            )


def _flat_export(ref: str, dest: str, data_root: str | None, write: Callable[[str, str], None]) -> dict:
    store = Store(data_root)
    rec = store.get(ref)
    if os.path.lexists(dest):
        raise AlreadyExists(f"{dest} already exists: export to a new path")
    parent = os.path.dirname(os.path.abspath(dest))
    if not os.path.isdir(parent):
        raise InvalidArgument(f"cannot export to {dest}: {parent} is not a directory")
    work = tempfile.mkdtemp(prefix=".export-", dir=parent)
    tmp = os.path.join(work, "out")
    try:
        with store.importing():  # the image's layers stay in place while they are read
            _merged_run([store.layer_path(d) for d in rec["layers"]], work, lambda merged: write(merged, tmp))
        os.rename(tmp, dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"id": rec["id"], "path": dest, "size": os.path.getsize(dest)}


def export_rootfs_tar(ref: str, dest: str, data_root: str | None = None, *, compress: str = "none") -> dict:
    """Write image ``ref``'s whole root filesystem (its layers merged) as one tarball, optionally compressed.

    Owners are numeric, file capabilities kept, members sorted by name: the same image gives the same tar.
    """
    if compress not in COMPRESSORS:
        raise InvalidArgument(f"--compress: unknown compression {compress!r} (use {', '.join(COMPRESSORS)})")

    def write(merged: str, out: str) -> None:
        tar = [
            "tar",
            "--numeric-owner",
            "--xattrs",
            "--xattrs-include=security.capability",
            "--sort=name",
            "--one-file-system",
            "-C",
            merged,
            "-cf",
            "-",
            ".",
        ]
        with open(out, "wb") as f:
            if compress == "none":
                _finish([_check(tar, stdout=f)])
                return
            zip_ = {
                "gzip": ["gzip", "-n", "-c"],
                "zstd": ["zstd", "-q", "-T0", "-c"],
                "xz": ["xz", "-T0", "-c"],
            }
            t = _check(tar, stdout=subprocess.PIPE)
            z = _check(zip_[compress], stdin=t.stdout, stdout=f)
            assert t.stdout is not None
            t.stdout.close()  # only the compressor holds the pipe: tar sees EPIPE if it dies
            _finish([t, z])

    return _flat_export(ref, dest, data_root, write)


def export_squashfs(ref: str, dest: str, data_root: str | None = None, *, compress: str = "gzip") -> dict:
    """Write image ``ref``'s whole root filesystem as a squashfs image (``mount -t squashfs``, ``unsquashfs``)."""
    if compress not in ("gzip", "zstd", "xz", "lzo", "lz4"):
        raise InvalidArgument(f"--compress: squashfs takes gzip, zstd, xz, lzo or lz4, not {compress!r}")

    def write(merged: str, out: str) -> None:
        _finish(
            [
                _check(
                    ["mksquashfs", merged, out, "-noappend", "-comp", compress, "-quiet", "-no-progress"],
                    stdout=subprocess.DEVNULL,
                )
            ]
        )

    return _flat_export(ref, dest, data_root, write)


def export(
    ref: str, dest: str, data_root: str | None = None, *, fmt: str = "oci", compress: str | None = None
) -> dict:
    """``pycontain image export``: image ``ref`` to ``dest`` as ``fmt``: oci (a layout directory),
    oci-archive, rootfs (one tarball of the merged root filesystem; ``compress`` none, gzip, zstd or xz) or
    squashfs (``compress`` gzip, zstd, xz, lzo or lz4). Returns ``export_image``'s dict for the OCI forms,
    else {"size": bytes}."""
    if fmt in ("oci", "oci-archive"):
        if compress is not None:
            raise InvalidArgument("--compress applies to --format rootfs and squashfs (OCI layers are gzip)")
        return export_image(ref, dest, data_root, archive=fmt == "oci-archive")
    if fmt == "rootfs":
        return export_rootfs_tar(ref, dest, data_root, compress=compress or "none")
    if fmt == "squashfs":
        return export_squashfs(ref, dest, data_root, compress=compress or "gzip")
    raise InvalidArgument(f"--format: unknown format {fmt!r} (oci, oci-archive, rootfs or squashfs)")
