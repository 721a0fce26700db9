"""Each source builds an image whose layers, stacked with overlayfs, show the expected tree.

Images come from the real tools (umoci, skopeo, mmdebstrap) where installed, and from hand-made OCI layouts
for what those tools do not write here (opaque directories, zstd and uncompressed layers, no end blocks).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile

import pytest

import rootfs_builder
from rootfs_builder.sources import import_source

from . import (
    ROOT_ONLY,
    Layer,
    default_rootfs,
    make_oci_layout,
    need,
    overlay_run,
    sh,
    store_state,
    tree_layer,
)

pytestmark = ROOT_ONLY


@pytest.fixture
def data(tmp_path) -> str:
    return str(tmp_path / "data")


@pytest.fixture(scope="session")
def umoci_layout(tmp_path_factory) -> str:
    """An OCI layout by umoci: ``base`` (busybox + /opq/a + /etc/gone) and ``v2`` (gone deleted, opq/a
    replaced by opq/b, an entrypoint, env, workdir and port)."""
    need("umoci")
    work = tmp_path_factory.mktemp("umoci")
    img = str(work / "img")

    def umoci(*args: str) -> None:
        subprocess.run(["umoci", *args], check=True, capture_output=True, timeout=120)

    umoci("init", "--layout", img)
    umoci("new", "--image", f"{img}:base")
    b1, b2 = str(work / "b1"), str(work / "b2")
    umoci("unpack", "--image", f"{img}:base", b1)
    shutil.copytree(default_rootfs(), f"{b1}/rootfs", symlinks=True, dirs_exist_ok=True)
    os.makedirs(f"{b1}/rootfs/opq")
    for path, text in (("opq/a", "a\n"), ("etc/gone", "gone\n"), ("etc/kept", "kept\n")):
        with open(f"{b1}/rootfs/{path}", "w") as f:
            f.write(text)
    umoci("repack", "--image", f"{img}:base", b1)
    umoci("unpack", "--image", f"{img}:base", b2)
    os.unlink(f"{b2}/rootfs/etc/gone")
    shutil.rmtree(f"{b2}/rootfs/opq")
    os.makedirs(f"{b2}/rootfs/opq")
    with open(f"{b2}/rootfs/opq/b", "w") as f:
        f.write("b\n")
    umoci("repack", "--image", f"{img}:v2", b2)
    umoci(
        "config",
        "--image",
        f"{img}:v2",
        "--config.entrypoint",
        "/bin/sh",
        "--config.cmd",
        "-c",
        "--config.cmd",
        "echo hi",
        "--config.env",
        "FOO=bar",
        "--config.workingdir",
        "/opq",
        "--config.exposedports",
        "8080/tcp",
        "--config.user",
        "0:0",
        "--config.volume",
        "/data",
    )
    return img


def _check_v2_tree(layers: list[str]) -> None:
    code, out = sh(layers, "cat /etc/kept; ls /opq; test -e /etc/gone || echo gone-is-gone; busybox echo ok")
    assert code == 0, out
    assert out.split() == ["kept", "b", "gone-is-gone", "ok"]


def test_oci_layout_from_umoci(umoci_layout, data):
    rec = import_source(f"{umoci_layout}:v2", "umoci/v2", data, progress=False)
    image = rootfs_builder.resolve_image("umoci/v2", data)
    assert image.id == rec["id"] and len(image.layers) == 2
    assert all(p.startswith(os.path.join(data, "layers")) for p in image.layers)
    assert image.config["Entrypoint"] == ["/bin/sh"] and image.config["Cmd"] == ["-c", "echo hi"]
    assert image.config["Env"] == ["FOO=bar"] and image.config["WorkingDir"] == "/opq"
    assert image.config["ExposedPorts"] == {"8080/tcp": {}} and image.config["Volumes"] == {"/data": {}}
    assert image.config["User"] == "0:0"
    assert image.to_dict()["layers"] == image.layers
    _check_v2_tree(image.layers)
    # the base image shares its layer: importing it unpacks nothing new
    before = store_state(data)["layers"]
    import_source(f"{umoci_layout}:base", "umoci/base", data, progress=False)
    assert store_state(data)["layers"] == before
    code, out = sh(rootfs_builder.resolve_image("umoci/base", data).layers, "cat /etc/gone /opq/a")
    assert (code, out.split()) == (0, ["gone", "a"])


def test_umoci_insert_layer(data, tmp_path):
    """``umoci insert`` (0.4.7) writes a layer that stops after its last member's data: no padding, no
    end-of-archive blocks. GNU tar, skopeo and podman accept it, and so does import."""
    need("umoci")
    img, src = str(tmp_path / "img"), tmp_path / "src"
    (src / "etc").mkdir(parents=True)
    (src / "etc" / "hello").write_text("hi\n")
    for args in (["init", "--layout", img], ["new", "--image", f"{img}:t"]):
        subprocess.run(["umoci", *args], check=True, capture_output=True, timeout=120)
    subprocess.run(
        ["umoci", "insert", "--image", f"{img}:t", str(src / "etc"), "/etc"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    rec = import_source(f"{img}:t", "umoci/insert", data, progress=False)
    layer = os.path.join(data, "layers", rec["layers"][0])
    with open(os.path.join(layer, "etc", "hello")) as f:
        assert f.read() == "hi\n"


def test_layout_with_several_images_needs_a_ref(umoci_layout, data):
    from pycontain.errors import InvalidArgument, NotFound

    with pytest.raises(InvalidArgument, match="choose one"):
        import_source(umoci_layout, None, data, progress=False)
    with pytest.raises(NotFound, match="no image named 'nope'"):
        import_source(f"oci:{umoci_layout}:nope", None, data, progress=False)


def test_skopeo_docker_archive_and_zstd_oci_archive(umoci_layout, data, tmp_path):
    need("skopeo")
    darchive, oarchive = str(tmp_path / "d.tar"), str(tmp_path / "o.tar")

    def skopeo(*args: str) -> None:
        subprocess.run(
            ["skopeo", "--insecure-policy", "copy", "-q", *args], check=True, capture_output=True, timeout=120
        )

    skopeo(f"oci:{umoci_layout}:v2", f"docker-archive:{darchive}:test/v2:1")
    skopeo(
        "--dest-compress-format",
        "zstd",
        "--dest-compress",
        f"oci:{umoci_layout}:v2",
        f"oci-archive:{oarchive}:v2",
    )
    d = import_source(darchive, None, data, progress=False)  # auto-detected; named from RepoTags
    assert "docker.io/test/v2:1" in d["names"]
    o = import_source(oarchive, "zstd/v2", data, progress=False)
    assert o["id"] == d["id"]  # same config, same image; the zstd layers' diff_ids are the same content
    assert len(store_state(data)["layers"]) == 2
    _check_v2_tree(rootfs_builder.resolve_image("test/v2:1", data).layers)


def test_opaque_directory_and_layer_formats(data, tmp_path):
    """A hand-made image: gzip base, an uncompressed layer without end-of-archive blocks, a zstd layer with
    an opaque directory and an explicit whiteout."""
    need("zstd")
    base = tree_layer(default_rootfs())
    mid = (
        Layer()
        .dir("opq")
        .file("opq/a", "a\n")
        .file("opq/sub/x", "x\n")
        .file("etc/gone", "g\n")
        .bytes(end_blocks=False)
    )
    top = Layer().dir("opq").opaque("opq").file("opq/c", "c\n").whiteout("etc/gone").bytes()
    layout = str(tmp_path / "layout")
    make_oci_layout(
        layout, [base, mid, top], compression=["gzip", "none", "zstd"], config={"Cmd": ["/bin/sh"]}
    )
    rec = import_source(layout, "opaque", data, progress=False)
    top_dir = os.path.join(data, "layers", rec["layers"][2])
    assert os.getxattr(os.path.join(top_dir, "opq"), "trusted.overlay.opaque") == b"y"
    st = os.lstat(os.path.join(top_dir, "etc", "gone"))
    assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == (0, 0)
    code, out = sh(
        rootfs_builder.resolve_image("opaque", data).layers, "ls /opq; test -e /etc/gone || echo gone-is-gone"
    )
    assert (code, out.split()) == (0, ["c", "gone-is-gone"])


def test_plain_tarball_and_directory(data, tmp_path):
    root = default_rootfs()
    tarball = str(tmp_path / "rootfs.tar.gz")
    with tarfile.open(tarball, "w:gz") as tf:
        tf.add(root, arcname=".")
    t = import_source(tarball, "bb/tar", data, progress=False)
    d = import_source(root, "bb/dir", data, progress=False)
    d2 = import_source(f"dir:{root}", "bb/dir2", data, progress=False)
    assert d2["id"] == d["id"]  # a directory's layer is deterministic
    for rec in (t, d):
        assert len(rec["layers"]) == 1
        assert rec["config"]["Env"][0].startswith("PATH=")
        code, out = sh(
            rootfs_builder.resolve_image(rec["id"][:12], data).layers, "echo hello; ls /bin/busybox"
        )
        assert (code, out.split()) == (0, ["hello", "/bin/busybox"])


def test_host_binary_closure_runs_python(data):
    python = "/usr/bin/python3"
    if not os.path.exists(python):
        pytest.skip("no /usr/bin/python3")
    rec = import_source(f"closure:{python}", "py", data, progress=False)
    image = rootfs_builder.resolve_image("py", data)
    assert image.config["Cmd"] == [python]
    assert sum(rec["layer_sizes"]) < 40 << 20
    code, out = overlay_run(image.layers, [python, "-c", "print(1)"])
    assert (code, out) == (0, "1\n")
    # the standard library, extension modules and the libraries they link (libssl) came along
    script = "import json, ssl, sqlite3, decimal; print(json.dumps(ssl.OPENSSL_VERSION[:7]))"
    code, out = overlay_run(image.layers, [python, "-c", script])
    assert (code, out) == (0, '"OpenSSL"\n'), out


def test_debian_mirror_comes_from_apt():
    need("apt-get")
    from rootfs_builder.debian import apt_mirror

    mirror = apt_mirror()
    out = subprocess.run(
        ["apt-get", "indextargets", "--format", "$(REPO_URI)"], capture_output=True, text=True, check=True
    ).stdout
    assert mirror in {u.rstrip("/") for u in out.split()}


@pytest.fixture(scope="session")
def debian_data(tmp_path_factory) -> str:
    """One Debian bootstrap per test session (mmdebstrap's extract variant: 2-3 s)."""
    need("mmdebstrap")
    data = str(tmp_path_factory.mktemp("debian") / "data")
    import_source(
        "debian:bookworm", "debian/bb", data, progress=False, variant="extract", include=["busybox-static"]
    )
    return data


def test_debian_bootstrap(debian_data):
    image = rootfs_builder.resolve_image("debian/bb", debian_data)
    assert len(image.layers) == 1
    assert os.path.isfile(os.path.join(image.layers[0], "bin", "busybox"))
    code, out = overlay_run(image.layers, ["/bin/busybox", "echo", "from-debian"])
    assert (code, out) == (0, "from-debian\n")
    assert not any(os.path.exists(os.path.join(image.layers[0], "dev", n)) for n in ("null", "console"))
