"""The store: names, tags, rmi (with the in-use refusal and layer collection), the CLI, resolve_image,
concurrent imports and crash leftovers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import rootfs_builder
from pycontain.errors import InvalidArgument, InvalidState, NotFound
from rootfs_builder.sources import import_source
from rootfs_builder.store import Store

from . import ROOT_ONLY, Layer, cli, make_oci_layout, store_state

pytestmark = ROOT_ONLY


@pytest.fixture
def data(tmp_path) -> str:
    return str(tmp_path / "data")


@pytest.fixture
def two_images(tmp_path, data):
    """Images ``a`` and ``b`` sharing their base layer; each has one layer of its own."""
    base = Layer().file("base", "base\n").bytes()
    ids = {}
    for name in ("a", "b"):
        layout = str(tmp_path / name)
        make_oci_layout(layout, [base, Layer().file(name, f"{name}\n").bytes()], config={"Cmd": [name]})
        ids[name] = import_source(layout, name, data, progress=False)["id"]
    return ids


def test_tag_and_rmi(two_images, data):
    store = Store(data)
    assert len(store_state(data)["layers"]) == 3
    store.tag("a", "reg.example:5000/team/a:v1")
    assert rootfs_builder.resolve_image("reg.example:5000/team/a:v1", data).id == two_images["a"]
    never = lambda _id: False  # noqa: E731
    # a name of an image with several names only untags
    assert store.rmi("a:latest", never) == (["a:latest"], [])
    assert rootfs_builder.resolve_image("reg.example:5000/team/a:v1", data).id == two_images["a"]
    with pytest.raises(NotFound):
        rootfs_builder.resolve_image("a", data)
    # the last name removes the image and its own layer, not the shared base
    names, deleted = store.rmi("reg.example:5000/team/a:v1", never)
    assert deleted == [two_images["a"]]
    assert len(store_state(data)["layers"]) == 2
    assert _tree(rootfs_builder.resolve_image("b", data).layers) == {"base", "b"}
    names, deleted = store.rmi(two_images["b"][:8], never)
    assert names == ["b:latest"] and store_state(data) == {"layers": [], "leftovers": [], "images": []}
    with pytest.raises(NotFound, match="no such image"):
        store.rmi("b", never)


def _tree(layers: list[str]) -> set[str]:
    return {name for layer in layers for name in os.listdir(layer)}


def test_rmi_refuses_an_image_in_use(two_images, data):
    store = Store(data)
    asked = []

    def in_use(image_id: str) -> bool:
        asked.append(image_id)
        return True

    with pytest.raises(InvalidState, match="in use by a container"):
        store.rmi("a", in_use)
    assert asked == [two_images["a"]]
    assert rootfs_builder.resolve_image("a", data).id == two_images["a"]
    assert len(store_state(data)["layers"]) == 3


def test_rmi_by_id_with_several_names_needs_force(two_images, data):
    store = Store(data)
    store.tag("a", "a2")
    with pytest.raises(InvalidState, match="several names"):
        store.rmi(two_images["a"], lambda _i: False)
    names, deleted = store.rmi(two_images["a"], lambda _i: False, force=True)
    assert names == ["a2:latest", "a:latest"] and deleted == [two_images["a"]]


def test_names_are_checked(two_images, data):
    store = Store(data)
    for bad in ("UPPER", "a b", "-x", "a:b:c/d", "x:" + "t" * 200, "f" * 64):
        with pytest.raises(InvalidArgument):
            store.tag("a", bad)
    with pytest.raises(NotFound):
        store.tag(two_images["a"][:3], "x")  # id prefixes need at least 4 digits


def test_resolve_image_forms(two_images, data, tmp_path):
    default = rootfs_builder.resolve_image("default", data)
    assert default.id == "default" and default.config == {} and len(default.layers) == 1
    d = tmp_path / "plain"
    d.mkdir()
    by_path = rootfs_builder.resolve_image(str(d), data)
    assert by_path.layers == [str(d)] and by_path.config == {}
    assert rootfs_builder.resolve_image(f"sha256:{two_images['a']}", data).name == two_images["a"]
    with pytest.raises(NotFound, match="pycontain import"):
        rootfs_builder.resolve_image("nope", data)
    f = tmp_path / "file.tar"
    f.write_bytes(b"")
    with pytest.raises(NotFound, match="is a file"):
        rootfs_builder.resolve_image(str(f), data)
    # a missing layer: a clear error, not an overlay mount failure later
    layer = rootfs_builder.resolve_image("a", data).layers[-1]
    os.rename(layer, layer + ".away")
    with pytest.raises(Exception, match="damaged"):
        rootfs_builder.resolve_image("a", data)
    os.rename(layer + ".away", layer)


def test_resolve_image_stays_light():
    code = (
        "import sys, rootfs_builder; rootfs_builder.resolve_image('default'); "
        "heavy = [m for m in ('json', 'hashlib', 'tarfile', 'subprocess', 'typing', 'rootfs_builder.store') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=os.path.dirname(rootfs_builder.__path__[0]),
    )
    assert out.stdout.strip() == "[]"


def test_cli(two_images, data, tmp_path):
    p = cli(data, "images", "--json")
    assert p.returncode == 0, p.stderr
    listed = json.loads(p.stdout)
    assert {tuple(i["RepoTags"]) for i in listed} == {("a:latest",), ("b:latest",)}
    p = cli(data, "images")
    assert p.returncode == 0 and "REPOSITORY" in p.stdout and two_images["a"][:12] in p.stdout
    assert cli(data, "tag", "a", "c:1").returncode == 0
    p = cli(data, "image", "inspect", "c:1")
    info = json.loads(p.stdout)[0]
    assert info["Id"] == f"sha256:{two_images['a']}" and info["Config"]["Cmd"] == ["a"]
    assert sorted(info["RepoTags"]) == ["a:latest", "c:1"] and len(info["Layers"]) == 2
    p = cli(data, "rmi", "c:1")
    assert p.returncode == 0 and p.stdout.strip() == "Untagged: c:1"
    p = cli(data, "rmi", "nope")
    assert (
        p.returncode != 0 and p.stderr.strip() == "pycontain: no such image: 'nope' (see 'pycontain images')"
    )
    layout = tmp_path / "x"
    make_oci_layout(str(layout), [Layer().file("x", "x").bytes()])
    p = cli(data, "import", "-q", str(layout), "x:1")
    assert p.returncode == 0, p.stderr
    assert rootfs_builder.resolve_image("x:1", data).id == p.stdout.strip()
    p = cli(data, "rmi", "a", "b", "x:1", state_root=str(tmp_path / "state"))
    assert p.returncode == 0, p.stderr
    assert store_state(data) == {"layers": [], "leftovers": [], "images": []}


def test_concurrent_imports_of_the_same_layers(data, tmp_path):
    """Four processes import images sharing a big layer at once: each succeeds, the layer is stored once."""
    base = Layer().file("big", os.urandom(8 << 20)).bytes()
    layouts = []
    for i in range(4):
        layout = str(tmp_path / f"l{i}")
        make_oci_layout(layout, [base, Layer().file(f"f{i}", "x").bytes()], compression=["gzip", "none"])
        layouts.append(layout)
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys; from rootfs_builder.sources import import_source; "
                "import_source(sys.argv[1], sys.argv[2], sys.argv[3], progress=False)",
                layout,
                f"img{i}",
                data,
            ],
            stderr=subprocess.PIPE,
            text=True,
            cwd=os.path.dirname(rootfs_builder.__path__[0]),
        )
        for i, layout in enumerate(layouts)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    state = store_state(data)
    assert len(state["images"]) == 4 and len(state["layers"]) == 5 and state["leftovers"] == []
    assert not [e for e in os.listdir(os.path.join(data, "layers")) if e.startswith(".lock-")]


def test_crash_leftovers_are_cleaned(two_images, data, tmp_path):
    layers = os.path.join(data, "layers")
    os.makedirs(os.path.join(layers, ".tmp-crashed", "usr"))
    os.makedirs(os.path.join(layers, ".trash-" + "0" * 64))
    layout = str(tmp_path / "y")
    make_oci_layout(layout, [Layer().file("y", "y").bytes()])
    import_source(layout, "y", data, progress=False)
    assert store_state(data)["leftovers"] == []
