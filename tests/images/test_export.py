"""Round trip: an image with whiteouts and an opaque directory → OCI export → skopeo inspect / podman load →
import again → the same tree."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile

import rootfs_builder
from rootfs_builder.export import export_image
from rootfs_builder.sources import import_source

from . import ROOT_ONLY, Layer, default_rootfs, make_oci_layout, need, sh, tree_layer

pytestmark = ROOT_ONLY


def test_export_round_trip(tmp_path):
    data, data2 = str(tmp_path / "data"), str(tmp_path / "data2")
    base = tree_layer(default_rootfs())
    mid = Layer().dir("opq").file("opq/a", "a\n").file("etc/gone", "g\n").bytes()
    top = Layer().dir("opq").opaque("opq").file("opq/c", "c\n").whiteout("etc/gone").bytes()
    layout = str(tmp_path / "layout")
    make_oci_layout(layout, [base, mid, top], config={"Entrypoint": ["/bin/sh"], "Env": ["X=1"]})
    import_source(layout, "rt/img:1", data, progress=False)

    out_dir, out_tar = str(tmp_path / "out"), str(tmp_path / "out.tar")
    export_image("rt/img:1", out_dir, data)
    export_image("rt/img:1", out_tar, data, archive=True)
    if os.path.exists("/usr/bin/skopeo"):
        info = json.loads(
            subprocess.run(
                ["skopeo", "inspect", f"oci-archive:{out_tar}"],
                capture_output=True,
                text=True,
                check=True,
                timeout=60,
            ).stdout
        )
        assert len(info["Layers"]) == 3 and "X=1" in info["Env"]
    for source in (out_dir, out_tar):
        rec = import_source(source, None, data2, progress=False)
        assert rec["names"] == ["rt/img:1"] and rec["config"]["Entrypoint"] == ["/bin/sh"]
        code, out = sh(
            rootfs_builder.resolve_image("rt/img:1", data2).layers,
            "ls /opq; test -e /etc/gone || echo gone-is-gone",
        )
        assert (code, out.split()) == (0, ["c", "gone-is-gone"])


def test_podman_loads_the_export(tmp_path):
    need("podman")
    data = str(tmp_path / "data")
    layout = str(tmp_path / "layout")
    make_oci_layout(layout, [tree_layer(default_rootfs())], config={"Cmd": ["/bin/sh"]})
    import_source(layout, "pod/img", data, progress=False)
    archive = str(tmp_path / "img.tar")
    export_image("pod/img", archive, data, archive=True)
    store = tmp_path / "podman"
    runroot = tempfile.mkdtemp(prefix="podrun-", dir="/tmp")  # podman refuses runroots over 50 characters
    try:
        p = subprocess.run(
            [
                "podman",
                "--root",
                str(store / "root"),
                "--runroot",
                runroot,
                "--storage-driver",
                "vfs",
                "--events-backend",
                "file",
                "load",
                "-i",
                archive,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        shutil.rmtree(runroot, ignore_errors=True)
    assert p.returncode == 0, p.stderr
    assert "pod/img" in p.stdout
