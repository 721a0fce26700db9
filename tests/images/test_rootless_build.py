"""``pycontain build`` by an unprivileged user: its steps run in rootless containers, without cgroup limits
when no cgroup is delegated (said once), and the image it makes runs rootless too."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
import uuid

import pytest
from conftest import ROOT_REQUIRED

from . import seeded_data_root

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytestmark = [
    ROOT_REQUIRED,
    pytest.mark.skipif(
        not shutil.which("useradd") or not shutil.which("runuser"), reason="no useradd/runuser"
    ),
]


@pytest.fixture
def user(tmp_path):
    name = "pyc-rb-" + uuid.uuid4().hex[:6]
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True
    )
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], check=False)


def _python_for(user: str) -> list[str]:
    """This interpreter when the user may run it; else the system's, given this one's packages (a test
    venv may live where other users cannot read, such as under /root)."""
    ok = subprocess.run(["runuser", "-u", user, "--", sys.executable, "-c", "pass"], capture_output=True)
    if ok.returncode == 0:
        return [sys.executable]
    return ["env", f"PYTHONPATH={REPO}:{sysconfig.get_paths()['purelib']}", "/usr/bin/python3"]


@pytest.fixture
def work(user):
    """A directory the user owns, where the user can reach it (pytest's tmp_path is root's alone)."""
    import pathlib
    import tempfile

    path = tempfile.mkdtemp(prefix="pyc-rb-")
    os.chmod(path, 0o755)
    try:
        yield pathlib.Path(path)
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_rootless_build_and_run(user, work):
    if not os.path.exists("/usr/bin/python3"):
        pytest.skip("no /usr/bin/python3")
    tmp_path = work
    data = seeded_data_root(str(tmp_path / "data"))
    with open(tmp_path / "appliance.toml", "w") as f:
        f.write('name = "rl"\nbase = "default"\nrun = ["echo hello > /greeting", "cat /greeting > /again"]\n')
    shutil.chown(tmp_path, user)
    for dirpath, dirnames, filenames in os.walk(tmp_path):
        for n in dirnames + filenames:
            shutil.chown(os.path.join(dirpath, n), user)
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_RUNTIME_DIR", "PYCONTAIN_ROOT")}
    env["PYCONTAIN_DATA"] = data
    base = ["runuser", "-u", user, "--", *_python_for(user), "-m", "pycontain"]

    def pyc(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*base, *args], capture_output=True, text=True, env=env, timeout=300, cwd=str(tmp_path)
        )

    uid = pwd.getpwnam(user).pw_uid
    try:
        p = pyc("build", "-f", str(tmp_path / "appliance.toml"))
        assert p.returncode == 0, p.stderr
        assert p.stderr.count("without cgroup limits") == 1, p.stderr
        p = pyc("run", "--rm", "rl", "--", "cat", "/again")
        assert (p.returncode, p.stdout) == (0, "hello\n"), p.stderr
        assert os.listdir(os.path.join(data, "tmp")) == []
    finally:
        shutil.rmtree(f"/tmp/pycontain-{uid}", ignore_errors=True)
