"""Load: N containers running while ps, stats and exec are called in loops; no command fails, and the library
used from one long-lived process (as the sandbox pool does) grows neither in descriptors nor in memory.

PYCONTAIN_LOAD_N containers (default 10) for PYCONTAIN_LOAD_SECONDS (default 10); the figures are printed.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time

import pytest
from conftest import ROOT_REQUIRED, wait_until

from .conftest import CrashCLI, Host, processes_with, sleeper

pytestmark = [ROOT_REQUIRED, pytest.mark.soak]

N = int(os.environ.get("PYCONTAIN_LOAD_N", "10"))
SECONDS = float(os.environ.get("PYCONTAIN_LOAD_SECONDS", "10"))
MARKER = "load-test"


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_many_containers_under_ps_stats_and_exec(cli: CrashCLI, host: Host, state_root):
    before = host.snapshot(MARKER)
    started = time.monotonic()
    names = [f"load{i}" for i in range(N)]
    try:
        for name in names:
            cli("run", "-d", "--name", name, "-m", "32m", "default", "--", *sleeper(MARKER, 3600), check=True)
        host.note_ids()
        boot = time.monotonic() - started
        failures: list[str] = []
        counts = {"ps": 0, "stats": 0, "exec": 0}
        stop = time.monotonic() + SECONDS
        lock = threading.Lock()

        def loop(kind: str, seed: int) -> None:
            rng = random.Random(seed)
            while time.monotonic() < stop:
                if kind == "ps":
                    p = cli("ps", "--json", timeout=120)
                    ok = p.returncode == 0 and len(json.loads(p.stdout)) == N
                elif kind == "stats":
                    p = cli("stats", "--no-stream", "--json", timeout=120)
                    ok = p.returncode == 0 and len(json.loads(p.stdout)) == N
                else:
                    name = rng.choice(names)
                    p = cli("exec", name, "sh", "-c", "echo $HOSTNAME", timeout=120)
                    ok = p.returncode == 0 and p.stdout.strip() != ""
                with lock:
                    counts[kind] += 1
                    if not ok:
                        failures.append(f"{kind}: exit {p.returncode}: {p.stderr.strip()[-600:]}")

        threads = [
            threading.Thread(target=loop, args=(kind, i))
            for i, kind in enumerate(("ps", "stats", "exec", "exec"))
        ]
        for t in threads:
            t.start()

        # Meanwhile, the library in this process: the same calls many times, its fds and memory measured.
        from pycontain.container import Container

        def library_round() -> None:
            for c in Container.list(state_root):
                if c.running():
                    c.stats()

        library_round()
        fds0, rss0 = len(os.listdir("/proc/self/fd")), _rss_kib()
        rounds = 0
        while time.monotonic() < stop:
            library_round()
            rounds += 1
            time.sleep(0.05)  # leave the CPUs (and the GIL) to the commands under test
        fds1, rss1 = len(os.listdir("/proc/self/fd")), _rss_kib()
        for t in threads:
            t.join()
        print(
            f"\nload: {N} containers started in {boot:.1f} s; {SECONDS:.0f} s of load: {counts['ps']} ps, "
            f"{counts['stats']} stats, {counts['exec']} exec, {len(failures)} failed; library: {rounds} rounds, "
            f"fds {fds0}->{fds1}, rss {rss0}->{rss1} KiB"
        )
        assert failures == [], failures[:5]
        assert all(counts.values()), counts
        assert fds1 <= fds0, f"descriptors grew from {fds0} to {fds1}"
        assert rss1 - rss0 < 16 * 1024, f"memory grew from {rss0} to {rss1} KiB"
        assert sorted(cli("ps", "-q").stdout.split()) == sorted(cid[:12] for cid in host.ids)
    finally:
        cli("rm", "-f", *names, timeout=600)
    assert wait_until(lambda: not processes_with(MARKER), timeout=30)
    assert Host.leaks(before, host.snapshot(MARKER)) == {}
