"""Hostile and broken input: rejected with one clear line, nothing written outside the store, the store
left as it was (no half-unpacked layer, no image record)."""

from __future__ import annotations

import gzip
import hashlib
import os
import tarfile

import pytest

from pycontain.errors import PycontainError
from rootfs_builder.layer import BadImage
from rootfs_builder.sources import import_source

from . import ROOT_ONLY, Layer, cli, make_oci_layout, store_state

pytestmark = ROOT_ONLY


@pytest.fixture
def env(tmp_path):
    """(data root, a directory outside the store that must stay empty, a place for inputs)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    inputs = tmp_path / "in"
    inputs.mkdir()
    return str(tmp_path / "data"), str(outside), str(inputs)


def _reject(data: str, outside: str, source: str, match: str) -> BadImage:
    with pytest.raises(BadImage, match=match) as info:
        import_source(source, "bad", data, progress=False)
    message = str(info.value)
    assert "\n" not in message
    assert os.listdir(outside) == []
    state = store_state(data)
    assert state["layers"] == [] and state["leftovers"] == [] and state["images"] == []
    return info.value


def _tarball(inputs: str, layer: Layer, name: str = "layer.tar") -> str:
    path = os.path.join(inputs, name)
    with open(path, "wb") as f:
        f.write(layer.bytes())
    return path


def test_dotdot_member(env):
    data, outside, inputs = env
    name = "a/../../" + os.path.relpath(outside, "/") + "/evil"
    _reject(data, outside, _tarball(inputs, Layer().file("ok", "x").file(name, "pwned")), "escapes the layer")


def test_absolute_member(env):
    data, outside, inputs = env
    _reject(data, outside, _tarball(inputs, Layer().file(outside + "/evil", "pwned")), "absolute path")


def test_write_through_symlink(env):
    data, outside, inputs = env
    layer = Layer().symlink("etc", outside).file("etc/passwd", "pwned")
    _reject(data, outside, _tarball(inputs, layer), "through the symbolic link 'etc'")


def test_write_through_relative_symlink_to_parent(env):
    data, outside, inputs = env
    layer = Layer().symlink("up", "../../../../../../../../" + outside.lstrip("/")).dir("up/sub")
    _reject(data, outside, _tarball(inputs, layer), "through the symbolic link 'up'")


def test_hardlink_outside(env):
    data, outside, inputs = env
    secret = os.path.join(os.path.dirname(outside), "secret")
    with open(secret, "w") as f:
        f.write("secret\n")
    _reject(data, outside, _tarball(inputs, Layer().hardlink("x", secret)), "absolute path")
    _reject(data, outside, _tarball(inputs, Layer().hardlink("x", "../secret")), "escapes the layer")
    _reject(
        data,
        outside,
        _tarball(inputs, Layer().symlink("l", os.path.dirname(outside)).hardlink("x", "l/secret")),
        "through the symbolic link 'l'",
    )
    _reject(data, outside, _tarball(inputs, Layer().hardlink("x", "missing")), "not in this layer")
    assert os.stat(secret).st_nlink == 1


def test_device_nodes(env):
    data, outside, inputs = env
    _reject(
        data, outside, _tarball(inputs, Layer().device("bin/disk", block=True)), "device node outside /dev"
    )
    _reject(
        data, outside, _tarball(inputs, Layer().device("mem", major=1, minor=1)), "device node outside /dev"
    )
    # under /dev they are skipped (each container gets its own /dev), the rest of the layer is kept
    rec = import_source(
        _tarball(inputs, Layer().dir("dev").device("dev/sda", block=True).file("f", "x")),
        "ok",
        data,
        progress=False,
    )
    layer = os.path.join(data, "layers", rec["layers"][0])
    assert os.listdir(os.path.join(layer, "dev")) == [] and os.path.isfile(os.path.join(layer, "f"))


def test_trusted_xattrs_are_not_restored(env):
    data, outside, inputs = env
    layer = Layer()
    ti = tarfile.TarInfo("d")
    ti.type, ti.mode = tarfile.DIRTYPE, 0o755
    ti.pax_headers = {"SCHILY.xattr.trusted.overlay.opaque": "y", "SCHILY.xattr.user.kept": "yes"}
    layer.tf.addfile(ti)
    rec = import_source(_tarball(inputs, layer), "x", data, progress=False)
    d = os.path.join(data, "layers", rec["layers"][0], "d")
    assert "trusted.overlay.opaque" not in os.listxattr(d)


def test_truncated_and_corrupt_archives(env):
    data, outside, inputs = env
    full = Layer().file("big", os.urandom(200_000)).file("small", "x").bytes()
    cut = os.path.join(inputs, "cut.tar")
    with open(cut, "wb") as f:
        f.write(full[:100_000])
    _reject(data, outside, f"tar:{cut}", "corrupt or truncated")
    gz = os.path.join(inputs, "cut.tar.gz")
    with open(gz, "wb") as f:
        f.write(gzip.compress(full)[:50_000])
    _reject(data, outside, f"tar:{gz}", "corrupt|truncated")
    # Without padding or end-of-archive blocks (as umoci writes) is accepted; cut inside the last
    # member's data is not, even where the cut falls in the block that padding would complete.
    unpadded = Layer().file("a", "a\n").file("b", "b" * 1000).bytes(end_blocks=False)
    for n in (len(unpadded) - 1, len(unpadded) - 700):
        with open(cut, "wb") as f:
            f.write(unpadded[:n])
        _reject(data, outside, f"tar:{cut}", "corrupt or truncated")
    bad = os.path.join(inputs, "garbage.tar.gz")
    with open(bad, "wb") as f:
        f.write(b"\x1f\x8b\x08\x00" + os.urandom(4000))
    _reject(data, outside, f"tar:{bad}", "corrupt")
    junk = os.path.join(inputs, "junk")
    with open(junk, "wb") as f:
        f.write(os.urandom(3000))
    _reject(data, outside, junk, "not a tar archive|corrupt")


def test_digest_mismatches(env):
    data, outside, inputs = env
    good = Layer().file("a", "a").bytes()
    layout = os.path.join(inputs, "diff")
    make_oci_layout(layout, [good], diff_ids=["0" * 64])
    _reject(data, outside, layout, "digest mismatch: the uncompressed layer")
    layout = os.path.join(inputs, "blob")
    make_oci_layout(layout, [good], blob_digests=["1" * 64])
    _reject(data, outside, layout, "digest mismatch: the blob")
    # a tampered manifest: its bytes no longer match the index's digest
    layout = os.path.join(inputs, "manifest")
    make_oci_layout(layout, [good])
    blobs = os.path.join(layout, "blobs", "sha256")
    for name in os.listdir(blobs):
        path = os.path.join(blobs, name)
        with open(path, "rb") as f:
            content = f.read()
        if b'"layers"' in content:
            with open(path, "wb") as f:
                f.write(content.replace(b'"schemaVersion": 2', b'"schemaVersion":2 '))
    _reject(data, outside, layout, "digest mismatch for the manifest")


def test_truncated_oci_archive(env):
    data, outside, inputs = env
    layout = os.path.join(inputs, "layout")
    make_oci_layout(layout, [Layer().file("a", os.urandom(100_000)).bytes()], compression=["none"])
    archive = os.path.join(inputs, "o.tar")
    with tarfile.open(archive, "w") as tf:
        for name in ("oci-layout", "index.json", "blobs"):
            tf.add(os.path.join(layout, name), arcname=name)
    size = os.path.getsize(archive)
    with open(archive, "r+b") as f:
        f.truncate(size // 2)
    with pytest.raises(PycontainError):
        import_source(archive, "bad", data, progress=False)
    state = store_state(data)
    assert state["layers"] == [] and state["leftovers"] == [] and state["images"] == []


def test_a_failed_layer_keeps_earlier_ones_out_of_images(env):
    """Layer 1 good, layer 2 tampered: no image is recorded, and the orphan layer goes at the next prune."""
    data, outside, inputs = env
    layout = os.path.join(inputs, "two")
    good = Layer().file("a", "a").bytes()
    bad_diff = hashlib.sha256(b"other").hexdigest()
    make_oci_layout(layout, [good, Layer().file("b", "b").bytes()], diff_ids=["", bad_diff])
    with pytest.raises(BadImage, match="layer 2/2"):
        import_source(layout, "bad", data, progress=False)
    state = store_state(data)
    assert state["images"] == [] and state["leftovers"] == []
    p = cli(data, "image", "prune")
    assert p.returncode == 0, p.stderr
    assert store_state(data)["layers"] == []


def test_cli_reports_one_line(env):
    data, outside, inputs = env
    path = _tarball(inputs, Layer().symlink("etc", outside).file("etc/passwd", "pwned"))
    p = cli(data, "import", "-q", path, "bad")
    assert p.returncode == 125
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("pycontain: ") and "symbolic link" in p.stderr
    assert os.listdir(outside) == []
