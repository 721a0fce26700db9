"""Flattened exports: a rootfs tarball (plain and zstd) and a squashfs image hold exactly the tree a container
of the image sees (whiteouts and opaque directories applied), and unpack to the same files."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile

import pytest

import rootfs_builder
from rootfs_builder.export import export_rootfs_tar, export_squashfs
from rootfs_builder.sources import import_source

from . import ROOT_ONLY, Layer, cli, default_rootfs, make_oci_layout, need, sh, tree_layer

pytestmark = ROOT_ONLY


@pytest.fixture
def image(tmp_path) -> tuple[str, list[str]]:
    """An image of three layers with a deleted file and an opaque directory; (data root, its tree's paths)."""
    data = str(tmp_path / "data")
    mid = (
        Layer()
        .dir("opq")
        .file("opq/a", "a\n")
        .file("opq/sub/x", "x\n")
        .file("etc/gone", "g\n")
        .file("bin/tool", "#!/bin/sh\necho tool\n", mode=0o755)
        .bytes()
    )
    top = (
        Layer()
        .dir("opq")
        .opaque("opq")
        .file("opq/c", "c\n")
        .whiteout("etc/gone")
        .file("home/u/f", "f\n", uid=1000, gid=1000)
        .bytes()
    )
    layout = str(tmp_path / "layout")
    make_oci_layout(layout, [tree_layer(default_rootfs()), mid, top], config={"Cmd": ["/bin/sh"]})
    import_source(layout, "flat", data, progress=False)
    code, out = sh(rootfs_builder.resolve_image("flat", data).layers, "cd / && find . -xdev")
    assert code == 0, out
    paths = sorted(p for p in out.split("\n") if p and p != ".")
    yield data, paths
    shutil.rmtree(data, ignore_errors=True)


def _listing(root: str) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            out.append("./" + os.path.relpath(os.path.join(dirpath, name), root))
    return sorted(out)


def _check_tree(root: str, paths: list[str]) -> None:
    assert _listing(root) == paths
    assert not os.path.lexists(os.path.join(root, "etc", "gone"))
    assert sorted(os.listdir(os.path.join(root, "opq"))) == ["c"]
    st = os.lstat(os.path.join(root, "home", "u", "f"))
    assert (st.st_uid, st.st_gid) == (1000, 1000)
    assert os.stat(os.path.join(root, "bin", "tool")).st_mode & 0o777 == 0o755
    assert os.path.samefile(
        os.path.join(root, "bin", "busybox"), os.path.realpath(os.path.join(root, "bin", "busybox"))
    )


@pytest.mark.parametrize("compress", ["none", "zstd"])
def test_rootfs_tar_round_trip(image, tmp_path, compress):
    data, paths = image
    if compress == "zstd":
        need("zstd")
    dest = str(tmp_path / f"rootfs.tar{'.zst' if compress == 'zstd' else ''}")
    out = export_rootfs_tar("flat", dest, data, compress=compress)
    assert out["size"] == os.path.getsize(dest) > 0
    with open(dest, "rb") as f:
        magic = f.read(4)
    assert (magic == b"\x28\xb5\x2f\xfd") == (compress == "zstd")
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    subprocess.run(["tar", "--numeric-owner", "-xpf", dest, "-C", str(unpacked)], check=True, timeout=60)
    _check_tree(str(unpacked), paths)
    if compress == "none":
        with tarfile.open(dest) as tf:
            assert sorted("./" + os.path.normpath(n) for n in tf.getnames() if n != ".") == paths
    # The tarball is itself an image source: a one-layer image of the same tree.
    data2 = str(tmp_path / "data2")
    import_source(dest, "again", data2, progress=False)
    code, listing = sh(rootfs_builder.resolve_image("again", data2).layers, "cd / && find . -xdev")
    assert sorted(p for p in listing.split("\n") if p and p != ".") == paths
    shutil.rmtree(data2, ignore_errors=True)


def test_squashfs_round_trip(image, tmp_path):
    need("mksquashfs")
    data, paths = image
    dest = str(tmp_path / "rootfs.squashfs")
    export_squashfs("flat", dest, data)
    with open(dest, "rb") as f:
        assert f.read(4) == b"hsqs"
    out = str(tmp_path / "unsquashed")
    subprocess.run(["unsquashfs", "-q", "-n", "-d", out, dest], check=True, timeout=60, capture_output=True)
    _check_tree(out, paths)


def test_export_cli_formats_and_errors(image, tmp_path):
    data, _ = image
    p = cli(
        data,
        "image",
        "export",
        "--format",
        "rootfs",
        "--compress",
        "zstd",
        "flat",
        str(tmp_path / "r.tar.zst"),
    )
    assert p.returncode == 0 and "exported flat" in p.stdout, p.stderr
    p = cli(data, "image", "export", "--format", "rootfs", "flat", str(tmp_path / "r.tar.zst"))
    assert p.returncode == 125 and "already exists" in p.stderr
    p = cli(data, "image", "export", "--format", "rootfs", "--compress", "rar", "flat", str(tmp_path / "x"))
    assert p.returncode == 125 and "unknown compression 'rar'" in p.stderr
    p = cli(data, "image", "export", "--format", "vhd", "flat", str(tmp_path / "x"))
    assert p.returncode == 125 and "unknown format 'vhd'" in p.stderr
    assert sorted(os.listdir(tmp_path)) == sorted(["data", "layout", "r.tar.zst"])  # no temporary left behind
