#!/usr/bin/env python3
"""A tiny online judge: grade shell programs against expected output, each test in a fresh sandbox.

    sudo .venv/bin/python examples/judge/judge.py [--programs DIR] [--tests DIR] [--time-limit 1]

Every program in programs/ runs on every tests/N.in (its stdin) and must print tests/N.out (compared
word by word). Limits: --memory (32m, no swap), --pids (16 processes), --cpus (1), --time-limit seconds.
The first failing test gives the verdict:

    PLE  process limit exceeded (the pids limit refused a fork: a fork bomb)
    MLE  memory limit exceeded (the OOM killer ended a process)
    TLE  time limit exceeded (every process of its sandbox was killed)
    OLE  output limit exceeded
    RE   runtime error (non-zero exit status)
    WA   wrong answer
    AC   accepted
"""

from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from pycontain.sandbox import Result, SandboxPool  # noqa: E402

# read_only: the programs write nowhere but /tmp (a tmpfs), which lets the pool reset a used sandbox for
# the next test instead of making a new one (see pycontain.sandbox.reset).
LIMITS = {"memory": "32m", "pids": 16, "cpus": 1, "read_only": True}


def verdict(result: Result, expected: bytes) -> str:
    if result.pids_limited:
        return "PLE"
    if result.oom_killed:
        return "MLE"
    if result.timed_out:
        return "TLE"
    if result.truncated:
        return "OLE"
    if result.returncode != 0:
        return "RE"
    if result.stdout.split() != expected.split():
        return "WA"
    return "AC"


def load_tests(tests_dir: str) -> list[tuple[str, bytes, bytes]]:
    tests = []
    for name in sorted(f for f in os.listdir(tests_dir) if f.endswith(".in")):
        base = name[:-3]
        with open(os.path.join(tests_dir, name), "rb") as f:
            stdin = f.read()
        with open(os.path.join(tests_dir, base + ".out"), "rb") as f:
            expected = f.read()
        tests.append((base, stdin, expected))
    return tests


def grade(pool: SandboxPool, source: bytes, tests: list[tuple[str, bytes, bytes]], time_limit: float) -> dict:
    """Run one program on every test until one fails; the row of the verdict table."""
    worst = {"verdict": "AC", "test": "-", "time": 0.0, "memory": 0}
    for name, stdin, expected in tests:
        with pool.acquire() as sb:  # a fresh sandbox per test: nothing leaks from one test to the next
            sb.put_file("/tmp/prog.sh", source, mode=0o755)
            r = sb.run(["sh", "/tmp/prog.sh"], input=stdin, timeout=time_limit, max_output=64 << 10)
        worst["time"] = max(worst["time"], r.wall_time)
        worst["memory"] = max(worst["memory"], r.peak_memory or 0)
        v = verdict(r, expected)
        if v != "AC":
            worst.update(verdict=v, test=name)
            break
    return worst


def judge(
    programs_dir: str,
    tests_dir: str,
    time_limit: float = 1.0,
    root: str | None = None,
    limits: dict | None = None,
) -> dict[str, dict]:
    """{program name: {"verdict", "test", "time", "memory"}} for every program in programs_dir."""
    tests = load_tests(tests_dir)
    programs = sorted(f for f in os.listdir(programs_dir) if f.endswith(".sh"))
    sources = {}
    for p in programs:
        with open(os.path.join(programs_dir, p), "rb") as f:
            sources[p] = f.read()
    with (
        SandboxPool(size=min(len(programs), 4), root=root, **(limits or LIMITS)) as pool,
        ThreadPoolExecutor(max_workers=len(programs) or 1) as ex,
    ):
        futures = {p: ex.submit(grade, pool, sources[p], tests, time_limit) for p in programs}
        return {p: f.result() for p, f in futures.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--programs", default=os.path.join(HERE, "programs"))
    ap.add_argument("--tests", default=os.path.join(HERE, "tests"))
    ap.add_argument("--time-limit", type=float, default=1.0, metavar="S")
    ap.add_argument("--root", help="pycontain state root (default /run/pycontain)")
    args = ap.parse_args(argv)
    results = judge(args.programs, args.tests, args.time_limit, args.root)
    print(f"{'PROGRAM':<16} {'VERDICT':<8} {'TEST':<6} {'TIME':>8} {'MEMORY':>10}")
    for name, r in results.items():
        print(f"{name:<16} {r['verdict']:<8} {r['test']:<6} {r['time']:7.3f}s {r['memory'] / 1024:8.0f}kB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
