#!/usr/bin/env python3
"""Detached containers: what each one's monitor costs in memory, and how long ``run -d`` takes, beside podman
(conmon + crun).

1. Memory: ``--containers N`` (10) detached ``sleep`` containers in a state root of the script's own; for each
   monitor, ``Pss`` and ``Private_Dirty`` from ``/proc/PID/smaps_rollup``. PSS shares the interpreter's file
   pages among the processes mapping them (so it shrinks as more run); dirty private pages are what each one
   adds whatever else runs.
2. Latency: one ``hyperfine -N`` invocation, inside a namespace sandbox (``tests/oci/podman_env``: podman's
   storage, run root and cgroups private to it, beneath ours), of
   ``pycontain run -d --network none default -- sleep 86400`` and
   ``podman --runtime crun run -d IMAGE sleep 86400`` (netns none, the busybox root filesystem imported), then
   the memory of podman's conmon processes, as above. crun refuses a hybrid host whose cgroup2 mount lists
   controllers: in the sandbox an empty file is bound over that ``cgroup.controllers`` (as run_latency.py
   does), so crun uses the v1 hierarchies.

Every container, cgroup and temporary directory is removed at the end, even on failure. Run as root:

    python benchmarks/detached.py [--containers 10] [--runs 20] [--warmup 3] [--no-podman]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [REPO, os.path.join(REPO, "tests"), os.path.join(REPO, "tests", "oci")]

import rootfs_builder  # noqa: E402

MEMORY_KEYS = ("Pss", "Private_Dirty")


def log(msg: str) -> None:
    print(f"detached: {msg}", file=sys.stderr, flush=True)


def rollup(text: str) -> dict[str, int]:
    """The kB figures of an smaps_rollup we report."""
    out = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in MEMORY_KEYS:
            out[key] = int(rest.split()[0])
    return out


def summary(what: str, rows: list[dict[str, int]]) -> None:
    if not rows:
        print(f"{what}: none measured")
        return
    figures = ", ".join(
        f"{k} mean {statistics.mean(r[k] for r in rows) / 1024:.2f} MB "
        f"(min {min(r[k] for r in rows) / 1024:.2f}, max {max(r[k] for r in rows) / 1024:.2f})"
        for k in MEMORY_KEYS
    )
    print(f"{what}, {len(rows)} running: {figures}")


def pycontain(root: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pycontain", "--root", root, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def monitor_memory(n: int, root: str) -> list[dict[str, int]]:
    import time

    ids = []
    for i in range(n):
        p = pycontain(
            root, "run", "-d", "--network", "none", "--name", f"mon{i}", "default", "--", "sleep", "86400"
        )
        if p.returncode != 0:
            raise SystemExit(f"detached: run -d failed: {p.stderr.strip()}")
        ids.append(p.stdout.strip())
    time.sleep(1)  # each monitor execs its loop once it has told 'run' the id
    rows = []
    for cid in ids:
        with open(os.path.join(root, cid, "state.json")) as f:
            monitor = json.load(f)["monitor"][0]
        with open(f"/proc/{monitor}/smaps_rollup") as f:
            rows.append(rollup(f.read()))
    return rows


def podman_rows(runs: int, warmup: int, work: str) -> None:
    from podman_env import IMAGE, PYCONTAIN, PodmanEnv

    tar = os.path.join(work, "rootfs.tar")
    subprocess.run(["tar", "-C", rootfs_builder.resolve("default"), "-cf", tar, "."], check=True)
    env = PodmanEnv().open()
    try:
        p = env("import", tar, IMAGE)
        if p.returncode != 0:
            raise SystemExit(f"detached: podman import failed: {p.stderr.strip()}")
        empty = os.path.join(env.tmp, "empty")
        open(empty, "w").close()
        env.run("mount", "--bind", empty, "/sys/fs/cgroup/unified/cgroup.controllers")
        podman = env.podman("run", "-d", IMAGE, "sleep", "86400")
        podman[podman.index("--runtime") + 1] = shutil.which("crun") or "crun"
        check = env.run(*podman)
        if check.returncode != 0:
            raise SystemExit(f"detached: podman --runtime crun run -d failed: {check.stderr.strip()}")
        root = os.path.join(env.tmp, "pycontain-root")
        ours = [
            PYCONTAIN,
            "--root",
            root,
            "run",
            "-d",
            "--network",
            "none",
            "default",
            "--",
            "sleep",
            "86400",
        ]
        out = os.path.join(work, "hyperfine.json")
        cmd = ["hyperfine", "-N", "-w", str(warmup), "-r", str(runs), "--export-json", out]
        cmd += [" ".join(ours), " ".join(podman)]
        p = env.run(*cmd, timeout=1800)
        print(p.stdout)
        if p.returncode != 0:
            raise SystemExit(f"detached: hyperfine failed: {p.stderr.strip()}")
        with open(out) as f:
            results = json.load(f)["results"]
        for r, name in zip(results, ("pycontain run -d", "podman (conmon + crun) run -d"), strict=True):
            print(
                f"{name}: median {r['median'] * 1000:.1f} ms, mean {r['mean'] * 1000:.1f} ± {r['stddev'] * 1000:.1f} ms"
            )
        script = "for p in $(pidof conmon); do cat /proc/$p/smaps_rollup; echo ---; done"
        conmon = [rollup(t) for t in env.run("sh", "-c", script).stdout.split("---") if "Pss" in t]
        summary("conmon (podman's monitor)", conmon)
        env.run(PYCONTAIN, "--root", root, "rm", "-f", *os.listdir(root), timeout=600)
    finally:
        env.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--containers", type=int, default=10, metavar="N", help="monitors measured (default 10)")
    ap.add_argument(
        "--runs", type=int, default=20, metavar="N", help="hyperfine runs per command (default 20)"
    )
    ap.add_argument("--warmup", type=int, default=3, metavar="N", help="hyperfine warm-up runs (default 3)")
    ap.add_argument("--no-podman", action="store_true", help="measure pycontain's monitors only")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("detached: run as root (containers, cgroups, namespaces)")
    work = tempfile.mkdtemp(prefix="pycontain-detached-")
    root = os.path.join(work, "root")
    try:
        summary("pycontain monitor", monitor_memory(args.containers, root))
        if not args.no_podman:
            if not (shutil.which("podman") and shutil.which("crun") and shutil.which("hyperfine")):
                log("podman, crun or hyperfine missing: latency rows left out")
            else:
                podman_rows(args.runs, args.warmup, work)
    finally:
        if os.path.isdir(root):
            ids = [d for d in os.listdir(root) if len(d) == 64]
            if ids:
                pycontain(root, "rm", "-f", *ids)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
