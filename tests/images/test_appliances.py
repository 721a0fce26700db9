"""Appliances: ``pycontain build`` of the examples (static web server, sandbox, Python web application), the
step cache, default limits, and one-line errors for bad manifests.

Each test has its own data root (image store) and state root, and removes its containers even when it fails.
The Debian appliance is built once per session (its bootstrap is the slow part: about 15 s).
"""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest
from conftest import ROOT_REQUIRED

import rootfs_builder
from pycontain.build import build

from . import cli, need, remove_containers, seeded_data_root, sh

pytestmark = ROOT_REQUIRED

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "appliances")


class Env:
    """A private data root and state root, and ``pycontain`` bound to them."""

    def __init__(self, base: str) -> None:
        self.data = seeded_data_root(os.path.join(base, "data"))
        self.state = os.path.join(base, "state")

    def __call__(self, *args: str, timeout: float = 120, input: str | None = None):
        if args[:1] == ("run",):  # no network resources on the host: the tests reach servers from inside
            args = ("run", "--network", "none", *args[1:])
        if input is None:
            return cli(self.data, *args, state_root=self.state, timeout=timeout)
        import subprocess
        import sys

        code = "import sys; from pycontain.cli import main; sys.exit(main())"
        return subprocess.run(
            [sys.executable, "-c", code, "--root", self.state, *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "PYCONTAIN_DATA": self.data},
        )

    def ok(self, *args: str, **kw: object):
        p = self(*args, **kw)
        assert p.returncode == 0, f"pycontain {' '.join(args)} exited {p.returncode}: {p.stderr}"
        return p

    def cleanup(self) -> None:
        remove_containers(self.state, self.data)
        leftovers = (
            [e for e in os.listdir(os.path.join(self.data, "tmp")) if e.startswith("build-")]
            if os.path.isdir(os.path.join(self.data, "tmp"))
            else []
        )
        shutil.rmtree(self.data, ignore_errors=True)
        shutil.rmtree(self.state, ignore_errors=True)
        assert not leftovers, f"a build left its work directory behind: {leftovers}"


@pytest.fixture
def env(tmp_path):
    e = Env(str(tmp_path))
    try:
        yield e
    finally:
        e.cleanup()


def example(name: str) -> str:
    return os.path.join(EXAMPLES, name, "appliance.toml")


def wait_for(e: Env, container: str, argv: list[str], timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while True:
        p = e("exec", container, *argv, timeout=30)
        if p.returncode == 0 or time.monotonic() > deadline:
            assert p.returncode == 0, p.stderr
            return p.stdout
        time.sleep(0.2)


# -- the static web server -----------------------------------------------------------------------------
def test_static_web_appliance_builds_caches_and_serves(env):
    p = env.ok("build", "-f", example("static-web"), "-t", "static-web")
    assert "0/3 step(s) cached" in p.stdout, p.stdout
    image = json.loads(env.ok("image", "inspect", "static-web").stdout)[0]
    assert image["Config"]["Entrypoint"][:2] == ["httpd", "-f"]
    assert image["Config"]["ExposedPorts"] == {"8080/tcp": {}} and image["Config"]["User"] == "65534"
    assert image["Config"]["Resources"] == {"memory": "32m", "pids_limit": "32", "cpus": "0.5"}
    assert len(image["RootFS"]["Layers"]) == 3

    # An unchanged manifest: every step from the cache, the same image, well under a second.
    started = time.monotonic()
    p = env.ok("build", "-f", example("static-web"), "-t", "static-web")
    wall = time.monotonic() - started
    assert "3/3 step(s) cached" in p.stdout and image["Id"][7:19] in p.stdout, p.stdout
    assert float(p.stdout.rsplit(" ", 1)[1].rstrip("s\n")) < 1.0 and wall < 5, (p.stdout, wall)

    env.ok("run", "-d", "--name", "web", "static-web")
    page = wait_for(env, "web", ["wget", "-qO-", "http://127.0.0.1:8080/"])
    assert "Served by busybox httpd" in page
    assert wait_for(env, "web", ["wget", "-qO-", "http://127.0.0.1:8080/build.txt"]).startswith("built ")
    assert env.ok("exec", "web", "id", "-u").stdout.strip() == "65534"
    # The manifest's limits are the container's defaults.
    res = json.loads(env.ok("inspect", "web").stdout)[0]["Config"]["resources"]
    assert res["memory"]["limit"] == 32 << 20 and res["pids"]["limit"] == 32
    assert res["cpu"]["quota"] == 50000 and res["cpu"]["period"] == 100000


def test_changed_file_reruns_only_the_steps_after_it(env, tmp_path):
    src = tmp_path / "web"
    shutil.copytree(os.path.join(EXAMPLES, "static-web"), src)
    first = build(str(src / "appliance.toml"), "web:1", env.data)
    assert (first.steps, first.cached) == (3, 0)
    (src / "site" / "index.html").write_text("<h1>changed</h1>\n")
    second = build(str(src / "appliance.toml"), "web:2", env.data)
    assert second.cached == 1  # the base; the files and the run step after them ran again
    assert second.record["layers"][0] == first.record["layers"][0]
    assert second.record["id"] != first.record["id"]
    top = os.path.join(env.data, "layers", second.record["layers"][1], "srv", "www", "index.html")
    assert open(top).read() == "<h1>changed</h1>\n"
    again = build(str(src / "appliance.toml"), "web:3", env.data)
    assert again.cached == 3 and again.record["id"] == second.record["id"]
    # --no-cache runs every step again, and the store takes the same content back.
    fresh = build(str(src / "appliance.toml"), "web:4", env.data, no_cache=True)
    assert fresh.cached == 0 and fresh.record["layers"][:2] == second.record["layers"][:2]


def test_failing_build_command_leaves_nothing(env, tmp_path):
    (tmp_path / "appliance.toml").write_text(
        'base = "default"\nrun = ["echo preparing", "echo about to fail >&2; exit 3", "echo never"]\n'
    )
    p = env("build", "-f", str(tmp_path / "appliance.toml"), "-t", "broken")
    assert p.returncode == 125
    errors = [line for line in p.stderr.splitlines() if not line.startswith("[")]  # the rest: step progress
    assert len(errors) == 1 and "Traceback" not in p.stderr, p.stderr
    assert "'run echo about to fail >&2; exit 3' failed with exit status 3: about to fail" in p.stderr, (
        p.stderr
    )
    assert json.loads(env.ok("images", "--json").stdout) == []
    assert not [d for d in os.listdir(env.state) if len(d) == 64] if os.path.isdir(env.state) else True
    # The step that worked is cached: fixing the failing one resumes after it.
    (tmp_path / "appliance.toml").write_text('base = "default"\nrun = ["echo preparing", "echo fixed"]\n')
    p = env.ok("build", "-f", str(tmp_path / "appliance.toml"), "-t", "fixed")
    assert "2/3 step(s) cached" in p.stdout, p.stdout


BAD = [
    ('base = "default"\nbsae = 1\n', "unknown key 'bsae'"),
    ('base = "default"\npackages = ["curl"]\n', "'packages' needs a Debian base"),
    ('base = "debian:bookworm"\nvariant = "tiny"\n', "'variant' is 'tiny': use one of"),
    ('base = "default"\n[limits]\nmemory = "lots"\n', "'limits' are invalid"),
    ('base = "default"\n[limits]\nram = "1g"\n', "'limits.ram' is not a known limit"),
    ('base = "default"\nexpose = [70000]\n', "'expose' has 70000"),
    ('base = "default"\nrun = "echo hi"\n', "'run' is a string: give a list of strings"),
    ('base = "default"\nworkdir = "app"\n', "'workdir' is 'app': use an absolute path"),
    (
        'base = "default"\n[[files]]\nsrc = "missing.txt"\ndest = "/x"\n',
        "'files[1].src' 'missing.txt' does not exist",
    ),
    (
        'base = "default"\n[[files]]\nsrc = "appliance.toml"\ndest = "x"\n',
        "'files[1].dest' is missing or not absolute",
    ),
    ('base = "closure:/bin/true"\npip = ["flask"]\n', "'pip' needs an image with python3"),
    ('base = "no-such-image"\n', "'base' is 'no-such-image', which is not an image of the store"),
    ('base = "default"\nentrypoint = [1]\n', "'entrypoint' is a list: give a list of strings"),
    ("base = [\n", "not valid TOML"),
    ('base = "default"\npip = ["flask"]\n', "'pip' needs python3 in the image"),
]


@pytest.mark.parametrize(("text", "message"), BAD, ids=[m.split("'")[1] if "'" in m else m for _, m in BAD])
def test_bad_manifest_is_one_line_naming_the_key(env, tmp_path, text, message):
    (tmp_path / "appliance.toml").write_text(text)
    p = env("build", "-f", str(tmp_path / "appliance.toml"), "-t", "bad")
    assert p.returncode == 125, p.stdout
    errors = [line for line in p.stderr.splitlines() if not line.startswith("[")]  # the rest: step progress
    assert len(errors) == 1 and "Traceback" not in p.stderr, p.stderr
    assert message in errors[0], p.stderr


def test_missing_manifest_and_name(env, tmp_path):
    p = env("build", "-f", str(tmp_path / "nope.toml"), "-t", "x")
    assert p.returncode == 125 and "no such manifest" in p.stderr
    (tmp_path / "appliance.toml").write_text('base = "default"\n')
    p = env("build", "-f", str(tmp_path / "appliance.toml"))
    assert p.returncode == 125 and "give one with -t NAME" in p.stderr


# -- the sandbox ----------------------------------------------------------------------------------------
def test_sandbox_appliance_runs_untrusted_scripts_under_tight_limits(env):
    env.ok("build", "-f", example("sandbox"), "-t", "sandbox")
    sandbox = [
        "run",
        "-i",
        "--rm",
        "--read-only",
        "--tmpfs",
        "/sandbox:size=8m,uid=65534,gid=65534",
        "sandbox",
    ]
    p = env(*sandbox, input="id -u; pwd; echo data > f && cat f; echo ok\n", timeout=60)
    assert (p.returncode, p.stdout.split()) == (0, ["65534", "/sandbox", "data", "ok"]), p.stderr
    # Outside /sandbox nothing is writable.
    p = env(*sandbox, input="echo x > /etc/x\n", timeout=60)
    assert p.returncode != 0
    # A memory hog meets the 32 MiB limit (no swap): the OOM killer ends it.
    p = env(*sandbox, input="x=$(head -c 200000000 /dev/zero | tr '\\0' x); echo survived\n", timeout=60)
    assert "survived" not in p.stdout and p.returncode != 0
    # A fork bomb meets the pids limit and the wall-clock cap.
    started = time.monotonic()
    p = env(*sandbox, input="f() { f | f & }; f; while :; do :; done; echo survived\n", timeout=60)
    assert "survived" not in p.stdout and time.monotonic() - started < 30
    # The image's limits are defaults: run's own flags win, the others stay.
    p = env.ok("run", "-d", "--name", "sb", "-m", "64m", "sandbox", "-c", "sleep 60")
    res = json.loads(env.ok("inspect", "sb").stdout)[0]["Config"]["resources"]
    assert res["memory"]["limit"] == 64 << 20 and res["pids"]["limit"] == 16


# -- the Python web application (Debian) ----------------------------------------------------------------
@pytest.fixture(scope="session")
def python_web(tmp_path_factory):
    """The Debian appliance, built once per session (mmdebstrap essential + python3, a Flask wheel)."""
    need("mmdebstrap")
    e = Env(str(tmp_path_factory.mktemp("pyweb")))
    try:
        started = time.monotonic()
        p = e("build", "-f", example("python-web"), "-t", "python-web", timeout=600)
        assert p.returncode == 0, p.stderr
        e.cold_seconds = time.monotonic() - started
        yield e
    finally:
        e.cleanup()


def test_python_web_appliance_serves_flask(python_web):
    e = python_web
    image = json.loads(e.ok("image", "inspect", "python-web").stdout)[0]
    assert image["Config"]["Entrypoint"] == ["python3", "/app/app.py"]
    assert "PORT=8000" in image["Config"]["Env"]
    layers = image["Layers"]
    assert os.path.isfile(os.path.join(layers[0], "usr", "bin", "python3.11"))
    assert any(
        n.startswith("flask-3.0.3")
        for n in os.listdir(os.path.join(layers[1], "usr", "local", "lib", "python3.11", "dist-packages"))
    )
    try:
        e.ok("run", "-d", "--name", "app", "python-web")
        probe = (
            "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8000/').read().decode())"
        )
        reply = json.loads(wait_for(e, "app", ["python3", "-c", probe], timeout=30))
        assert reply["flask"] == "3.0.3" and reply["message"] == "hello from a pycontain appliance"
        assert e.ok("exec", "app", "id", "-u").stdout.strip() == "65534"
    finally:
        remove_containers(e.state, e.data)
    p = e.ok("build", "-f", example("python-web"), "-t", "python-web")
    assert "3/3 step(s) cached" in p.stdout and image["Id"][7:19] in p.stdout


def test_image_and_closure_bases(env, tmp_path):
    env.ok("build", "-f", example("static-web"), "-t", "static-web")
    (tmp_path / "notes.txt").write_text("on top\n")
    (tmp_path / "appliance.toml").write_text(
        'base = "static-web"\nrun = ["cat /srv/www/notes.txt >> /srv/www/build.txt"]\ncmd = ["-p", "9090"]\n'
        '[[files]]\nsrc = "notes.txt"\ndest = "/srv/www/notes.txt"\nowner = "65534:65534"\n'
    )
    rec = build(str(tmp_path / "appliance.toml"), "derived", env.data).record
    parent = json.loads(env.ok("image", "inspect", "static-web").stdout)[0]
    assert rec["layers"][:3] == [d[7:] for d in parent["RootFS"]["Layers"]] and len(rec["layers"]) == 5
    assert rec["config"]["Entrypoint"] == parent["Config"]["Entrypoint"] and rec["config"]["Cmd"] == [
        "-p",
        "9090",
    ]
    st = os.stat(os.path.join(env.data, "layers", rec["layers"][3], "srv", "www", "notes.txt"))
    assert (st.st_uid, st.st_gid) == (65534, 65534)
    # The run step saw the parent's file and the one copied before it.
    code, out = sh(rootfs_builder.resolve_image("derived", env.data).layers, "cat /srv/www/build.txt")
    assert code == 0 and out.startswith("built ") and out.endswith("on top\n"), out
    # A closure base: host binaries and their libraries only, /bin/sh for the build commands.
    (tmp_path / "closure.toml").write_text(
        'base = "closure:/bin/sh,/bin/cat"\nrun = ["echo made-in-build > /made"]\n'
        'entrypoint = ["/bin/cat"]\ncmd = ["/made"]\n'
    )
    env.ok("build", "-f", str(tmp_path / "closure.toml"), "-t", "tiny")
    assert env.ok("run", "--rm", "tiny").stdout == "made-in-build\n"


def test_prune_drops_a_failed_builds_layers_and_cache_entries(env, tmp_path):
    (tmp_path / "appliance.toml").write_text('base = "default"\nrun = ["echo kept > /kept", "exit 1"]\n')
    assert env("build", "-f", str(tmp_path / "appliance.toml"), "-t", "x").returncode == 125
    cache = os.path.join(env.data, "images", "build-cache")
    assert len(os.listdir(cache)) == 2 and len(os.listdir(os.path.join(env.data, "layers"))) == 2
    p = env.ok("image", "prune")
    assert p.stdout.count("Deleted layer") == 2
    assert (
        os.listdir(cache) == []
        and [e for e in os.listdir(os.path.join(env.data, "layers")) if not e.startswith(".")] == []
    )


def test_a_file_copied_onto_a_directory_goes_into_it(env, tmp_path):
    (tmp_path / "hello").write_text("#!/bin/sh\necho hello\n")
    (tmp_path / "note.txt").write_text("note\n")
    (tmp_path / "appliance.toml").write_text(
        'base = "default"\n[[files]]\nsrc = "hello"\ndest = "/bin"\nmode = "0755"\n'
        '[[files]]\nsrc = "note.txt"\ndest = "/opt/notes/"\n'
    )
    build(str(tmp_path / "appliance.toml"), "into", env.data)
    code, out = sh(
        rootfs_builder.resolve_image("into", env.data).layers,
        "hello; cat /opt/notes/note.txt; test -x /bin/busybox && echo busybox-kept",
    )
    assert (code, out.split()) == (0, ["hello", "note", "busybox-kept"]), out
