#!/usr/bin/env python3
"""Latency of ``pool.acquire()`` + ``sandbox.run(["/bin/true"])`` + release, next to ``crun run`` and ``runc run``.

Rows, all on the built-in busybox root filesystem and measured in the same invocation:

- ``sandbox (warm pool)``: before each timed iteration the pool is full and idle (``pool.wait_ready()``,
  not timed); timed: acquire, run ``/bin/true`` (exec with pipes, output and cgroup figures collected,
  exit status reaped), release (hand-off to the background destroyer). The latency a caller sees when a
  prepared sandbox is there, which is what a pool is sized for.
- ``sandbox (back-to-back)``: the same without waiting, so background destruction and preparation
  compete with the timed runs and acquire may wait: the throughput-bound figure. Twice: the default
  sandbox (writable overlay root: every released one destroyed and a new one made), and one with a
  read-only root (``read_only=True``: released ones reset and lent again, see pycontain.sandbox.reset).
- ``crun run`` / ``runc run``: whole-process time of the runtimes on an OCI bundle of the same rootfs
  (``hyperfine -N``, per-run times from its JSON), with the bundle and the crun-on-hybrid-cgroups trick of
  ``run_latency.py`` (imported, not copied).

    sudo .venv/bin/python benchmarks/sandbox_latency.py [--runs 1000] [--pool-size 2] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import run_latency  # noqa: E402 - benchmarks/run_latency.py: make_bundle, MaskedCgroup2, try_once


def log(msg: str) -> None:
    print(f"sandbox_latency: {msg}", file=sys.stderr, flush=True)


def percentiles(samples: list[float]) -> dict:
    s = sorted(samples)
    n = len(s)

    def pct(p: float) -> float:
        return s[min(n - 1, max(0, int(round(p / 100 * n + 0.5)) - 1))]

    return {
        "n": n,
        "p50_ms": pct(50) * 1e3,
        "p90_ms": pct(90) * 1e3,
        "p99_ms": pct(99) * 1e3,
        "min_ms": s[0] * 1e3,
        "max_ms": s[-1] * 1e3,
        "mean_ms": sum(s) / n * 1e3,
    }


def bench_pool(runs: int, size: int, paced: bool, root: str, read_only: bool = False) -> dict:
    from pycontain.sandbox import SandboxPool

    times: list[float] = []
    with SandboxPool(size=size, root=root, read_only=read_only) as pool:
        pool.wait_ready()
        for _ in range(min(20, runs)):  # warm-up: bytecode, page cache, the first forks
            with pool.acquire() as sb:
                sb.run(["/bin/true"])
        pool.wait_ready()
        start = time.perf_counter()
        for _ in range(runs):
            if paced:
                pool.wait_ready()
            t = time.perf_counter()
            with pool.acquire() as sb:
                r = sb.run(["/bin/true"])
            times.append(time.perf_counter() - t)
            if r.returncode != 0:
                raise SystemExit(f"/bin/true failed in the sandbox: {r}")
        elapsed = time.perf_counter() - start
    out = percentiles(times)
    out["runs_per_s"] = runs / elapsed
    return out


def bench_runtimes(runs: int, work: str, stack: contextlib.ExitStack) -> tuple[dict, list[str]]:
    """crun run and runc run through hyperfine: {name: percentiles}, and notes."""
    import rootfs_builder

    notes: list[str] = []
    rows: list[tuple[str, list[str]]] = []
    if not shutil.which("runc"):
        return {}, ["runc not installed: no OCI bundle (runc spec) and no runtime rows"]
    if not shutil.which("hyperfine"):
        return {}, ["hyperfine not installed: no runtime rows (apt-get install hyperfine)"]
    bundle = os.path.join(work, "bundle")
    os.mkdir(bundle)
    run_latency.make_bundle(bundle, rootfs_builder.resolve("default"))
    state = os.path.join(work, "state")
    cmd = ["runc", "--root", f"{state}/runc", "run", "--bundle", bundle, "pycontain-sbbench-runc"]
    stack.callback(
        subprocess.run,
        ["runc", "--root", f"{state}/runc", "delete", "--force", "pycontain-sbbench-runc"],
        capture_output=True,
        check=False,
    )
    why = run_latency.try_once(cmd)
    if why is None:
        rows.append(("runc run", cmd))
    else:
        notes.append(f"runc run fails: {why}")
    if shutil.which("crun"):
        cmd = ["crun", "--root", f"{state}/crun", "run", "--bundle", bundle, "pycontain-sbbench-crun"]
        stack.callback(
            subprocess.run,
            ["crun", "--root", f"{state}/crun", "delete", "--force", "pycontain-sbbench-crun"],
            capture_output=True,
            check=False,
        )
        why = run_latency.try_once(cmd)
        if why is None:
            rows.append(("crun run", cmd))
        elif run_latency.HYBRID_ERROR in why and os.path.exists(run_latency.UNIFIED_CONTROLLERS):
            masked = stack.enter_context(run_latency.MaskedCgroup2(work))
            nscmd = [*masked.prefix(), *cmd]
            why2 = run_latency.try_once(nscmd)
            if why2 is None:
                rows.append(("crun run (nsenter, v2 controllers masked)", nscmd))
                rows.append(("nsenter /bin/true (wrapper cost)", [*masked.prefix(), "/bin/true"]))
                notes.append(
                    "crun refuses this hybrid host as is; its row runs it through nsenter into a "
                    "mount namespace where the cgroup2 controller list reads empty (see run_latency.py)"
                )
            else:
                notes.append(f"crun run fails: {why}; masked: {why2}")
        else:
            notes.append(f"crun run fails: {why}")
    else:
        notes.append("crun not installed")
    if not rows:
        return {}, notes
    export = os.path.join(work, "hyperfine.json")
    hf = [
        "hyperfine",
        "-N",
        "--style",
        "none",
        "--warmup",
        "10",
        "--runs",
        str(runs),
        "--export-json",
        export,
    ]
    for name, cmd in rows:
        hf += ["--command-name", name, " ".join(cmd)]
    log(f"hyperfine: {len(rows)} commands x {runs} runs")
    subprocess.run(hf, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    with open(export) as f:
        results = json.load(f)["results"]
    return {r["command"]: percentiles(r["times"]) for r in results}, notes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=1000, help="timed runs per row (default 1000)")
    ap.add_argument("--pool-size", type=int, default=2, help="sandboxes the pool keeps ready (default 2)")
    ap.add_argument("--no-runtimes", action="store_true", help="skip the crun/runc rows")
    ap.add_argument("--no-back-to-back", action="store_true", help="skip the back-to-back row")
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        log("run as root: containers need it")
        return 2
    results: dict[str, dict] = {}
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="pycontain-sbbench-") as work, contextlib.ExitStack() as stack:
        root = os.path.join(work, "sandboxes")
        log(f"sandbox (warm pool): {args.runs} runs")
        results["sandbox acquire+run+release (warm pool)"] = bench_pool(args.runs, args.pool_size, True, root)
        if not args.no_back_to_back:
            log(f"sandbox (back-to-back): {args.runs} runs")
            results["sandbox acquire+run+release (back-to-back)"] = bench_pool(
                args.runs, args.pool_size, False, root
            )
            log(f"sandbox (back-to-back, read-only root: reset, reused): {args.runs} runs")
            results["sandbox acquire+run+release (back-to-back, reset)"] = bench_pool(
                args.runs, args.pool_size, False, root, read_only=True
            )
        if not args.no_runtimes:
            rt, rt_notes = bench_runtimes(args.runs, work, stack)
            results.update(rt)
            notes += rt_notes
    crun = next((v for k, v in results.items() if k.startswith("crun run")), None)
    print(f"\n{'row':<48} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} {'vs crun p50':>12}")
    for name, r in results.items():
        ratio = f"{r['p50_ms'] / crun['p50_ms']:.2f}x" if crun else "-"
        extra = f"   ({r['runs_per_s']:.0f} runs/s)" if "runs_per_s" in r else ""
        print(
            f"{name:<48} {r['p50_ms']:8.2f} {r['p90_ms']:8.2f} {r['p99_ms']:8.2f} {r['max_ms']:8.2f} "
            f"{ratio:>12}{extra}"
        )
    if crun:
        warm = results["sandbox acquire+run+release (warm pool)"]
        print(
            f"\ntarget: warm p50 {warm['p50_ms']:.2f} ms <= crun p50 {crun['p50_ms']:.2f} ms: "
            f"{'met' if warm['p50_ms'] <= crun['p50_ms'] else 'NOT met'}; warm p99 {warm['p99_ms']:.2f} ms <= "
            f"2 x crun p50 = {2 * crun['p50_ms']:.2f} ms: {'met' if warm['p99_ms'] <= 2 * crun['p50_ms'] else 'NOT met'}"
        )
    for note in notes:
        print(f"note: {note}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"cpus": os.cpu_count(), "kernel": os.uname().release, "results": results, "notes": notes},
                f,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
