"""pull / push / login / logout against Debian's docker-registry on 127.0.0.1 (a temporary config and storage
directory per test, started and stopped here), through the CLI as a user runs them."""

from __future__ import annotations

import glob
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.request

import pytest

from . import (
    ROOT_ONLY,
    cli,
    default_rootfs,
    make_oci_layout,
    need,
    remove_containers,
    store_state,
    tree_layer,
)

pytestmark = ROOT_ONLY


class Registry:
    """``docker-registry serve`` on a free loopback port; ``users`` turns on htpasswd basic auth."""

    def __init__(self, work: str, users: dict[str, str] | None = None) -> None:
        need("docker-registry")
        os.makedirs(work, exist_ok=True)
        self.work = work
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.host = f"127.0.0.1:{self.port}"
        auth = ""
        if users:
            need("htpasswd")
            htpasswd = os.path.join(work, "htpasswd")
            for n, (user, password) in enumerate(users.items()):
                flags = "-Bbc" if n == 0 else "-Bb"
                subprocess.run(["htpasswd", flags, htpasswd, user, password], check=True, capture_output=True)
            auth = f"auth:\n  htpasswd:\n    realm: test\n    path: {htpasswd}\n"
        config = os.path.join(work, "config.yml")
        with open(config, "w") as f:
            f.write(
                "version: 0.1\nlog:\n  level: warn\n"
                f"storage:\n  filesystem:\n    rootdirectory: {work}/storage\n"
                f"http:\n  addr: {self.host}\n  secret: test\n{auth}"
            )
        self.log_path = os.path.join(work, "registry.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(["docker-registry", "serve", config], stdout=self.log, stderr=self.log)
        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1)
                break
            except urllib.error.HTTPError:  # 401: up, with auth
                break
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"docker-registry exited: {open(self.log_path).read()}") from None
                time.sleep(0.05)

    def blob_gets(self, digest: str) -> int:
        """How many times the access log shows the blob ``digest`` fetched."""
        with open(self.log_path, "rb") as f:
            return len(re.findall(rf"GET /v2/[^ ]*/blobs/{digest} ".encode(), f.read()))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


@pytest.fixture
def registry(tmp_path):
    reg = Registry(str(tmp_path / "registry"))
    yield reg
    reg.stop()


@pytest.fixture
def auth_registry(tmp_path):
    reg = Registry(str(tmp_path / "registry"), {"alice": "s3cret"})
    yield reg
    reg.stop()


@pytest.fixture
def roots(tmp_path):
    """Two data roots (the pusher's and the puller's) and a state root; containers removed at the end."""
    a, b, state = str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "state")
    yield a, b, state
    remove_containers(state, b)


def _busybox_image(data: str, tmp_path, name: str = "app:1", extra: bytes | None = None) -> None:
    layers = [tree_layer(default_rootfs())]
    if extra is not None:
        layers.append(extra)
    layout = str(tmp_path / f"layout-{name.replace(':', '-').replace('/', '-')}")
    make_oci_layout(layout, layers, config={"Cmd": ["/bin/sh", "-c", "echo from-the-registry"]})
    p = cli(data, "import", "-q", layout, name)
    assert p.returncode == 0, p.stderr


def _one_line_error(p: subprocess.CompletedProcess, match: str) -> None:
    assert p.returncode == 125, (p.returncode, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    assert re.search(match, lines[0]), lines[0]


def test_push_pull_run_and_pull_by_digest(registry, roots, tmp_path):
    need("skopeo")
    a, b, state = roots
    _busybox_image(a, tmp_path)
    ref = f"{registry.host}/team/app:1"
    p = cli(a, "push", "-q", "app:1", ref)
    assert p.returncode == 0, p.stderr
    digest = p.stdout.strip()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest)

    p = cli(b, "pull", "-q", ref)
    assert p.returncode == 0, p.stderr
    image_id = p.stdout.strip()
    p = cli(b, "run", "--rm", "--network", "none", ref, state_root=state)
    assert (p.returncode, p.stdout) == (0, "from-the-registry\n"), p.stderr

    # a second pull fetches no layer: the store has them all
    before = store_state(b)
    gets = {d: registry.blob_gets(d) for d in _layer_blobs(ref)}
    assert all(n == 1 for n in gets.values()), gets
    p = cli(b, "pull", "-q", ref)
    assert (p.returncode, p.stdout.strip()) == (0, image_id), p.stderr
    assert store_state(b) == before
    assert {d: registry.blob_gets(d) for d in gets} == gets

    # by digest, into a third store: the same image
    c = str(tmp_path / "c")
    p = cli(c, "pull", "-q", f"{registry.host}/team/app@{digest}")
    assert (p.returncode, p.stdout.strip()) == (0, image_id), p.stderr
    assert os.listdir(os.path.join(c, "tmp")) == []


def _layer_blobs(ref: str) -> list[str]:
    out = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", "--no-tags", f"docker://{ref}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)["Layers"]


def test_missing_tag_and_bad_reference(registry, roots):
    need("skopeo")
    _, b, _ = roots
    _one_line_error(cli(b, "pull", f"{registry.host}/team/app:nope"), r"team/app:nope: not found")
    p = cli(b, "pull", "Bad//Ref")
    assert p.returncode == 125 and "invalid image reference" in p.stderr
    assert store_state(b)["images"] == []


def test_login_push_with_basic_auth(auth_registry, roots, tmp_path):
    need("skopeo")
    a, b, _ = roots
    _busybox_image(a, tmp_path)
    authdir = tmp_path / "auth"
    authfile = str(authdir / "auth.json")
    env_auth = ["--authfile", authfile]
    ref = f"{auth_registry.host}/team/app:1"

    _one_line_error(cli(a, "push", "app:1", ref, *env_auth), "refused the credentials|authentication")
    p = cli(a, "login", "-u", "alice", "-p", "wrong", auth_registry.host, *env_auth)
    _one_line_error(p, "refused the credentials")
    assert not os.path.exists(authfile)

    p = cli(a, "login", "-u", "alice", "-p", "s3cret", auth_registry.host, *env_auth)
    assert p.returncode == 0 and "Login Succeeded" in p.stdout, p.stderr
    assert stat.S_IMODE(os.stat(authfile).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(authdir).st_mode) == 0o700
    assert cli(a, "push", "-q", "app:1", ref, *env_auth).returncode == 0
    p = cli(b, "pull", "-q", ref, *env_auth)
    assert p.returncode == 0, p.stderr

    p = cli(a, "logout", auth_registry.host, *env_auth)
    assert p.returncode == 0, p.stderr
    _one_line_error(cli(b, "pull", ref, *env_auth), "refused the credentials|authentication")


def test_interrupted_pull_leaves_nothing(registry, roots, tmp_path):
    """SIGTERM while the layers come: exit 143, and the store holds nothing of the image."""
    need("skopeo")
    a, b, _ = roots
    big = tmp_path / "big"
    big.mkdir()
    with open(big / "noise", "wb") as f:
        for _ in range(48):
            f.write(os.urandom(1 << 20))
    _busybox_image(a, tmp_path, "big:1", extra=tree_layer(str(big)))
    ref = f"{registry.host}/team/big:1"
    assert cli(a, "push", "-q", "big:1", ref).returncode == 0

    env = {**os.environ, "PYCONTAIN_DATA": b}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pycontain", "pull", "-q", ref],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    while not glob.glob(os.path.join(b, "tmp", "pull-*")) and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, (out, err)
    assert "Traceback" not in err
    state = store_state(b)
    assert state == {"layers": [], "leftovers": [], "images": []}
    assert os.listdir(os.path.join(b, "tmp")) == []
