#!/usr/bin/env python3
"""TCP throughput container ↔ container over a pycontain bridge, against the host's loopback.

    sudo .venv/bin/python benchmarks/net_throughput.py [--seconds 5] [--runs 3] [--mtu 1500] [--json FILE]

Two "containers" are attached to a network of the benchmark's own (its own registry, bridge and nftables
table, so a pycontain in use on this host is left alone, and all of it is removed at the end): one runs a
sink, the other sends zeros to it for --seconds over TCP (Python sockets, 1 MiB sendall/recv_into: the
kernel does the work). The same pair then runs in the host's namespace over 127.0.0.1. Each figure is the
median of --runs.

Where the sender and the receiver run matters more than anything pycontain does, so both placements are
measured, the same for both paths: sender and receiver pinned to two different CPUs (as ``iperf3 -A``;
the headline figure, target bridge/loopback ≥ 0.8), and both on one CPU (where the bridge path pays
for 1500-byte segments against loopback's 64 KiB ones: see --mtu).

No traffic leaves the host: only the namespaces made here and 127.0.0.1 are addressed.
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
sys.path.insert(0, REPO)
NSHELPER = os.path.join(REPO, "tests", "network", "nshelper.py")
PORT = 5201


def measure(sink_ns: str, blast_ns: str, host: str, seconds: float, cpus: tuple[int, int]) -> float:
    """Bytes per second from blast_ns to a sink in sink_ns ("-": the host's namespace); cpus: (sender, sink)."""
    sink = subprocess.Popen(
        [sys.executable, NSHELPER, sink_ns, "--cpu", str(cpus[1]), "sink", str(PORT)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        if sink.stdout.readline().strip() != "ready":
            raise SystemExit("the sink did not start")
        import time

        t0 = time.monotonic()
        blast = subprocess.run(
            [
                sys.executable,
                NSHELPER,
                blast_ns,
                "--cpu",
                str(cpus[0]),
                "blast",
                host,
                str(PORT),
                str(seconds),
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
        )
        if blast.returncode != 0:
            raise SystemExit(f"the sender failed: {blast.stderr}")
        received = int(sink.stdout.readline())
        elapsed = time.monotonic() - t0
        return received / min(elapsed, seconds + 0.5) if elapsed > 0 else 0.0
    finally:
        if sink.poll() is None:
            sink.kill()
        sink.wait()
        sink.stdout.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--subnet", default="10.234.0.0/24")
    ap.add_argument(
        "--mtu", type=int, default=1500, help="the benchmark network's MTU (default 1500, as docker)"
    )
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("run it as root (namespaces, bridges, nftables)", file=sys.stderr)
        return 1
    registry = tempfile.mkdtemp(prefix="pycontain-bench-reg-")
    state = tempfile.mkdtemp(prefix="pycontain-bench-state-")
    os.environ.update(
        PYCONTAIN_NETWORKS_DIR=registry,
        PYCONTAIN_BRIDGE="pycbench0",
        PYCONTAIN_NFT_TABLE="pycontain_bench",
        PYCONTAIN_BRIDGE_SUBNET="10.235.0.0/24",
    )
    from pycontain import network
    from pycontain.network import links, nft

    ids = [os.urandom(32).hex() for _ in range(2)]
    infos = []
    try:
        network.create_network("bench", subnet=args.subnet, mtu=args.mtu)
        for i, cid in enumerate(ids):
            os.makedirs(os.path.join(state, cid))
            infos.append(network.attach(cid, "bench", container_name=f"bench{i}", state_root=state))
        a, b = infos
        cpus = sorted(os.sched_getaffinity(0))
        placements = {"separate CPUs": (cpus[0], cpus[1])} if len(cpus) > 1 else {}
        placements["one CPU"] = (cpus[0], cpus[0])
        result = {
            "seconds": args.seconds,
            "runs": args.runs,
            "mtu": args.mtu,
            "kernel": os.uname().release,
            "cpus": len(cpus),
            "placements": {},
        }
        for label, pin in placements.items():
            bridge, loop = [], []
            for _ in range(args.runs):
                bridge.append(measure(a.netns_path, b.netns_path, a.ip, args.seconds, pin))
                loop.append(measure("-", "-", "127.0.0.1", args.seconds, pin))
            br, lo = statistics.median(bridge), statistics.median(loop)
            r = {
                "bridge_gbit_s": round(br * 8 / 1e9, 2),
                "loopback_gbit_s": round(lo * 8 / 1e9, 2),
                "ratio": round(br / lo, 3) if lo else None,
                "bridge_runs_gbit_s": [round(x * 8 / 1e9, 2) for x in bridge],
                "loopback_runs_gbit_s": [round(x * 8 / 1e9, 2) for x in loop],
                "sender_sink_cpus": list(pin),
            }
            result["placements"][label] = r
            print(f"[{label}, MTU {args.mtu}]")
            print(
                f"  container <-> container over bridge: {r['bridge_gbit_s']:7.2f} Gbit/s  {r['bridge_runs_gbit_s']}"
            )
            print(
                f"  host loopback (127.0.0.1):           {r['loopback_gbit_s']:7.2f} Gbit/s  {r['loopback_runs_gbit_s']}"
            )
            print(f"  ratio bridge/loopback: {r['ratio']:.3f}")
        head = next(iter(result["placements"].values()))
        result["ratio"] = head["ratio"]
        verdict = "meets" if head["ratio"] and head["ratio"] >= 0.8 else "misses"
        print(f"headline ({next(iter(placements))}): {head['ratio']:.3f} — {verdict} the 0.8 target")
        if args.json:
            with open(args.json, "w") as f:
                json.dump(result, f, indent=2)
        return 0
    finally:
        for cid, info in zip(ids, infos + [None] * (2 - len(infos)), strict=False):
            network.detach(cid, info, state)
        try:
            network.remove_network("bench")
        except Exception:
            pass
        from pycontain.network.rtnl import Rtnl

        with Rtnl() as nl:
            links.delete_link(nl, "pycbench0")
        nft.delete_table("pycontain_bench")
        shutil.rmtree(registry, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
