#!/usr/bin/env python3
"""Two source trees of pycontain side by side in one hyperfine run: what a change did to where users wait.

Each tree runs as ``env PYTHONPATH=TREE SCRIPT --root ROOT ...`` (SCRIPT: the console script to start it
with, default this venv's; give pip's original one for a tree from before ``pycontain.launcher``), with
its own state root holding ten running containers, on a private default network. Rows, each for both
trees: ``exec``, ``state``, ``ps`` first (a root filesystem rebuilt meanwhile would break the sleepers),
then ``run --rm --network none`` and ``run --rm`` on the bridge, plus ``env /bin/true`` (the wrapper)
and the two interpreter floors. Prints medians and user+system CPU time, the steadier figure on a busy
machine. Then, outside hyperfine, ``run -d`` until the container's first line is in its log (what
``pycontain bench``'s rate@N times; the monitor outlives the command, so no CPU time), the trees taking
turns, each start one more container: its median and the start rate. Everything it starts is removed at
the end. Run as root.

    git worktree add --detach /tmp/before <commit>
    python benchmarks/compare_trees.py /tmp/before . [--before-script PATH] [--runs 20]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import run_latency  # noqa: E402 - benchmarks/run_latency.py: remove_bridge, find_pycontain, interpreter_of

BRIDGE, TABLE = "pycbench3", "pycontain_bench_ab"
MARK = "started-and-logged"
SLEEPERS = 10
ROWS = (
    ("exec", ["exec", "s0", "/bin/true"]),
    ("state", ["state", "s0"]),
    ("ps", ["ps"]),
    ("run --network none", ["run", "--rm", "--network", "none", "default", "/bin/true"]),
    ("run (bridge)", ["run", "--rm", "default", "/bin/true"]),
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("before", help="the source tree before the change")
    ap.add_argument("after", help="the source tree after it")
    ap.add_argument("--before-script", help="console script for the before tree (default: this venv's)")
    ap.add_argument("--after-script", help="console script for the after tree (default: this venv's)")
    ap.add_argument("--runs", type=int, default=20, help="hyperfine runs per row (default 20)")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("compare_trees: run as root: containers need it", file=sys.stderr)
        return 2
    default = run_latency.find_pycontain(None)
    trees = {
        "before": (os.path.abspath(args.before), args.before_script or default),
        "after": (os.path.abspath(args.after), args.after_script or default),
    }
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    registry = tempfile.mkdtemp(prefix="pycontain-ab-net-")
    env.update(zip(run_latency.NET_KEYS, (registry, BRIDGE, TABLE, run_latency.free_subnet()), strict=True))
    with contextlib.ExitStack() as stack:
        stack.callback(run_latency.remove_bridge, BRIDGE, TABLE, registry)
        prefix, roots = {}, {}
        for name, (tree, script) in trees.items():
            root = roots[name] = tempfile.mkdtemp(prefix=f"pycontain-ab-{name}-")
            prefix[name] = ["env", f"PYTHONPATH={tree}", str(script), "--root", root]
            stack.callback(shutil.rmtree, root, True)
            names = [f"s{i}" for i in range(SLEEPERS)]
            stack.callback(subprocess.run, [*prefix[name], "rm", "-f", *names], env=env, capture_output=True)
            for n in names:
                argv_ = [
                    *prefix[name],
                    "run",
                    "-d",
                    "--network",
                    "none",
                    "--name",
                    n,
                    "default",
                    "sleep",
                    "3600",
                ]
                subprocess.run(
                    argv_, env=env, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
                )
        python = run_latency.interpreter_of(default)[0]
        out = os.path.join(
            stack.enter_context(tempfile.TemporaryDirectory()), "ab.json"
        )  # not in the registry
        hf = ["hyperfine", "-N", "-i", "--warmup", "3", "--runs", str(args.runs), "--export-json", out]
        hf += ["-n", "env /bin/true", "env /bin/true", "-n", "python -S -c pass", f"{python} -S -c pass"]
        hf += ["-n", "python -c pass", f"{python} -c pass"]
        for label, cmd in ROWS:
            for name in trees:
                hf += ["-n", f"{label} ({name})", shlex.join([*prefix[name], *cmd])]
        subprocess.run(hf, env=env, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        with open(out) as f:
            results = json.load(f)["results"]
        starts = _detached_starts(prefix, roots, env, args.runs, stack)
    print(f"{'command':<30} {'median ms':>10} {'cpu ms':>8}  failed runs")
    for r in results:
        failed = sum(1 for c in r["exit_codes"] if c)
        cpu = (r["user"] + r["system"]) * 1e3
        print(f"{r['command']:<30} {r['median'] * 1e3:10.1f} {cpu:8.1f}  {failed}")
    for name, times in starts.items():
        label = f"run -d until logged ({name})"
        print(f"{label:<30} {statistics.median(times) * 1e3:10.1f} {'-':>8}  0")
    rates = ", ".join(f"{name} {len(t) / sum(t):.1f}" for name, t in starts.items())
    print(f"start rate, run -d until logged (starts/s): {rates}")
    return 0


def _detached_starts(
    prefix: dict[str, list[str]],
    roots: dict[str, str],
    env: dict[str, str],
    runs: int,
    stack: contextlib.ExitStack,
) -> dict[str, list[float]]:
    """Seconds from ``run -d`` until the container's first line is in its log, per tree, taking turns."""
    times: dict[str, list[float]] = {name: [] for name in prefix}
    made: dict[str, list[str]] = {name: [] for name in prefix}  # removed at the end, whatever happens

    def remove() -> None:
        for name, names in made.items():
            if names:
                subprocess.run([*prefix[name], "rm", "-f", *names], env=env, capture_output=True)

    stack.callback(remove)
    for i in range(runs):
        for name in list(prefix) if i % 2 == 0 else list(prefix)[::-1]:
            made[name].append(f"d{i}")
            cmd = [*prefix[name], "run", "-d", "--network", "none", "--name", f"d{i}", "default"]
            t0 = time.perf_counter()
            p = subprocess.run(
                [*cmd, "sh", "-c", f"echo {MARK}; exec sleep 3600"],
                env=env,
                check=True,
                capture_output=True,
                text=True,
                stdin=subprocess.DEVNULL,
            )
            log = os.path.join(roots[name], p.stdout.split()[0], "container.log")
            while not _logged(log) and time.perf_counter() - t0 < 60:
                time.sleep(0.001)
            times[name].append(time.perf_counter() - t0)
    return times


def _logged(log: str) -> bool:
    try:
        with open(log, "rb") as f:
            return MARK.encode() in f.read()
    except FileNotFoundError:
        return False


if __name__ == "__main__":
    sys.exit(main())
