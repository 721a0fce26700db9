"""Create/start/exec/rm cycles with pycontain SIGKILLed at a random step, then 'rm -f' or 'gc': at the end the
host shows exactly what it showed before (mounts, cgroups, links, nft rules, state root, image store).

PYCONTAIN_SOAK_CYCLES sets the number of cycles (default 25, for CI); PYCONTAIN_SOAK_SEED replays a run
(the seed is printed, and named in every failure); PYCONTAIN_SOAK_NET is the share of detached cycles that
also publish a port (default 0.3). Every container is on a bridge network ('run's default), a private one.
"""

from __future__ import annotations

import os
import random
import time

import pytest
from conftest import ROOT_REQUIRED, wait_until

from pycontain.container import CREATE_STEPS, EXEC_STEPS, REMOVE_STEPS, START_STEPS

from .conftest import CrashCLI, Host, processes_with, sleeper
from .test_crash_points import oci_bundle

pytestmark = [ROOT_REQUIRED, pytest.mark.soak]

CYCLES = int(os.environ.get("PYCONTAIN_SOAK_CYCLES", "25"))
NET_ODDS = float(os.environ.get("PYCONTAIN_SOAK_NET", "0.3"))
MARKER = "soak-cycle"


def _step(rng: random.Random, steps: tuple[str, ...], odds: float) -> str | None:
    return rng.choice(steps) if rng.random() < odds else None


def _detached(cli: CrashCLI, rng: random.Random, name: str, image: str) -> str | None:
    """run -d, exec, rm -f: returns the step pycontain was killed at, or None."""
    opts = ["-m", "64m"] if rng.random() < 0.5 else []
    if rng.random() < NET_ODDS:
        opts += ["--network", "bridge", "-p", f"127.0.0.1:{rng.randint(20000, 40000)}:80"]
    step = _step(rng, CREATE_STEPS, 0.3)
    p = cli("run", "-d", "--name", name, *opts, image, "--", *sleeper(MARKER), crash=step)
    if step:
        # The container's monitor creates it: the monitor is what dies, and run says so in one line.
        assert p.returncode == 125 and "monitor died" in p.stderr, (step, p.returncode, p.stderr)
        return step
    assert p.returncode == 0, p.stderr
    step = _step(rng, EXEC_STEPS, 0.2)
    p = cli.leaving("exec", name, "sh", "-c", "echo hi > /tmp/x; sleep 0.05; true", MARKER, crash=step)
    if step:
        assert p.returncode == -9, (step, p.returncode, p.stderr)
        return step
    assert p.returncode == 0, p.stderr
    step = _step(rng, REMOVE_STEPS, 0.4)
    p = cli("rm", "-f", name, crash=step)
    if step:
        assert p.returncode == -9, (step, p.returncode, p.stderr)
        return step
    assert p.returncode == 0, p.stderr
    return None


def _foreground(cli: CrashCLI, rng: random.Random, name: str, image: str) -> str | None:
    step = _step(rng, CREATE_STEPS, 0.4)
    p = cli.leaving(
        "run", "--rm", "--name", name, image, "--", "sh", "-c", "sleep 0.05; true", MARKER, crash=step
    )
    if step:
        assert p.returncode == -9, (step, p.returncode, p.stderr)
        return step
    assert p.returncode == 0, p.stderr
    return None


def _oci(cli: CrashCLI, rng: random.Random, name: str, bundle: str) -> str | None:
    step = _step(rng, CREATE_STEPS, 0.25)
    p = cli.leaving("create", "--bundle", bundle, name, crash=step)
    if step:
        assert p.returncode == -9, (step, p.returncode, p.stderr)
        return step
    assert p.returncode == 0, p.stderr
    step = _step(rng, START_STEPS, 0.3)
    p = cli("start", name, crash=step)
    if step:
        assert p.returncode == -9, (step, p.returncode, p.stderr)
        return step
    assert p.returncode == 0, p.stderr
    step = _step(rng, REMOVE_STEPS, 0.4)
    p = cli("delete", "--force", name, crash=step)
    if step:
        assert p.returncode == -9, (step, p.returncode, p.stderr)
        return step
    assert p.returncode == 0, p.stderr
    return None


@pytest.fixture
def soak_cli(state_root, tmp_path) -> CrashCLI:
    """A private image store holding the built-in root filesystem as an image."""
    import rootfs_builder

    data = str(tmp_path / "data")
    c = CrashCLI(state_root, {"PYCONTAIN_DATA": data})
    p = c("import", "-q", "dir:" + rootfs_builder.default_path(), "soak:1", timeout=300)
    assert p.returncode == 0, p.stderr
    p = c("run", "--rm", "soak:1", "--", "true")  # the (private) default bridge and table exist from here
    assert p.returncode == 0, p.stderr
    c.data = data  # type: ignore[attr-defined]
    return c


def test_random_kill_cycles_leave_nothing(soak_cli: CrashCLI, state_root, tmp_path):
    seed = int(os.environ.get("PYCONTAIN_SOAK_SEED") or random.randrange(1 << 32))
    print(f"\nsoak: {CYCLES} cycles, seed {seed} (replay with PYCONTAIN_SOAK_SEED={seed})")
    rng = random.Random(seed)
    cli = soak_cli
    host = Host(state_root, data=cli.data)  # type: ignore[attr-defined]
    bundle = oci_bundle(str(tmp_path / "bundle"), sleeper(MARKER))
    before = host.snapshot(MARKER)
    kills: dict[str, int] = {}
    started = time.monotonic()
    for i in range(CYCLES):
        name = f"s{i}"
        flavor = rng.choice(("detached", "detached", "foreground", "oci"))
        where = f"seed {seed}, cycle {i} ({flavor})"
        if flavor == "detached":
            step = _detached(cli, rng, name, "soak:1")
        elif flavor == "foreground":
            step = _foreground(cli, rng, name, "soak:1")
        else:
            step = _oci(cli, rng, name, bundle)
        host.note_ids()
        if step is not None:
            kills[step] = kills.get(step, 0) + 1
            # gc only takes what no live command owns: a container killed mid-exec or mid-start runs on.
            by_gc = step in CREATE_STEPS + REMOVE_STEPS and rng.random() < 0.5
            p = cli("gc") if by_gc else cli("rm", "-f", name)
            assert p.returncode == 0, (where, step, p.stderr)
        elif flavor == "foreground":
            pass  # --rm removed it
        assert cli.ids() == [], (where, step, "left in the state root", cli.ids())
    assert wait_until(lambda: not processes_with(MARKER), timeout=20), f"seed {seed}: processes left"
    leaks = Host.leaks(before, host.snapshot(MARKER))
    elapsed = time.monotonic() - started
    print(
        f"soak: {CYCLES} cycles in {elapsed:.1f} s, {sum(kills.values())} kills "
        f"({', '.join(f'{k}={v}' for k, v in sorted(kills.items()))}), leaks={sum(map(len, leaks.values()))}"
    )
    assert leaks == {}, f"seed {seed}: {leaks}"
