#!/usr/bin/env python3
"""A kubelet's pod lifecycle through containerd's CRI, timed per runtime handler: pycontain, runc, crun.

containerd 1.6 runs in the tests' namespace sandbox (tests/engines/engines_env.py: its own cgroups
beneath ours, its own network namespace with a CNI bridge, state in a temp dir), with one runtime handler
per runtime, all behind the io.containerd.runc.v2 shim. Each round, per handler in turn (interleaved, so
the machine's load falls on all alike), times what a kubelet waits for:

* pod start: RunPodSandbox (pause container + CNI network);
* container create+start: CreateContainer + StartContainer of ``sleep 60``;
* stop+remove: StopContainer (grace 0) + RemoveContainer + StopPodSandbox + RemovePodSandbox.

Medians are printed as a table (and written as JSON with --out). crun 1.8 refuses a hybrid host whose
cgroup2 holds a controller; its row then says so. Run as root:

    sudo .venv/bin/python benchmarks/cri_lifecycle.py [--rounds 10] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [REPO, os.path.join(REPO, "tests")]

from engines.cri import Cri, load_stubs  # noqa: E402
from engines.engines_env import IMAGE, PYCONTAIN, ContainerdEnv, image_archive  # noqa: E402

import rootfs_builder  # noqa: E402

PHASES = ("pod start", "create+start", "stop+remove")


def one_round(cri: Cri, handler: str, n: int) -> tuple[float, float, float]:
    config = cri.sandbox_config(f"bench-{handler}-{n}")
    t0 = time.perf_counter()
    pod = cri.run_pod(config, handler)
    t1 = time.perf_counter()
    cid = cri.create(pod, config, "app", IMAGE, ["sleep", "60"])
    cri.start(cid)
    t2 = time.perf_counter()
    cri.stop(cid, grace=0)
    cri.remove(cid)
    cri.stop_pod(pod)
    cri.remove_pod(pod)
    t3 = time.perf_counter()
    return t1 - t0, t2 - t1, t3 - t2


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--out", help="also write the medians (ms) as JSON here")
    args = ap.parse_args()
    runtimes = {"pycontain": PYCONTAIN}
    for name in ("runc", "crun"):
        if shutil.which(name):
            runtimes[name] = shutil.which(name) or name
    tmp = tempfile.mkdtemp(prefix="pycontain-cri-bench-")
    archive = os.path.join(tmp, "images.tar")
    image_archive(str(rootfs_builder.resolve("default")), archive)
    # The pause container asks for oomScoreAdj -998, which no runtime may set without CAP_SYS_RESOURCE
    # (absent here): containerd then keeps it at its own score, so that runc and crun start pods at all.
    env = ContainerdEnv(archive, runtimes, restrict_oom_score_adj=True).open()
    cri = Cri(env.socket, load_stubs(tmp))
    times: dict[str, list[tuple[float, float, float]]] = {name: [] for name in runtimes}
    failed: dict[str, str] = {}
    try:
        for handler in runtimes:  # one warm-up round each (image unpack, first interpreter start)
            try:
                one_round(cri, handler, -1)
            except Exception as e:  # a runtime that cannot run here (crun on a hybrid host)
                details = e.details() if hasattr(e, "details") else str(e)
                failed[handler] = details.splitlines()[0][:160]
        for n in range(args.rounds):
            for handler in runtimes:
                if handler not in failed:
                    times[handler].append(one_round(cri, handler, n))
    finally:
        cri.close()
        env.close()
        shutil.rmtree(tmp, ignore_errors=True)
    medians = {
        h: {p: round(statistics.median(t[i] for t in times[h]) * 1000, 1) for i, p in enumerate(PHASES)}
        for h in runtimes
        if h not in failed
    }
    print(f"CRI pod lifecycle, median of {args.rounds} rounds (ms)")
    print(f"| runtime | {' | '.join(PHASES)} |")
    print("|---|" + "---:|" * len(PHASES))
    for h in runtimes:
        row = [str(medians[h][p]) for p in PHASES] if h in medians else [f"failed: {failed[h]}", "", ""]
        print(f"| {h} | {' | '.join(row)} |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"rounds": args.rounds, "medians_ms": medians, "failed": failed}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
