"""Races between commands: one name, many runs; one container, many removals.

tests/test_leaks.py races 10 runs for one name; the issue asks for 50, and for concurrent rm.
"""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor

from conftest import ROOT_REQUIRED, wait_until

from .conftest import CrashCLI, Host, processes_with, sleeper

pytestmark = ROOT_REQUIRED


def _one_line(stderr: str) -> bool:
    return stderr.count("\n") == 1 and stderr.startswith("pycontain: ") and "Traceback" not in stderr


def test_fifty_concurrent_runs_of_one_name_exactly_one_wins(cli: CrashCLI, host: Host):
    marker = "race-same-name"
    before = host.snapshot(marker)

    def one(_: int) -> subprocess.CompletedProcess:
        return cli("run", "-d", "--name", "same", "default", "--", *sleeper(marker), timeout=120)

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(one, range(50)))
    host.note_ids()
    winners = [p for p in results if p.returncode == 0]
    losers = [p for p in results if p.returncode != 0]
    assert len(winners) == 1, [p.stderr for p in results if p.returncode not in (0, 125)]
    for p in losers:
        assert p.returncode == 125 and "'same' is already in use" in p.stderr and _one_line(p.stderr), (
            p.stderr
        )
    assert cli("ps", "-q").stdout.split() == [winners[0].stdout.strip()[:12]]
    assert cli("rm", "-f", "same").returncode == 0
    assert wait_until(lambda: not processes_with(marker))
    assert Host.leaks(before, host.snapshot(marker)) == {}


def test_concurrent_rm_one_succeeds_the_others_report_it_gone(cli: CrashCLI, host: Host):
    marker = "race-rm"
    before = host.snapshot(marker)
    cli("run", "-d", "--name", "doomed", "-m", "64m", "default", "--", *sleeper(marker), check=True)
    host.note_ids()

    def one(_: int) -> subprocess.CompletedProcess:
        return cli("rm", "-f", "doomed", timeout=120)

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(one, range(20)))
    ok = [p for p in results if p.returncode == 0]
    assert len(ok) == 1 and ok[0].stdout == "doomed\n", [(p.returncode, p.stderr) for p in results]
    for p in results:
        if p.returncode != 0:
            assert (
                p.returncode == 125 and "no such container: 'doomed'" in p.stderr and _one_line(p.stderr)
            ), p.stderr
    assert wait_until(lambda: not processes_with(marker))
    assert Host.leaks(before, host.snapshot(marker)) == {}


def test_rm_racing_gc_and_ps(cli: CrashCLI, host: Host):
    """gc and ps (which removes exited --rm containers) running while rm runs: no errors, no leftovers."""
    marker = "race-gc"
    before = host.snapshot(marker)
    for i in range(6):
        cli(
            "run",
            "-d",
            "--rm",
            "--name",
            f"g{i}",
            "default",
            "--",
            "sh",
            "-c",
            "sleep 0.2; true",
            marker,
            check=True,
        )
        cli("run", "-d", "--name", f"k{i}", "default", "--", *sleeper(marker), check=True)
    host.note_ids()
    cmds = [("gc",), ("ps", "-a"), *[("rm", "-f", f"k{i}") for i in range(6)], ("gc",), ("ps",)]
    with ThreadPoolExecutor(max_workers=len(cmds)) as pool:
        results = list(pool.map(lambda a: cli(*a, timeout=120), cmds))
    for args, p in zip(cmds, results, strict=True):
        assert p.returncode == 0, (args, p.stderr)
    # The --rm ones end by themselves; 'ps' removes each once it has exited.
    assert wait_until(lambda: cli("ps", "-a", "-q").stdout.split() == [], timeout=10)
    assert wait_until(lambda: not processes_with(marker))
    assert Host.leaks(before, host.snapshot(marker)) == {}
