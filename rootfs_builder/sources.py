"""Import images into the store from what other tools produce.

``import_source(source, name)`` takes:

* an OCI image layout directory (``oci:DIR[:REF]``, or a directory holding ``oci-layout``; ``DIR:REF``
  picks one of several images by its ``org.opencontainers.image.ref.name``);
* an oci-archive or docker-archive tarball (``oci-archive:FILE``, ``docker-archive:FILE``, or any tar
  file holding ``oci-layout`` / ``manifest.json``) as skopeo, ``podman save``, umoci and buildah write
  them, possibly gzip-compressed;
* a plain root filesystem tarball (``tar:FILE``; gzip, zstd, xz or bzip2 or none) or directory
  (``dir:DIR``, or any other directory): one layer;
* ``debian:SUITE`` (mmdebstrap, debootstrap as a fallback; see ``rootfs_builder.debian``);
* ``closure:BINARY[,BINARY...]`` (a host binary and its shared libraries; see ``rootfs_builder.closure``).

Layers are verified against their descriptors' digests (blob) and the config's ``diff_ids``; nothing is
recorded unless every layer is in place. The image id is the sha256 of its config, as in OCI and docker.
"""

from __future__ import annotations

import functools
import json
import os
import re
import tarfile

from pycontain.errors import InvalidArgument, NotFound
from rootfs_builder.blobs import Blobs, DirBlobs, TarBlobs
from rootfs_builder.layer import BadImage, decompressed
from rootfs_builder.onelayer import import_single_layer, tree_pipe
from rootfs_builder.progress import Progress
from rootfs_builder.store import Store, arch

SCHEMES = ("oci", "oci-archive", "docker-archive", "dir", "tar", "debian", "closure")
_DIGEST_RE = re.compile(r"^sha256:([0-9a-f]{64})$")
INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)


def _hex(digest: object, what: str) -> str:
    m = _DIGEST_RE.match(digest) if isinstance(digest, str) else None
    if not m:
        raise BadImage(f"{what}: unsupported or malformed digest {digest!r} (only sha256 is supported)")
    return m.group(1)


def _json(data: bytes, what: str) -> dict:
    try:
        obj = json.loads(data)
    except ValueError as e:
        raise BadImage(f"{what} is not valid JSON ({e})") from None
    if not isinstance(obj, dict | list):
        raise BadImage(f"{what} is not a JSON object")
    return obj  # type: ignore[return-value]  # docker-archive's manifest.json is a list: its caller checks


# -- detection ------------------------------------------------------------------------------------
def _sniff_archive(path: str) -> tuple[str, bool]:
    """('oci-archive'|'docker-archive'|'tar', compressed) for a tar file, from its first members."""
    try:
        with open(path, "rb") as raw:
            stream, kind = decompressed(raw)
            names = []
            try:
                with tarfile.open(fileobj=stream, mode="r|") as tf:
                    for i, ti in enumerate(tf):
                        names.append(os.path.normpath(ti.name.lstrip("/")))
                        if i >= 400 or ("oci-layout" in names or "manifest.json" in names):
                            break
            finally:
                kill = getattr(stream, "kill", None)
                if kill is not None:
                    kill()
    except (tarfile.TarError, EOFError, ValueError) as e:
        raise BadImage(f"{path}: not a tar archive, or a corrupt one ({e})") from None
    except OSError as e:
        if e.errno is not None:
            raise
        raise BadImage(f"{path}: corrupt {kind}-compressed data ({e})") from None
    if "oci-layout" in names or ("index.json" in names and any(n.startswith("blobs/") for n in names)):
        return "oci-archive", kind != "none"
    if "manifest.json" in names or "repositories" in names:
        return "docker-archive", kind != "none"
    return "tar", kind != "none"


def detect(source: str) -> tuple[str, str, str | None]:
    """(kind, path, ref) for a source string."""
    scheme, sep, rest = source.partition(":")
    if sep and scheme in SCHEMES and rest:
        path, ref = rest, None
        if scheme in ("oci", "oci-archive", "docker-archive") and not os.path.exists(rest) and ":" in rest:
            path, _, ref = rest.rpartition(":")
        return scheme, path, ref
    ref = None
    path = source
    if not os.path.exists(path) and ":" in path:
        head, _, tail = path.rpartition(":")
        if os.path.isdir(head) and os.path.isfile(os.path.join(head, "oci-layout")):
            path, ref = head, tail
    if os.path.isdir(path):
        return ("oci" if os.path.isfile(os.path.join(path, "oci-layout")) else "dir"), path, ref
    if os.path.isfile(path):
        return _sniff_archive(path)[0], path, ref
    if os.path.lexists(path):
        raise InvalidArgument(f"cannot import {source!r}: not a file or a directory")
    raise NotFound(
        f"no such file or directory: {source!r} (import an OCI layout directory, an oci-archive or "
        "docker-archive tarball, a rootfs tarball or directory, debian:SUITE or closure:BINARY)"
    )


# -- OCI and docker images ------------------------------------------------------------------------
def _choose_manifest(blobs: Blobs, index: dict, ref: str | None, where: str) -> tuple[dict, str | None]:
    """The manifest descriptor to import from an OCI index (following nested indexes to this platform)."""
    manifests = index.get("manifests")
    if not isinstance(manifests, list) or not manifests:
        raise BadImage(f"{where}: index.json lists no manifests")
    found_name = None
    if ref is not None:
        chosen = [
            m
            for m in manifests
            if (m.get("annotations") or {}).get("org.opencontainers.image.ref.name") in (ref,)
            or (m.get("annotations") or {}).get("io.containerd.image.name") == ref
        ]
        if not chosen:
            names = sorted(
                {
                    (m.get("annotations") or {}).get("org.opencontainers.image.ref.name", "?")
                    for m in manifests
                }
            )
            raise NotFound(f"{where}: no image named {ref!r} in the layout (it holds: {', '.join(names)})")
        manifests = chosen
    if len({m.get("digest") for m in manifests}) > 1:
        platform_ok = [m for m in manifests if _platform_ok(m.get("platform"))]
        if len({m.get("digest") for m in platform_ok}) == 1:
            manifests = platform_ok
        else:
            names = sorted(
                {
                    (m.get("annotations") or {}).get("org.opencontainers.image.ref.name", "?")
                    for m in manifests
                }
            )
            raise InvalidArgument(
                f"{where} holds {len(manifests)} images ({', '.join(names)}): choose one with {where}:NAME"
            )
    desc = manifests[0]
    ann = desc.get("annotations") or {}
    found_name = ann.get("io.containerd.image.name") or ann.get("org.opencontainers.image.ref.name")
    if desc.get("mediaType") in INDEX_TYPES:
        sub = _json(_read_blob(blobs, desc, where, "the image index"), f"{where}: the image index")
        candidates = [m for m in sub.get("manifests") or [] if _platform_ok(m.get("platform"))]
        if not candidates:
            raise NotFound(f"{where}: the image has no variant for linux/{arch()}")
        return candidates[0], found_name
    return desc, found_name


def _platform_ok(platform: object) -> bool:
    if not isinstance(platform, dict):
        return True
    return platform.get("os", "linux") == "linux" and platform.get("architecture", arch()) == arch()


def _size(desc: dict, what: str) -> int | None:
    """A descriptor's ``size``: the most that is read of its blob."""
    size = desc.get("size")
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise BadImage(f"{what}: the descriptor's size is {size!r}, not a byte count")
    return size


def _read_blob(blobs: Blobs, desc: object, where: str, what: str) -> bytes:
    import hashlib

    if not isinstance(desc, dict):
        raise BadImage(f"{where}: malformed descriptor for {what}")
    hexd = _hex(desc.get("digest"), f"{where}: {what}")
    size = _size(desc, f"{where}: {what}")
    rel = f"blobs/sha256/{hexd}"
    if size is None:
        data = blobs.read(rel, f"{where}: {what}")
    else:
        if size > 16 << 20:
            raise BadImage(f"{where}: {what} is implausibly large (its descriptor says {size} bytes)")
        with blobs.open(rel, f"{where}: {what}", size) as f:
            data = f.read(size + 1)
        if len(data) != size:
            raise BadImage(f"{where}: {what} is {len(data)} bytes, its descriptor says {size}")
    actual = hashlib.sha256(data).hexdigest()
    if actual != hexd:
        raise BadImage(
            f"{where}: digest mismatch for {what}: it is sha256:{actual}, its descriptor says "
            f"sha256:{hexd} (a corrupt or tampered image)"
        )
    return data


def _import_layers(
    store: Store,
    blobs: Blobs,
    layers: list[tuple[str, str | None, str, int | None]],
    where: str,
    progress: Progress,
) -> tuple[list[str], list[int]]:
    """Unpack each (blob path, expected blob hex, expected diff hex, size) in order; return diffs, sizes."""
    diffs, sizes = [], []
    for n, (rel, blob_hex, diff_hex, size) in enumerate(layers, 1):
        what = f"{where}: layer {n}/{len(layers)} ({diff_hex[:12]})"
        advance = (
            progress.task(f"layer {n}/{len(layers)} {diff_hex[:12]}", size)
            if not os.path.isdir(store.layer_path(diff_hex))
            else None
        )
        diff, usize, _new = store.add_layer(
            functools.partial(blobs.open, rel, what, size),
            what,
            expect_diff=diff_hex,
            expect_blob=blob_hex,
            progress=advance,
        )
        diffs.append(diff)
        sizes.append(usize)
    return diffs, sizes


def _import_oci(
    store: Store,
    blobs: Blobs,
    where: str,
    ref: str | None,
    name: str | None,
    progress: Progress,
    source: str,
) -> dict:
    try:
        layout = _json(blobs.read("oci-layout", f"{where}: oci-layout"), f"{where}: oci-layout")
        if layout.get("imageLayoutVersion") != "1.0.0":
            raise BadImage(f"{where}: unsupported imageLayoutVersion {layout.get('imageLayoutVersion')!r}")
    except BadImage:
        if not blobs.exists("index.json"):
            raise
    index = _json(blobs.read("index.json", f"{where}: index.json"), f"{where}: index.json")
    desc, found_name = _choose_manifest(blobs, index, ref, where)
    manifest_bytes = _read_blob(blobs, desc, where, "the manifest")
    manifest = _json(manifest_bytes, f"{where}: the manifest")
    config_bytes = _read_blob(blobs, manifest.get("config"), where, "the image config")
    config = _json(config_bytes, f"{where}: the image config")
    descs = manifest.get("layers") or []
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
    if len(descs) != len(diff_ids):
        raise BadImage(
            f"{where}: the manifest lists {len(descs)} layers but the config {len(diff_ids)} diff_ids"
        )
    layers: list[tuple[str, str | None, str, int | None]] = []
    for d, diff in zip(descs, diff_ids, strict=True):
        if "encrypted" in str(d.get("mediaType", "")):
            raise BadImage(f"{where}: encrypted layers are not supported")
        hexd = _hex(d.get("digest"), f"{where}: a layer descriptor")
        size = _size(d, f"{where}: a layer descriptor")
        layers.append((f"blobs/sha256/{hexd}", hexd, _hex(diff, f"{where}: a diff_id"), size))
    progress.status(f"importing {where}")
    diffs, sizes = _import_layers(store, blobs, layers, where, progress)
    if name is None and found_name and (":" in found_name or "/" in found_name):
        name = _valid_name_or_none(found_name)
    return store.add_image(
        config_bytes, diffs, name=name, source=source, manifest_bytes=manifest_bytes, sizes=sizes
    )


def import_pulled(store: Store, layout: str, ref: str, where: str, name: str | None, bar: Progress) -> dict:
    """Import image ``ref`` of the OCI layout a pull wrote (``rootfs_builder.registry``), recorded as from
    ``docker://where``; the caller holds the store's import lock."""
    return _import_oci(store, DirBlobs(layout), where, ref, name, bar, f"docker://{where}")


def _import_docker(
    store: Store, blobs: Blobs, where: str, name: str | None, progress: Progress, source: str
) -> dict:
    entries = _docker_entries(blobs, where)
    if len(entries) > 1:
        raise InvalidArgument(
            f"{where} holds {len(entries)} images: 'pycontain load -i {where}' loads them all"
        )
    return _import_docker_entry(store, blobs, where, entries[0], name, progress, source)


def _docker_entries(blobs: Blobs, where: str) -> list[dict]:
    manifest = _json(blobs.read("manifest.json", f"{where}: manifest.json"), f"{where}: manifest.json")
    if not isinstance(manifest, list) or not manifest or not all(isinstance(e, dict) for e in manifest):
        raise BadImage(f"{where}: manifest.json lists no images")
    return manifest


def _import_docker_entry(
    store: Store, blobs: Blobs, where: str, entry: dict, name: str | None, progress: Progress, source: str
) -> dict:
    import hashlib

    cfg_name = entry.get("Config")
    if not isinstance(cfg_name, str):
        raise BadImage(f"{where}: manifest.json names no Config")
    config_bytes = blobs.read(cfg_name, f"{where}: the image config")
    stem = os.path.basename(cfg_name).removesuffix(".json")
    actual = hashlib.sha256(config_bytes).hexdigest()
    if re.fullmatch(r"[0-9a-f]{64}", stem) and stem != actual:
        raise BadImage(
            f"{where}: digest mismatch for the image config: it is sha256:{actual}, its name says "
            f"sha256:{stem} (a corrupt or tampered image)"
        )
    config = _json(config_bytes, f"{where}: the image config")
    files = entry.get("Layers") or []
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
    if len(files) != len(diff_ids):
        raise BadImage(
            f"{where}: manifest.json lists {len(files)} layers but the config {len(diff_ids)} diff_ids"
        )
    layers: list[tuple[str, str | None, str, int | None]] = [
        (f, None, _hex(d, f"{where}: a diff_id"), blobs.size(f)) for f, d in zip(files, diff_ids, strict=True)
    ]
    progress.status(f"importing {where}")
    diffs, sizes = _import_layers(store, blobs, layers, where, progress)
    tags = [t for t in entry.get("RepoTags") or [] if isinstance(t, str)]
    rec = store.add_image(
        config_bytes,
        diffs,
        name=name if name is not None or not tags else _valid_name_or_none(tags[0]),
        source=source,
        sizes=sizes,
    )
    if name is None:
        for extra in tags[1:]:
            if (valid := _valid_name_or_none(extra)) is not None:
                store.tag(rec["id"], valid)
        rec = store.get(rec["id"])
    return rec


def load_archive(path: str, data_root: str | None = None, *, progress: bool | None = None) -> list[dict]:
    """Every image of a docker-archive (``docker save``, ``podman save``) or oci-archive, named as saved."""
    kind, path, ref = detect(path)
    if kind not in ("oci-archive", "docker-archive"):
        raise InvalidArgument(f"{path}: not a docker-archive or oci-archive tarball")
    store = Store(data_root)
    with Progress(progress) as bar, store.importing():
        archive, tmp = _uncompressed_archive(store, path, bar)
        blobs = TarBlobs(archive)
        try:
            source = f"{kind}:{os.path.abspath(path)}"
            if kind == "docker-archive":
                return [
                    _import_docker_entry(store, blobs, path, entry, None, bar, source)
                    for entry in _docker_entries(blobs, path)
                ]
            return [_import_oci(store, blobs, path, ref, None, bar, source)]
        finally:
            blobs.close()
            if tmp:
                os.unlink(tmp)


def _valid_name_or_none(name: str) -> str | None:
    from rootfs_builder.store import parse_name

    try:
        return parse_name(name)
    except InvalidArgument:
        return None


def import_source(
    source: str,
    name: str | None = None,
    data_root: str | None = None,
    *,
    progress: bool | None = None,
    config: dict | None = None,
    variant: str = "minbase",
    include: list[str] | None = None,
    mirror: str | None = None,
    files: list[str] | None = None,
) -> dict:
    """Import ``source`` into the store (optionally naming it ``name[:tag]``); return the image's record.

    ``config`` (Entrypoint, Cmd, Env...) is the image config for single-layer sources (tarballs,
    directories, bootstraps, closures). A ``debian:`` source is bootstrapped with ``variant``, the packages
    of ``include`` (names, or comma-separated lists of them) and ``mirror``; a ``closure:`` source also
    copies the host paths of ``files``. The other kinds ignore those four.
    """
    from rootfs_builder.store import parse_name

    if name is not None:
        name = parse_name(name)
    kind, path, ref = detect(source)
    store = Store(data_root)
    with Progress(progress) as bar, store.importing():
        if kind == "oci":
            return _import_oci(store, DirBlobs(path), path, ref, name, bar, f"oci:{os.path.abspath(path)}")
        if kind in ("oci-archive", "docker-archive"):
            archive, tmp = _uncompressed_archive(store, path, bar)
            blobs = TarBlobs(archive)
            try:
                if kind == "oci-archive":
                    return _import_oci(
                        store, blobs, path, ref, name, bar, f"oci-archive:{os.path.abspath(path)}"
                    )
                return _import_docker(
                    store, blobs, path, name, bar, f"docker-archive:{os.path.abspath(path)}"
                )
            finally:
                blobs.close()
                if tmp:
                    os.unlink(tmp)
        if kind == "tar":
            if not os.path.isfile(path):
                raise NotFound(f"no such file: {path!r}")
            return import_single_layer(
                store,
                lambda: open(path, "rb"),
                path,
                name,
                f"tar:{os.path.abspath(path)}",
                config,
                bar,
                os.path.getsize(path),
                "pycontain import (rootfs tarball)",
            )
        if kind == "dir":
            if not os.path.isdir(path):
                raise NotFound(f"no such directory: {path!r}")
            root = os.path.realpath(path)
            return import_single_layer(
                store,
                lambda: tree_pipe(root),
                path,
                name,
                f"dir:{root}",
                config,
                bar,
                None,
                "pycontain import (directory)",
            )
        if kind == "debian":
            from rootfs_builder.debian import import_debian

            pkgs = [p for item in include or [] for p in item.split(",") if p]
            return import_debian(
                store, path, name, bar, config=config, variant=variant, include=pkgs, mirror=mirror
            )
        if kind == "closure":
            from rootfs_builder.closure import import_closure

            return import_closure(store, path.split(","), name, bar, config=config, files=list(files or []))
    raise InvalidArgument(f"unknown source kind {kind!r}")


def _uncompressed_archive(store: Store, path: str, bar: Progress) -> tuple[str, str | None]:
    """A compressed image archive (``docker save | gzip``) is decompressed once into the store's tmp dir."""
    with open(path, "rb") as raw:
        head = raw.read(6)
    if (
        head[:2] != b"\x1f\x8b"
        and head[:4] != b"\x28\xb5\x2f\xfd"
        and head[:6] != b"\xfd7zXZ\x00"
        and head[:3] != b"BZh"
    ):
        return path, None
    import shutil
    import tempfile

    tmpdir = os.path.join(store.root, "tmp")
    os.makedirs(tmpdir, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="archive-", suffix=".tar", dir=tmpdir)
    bar.status(f"decompressing {path}")
    try:
        with open(path, "rb") as raw, os.fdopen(fd, "wb") as out:
            stream, kind = decompressed(raw)
            try:
                shutil.copyfileobj(stream, out, 1 << 20)
            except (EOFError, ValueError) as e:
                raise BadImage(f"{path}: corrupt or truncated {kind}-compressed archive ({e})") from None
            except OSError as e:
                if e.errno is not None:
                    raise
                raise BadImage(f"{path}: corrupt {kind}-compressed archive ({e})") from None
            finish = getattr(stream, "finish", None)
            if finish is not None:
                finish()
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp, tmp
