"""``pycontain save`` / ``load`` and OCI layout refs, read and written by skopeo and podman (podman in the
private environment of tests/oci/podman_env.py: its storage, /var/lib and namespaces are throw-away)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from oci.podman_env import PodmanEnv

import rootfs_builder

from . import ROOT_ONLY, Layer, cli, default_rootfs, make_oci_layout, need, sh, tree_layer

pytestmark = ROOT_ONLY


def _images(data: str, tmp_path) -> None:
    """``rt/app:1`` (busybox) and ``rt/other:2`` (busybox plus one layer): two images sharing a layer."""
    base = tree_layer(default_rootfs())
    extra = Layer().file("etc/other", "other\n").bytes()
    for name, layers in (("rt/app:1", [base]), ("rt/other:2", [base, extra])):
        layout = str(tmp_path / name.replace("/", "-"))
        make_oci_layout(layout, layers, config={"Cmd": ["/bin/sh"], "Env": ["X=1"]})
        assert cli(data, "import", "-q", layout, name).returncode == 0


def test_oci_layout_ref_is_the_tag(tmp_path):
    """``skopeo inspect oci:DIR:TAG`` finds an exported image by its tag; the full name rides along."""
    need("skopeo")
    data = str(tmp_path / "data")
    _images(data, tmp_path)
    out = str(tmp_path / "out")
    assert cli(data, "image", "export", "rt/app:1", out).returncode == 0
    with open(os.path.join(out, "index.json")) as f:
        (desc,) = json.load(f)["manifests"]
    assert desc["annotations"] == {
        "org.opencontainers.image.ref.name": "1",
        "io.containerd.image.name": "rt/app:1",
    }
    p = subprocess.run(["skopeo", "inspect", f"oci:{out}:1"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "X=1" in json.loads(p.stdout)["Env"]
    # import names it by the full name again
    p = cli(str(tmp_path / "data2"), "import", out)
    assert p.returncode == 0 and "rt/app:1" in p.stdout, p.stderr


@pytest.fixture
def podman():
    need("podman")
    env = PodmanEnv().open()
    try:
        yield env
    finally:
        env.close()


def test_save_load_round_trip_through_podman(podman, tmp_path):
    data, back = str(tmp_path / "data"), str(tmp_path / "back")
    _images(data, tmp_path)
    saved = str(tmp_path / "saved.tar")
    p = cli(data, "save", "-o", saved, "rt/app:1", "rt/other:2")
    assert p.returncode == 0, p.stderr
    # podman reads both images of our docker-archive, with their names
    p = podman("load", "-i", saved, timeout=300)
    assert p.returncode == 0, p.stderr
    listed = podman("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert {"localhost/rt/app:1", "localhost/rt/other:2"} <= set(listed), listed
    oci = str(tmp_path / "saved-oci.tar")
    assert cli(data, "save", "--format", "oci-archive", "-o", oci, "rt/other:2").returncode == 0
    p = podman("load", "-i", oci, timeout=300)
    assert p.returncode == 0, p.stderr

    # and ours reads podman's save, in both formats
    for fmt in ("docker-archive", "oci-archive"):
        out = os.path.join(podman.tmp, f"podman-{fmt}.tar")  # inside podman's private /tmp view too
        p = podman("save", "--format", fmt, "-o", out, "localhost/rt/other:2", timeout=300)
        assert p.returncode == 0, p.stderr
        p = cli(back, "load", "-i", out)
        assert p.returncode == 0, p.stderr
        assert "localhost/rt/other:2" in p.stdout
        image = rootfs_builder.resolve_image("localhost/rt/other:2", back)
        assert image.config["Env"] == ["X=1"]
        code, text = sh(image.layers, "cat /etc/other")
        assert (code, text.split()) == (0, ["other"]), text


def test_buildah_layouts_and_archives_import(podman, tmp_path):
    """buildah's own image (from scratch, a copied tree), pushed as an OCI layout, an oci-archive and a
    docker-archive: each imports and runs."""
    need("buildah")

    def buildah(*args: str) -> str:
        t = podman.tmp
        argv = ["buildah", "--root", f"{t}/storage", "--runroot", f"{t}/runroot", "--storage-driver", "vfs"]
        p = podman.run(*argv, *args, timeout=300)
        assert p.returncode == 0, (args, p.stderr)
        return p.stdout.strip()

    ctr = buildah("from", "scratch")
    buildah("copy", ctr, default_rootfs(), "/")
    buildah("config", "--cmd", "/bin/sh", ctr)
    buildah("commit", "-q", ctr, "localhost/bb:1")
    out = podman.tmp  # inside the namespace's view of the host's paths
    sources = {
        "oci": f"{out}/bb-layout",
        "oci-archive": f"{out}/bb-oci.tar",
        "docker-archive": f"{out}/bb-docker.tar",
    }
    for kind, path in sources.items():
        buildah(
            "push",
            "-q",
            "localhost/bb:1",
            f"{kind}:{path}" + (":localhost/bb:1" if kind == "docker-archive" else ":1"),
        )
    data = str(tmp_path / "data")
    for kind, path in sources.items():
        name = f"bb/{kind}:1"
        p = cli(data, "import", "-q", f"{path}:1" if kind == "oci" else path, name)
        assert p.returncode == 0, (kind, p.stderr)
        code, text = sh(rootfs_builder.resolve_image(name, data).layers, "busybox echo ok")
        assert (code, text) == (0, "ok\n"), (kind, text)
