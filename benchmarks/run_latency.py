#!/usr/bin/env python3
"""Whole-process latency of ``pycontain run --rm --network none default -- /bin/true`` against runc and crun.

All rows run in one hyperfine invocation (``-N --warmup 5 --runs N``) on the same root filesystem, the
built-in busybox one (``rootfs_builder.resolve("default")``), plus ``python -c pass`` in pycontain's
interpreter as the floor a Python CLI cannot beat. runc's default bundle gives its container a network
namespace with only lo, so pycontain runs with ``--network none`` for a like-for-like figure; ``--bridge``
adds a row for pycontain's default (a veth on a bridge, an address, NAT), on a bridge, registry and
nftables table of the benchmark's own, removed at the end. See benchmarks/README.md. Run as root.

    python benchmarks/run_latency.py [--runs 100] [--pycontain PATH] [--out DIR] [--bridge]
    python benchmarks/run_latency.py --imports [--bridge]   # python -X importtime top entries for `pycontain run`
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

HYBRID_ERROR = "cgroups in hybrid mode not supported"
UNIFIED_CONTROLLERS = "/sys/fs/cgroup/unified/cgroup.controllers"


def log(msg: str) -> None:
    print(f"run_latency: {msg}", file=sys.stderr, flush=True)


def find_pycontain(given: str | None) -> str | None:
    if given:
        return given
    venv = os.path.join(REPO, ".venv", "bin", "pycontain")
    return venv if os.access(venv, os.X_OK) else shutil.which("pycontain")


def interpreter_of(script: str | None) -> str:
    """The Python behind a console script (its shebang), else this interpreter."""
    if script and os.path.isfile(script):
        with open(script, "rb") as f:
            first = f.readline().decode(errors="replace").strip()
        if first.startswith("#!") and "python" in first:
            return first[2:].split()[0]
    return sys.executable


def try_once(argv: list[str], timeout: float = 60) -> str | None:
    """Run a command once; None when it succeeded, else a one-line reason."""
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        return f"{argv[0]}: not found"
    except subprocess.TimeoutExpired:
        return f"timed out after {timeout:.0f} s"
    if p.returncode == 0:
        return None
    lines = [ln.strip() for ln in (p.stderr + p.stdout).splitlines() if ln.strip()]
    return f"exit status {p.returncode}: {lines[-1] if lines else '(no output)'}"


def make_bundle(bundle: str, rootfs: str) -> None:
    """An OCI bundle from ``runc spec``: /bin/true, no terminal, the rootfs read-only, default namespaces."""
    subprocess.run(["runc", "spec", "--bundle", bundle], check=True)
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        config = json.load(f)
    config["process"]["args"] = ["/bin/true"]
    config["process"]["terminal"] = False
    config["root"] = {"path": rootfs, "readonly": True}
    with open(path, "w") as f:
        json.dump(config, f, indent=2)


class MaskedCgroup2:
    """A persistent private mount namespace in which the cgroup2 mount's controller list reads empty.

    crun 1.8 refuses hybrid hosts whose cgroup2 mount holds any controller, even with
    ``--cgroup-manager=disabled``. Inside this namespace (entered per run with ``nsenter --mount``)
    crun sees a hybrid host without v2 controllers and uses the v1 hierarchies, like runc does.
    Nothing on the host changes: the bind mount lives only in that namespace.
    """

    def __init__(self, workdir: str) -> None:
        self.dir = os.path.join(workdir, "mntns")
        self.ns = os.path.join(self.dir, "mnt")
        self.mounted_dir = self.mounted_ns = False

    def __enter__(self) -> MaskedCgroup2:
        try:
            self._setup()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _setup(self) -> None:
        os.mkdir(self.dir)
        # the file a namespace is bound to must sit on a private mount
        subprocess.run(["mount", "--bind", self.dir, self.dir], check=True)
        self.mounted_dir = True
        subprocess.run(["mount", "--make-private", self.dir], check=True)
        open(self.ns, "w").close()
        empty = os.path.join(self.dir, "empty")
        open(empty, "w").close()
        subprocess.run(["unshare", f"--mount={self.ns}", "--propagation", "private", "true"], check=True)
        self.mounted_ns = True
        subprocess.run(
            ["nsenter", f"--mount={self.ns}", "mount", "--bind", empty, UNIFIED_CONTROLLERS], check=True
        )

    def prefix(self) -> list[str]:
        return ["nsenter", f"--mount={self.ns}"]

    def __exit__(self, *exc) -> None:
        if self.mounted_ns:
            subprocess.run(["umount", self.ns], check=False)
        if self.mounted_dir:
            subprocess.run(["umount", self.dir], check=False)


# runc's bundle: a network namespace with only lo. pycontain's default would add a bridge, a veth and NAT.
LIKE_RUNC = ["--network", "none"]
BRIDGE_BRIDGE = "pycbench1"
BRIDGE_TABLE = "pycontain_bench_lat"


@contextlib.contextmanager
def private_bridge() -> Iterator[None]:
    """pycontain's default network, on a registry, bridge and nftables table of the benchmark's own (the
    environment of every pycontain started meanwhile); all removed afterwards, so a real pycontain0 is
    never touched."""
    registry = tempfile.mkdtemp(prefix="pycontain-bench-net-")
    keys = ("PYCONTAIN_NETWORKS_DIR", "PYCONTAIN_BRIDGE", "PYCONTAIN_NFT_TABLE")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update(zip(keys, (registry, BRIDGE_BRIDGE, BRIDGE_TABLE), strict=True))
    try:
        yield
    finally:
        out = subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True).stdout
        for link in json.loads(out or "[]"):
            if link.get("master") == BRIDGE_BRIDGE:
                subprocess.run(["ip", "link", "del", link["ifname"]], capture_output=True)
        subprocess.run(["ip", "link", "del", BRIDGE_BRIDGE], capture_output=True)
        subprocess.run(["nft", "delete", "table", "ip", BRIDGE_TABLE], capture_output=True)
        shutil.rmtree(registry, ignore_errors=True)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def imports_mode(pycontain: str | None, top: int, bridge: bool) -> int:
    if not pycontain or not os.path.isfile(pycontain):
        log("pycontain not found (give --pycontain PATH)")
        return 2
    if bridge:
        with private_bridge():
            return _imports(pycontain, top, [])
    return _imports(pycontain, top, LIKE_RUNC)


def _imports(pycontain: str, top: int, network: list[str]) -> int:
    python = interpreter_of(pycontain)
    argv = [python, "-X", "importtime", pycontain, "run", "--rm", *network, "default", "--", "/bin/true"]
    subprocess.run(argv, capture_output=True)  # warm the bytecode caches
    p = subprocess.run(argv, capture_output=True, text=True)
    rows = []
    for line in p.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cum_us, raw = line[len("import time:") :].split("|", 2)
        depth = (len(raw) - len(raw.lstrip()) - 1) // 2  # nested imports are indented 2 per level
        rows.append((int(cum_us), int(self_us), raw.strip(), depth))
    if not rows:
        log(f"no importtime output; `{shlex.join(argv)}` exited {p.returncode}: {p.stderr.strip()[-300:]}")
        return 1
    top_level = sum(cum for cum, _, _, depth in rows if depth == 0)
    print(f"$ {shlex.join(argv)}   (exit status {p.returncode})")
    print(f"total import time (top-level cumulative): {top_level / 1000:.1f} ms over {len(rows)} modules\n")
    print(f"top {top} by cumulative time:")
    print(f"{'cumul ms':>9} {'self ms':>8}  module")
    for cum, self_us, name, _ in sorted(rows, reverse=True)[:top]:
        print(f"{cum / 1000:9.2f} {self_us / 1000:8.2f}  {name}")
    print(f"\ntop {top} by self time:")
    for cum, self_us, name, _ in sorted(rows, key=lambda r: r[1], reverse=True)[:top]:
        print(f"{cum / 1000:9.2f} {self_us / 1000:8.2f}  {name}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--pycontain", metavar="PATH", help="pycontain to run (default: .venv/bin/pycontain, else PATH)"
    )
    ap.add_argument(
        "--runs", type=int, default=100, metavar="N", help="hyperfine runs per command (default 100)"
    )
    ap.add_argument("--warmup", type=int, default=5, metavar="N", help="hyperfine warmup runs (default 5)")
    ap.add_argument(
        "--out",
        default=os.path.join(REPO, "benchmarks", "out"),
        metavar="DIR",
        help="where the hyperfine JSON goes (default benchmarks/out)",
    )
    ap.add_argument(
        "--imports", action="store_true", help="print python -X importtime top entries for pycontain run"
    )
    ap.add_argument("--top", type=int, default=25, help="entries shown by --imports (default 25)")
    ap.add_argument(
        "--bridge",
        action="store_true",
        help="also time pycontain's default network (a private "
        "bridge, removed afterwards); --imports: show the default network's imports",
    )
    args = ap.parse_args(argv)

    # A Python CLI recompiles every module on every run without its bytecode cache: not what users see.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    pycontain = find_pycontain(args.pycontain)
    if args.imports:
        return imports_mode(pycontain, args.top, args.bridge)
    if os.geteuid() != 0:
        log("run as root: containers need it")
        return 2
    if shutil.which("hyperfine") is None:
        log("hyperfine not found (apt-get install hyperfine)")
        return 2

    import rootfs_builder

    rootfs = rootfs_builder.resolve("default")
    log(f"root filesystem: {rootfs}")
    python = interpreter_of(pycontain)

    rows: list[tuple[str, list[str]]] = [("python -c pass", [python, "-c", "pass"])]
    skipped: list[tuple[str, str]] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="pycontain-bench-") as work, contextlib.ExitStack() as stack:
        bundle = os.path.join(work, "bundle")
        os.mkdir(bundle)
        state = os.path.join(work, "state")
        cleanup: list[list[str]] = []

        def _delete_leftovers() -> None:
            for cmd in cleanup:  # only our own containers, in our own state dirs
                subprocess.run(cmd, capture_output=True, check=False)

        stack.callback(_delete_leftovers)
        if args.bridge:
            stack.enter_context(private_bridge())
        if shutil.which("runc"):
            make_bundle(bundle, rootfs)
        else:
            skipped.append(("runc", "not installed (apt-get install runc)"))

        if shutil.which("runc"):
            # `runc run` (not --detach) deletes the container when its process exits, so a fixed id
            # works run after run; the state lives in our own --root.
            cmd = ["runc", "--root", f"{state}/runc", "run", "--bundle", bundle, "pycontain-bench-runc"]
            cleanup.append(["runc", "--root", f"{state}/runc", "delete", "--force", "pycontain-bench-runc"])
            why = try_once(cmd)
            if why is None:
                rows.append(("runc run", cmd))
            else:
                skipped.append(("runc run", why))

        if shutil.which("crun") and shutil.which("runc"):
            cmd = ["crun", "--root", f"{state}/crun", "run", "--bundle", bundle, "pycontain-bench-crun"]
            cleanup.append(["crun", "--root", f"{state}/crun", "delete", "--force", "pycontain-bench-crun"])
            why = try_once(cmd)
            if why is None:
                rows.append(("crun run", cmd))
            elif HYBRID_ERROR in why and os.path.exists(UNIFIED_CONTROLLERS) and shutil.which("nsenter"):
                log(f"crun as is: {why}")
                try:
                    masked = stack.enter_context(MaskedCgroup2(work))
                except (subprocess.CalledProcessError, OSError) as e:
                    skipped.append(("crun run", f"{why}; masking cgroup2 controllers failed: {e}"))
                else:
                    nscmd = [*masked.prefix(), *cmd]
                    why2 = try_once(nscmd)
                    if why2 is None:
                        rows.append(("crun run (nsenter, v2 controllers masked)", nscmd))
                        rows.append(("nsenter /bin/true (wrapper cost)", [*masked.prefix(), "/bin/true"]))
                        notes.append(
                            f"crun as is fails here ({why}); its row runs it through nsenter into a "
                            f"private mount namespace where {UNIFIED_CONTROLLERS} reads empty, so it "
                            "uses the v1 cgroup hierarchies like runc; the 'nsenter /bin/true' row is "
                            "that wrapper's own cost"
                        )
                    else:
                        skipped.append(("crun run", f"{why}; with cgroup2 controllers masked: {why2}"))
            else:
                skipped.append(("crun run", why))
        elif not shutil.which("crun"):
            skipped.append(("crun run", "not installed (apt-get install crun)"))

        if pycontain:
            variants = [("pycontain run --rm --network none", LIKE_RUNC)]
            if args.bridge:
                variants.append(("pycontain run --rm (bridge, the default)", []))
            for name, network in variants:
                cmd = [pycontain, "run", "--rm", *network, "default", "--", "/bin/true"]
                why = try_once(cmd)
                if why is None:
                    rows.append((name, cmd))
                else:
                    skipped.append((name, f"`{shlex.join(cmd)}` fails: {why}"))
            notes.append(
                "pycontain runs with --network none: runc's and crun's bundles give their containers a "
                "network namespace with only lo, so this is the like-for-like figure (pycontain's "
                "default, a bridge network, "
                + ("is its own row)" if args.bridge else "is timed with --bridge)")
            )
        else:
            skipped.append(("pycontain run --rm", "not found (make a .venv, or give --pycontain PATH)"))

        for name, why in skipped:
            log(f"skipping {name}: {why}")
        os.makedirs(args.out, exist_ok=True)
        export = os.path.join(args.out, "latency.json")
        hf = [
            "hyperfine",
            "-N",
            "--warmup",
            str(args.warmup),
            "--runs",
            str(args.runs),
            "--export-json",
            export,
        ]
        for name, cmd in rows:
            hf += ["--command-name", name, shlex.join(cmd)]
        log(f"$ {shlex.join(hf)}")
        p = subprocess.run(hf, stdin=subprocess.DEVNULL)
        if p.returncode != 0:
            log(f"hyperfine failed (exit status {p.returncode})")
            return 1

    with open(export) as f:
        results = json.load(f)["results"]
    median = {r["command"]: r["median"] for r in results}
    base = next((median[n] for n in median if n.startswith("runc")), None)
    print()
    print(f"{'command':<44} {'median ms':>10} {'mean ms':>9} {'± ms':>7} {'min ms':>8} {'vs runc':>8}")
    for r in results:
        ratio = f"{r['median'] / base:.2f}x" if base else "-"
        print(
            f"{r['command']:<44} {r['median'] * 1e3:10.2f} {r['mean'] * 1e3:9.2f} {r['stddev'] * 1e3:7.2f} "
            f"{r['min'] * 1e3:8.2f} {ratio:>8}"
        )
    for name, why in skipped:
        print(f"{name:<44} {'n/a':>10}  {why}")
    for note in notes:
        print(f"\nnote: {note}")
    print(f"\nhyperfine JSON: {export}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
