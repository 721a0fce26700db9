"""Containers from images of the store: layers stacked copy-on-write, the image config as defaults."""

from __future__ import annotations

import os

from conftest import ROOT_REQUIRED

from . import Layer, cli, default_rootfs, make_oci_layout, tree_layer

pytestmark = ROOT_REQUIRED


def test_run_uses_layers_and_image_config(tmp_path):
    data, state = str(tmp_path / "data"), str(tmp_path / "state")
    layout = str(tmp_path / "layout")
    top = Layer().dir("app").file("app/greeting", "hello from a layer\n").whiteout("etc/hostname")
    make_oci_layout(
        layout,
        [tree_layer(default_rootfs()), top.bytes()],
        config={
            "Entrypoint": ["sh", "-c"],
            "Cmd": ["cat greeting; echo $GREETER; pwd; id -u"],
            "Env": ["PATH=/bin:/usr/bin", "GREETER=image"],
            "WorkingDir": "/app",
            "User": "65534",
        },
    )
    assert cli(data, "import", layout, "greeter:1").returncode == 0
    p = cli(data, "run", "--rm", "greeter:1", state_root=state)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split("\n")[:4] == ["hello from a layer", "image", "/app", "65534"]
    # Arguments replace the image's Cmd and run after its Entrypoint; -e and -w win over the image's.
    p = cli(
        data,
        "run",
        "--rm",
        "-e",
        "GREETER=cli",
        "-w",
        "/",
        "greeter:1",
        "echo $GREETER $(pwd)",
        state_root=state,
    )
    assert p.stdout.strip() == "cli /"
    # Copy-on-write: a container's writes never reach the shared layers.
    p = cli(
        data, "run", "--name", "keep", "-u", "0", "greeter:1", "echo changed > greeting", state_root=state
    )
    assert p.returncode == 0, p.stderr
    for layer in os.listdir(os.path.join(data, "layers")):
        path = os.path.join(data, "layers", layer, "app", "greeting")
        assert not os.path.exists(path) or open(path).read() == "hello from a layer\n"
    # An image in use by a container (even a stopped one) cannot be removed.
    p = cli(data, "rmi", "greeter:1", state_root=state)
    assert p.returncode == 125 and "in use" in p.stderr, p.stderr
    assert cli(data, "rm", "keep", state_root=state).returncode == 0
    assert cli(data, "rmi", "greeter:1", state_root=state).returncode == 0
