"""Helpers for the image-store tests: hand-made OCI layouts and layers, and an overlayfs view of an image.

``overlay_run(layers, argv)`` forks a child that unshares its mount namespace, stacks the layers with
overlayfs (lowest first, as the store returns them) under a throw-away upper directory, chroots into the
result and runs ``argv``: the host never sees the mount, and it vanishes with the child.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

import pytest

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="the image store tests need root (overlayfs, chown)")
ROOTFS_DEFAULT = "/var/lib/pycontain/rootfs/default"


def need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed (apt-get install {tool})")


def default_rootfs() -> str:
    import rootfs_builder

    return rootfs_builder.resolve("default")


# -- an overlayfs view of layers --------------------------------------------------------------------
def overlay_run(layers: list[str], argv: list[str], timeout: float = 60) -> tuple[int, str]:
    """Run ``argv`` chrooted in the overlay of ``layers`` (lowest first); return (exit status, output)."""
    from pycontain import libc

    scratch = tempfile.mkdtemp(prefix="ovl-", dir="/tmp")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        try:
            os.close(r)
            os.dup2(w, 1)
            os.dup2(w, 2)
            libc.unshare(libc.CLONE_NEWNS)
            libc.mount(None, "/", None, libc.MS_REC | libc.MS_PRIVATE)
            upper, work, merged = (os.path.join(scratch, d) for d in ("upper", "work", "merged"))
            for d in (upper, work, merged):
                os.mkdir(d)
            lower = ":".join(reversed(layers))
            libc.mount("overlay", merged, "overlay", 0, f"lowerdir={lower},upperdir={upper},workdir={work}")
            os.chroot(merged)
            os.chdir("/")
            os.execve(argv[0], argv, {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"})
        except BaseException as e:
            os.write(2, f"overlay_run: {e}\n".encode())
        os._exit(126)
    os.close(w)
    chunks = []
    with os.fdopen(r, "rb") as f:
        while data := f.read(65536):
            chunks.append(data)
    _, status = os.waitpid(pid, 0)
    shutil.rmtree(scratch, ignore_errors=True)
    return os.waitstatus_to_exitcode(status), b"".join(chunks).decode(errors="replace")


def sh(layers: list[str], script: str) -> tuple[int, str]:
    """``script`` run by the image's busybox sh."""
    return overlay_run(layers, ["/bin/sh", "-c", script])


# -- hand-made layers and OCI layouts -----------------------------------------------------------------
class Layer:
    """Builds a layer tar in memory: ``file``, ``dir``, ``symlink``, ``hardlink``, ``whiteout``, ``opaque``..."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.tf = tarfile.open(fileobj=self.buf, mode="w", format=tarfile.PAX_FORMAT)
        self.last_size = 0

    def _add(
        self, name: str, type_: bytes, data: bytes = b"", mode: int = 0o644, linkname: str = "", **kw: object
    ) -> Layer:
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode, ti.linkname, ti.mtime = type_, mode, linkname, 1700000000
        for k, v in kw.items():
            setattr(ti, k, v)
        ti.size = len(data) if type_ == tarfile.REGTYPE else 0
        self.tf.addfile(ti, io.BytesIO(data) if type_ == tarfile.REGTYPE else None)
        self.last_size = ti.size
        return self

    def file(self, name: str, data: bytes | str, mode: int = 0o644, **kw: object) -> Layer:
        return self._add(name, tarfile.REGTYPE, data.encode() if isinstance(data, str) else data, mode, **kw)

    def dir(self, name: str, mode: int = 0o755) -> Layer:
        return self._add(name, tarfile.DIRTYPE, mode=mode)

    def symlink(self, name: str, target: str) -> Layer:
        return self._add(name, tarfile.SYMTYPE, mode=0o777, linkname=target)

    def hardlink(self, name: str, target: str) -> Layer:
        return self._add(name, tarfile.LNKTYPE, linkname=target)

    def device(self, name: str, block: bool = False, major: int = 8, minor: int = 0) -> Layer:
        return self._add(
            name, tarfile.BLKTYPE if block else tarfile.CHRTYPE, mode=0o600, devmajor=major, devminor=minor
        )

    def whiteout(self, name: str) -> Layer:
        d, _, base = name.rpartition("/")
        return self.file(f"{d}/.wh.{base}" if d else f".wh.{base}", b"", 0o000)

    def opaque(self, dirname: str) -> Layer:
        return self.file(f"{dirname}/.wh..wh..opq", b"", 0o000)

    def bytes(self, end_blocks: bool = True) -> bytes:
        """The tar; without ``end_blocks`` it stops right after the last member's data, without its padding
        to a whole block either (as Debian's umoci 0.4.7 writes)."""
        if end_blocks:
            self.tf.close()
            return self.buf.getvalue()
        return self.buf.getvalue()[: self.tf.offset - (-self.last_size % 512)]


def tree_layer(root: str) -> bytes:
    """A layer tar of a directory's tree (the busybox rootfs as a base layer)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        tf.add(root, arcname=".")
    return buf.getvalue()


def compress(data: bytes, how: str) -> tuple[bytes, str]:
    if how == "gzip":
        return gzip.compress(data, mtime=0), "application/vnd.oci.image.layer.v1.tar+gzip"
    if how == "zstd":
        out = subprocess.run(["zstd", "-q", "-c"], input=data, capture_output=True, check=True).stdout
        return out, "application/vnd.oci.image.layer.v1.tar+zstd"
    return data, "application/vnd.oci.image.layer.v1.tar"


def _blob(layout: str, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    os.makedirs(os.path.join(layout, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(layout, "blobs", "sha256", digest), "wb") as f:
        f.write(data)
    return digest


def make_oci_layout(
    layout: str,
    layers: list[bytes],
    *,
    compression: list[str] | None = None,
    config: dict | None = None,
    ref: str = "latest",
    diff_ids: list[str] | None = None,
    blob_digests: list[str] | None = None,
) -> dict:
    """Write an OCI image layout holding one image made of ``layers`` (uncompressed tars, lowest first).

    ``diff_ids`` / ``blob_digests`` override the true digests (for the digest-mismatch cases).
    """
    os.makedirs(layout, exist_ok=True)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    compression = compression or ["gzip"] * len(layers)
    descs, diffs = [], []
    for i, (tar, how) in enumerate(zip(layers, compression, strict=True)):
        data, media = compress(tar, how)
        digest = _blob(layout, data)
        if blob_digests and blob_digests[i]:
            os.rename(
                os.path.join(layout, "blobs", "sha256", digest),
                os.path.join(layout, "blobs", "sha256", blob_digests[i]),
            )
            digest = blob_digests[i]
        descs.append({"mediaType": media, "digest": f"sha256:{digest}", "size": len(data)})
        diffs.append(f"sha256:{diff_ids[i] if diff_ids and diff_ids[i] else hashlib.sha256(tar).hexdigest()}")
    cfg = {
        "architecture": "amd64",
        "os": "linux",
        "config": config or {},
        "rootfs": {"type": "layers", "diff_ids": diffs},
    }
    cfg_bytes = json.dumps(cfg).encode()
    cfg_digest = _blob(layout, cfg_bytes)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": f"sha256:{cfg_digest}",
            "size": len(cfg_bytes),
        },
        "layers": descs,
    }
    m_bytes = json.dumps(manifest).encode()
    m_digest = _blob(layout, m_bytes)
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": f"sha256:{m_digest}",
                "size": len(m_bytes),
                "annotations": {"org.opencontainers.image.ref.name": ref},
            }
        ],
    }
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump(index, f)
    return {"config_digest": cfg_digest, "diff_ids": [d[7:] for d in diffs]}


def store_state(data_root: str) -> dict:
    """What the store holds: layer dirs, leftovers (temporary or trash dirs), image ids."""
    layers_dir = os.path.join(data_root, "layers")
    entries = os.listdir(layers_dir) if os.path.isdir(layers_dir) else []
    index_path = os.path.join(data_root, "images", "index.json")
    images = {}
    if os.path.exists(index_path):
        with open(index_path) as f:
            images = json.load(f)["images"]
    return {
        "layers": sorted(e for e in entries if not e.startswith(".")),
        "leftovers": sorted(e for e in entries if e.startswith((".tmp-", ".trash-"))),
        "images": sorted(images),
    }


def cli(
    data_root: str, *args: str, state_root: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    """``pycontain`` with the image commands registered (the lead's registration line may not exist yet)."""
    code = (
        "import sys; import pycontain.cli.app; import pycontain.cli.image_cmds; "
        "from pycontain.cli import main; sys.exit(main())"
    )
    argv = [sys.executable, "-c", code]
    if state_root:
        argv += ["--root", state_root]
    env = {**os.environ, "PYCONTAIN_DATA": data_root}
    return subprocess.run(argv + list(args), capture_output=True, text=True, timeout=timeout, env=env)


def seeded_data_root(path: str) -> str:
    """A fresh data root whose busybox .deb cache is the host's: its ``default`` rootfs builds offline, fast."""
    host_debs = os.path.join(os.environ.get("PYCONTAIN_DATA") or "/var/lib/pycontain", "cache", "debs")
    os.makedirs(os.path.join(path, "cache"), exist_ok=True)
    if os.path.isdir(host_debs):
        shutil.copytree(host_debs, os.path.join(path, "cache", "debs"))
    return path


def remove_containers(state_root: str, data_root: str) -> None:
    """``rm -f`` every container of a test's private state root (what it started, even when it failed)."""
    if not os.path.isdir(state_root):
        return
    ids = [d for d in os.listdir(state_root) if len(d) == 64]
    if ids:
        cli(data_root, "rm", "-f", *ids, state_root=state_root, timeout=60)
