"""``commit`` turns a container's changes into an image layer; ``snapshot`` / ``restore`` save and roll back a
stopped container's filesystem. Containers run on the default (busybox) image, in a private state root and
image store, removed at the end even when a test fails."""

from __future__ import annotations

import json
import os
import shutil
import stat

import pytest
from conftest import ROOT_REQUIRED

from . import cli, remove_containers, seeded_data_root

pytestmark = ROOT_REQUIRED

CHANGES = (
    "echo new > /new.txt; echo app:x:1000: >> /etc/group; rm /etc/nsswitch.conf; "
    "rm -rf /var && mkdir /var && echo only > /var/only"
)


@pytest.fixture
def pyc(tmp_path):
    data = seeded_data_root(str(tmp_path / "data"))
    state = str(tmp_path / "state")

    def run(*args: str, ok: bool = True, timeout: float = 60):
        if args[:1] == ("run",):  # no network resources on the host
            args = ("run", "--network", "none", *args[1:])
        p = cli(data, *args, state_root=state, timeout=timeout)
        if ok:
            assert p.returncode == 0, f"pycontain {' '.join(args)} exited {p.returncode}: {p.stderr}"
        return p

    run.data, run.state = data, state
    try:
        yield run
    finally:
        remove_containers(state, data)
        shutil.rmtree(data, ignore_errors=True)


def _upper(pyc, name: str) -> str:
    return os.path.join(json.loads(pyc("inspect", name).stdout)[0]["StateDir"], "upper")


def test_commit_keeps_writes_deletions_and_opaque_directories(pyc):
    pyc("run", "--name", "c1", "default", "sh", "-c", CHANGES)
    p = pyc("commit", "-m", "my changes", "c1", "snap/c1:1")
    image_id = p.stdout.strip()
    image = json.loads(pyc("image", "inspect", "snap/c1:1").stdout)[0]
    assert image["Id"] == image_id and len(image["Layers"]) == 2
    assert image["History"][-1]["comment"] == "my changes"
    # The new layer is in the store's overlayfs form: a 0/0 character device for the deletion, the opaque xattr.
    top = image["Layers"][-1]
    st = os.lstat(os.path.join(top, "etc", "nsswitch.conf"))
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(os.path.join(top, "var"), "trusted.overlay.opaque") == b"y"
    assert open(os.path.join(top, "new.txt")).read() == "new\n"
    # A container of the new image sees the changes.
    p = pyc(
        "run",
        "--rm",
        "snap/c1:1",
        "sh",
        "-c",
        "cat /new.txt; tail -1 /etc/group; test -e /etc/nsswitch.conf || echo deleted; ls /var; cat /etc/passwd | head -1",
    )
    assert p.stdout.split("\n")[:5] == [
        "new",
        "app:x:1000:",
        "deleted",
        "only",
        "root:x:0:0:root:/root:/bin/sh",
    ]
    # The image keeps its parent's config (busybox: /bin/sh) and is removable once no container uses it.
    assert image["Config"]["Cmd"] == ["/bin/sh"]
    pyc("rm", "c1")
    pyc("rmi", "snap/c1:1")


def test_commit_of_a_committed_image_stacks_layers(pyc):
    pyc("run", "--name", "a", "default", "sh", "-c", "echo one > /one")
    pyc("commit", "a", "stack:1")
    pyc("run", "--name", "b", "stack:1", "sh", "-c", "echo two > /two; rm /one")
    pyc("commit", "b", "stack:2")
    image = json.loads(pyc("image", "inspect", "stack:2").stdout)[0]
    assert len(image["Layers"]) == 3
    p = pyc("run", "--rm", "stack:2", "sh", "-c", "cat /two; test -e /one || echo one-gone")
    assert p.stdout.split() == ["two", "one-gone"]


def test_commit_of_a_running_container(pyc):
    pyc("run", "-d", "--name", "live", "default", "sh", "-c", "echo running > /state; sleep 300")
    for _ in range(100):
        if os.path.exists(os.path.join(_upper(pyc, "live"), "state")):
            break
        import time

        time.sleep(0.05)
    pyc("commit", "live", "live:1")
    assert (
        json.loads(pyc("inspect", "live").stdout)[0]["State"]["Status"] == "running"
    )  # paused, then resumed
    p = pyc("run", "--rm", "live:1", "cat", "/state")
    assert p.stdout == "running\n"


def test_snapshot_restore(pyc):
    pyc("run", "--name", "dev", "default", "sh", "-c", "echo v1 > /state.txt; rm /etc/group")
    assert pyc("snapshot", "dev", "s1").stdout.strip() == "s1"
    assert pyc("snapshot", "dev").stdout.strip() == "snap-1"
    listing = pyc("snapshot", "ls", "dev").stdout.splitlines()
    assert [line.split()[0] for line in listing[1:]] == ["s1", "snap-1"]
    p = pyc("snapshot", "dev", "s1", ok=False)
    assert p.returncode == 125 and "already has a snapshot 's1'" in p.stderr

    # pycontain has no 'start' for an exited container yet: later runs' writes would land in the same upper
    # directory, so the test writes there itself, as they would.
    upper = _upper(pyc, "dev")
    with open(os.path.join(upper, "state.txt"), "w") as f:
        f.write("v2\n")
    with open(os.path.join(upper, "later.txt"), "w") as f:
        f.write("later\n")
    os.unlink(os.path.join(upper, "etc", "group"))  # the deleted lower file comes back

    pyc("restore", "dev", "s1")
    assert open(os.path.join(upper, "state.txt")).read() == "v1\n"
    assert not os.path.exists(os.path.join(upper, "later.txt"))
    assert stat.S_ISCHR(os.lstat(os.path.join(upper, "etc", "group")).st_mode)
    # The restored filesystem is what the container's image is made of.
    pyc("commit", "dev", "dev:restored")
    p = pyc(
        "run",
        "--rm",
        "dev:restored",
        "sh",
        "-c",
        "cat /state.txt; test -e /later.txt || echo no-later; test -e /etc/group || echo no-group",
    )
    assert p.stdout.split() == ["v1", "no-later", "no-group"]

    p = pyc("restore", "dev", "nope", ok=False)
    assert p.returncode == 125 and "has no snapshot 'nope'" in p.stderr
    pyc("snapshot", "rm", "dev", "snap-1")
    assert [line.split()[0] for line in pyc("snapshot", "ls", "dev").stdout.splitlines()[1:]] == ["s1"]
    # Snapshots live in the container's directory and go with it.
    state_dir = os.path.dirname(upper)
    pyc("rm", "dev")
    assert not os.path.exists(state_dir)


def test_snapshot_and_restore_refuse_a_running_container(pyc):
    pyc("run", "-d", "--name", "busy", "default", "sleep", "300")
    for args in (("snapshot", "busy"), ("restore", "busy", "s1")):
        p = pyc(*args, ok=False)
        assert p.returncode == 125, p.stderr
        assert (
            p.stderr.count("\n") == 1 and "it is running; stop it first ('pycontain stop busy')" in p.stderr
        )
    pyc("stop", "-t", "1", "busy")
    assert pyc("snapshot", "busy").stdout.strip() == "snap-1"


def test_rootfs_manifest_is_nowhere_in_containers_commits_exports_or_cp(pyc, tmp_path):
    """The default rootfs's manifest lives beside the tree; a store built before (manifest inside the tree) is
    moved to that layout on first use, without a rebuild, and nothing of it shows in a container."""
    import tarfile

    import rootfs_builder

    pyc("run", "--rm", "default", "true")  # builds the private store's default rootfs
    tree = rootfs_builder.default_path(pyc.data)
    beside = rootfs_builder.manifest_path(tree)
    assert os.path.isfile(beside) and not os.path.lexists(os.path.join(tree, rootfs_builder.OLD_MANIFEST))
    # The layout stores had before: the manifest at the tree's top.
    os.rename(beside, os.path.join(tree, rootfs_builder.OLD_MANIFEST))
    busybox_ino = os.stat(os.path.join(tree, "bin", "busybox")).st_ino

    listing = pyc("run", "--name", "c", "default", "ls", "-a", "/").stdout.split()
    assert "bin" in listing and rootfs_builder.OLD_MANIFEST not in listing
    assert os.path.isfile(beside) and not os.path.lexists(os.path.join(tree, rootfs_builder.OLD_MANIFEST))
    assert os.stat(os.path.join(tree, "bin", "busybox")).st_ino == busybox_ino  # moved, not rebuilt
    assert rootfs_builder.verify(tree) == []

    pyc("commit", "c", "nomanifest:1")
    out = str(tmp_path / "rootfs.tar")
    pyc("image", "export", "nomanifest:1", out, "--format", "rootfs")
    with tarfile.open(out) as tar:
        names = {os.path.normpath(n) for n in tar.getnames()}
    assert "bin/busybox" in names and rootfs_builder.OLD_MANIFEST not in names
    pyc("run", "-d", "--name", "live", "default", "sleep", "300")
    pyc("cp", "live:/etc/passwd", str(tmp_path))
    p = pyc("cp", f"live:/{rootfs_builder.OLD_MANIFEST}", str(tmp_path), ok=False)
    assert p.returncode != 0 and not os.path.lexists(tmp_path / rootfs_builder.OLD_MANIFEST)
