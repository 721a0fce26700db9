"""An OCI image layout is untrusted input: its blobs may be symbolic links (to /etc/shadow, /dev/zero),
FIFOs, longer than their descriptors say, or unpack to far more than they weigh. Each import is refused with
one line, reads nothing outside the layout, and leaves the store as it was."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from rootfs_builder.layer import BadImage
from rootfs_builder.sources import import_source

from . import ROOT_ONLY, Layer, cli, make_oci_layout, store_state

pytestmark = ROOT_ONLY

SECRET = "root-only secret 7f3c"


@pytest.fixture
def env(tmp_path):
    """(data root, an OCI layout of one small image, the path of its only layer blob)."""
    layout = str(tmp_path / "layout")
    make_oci_layout(layout, [Layer().file("hello", "world").bytes()])
    blob = os.path.join(layout, "blobs", "sha256", _manifest(layout)["layers"][0]["digest"][7:])
    return str(tmp_path / "data"), layout, blob


def _manifest(layout: str) -> dict:
    with open(os.path.join(layout, "index.json")) as f:
        digest = json.load(f)["manifests"][0]["digest"][7:]
    with open(os.path.join(layout, "blobs", "sha256", digest)) as f:
        return json.load(f)


def _rewrite_manifest(layout: str, change) -> None:
    """Change the manifest, store it under its new digest and point the index at it."""
    manifest = _manifest(layout)
    change(manifest)
    data = json.dumps(manifest).encode()
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(layout, "blobs", "sha256", digest), "wb") as f:
        f.write(data)
    with open(os.path.join(layout, "index.json")) as f:
        index = json.load(f)
    index["manifests"][0].update(digest=f"sha256:{digest}", size=len(data))
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump(index, f)


def _refused(data: str, layout: str, *needles: str) -> None:
    """The import fails within a minute (a blob read without end would hang it), in one line."""
    p = cli(data, "import", "-q", f"oci:{layout}", "bad", timeout=60)
    assert p.returncode == 125, (p.returncode, p.stderr)
    assert p.stderr.count("\n") == 1 and "Traceback" not in p.stderr, p.stderr
    for n in needles:
        assert n in p.stderr, p.stderr
    assert SECRET not in p.stderr
    state = store_state(data)
    assert state["layers"] == [] and state["leftovers"] == [] and state["images"] == []


@pytest.mark.parametrize("target", ["/dev/zero", "/dev/urandom"])
def test_a_layer_blob_linked_to_a_device_is_refused(env, target):
    data, layout, blob = env
    os.unlink(blob)
    os.symlink(target, blob)
    _refused(data, layout, "symbolic link")


def test_a_layer_blob_that_is_a_fifo_is_refused(env):
    data, layout, blob = env
    os.unlink(blob)
    os.mkfifo(blob)
    _refused(data, layout, "not a regular file")


def test_a_config_blob_linked_to_a_host_secret_is_never_read(env, tmp_path):
    data, layout, _blob = env
    secret = tmp_path / "shadow"
    secret.write_text(SECRET)
    os.chmod(secret, 0o600)
    config = os.path.join(layout, "blobs", "sha256", _manifest(layout)["config"]["digest"][7:])
    os.unlink(config)
    os.symlink(str(secret), config)
    _refused(data, layout, "symbolic link")


def test_a_blobs_directory_that_is_a_symlink_is_refused(env, tmp_path):
    data, layout, _blob = env
    elsewhere = tmp_path / "elsewhere"
    os.rename(os.path.join(layout, "blobs", "sha256"), elsewhere)
    os.symlink(str(elsewhere), os.path.join(layout, "blobs", "sha256"))
    _refused(data, layout, "symbolic link")


def test_a_blob_longer_than_its_descriptor_is_refused(env):
    data, layout, _blob = env
    _rewrite_manifest(layout, lambda m: m["layers"][0].update(size=m["layers"][0]["size"] - 10))
    _refused(data, layout, "larger than its descriptor's size")


def test_a_layer_that_unpacks_past_the_limit_is_refused(env, tmp_path, monkeypatch):
    """8 MiB of zeros weigh a few KiB compressed; with a 4 MiB limit the import stops with one line."""
    data, _layout, _blob = env
    bomb = str(tmp_path / "bomb")
    make_oci_layout(bomb, [Layer().file("zeros", bytes(8 << 20)).bytes()])
    monkeypatch.setenv("PYCONTAIN_MAX_LAYER_SIZE", "4m")
    _refused(data, bomb, "the limit", "PYCONTAIN_MAX_LAYER_SIZE")
    with pytest.raises(BadImage, match="more than 4"):
        import_source(f"oci:{bomb}", "bomb", data, progress=False)
    monkeypatch.delenv("PYCONTAIN_MAX_LAYER_SIZE")
    assert import_source(f"oci:{bomb}", "bomb", data, progress=False)["layers"]  # the default admits it
