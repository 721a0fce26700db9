"""``pycontain build`` treats a manifest as untrusted input: nothing it names runs on the host (pip
requirements are names and versions, fetched in a build container), its files come only from beneath its
own directory, and the Debian mirror and host networking are the command line's choices. Each attack is
made, then the host is checked: a marker file a hostile package would write, the image's layers, the
connections a host-only service saw."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading

import pytest
from conftest import ROOT_REQUIRED

from . import default_rootfs, store_state
from .test_appliances import Env

pytestmark = ROOT_REQUIRED


@pytest.fixture
def env(tmp_path):
    e = Env(str(tmp_path / "env"))
    try:
        yield e
    finally:
        e.cleanup()


def _refused(p: subprocess.CompletedProcess, *needles: str) -> str:
    assert p.returncode == 125, (p.returncode, p.stdout, p.stderr)
    errors = [line for line in p.stderr.splitlines() if not line.startswith("[")]  # the rest: step progress
    assert len(errors) == 1 and "Traceback" not in p.stderr, p.stderr
    for n in needles:
        assert n in errors[0], errors[0]
    return errors[0]


def _manifest(directory, text: str) -> str:
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(str(directory), "appliance.toml")
    with open(path, "w") as f:
        f.write(text)
    return path


# -- pip -------------------------------------------------------------------------------------------------
def _python_image(env: Env, tmp_path) -> str:
    """An image whose python3 answers the build's version probe (a shell script), so that a build gets as far
    as fetching its 'pip' requirements."""
    root = str(tmp_path / "fakepy")
    subprocess.run(["cp", "-a", default_rootfs(), root], check=True)
    os.makedirs(os.path.join(root, "usr", "bin"), exist_ok=True)
    with open(os.path.join(root, "usr", "bin", "python3"), "w") as f:
        f.write("#!/bin/sh\necho 3.11\n")
    os.chmod(os.path.join(root, "usr", "bin", "python3"), 0o755)
    env.ok("import", "-q", f"dir:{root}", "fakepy")
    return "fakepy"


def _evil_package(tmp_path) -> tuple[str, str]:
    """A source package whose setup.py writes a marker on the machine that builds its metadata."""
    marker = str(tmp_path / "setup-py-ran-on-the-host")
    pkg = tmp_path / "manifest" / "evilpkg"
    pkg.mkdir(parents=True)
    (pkg / "setup.py").write_text(
        f"open({marker!r}, 'w').write('owned')\nfrom setuptools import setup\nsetup(name='evilpkg', version='1')\n"
    )
    return str(pkg), marker


@pytest.mark.parametrize(
    "requirement",
    [
        "./evilpkg",
        "evilpkg @ file://{pkg}",
        "{pkg}",
        "--index-url=http://127.0.0.1:1/simple",
        "-e ./evilpkg",
        "flask --pre",
    ],
)
def test_pip_requirements_are_names_and_versions_only(env, tmp_path, requirement):
    base = _python_image(env, tmp_path)
    pkg, marker = _evil_package(tmp_path)
    manifest = _manifest(
        tmp_path / "manifest", f"base = {base!r}\npip = [{json.dumps(requirement.format(pkg=pkg))}]\n"
    )
    p = env("build", "-f", manifest, "-t", "evil", timeout=180)
    _refused(p, "'pip'", "PEP 508")
    assert not os.path.exists(marker), "the package's setup.py ran on the host"


def test_a_pip_requirement_with_a_version_is_accepted_by_the_manifest(tmp_path):
    from pycontain.build.manifest import Manifest

    m = Manifest.parse(
        'base = "debian:bookworm"\npip = ["flask==3.0.3", "requests[socks]>=2,<3", "attrs; python_version>\'3\'"]\n',
        "appliance.toml",
        str(tmp_path),
    )
    assert len(m.pip) == 3


# -- the Debian mirror and the build's network --------------------------------------------------------
@pytest.mark.parametrize(
    "mirror", ["copy:///srv/evil-repo", "[trusted=yes] http://127.0.0.1:1/debian", "file:///srv/evil"]
)
def test_a_manifest_cannot_choose_the_debian_mirror(env, tmp_path, mirror):
    manifest = _manifest(tmp_path / "m", f'base = "debian:bookworm"\nmirror = {json.dumps(mirror)}\n')
    _refused(env("build", "-f", manifest, "-t", "evil"), "'mirror'", "--mirror")
    assert store_state(env.data)["layers"] == []  # no bootstrap ran


class _HostOnlyService:
    """A TCP service bound to the host's 127.0.0.1 that counts its connections."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nsecret")
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def service():
    s = _HostOnlyService()
    yield s
    s.close()


def test_host_networking_is_a_command_line_opt_in_only(env, tmp_path, service):
    fetch = f"wget -qO /got http://127.0.0.1:{service.port}/ || echo unreachable > /got"
    text = f'base = "default"\nrun = [{json.dumps(fetch)}]\n'
    manifest = _manifest(tmp_path / "m", text + 'build_network = "host"\n')
    _refused(env("build", "-f", manifest, "-t", "evil"), "'build_network'", "--network host")
    assert service.connections == 0

    manifest = _manifest(tmp_path / "m2", text)
    env.ok("build", "-f", manifest, "-t", "isolated")  # the default: no network in build commands
    assert service.connections == 0

    env.ok("build", "-f", manifest, "-t", "trusted", "--network", "host")  # the opt-in works
    assert service.connections == 1


# -- files -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink", "symlinked directory"])
def test_files_come_only_from_beneath_the_manifest(env, tmp_path, how):
    secret = tmp_path / "secret"
    secret.write_text("root-only secret 81fa")
    os.chmod(secret, 0o600)
    mdir = tmp_path / "project" / "app"
    mdir.mkdir(parents=True)
    src = {
        "dotdot": "../../secret",
        "absolute": str(secret),
        "symlink": "link",
        "symlinked directory": "d/secret",
    }[how]
    if how == "symlink":
        os.symlink(str(secret), mdir / "link")
    if how == "symlinked directory":
        os.symlink(str(tmp_path), mdir / "d")
    manifest = _manifest(mdir, f'base = "default"\n[[files]]\nsrc = {json.dumps(src)}\ndest = "/stolen"\n')
    _refused(env("build", "-f", manifest, "-t", "thief"), "'files[1].src'")
    assert store_state(env.data)["images"] == []
    for layer in store_state(env.data)["layers"]:
        assert not os.path.exists(os.path.join(env.data, "layers", layer, "stolen"))


def test_files_beneath_the_manifest_still_copy(env, tmp_path):
    mdir = tmp_path / "project"
    (mdir / "site").mkdir(parents=True)
    (mdir / "site" / "index.html").write_text("hello")
    os.symlink("site/index.html", mdir / "alias")  # a link that stays inside is fine
    manifest = _manifest(
        mdir,
        'base = "default"\n[[files]]\nsrc = "alias"\ndest = "/www/index.html"\n'
        '[[files]]\nsrc = "./site/../site"\ndest = "/site"\n',
    )
    env.ok("build", "-f", manifest, "-t", "site")
    p = env.ok("run", "--rm", "site", "cat", "/www/index.html", "/site/index.html")
    assert p.stdout == "hellohello"
    shutil.rmtree(mdir)
