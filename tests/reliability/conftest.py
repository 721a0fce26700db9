"""Fixtures for the reliability tests: traces of everything a container can leave on the host, a private
bridge network, and a CLI that can be told to kill itself at a named step.

The traces are filtered to what these tests made (their state root, their container ids, the session's
bridge and nftables table from tests/conftest.py's ``private_network``), so other work on the same host at
the same time is never reported as a leak.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile

import pytest
from conftest import CLI, TEST_BRIDGE, TEST_TABLE, mountinfo, own_cgroup_dirs

from pycontain.state import INDEX_DIR

VETH_PREFIX = "pcv"


def crash_env(step: str | None = None, **extra: str) -> dict[str, str]:
    env = {**os.environ, **extra}
    env.pop("PYCONTAIN_CRASH_AT", None)
    if step:
        env["PYCONTAIN_CRASH_AT"] = step
    return env


def sleeper(marker: str, seconds: int = 1000) -> list[str]:
    """A long-running command whose process shows ``marker`` in its command line (as sh's $0)."""
    return ["sh", "-c", f"sleep {seconds}; true", marker]


def processes_with(marker: str) -> list[int]:
    """Live (not zombie) processes whose command line holds ``marker``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
            with open(f"/proc/{pid}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in cmdline and state != b"Z":
            found.append(int(pid))
    return found


def _ip_links() -> dict[str, str]:
    """Link name → its master's name (or "")."""
    out = subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True, check=True).stdout
    return {link["ifname"]: link.get("master", "") for link in json.loads(out)}


def _nft_rules(table: str) -> set[str]:
    p = subprocess.run(["nft", "-j", "list", "ruleset"], capture_output=True, text=True)
    if p.returncode != 0:
        return set()
    items = json.loads(p.stdout).get("nftables", [])
    out = set()
    for item in items:
        for kind, body in item.items():
            if kind in ("metainfo",) or not isinstance(body, dict):
                continue
            if body.get("table") == table or (kind == "table" and body.get("name") == table):
                body = {k: v for k, v in body.items() if k != "handle"}
                out.add(f"{kind} {json.dumps(body, sort_keys=True)}")
    return out


def _tree(top: str, depth: int = 2) -> set[str]:
    found: set[str] = set()
    if not os.path.isdir(top):
        return found
    base = top.rstrip("/").count("/")
    for d, subdirs, files in os.walk(top):
        if d.count("/") - base >= depth:
            subdirs[:] = []
        found.update(os.path.join(d, n) for n in (*subdirs, *files))
    return found


class Host:
    """Snapshots of what containers of one state root can leave behind, and their difference."""

    def __init__(self, root: str, data: str | None = None, network: bool = True) -> None:
        self.root = root
        self.data = data
        self.network = network
        self.ids: set[str] = set()  # every container id ever seen in the root

    def note_ids(self) -> None:
        if os.path.isdir(self.root):
            self.ids.update(n for n in os.listdir(self.root) if len(n) == 64)

    def _mine(self, text: str) -> bool:
        return (
            self.root in text
            or (self.data is not None and self.data in text)
            or any(cid[:12] in text for cid in self.ids)
        )

    def snapshot(self, marker: str | None = None) -> dict[str, set[str]]:
        self.note_ids()
        snap: dict[str, set[str]] = {
            "mounts": {m for m in mountinfo() if self._mine(m)},
            "cgroups": {c for c in own_cgroup_dirs() if self._mine(c)},
            "state": {n for n in os.listdir(self.root) if n != ".lock"}
            if os.path.isdir(self.root)
            else set(),
            "index": {
                n
                for n in (os.listdir(INDEX_DIR) if os.path.isdir(INDEX_DIR) else [])
                if n in self.ids or os.path.realpath(os.path.join(INDEX_DIR, n)).startswith(self.root + "/")
            },
        }
        if self.data is not None:
            snap["store"] = {p for p in _tree(self.data) if "/rootfs/" not in p}
        if marker is not None:
            snap["processes"] = {str(p) for p in processes_with(marker)}
        if self.network:
            links = _ip_links()
            snap["links"] = {
                f"{n} master={m}"
                for n, m in links.items()
                if m == TEST_BRIDGE
                or n == TEST_BRIDGE
                or (n.startswith(VETH_PREFIX) and any(n[len(VETH_PREFIX) :] == c[:12] for c in self.ids))
            }
            snap["nft"] = _nft_rules(TEST_TABLE)
        return snap

    @staticmethod
    def leaks(before: dict[str, set[str]], after: dict[str, set[str]]) -> dict[str, list[str]]:
        """What ``after`` has that ``before`` had not, by kind (empty: nothing leaked)."""
        return {k: sorted(after[k] - before.get(k, set())) for k in after if after[k] - before.get(k, set())}


class CrashCLI(CLI):
    """The tests' CLI, plus the environment each command runs with (crash step, networking)."""

    def __init__(self, root: str, env: dict[str, str] | None = None) -> None:
        super().__init__(root)
        self.env = dict(env or {})

    def __call__(self, *args: str, crash: str | None = None, **kw: object) -> subprocess.CompletedProcess:
        kw.setdefault("env", crash_env(crash, **self.env))
        return super().__call__(*args, **kw)

    def leaving(
        self, *args: str, crash: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess:
        """For commands whose processes outlive them holding their stdio (create, exec killed while its
        command runs): output to files, never to pipes we would wait on."""
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            p = subprocess.run(
                self.argv(*args),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                text=True,
                timeout=timeout,
                env=crash_env(crash, **self.env),
            )
            out.seek(0)
            err.seek(0)
            p.stdout, p.stderr = out.read(), err.read()
        return p


@pytest.fixture
def host(state_root) -> Host:
    return Host(state_root, network=bool(shutil.which("nft")) and os.geteuid() == 0)


@pytest.fixture
def cli(state_root) -> CrashCLI:
    return CrashCLI(state_root)


@pytest.fixture(scope="session", autouse=True)
def bridge_made(private_network) -> None:
    """'pycontain run' attaches to the session's default bridge; the bridge and its table are made by the
    first attach and stay (like docker0): made here, before any test's snapshot, so that only what
    containers add is compared."""
    if os.geteuid() != 0 or not shutil.which("nft"):
        return
    with tempfile.TemporaryDirectory(prefix="pycontain-relwarm-") as root:
        p = CrashCLI(root)("run", "--rm", "default", "--", "true")
        assert p.returncode == 0, p.stderr


@pytest.fixture
def net_cli(state_root) -> CrashCLI:
    if not shutil.which("nft"):
        pytest.skip("bridge networking needs nft")
    return CrashCLI(state_root)
