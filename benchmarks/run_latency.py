#!/usr/bin/env python3
"""Where users wait: pycontain's run, run on the default bridge, exec, state and ps, next to runc and crun.

All rows run in one hyperfine invocation (``-N --warmup 5 --runs N``) on the same root filesystem, the
built-in busybox one (``rootfs_builder.resolve("default")``), plus ``python -c pass`` in pycontain's
interpreter as the floor a Python CLI cannot beat: ``run /bin/true`` for each runtime (runc's default
bundle gives its container a network namespace with only lo, so pycontain runs with ``--network none``),
pycontain's default network (a veth on a bridge, an address, NAT; on a bridge, registry and nftables
table of the benchmark's own, removed at the end), then ``exec ID /bin/true`` and ``state ID`` against a
running container of each runtime and ``pycontain ps`` over ten running containers. The script prints
every command's figures, then each measure side by side with runc and crun, the ratio and the issue's
target. After them, unless told not to, the issue's other two targets, each as its own tool measures it:
the start rate at N = 50 (``pycontain bench --workloads density``, pycontain, runc and crun) and the warm
sandbox pool (``benchmarks/sandbox_latency.py``: p50 against crun run, runs per second back to back).
See benchmarks/README.md. Run as root.

    python benchmarks/run_latency.py [--runs 100] [--warmup 5] [--pycontain PATH] [--out DIR]
                                     [--density 50] [--sandbox-runs 300]   # 0: leave that target out
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
from collections.abc import Callable, Iterator

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


def interpreter_of(script: str | None) -> list[str]:
    """The Python behind a console script and its flags (its shebang: ``-S`` for pycontain.launcher's),
    else this interpreter."""
    if script and os.path.isfile(script):
        with open(script, "rb") as f:
            first = f.readline().decode(errors="replace").strip()
        if first.startswith("#!") and "python" in first:
            return first[2:].split()
    return [sys.executable]


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
PS_CONTAINERS = 10  # ps is timed over a table of this many running containers
BRIDGE_BRIDGE = "pycbench1"
BRIDGE_TABLE = "pycontain_bench_lat"
# The default network with a warm pool of namespaces (pycontain.network.pool), on a bridge of its own.
POOL_BRIDGE = "pycbench2"
POOL_TABLE = "pycontain_bench_pool"
POOL_SIZE = 4
NET_KEYS = ("PYCONTAIN_NETWORKS_DIR", "PYCONTAIN_BRIDGE", "PYCONTAIN_NFT_TABLE", "PYCONTAIN_BRIDGE_SUBNET")


def free_subnet(avoid: tuple[str, ...] = ()) -> str:
    """A /24 of 10.224.0.0/12 that no host route and none of ``avoid`` overlaps. A benchmark's bridge must
    not take the subnet of a bridge already up (the test suite's, which exports it in
    PYCONTAIN_BRIDGE_SUBNET, or another benchmark's): the second bridge's address and route would clash
    and its containers fail to attach. (The tests pick theirs from 10.240.0.0/12.)"""
    import ipaddress

    out = subprocess.run(["ip", "-j", "-4", "route", "show", "table", "all"], capture_output=True, text=True)
    dsts = [r["dst"] for r in json.loads(out.stdout or "[]") if r.get("dst") not in (None, "default")]
    taken = [ipaddress.ip_network(d, strict=False) for d in (*dsts, *avoid) if d]
    for a in range(224, 240):
        for b in range(256):
            net = ipaddress.ip_network(f"10.{a}.{b}.0/24")
            if not any(net.overlaps(t) for t in taken):
                return str(net)
    raise RuntimeError("no free /24 in 10.224.0.0/12 for the benchmark's bridge")


@contextlib.contextmanager
def private_bridge() -> Iterator[None]:
    """pycontain's default network, on a registry, bridge and nftables table of the benchmark's own (the
    environment of every pycontain started meanwhile); all removed afterwards, so a real pycontain0 is
    never touched."""
    registry = tempfile.mkdtemp(prefix="pycontain-bench-net-")
    saved = {k: os.environ.get(k) for k in NET_KEYS}
    values = (registry, BRIDGE_BRIDGE, BRIDGE_TABLE, free_subnet())
    os.environ.update(zip(NET_KEYS, values, strict=True))
    try:
        yield
    finally:
        remove_bridge(BRIDGE_BRIDGE, BRIDGE_TABLE, registry)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def pool_bridge(pycontain: str, size: int) -> Iterator[list[str]]:
    """Another private default network whose warm pool keeps ``size`` namespaces ready: yields the ``env``
    prefix that runs a command on it. The pool is turned off (every entry removed, after a filler at work
    is done) before the bridge goes."""
    registry = tempfile.mkdtemp(prefix="pycontain-bench-pool-")
    # Not the subnet of the other private bridge, which may not be up yet.
    values = (
        registry,
        POOL_BRIDGE,
        POOL_TABLE,
        free_subnet((os.environ.get("PYCONTAIN_BRIDGE_SUBNET", ""),)),
    )
    env = ["env", *(f"{k}={v}" for k, v in zip(NET_KEYS, values, strict=True))]
    try:
        subprocess.run([*env, pycontain, "network", "pool", str(size)], check=True, capture_output=True)
        yield env
    finally:
        subprocess.run([*env, pycontain, "network", "pool", "0"], capture_output=True)
        remove_bridge(POOL_BRIDGE, POOL_TABLE, registry)


def remove_bridge(bridge: str, table: str, registry: str) -> None:
    # The warm network pool (on by default) off first: it waits for a filler at work (which would make the
    # bridge again) and unmounts the entries' namespaces, which live in the registry.
    env = {
        **os.environ,
        "PYCONTAIN_NETWORKS_DIR": registry,
        "PYCONTAIN_BRIDGE": bridge,
        "PYCONTAIN_NFT_TABLE": table,
    }
    subprocess.run([sys.executable, "-m", "pycontain", "network", "pool", "0"], env=env, capture_output=True)
    out = subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True).stdout
    for link in json.loads(out or "[]"):
        if link.get("master") == bridge:
            subprocess.run(["ip", "link", "del", link["ifname"]], capture_output=True)
    subprocess.run(["ip", "link", "del", bridge], capture_output=True)
    subprocess.run(["nft", "delete", "table", "ip", table], capture_output=True)
    shutil.rmtree(registry, ignore_errors=True)


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
    argv = [*python, "-X", "importtime", pycontain, "run", "--rm", *network, "default", "--", "/bin/true"]
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


# The targets: each pycontain measure, the runc measure it is compared with, and the ratio to reach.
# runc's bundle has no network, so pycontain's default bridge is compared with runc's plain run;
# ps (a table of ten containers) is compared with runc state (runc has no ps over containers).
MEASURES: tuple[tuple[str, str, str, float], ...] = (
    ("run --rm --network none /bin/true", "run", "run", 0.75),
    ("run --rm /bin/true (default bridge)", "run-bridge", "run", 1.5),
    (f"run --rm /bin/true (bridge, warm pool of {POOL_SIZE})", "run-pool", "run", 1.5),
    ("exec ID /bin/true (running container)", "exec", "exec", 1.0),
    ("state ID", "state", "state", 2.0),
    (f"ps ({PS_CONTAINERS} containers) vs runc state", "ps", "state", 3.0),
)
SLEEPER = "pycontain-bench-lat"  # the running containers exec, state and ps are timed against


def make_sleeper_bundle(bundle: str, rootfs: str) -> None:
    """The /bin/true bundle, running ``sleep`` instead: the container exec and state are timed against."""
    make_bundle(bundle, rootfs)
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        config = json.load(f)
    config["process"]["args"] = ["sleep", "3600"]
    with open(path, "w") as f:
        json.dump(config, f, indent=2)


def start_detached(argv: list[str]) -> str | None:
    """A runtime's ``run -d``: its stdio must not be a pipe we wait on (the container keeps it open)."""
    with tempfile.TemporaryFile("w+") as err:
        try:
            p = subprocess.run(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, timeout=60, text=True
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            return str(e)
        err.seek(0)
        lines = [ln for ln in err.read().splitlines() if ln.strip()]
    return None if p.returncode == 0 else f"exit status {p.returncode}: {lines[-1] if lines else ''}"


class Rows:
    """hyperfine's commands, each for one (measure, runtime); commands that fail once are left out."""

    def __init__(self) -> None:
        self.commands: list[tuple[str, list[str]]] = []
        self.key: dict[str, tuple[str, str]] = {}  # command name -> (measure, runtime)
        self.skipped: list[tuple[str, str]] = []

    def add(self, measure: str, runtime: str, name: str, cmd: list[str]) -> None:
        why = try_once(cmd)
        if why is None:
            self.commands.append((name, cmd))
            self.key[name] = (measure, runtime)
        else:
            self.skipped.append((name, f"`{shlex.join(cmd)}` fails: {why}"))


def oci_rows(
    rows: Rows,
    runtime: str,
    prefix: list[str],
    root: str,
    bundle: str,
    sleeper: str,
    cleanup: Callable[[list[str]], None],
) -> None:
    """run, exec and state for runc or crun (``prefix``: crun's nsenter wrapper on hybrid hosts)."""
    rt = [*prefix, runtime, "--root", root]
    rid = f"pycontain-bench-{runtime}"
    cleanup([*rt, "delete", "--force", rid])
    rows.add("run", runtime, f"{runtime} run", [*rt, "run", "--bundle", bundle, rid])
    sid = f"{SLEEPER}-{runtime}"
    cleanup([*rt, "delete", "--force", sid])
    why = start_detached([*rt, "run", "--detach", "--bundle", sleeper, sid])
    if why is not None:
        rows.skipped.append((f"{runtime} exec/state", f"its container does not start: {why}"))
        return
    rows.add("exec", runtime, f"{runtime} exec", [*rt, "exec", sid, "/bin/true"])
    rows.add("state", runtime, f"{runtime} state", [*rt, "state", sid])


def crun_prefix(
    work: str, bundle: str, root: str, stack: contextlib.ExitStack, notes: list[str]
) -> list[str] | str:
    """[] when crun runs as is; nsenter into a namespace with cgroup2's controllers masked on hybrid
    hosts whose cgroup2 mount holds controllers; else why not."""
    cmd = ["crun", "--root", root, "run", "--bundle", bundle, "pycontain-bench-crun"]
    why = try_once(cmd)
    if why is None:
        return []
    if not (HYBRID_ERROR in why and os.path.exists(UNIFIED_CONTROLLERS) and shutil.which("nsenter")):
        return why
    log(f"crun as is: {why}")
    try:
        masked = stack.enter_context(MaskedCgroup2(work))
    except (subprocess.CalledProcessError, OSError) as e:
        return f"{why}; masking cgroup2 controllers failed: {e}"
    why2 = try_once([*masked.prefix(), *cmd])
    if why2 is not None:
        return f"{why}; with cgroup2 controllers masked: {why2}"
    notes.append(
        f"crun as is fails here ({why}); its rows run it through nsenter into a private mount namespace "
        f"where {UNIFIED_CONTROLLERS} reads empty, so it uses the v1 cgroup hierarchies like runc; the "
        "'nsenter /bin/true' row is that wrapper's own cost"
    )
    return masked.prefix()


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
    ap.add_argument(
        "--density",
        type=int,
        default=50,
        metavar="N",
        help="the start rate at N containers, through pycontain bench (default 50; 0: skip)",
    )
    ap.add_argument(
        "--sandbox-runs",
        type=int,
        default=300,
        metavar="N",
        help="runs of benchmarks/sandbox_latency.py per row (default 300; 0: skip)",
    )
    ap.add_argument("--top", type=int, default=25, help="entries shown by --imports (default 25)")
    ap.add_argument(
        "--state-tmpfs",
        action="store_true",
        help="the hyperfine rows' state roots (every runtime's, and so pycontain's --rm layers) on a tmpfs, as "
        "runc's /run/runc is on a systemd host; without it they share the temporary directory's filesystem",
    )
    ap.add_argument(
        "--bridge", action="store_true", help="with --imports: the imports of pycontain's default network"
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

    rows = Rows()
    rows.add("floor", "python", f"{shlex.join(['python', *python[1:]])} -c pass", [*python, "-c", "pass"])
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="pycontain-bench-") as work, contextlib.ExitStack() as stack:
        bundle, sleeper = os.path.join(work, "bundle"), os.path.join(work, "sleeper")
        state = os.path.join(work, "state")
        if args.state_tmpfs:
            os.mkdir(state)
            subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0700", "pycontain-bench", state], check=True)
            # Registered first, so undone last: after every container that lives there is gone.
            stack.callback(subprocess.run, ["umount", "--lazy", state], check=False)
            notes.append("the hyperfine rows' state roots are on a tmpfs (--state-tmpfs)")
        stack.enter_context(private_bridge())

        def cleanup(cmd: list[str]) -> None:
            """Undone last first: crun's containers go before its nsenter namespace, all before the bridge."""
            stack.callback(subprocess.run, cmd, capture_output=True, check=False)

        if shutil.which("runc"):
            os.mkdir(bundle)
            os.mkdir(sleeper)
            make_bundle(bundle, rootfs)
            make_sleeper_bundle(sleeper, rootfs)
            oci_rows(rows, "runc", [], f"{state}/runc", bundle, sleeper, cleanup)
            if shutil.which("crun"):
                prefix = crun_prefix(work, bundle, f"{state}/crun", stack, notes)
                if isinstance(prefix, str):
                    rows.skipped.append(("crun", prefix))
                else:
                    if prefix:
                        rows.add(
                            "wrapper", "nsenter", "nsenter /bin/true (crun's wrapper)", [*prefix, "/bin/true"]
                        )
                    oci_rows(rows, "crun", prefix, f"{state}/crun", bundle, sleeper, cleanup)
            else:
                rows.skipped.append(("crun", "not installed (apt-get install crun)"))
        else:
            rows.skipped.append(("runc and crun", "runc not installed (apt-get install runc crun)"))

        if pycontain:
            pyc = [pycontain, "--root", f"{state}/pycontain"]
            names = [f"{SLEEPER}-{i}" for i in range(PS_CONTAINERS)]
            cleanup([*pyc, "rm", "-f", *names])
            rows.add(
                "run",
                "pycontain",
                "pycontain run --network none",
                [*pyc, "run", "--rm", *LIKE_RUNC, "default", "--", "/bin/true"],
            )
            rows.add(
                "run-bridge",
                "pycontain",
                "pycontain run (bridge)",
                [*pyc, "run", "--rm", "default", "--", "/bin/true"],
            )
            try:
                env = stack.enter_context(pool_bridge(pycontain, POOL_SIZE))
            except subprocess.CalledProcessError as e:
                rows.skipped.append(("pycontain run (bridge, pool)", f"the pool does not fill: {e.stderr}"))
            else:
                rows.add(
                    "run-pool",
                    "pycontain",
                    "pycontain run (bridge, pool)",
                    [*env, *pyc, "run", "--rm", "default", "--", "/bin/true"],
                )
            for name in names:
                why = start_detached(
                    [*pyc, "run", "-d", *LIKE_RUNC, "--name", name, "default", "--", "sleep", "3600"]
                )
                if why is not None:
                    rows.skipped.append(("pycontain exec/state/ps", f"its containers do not start: {why}"))
                    break
            else:
                rows.add("exec", "pycontain", "pycontain exec", [*pyc, "exec", names[0], "/bin/true"])
                rows.add("state", "pycontain", "pycontain state", [*pyc, "state", names[0]])
                rows.add("ps", "pycontain", f"pycontain ps ({PS_CONTAINERS})", [*pyc, "ps"])
        else:
            rows.skipped.append(("pycontain", "not found (make a .venv, or give --pycontain PATH)"))

        for name, why in rows.skipped:
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
        for name, cmd in rows.commands:
            hf += ["--command-name", name, shlex.join(cmd)]
        log(f"$ {shlex.join(hf)}")
        p = subprocess.run(hf, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        if p.returncode != 0:
            log(f"hyperfine failed (exit status {p.returncode})")
            return 1

    with open(export) as f:
        results = json.load(f)["results"]
    print_results(results, rows, notes)
    print(f"\nhyperfine JSON: {export}")
    others = []
    if args.density > 0 and pycontain:
        others.append(density_row(pycontain, args.density, args.out))
    if args.sandbox_runs > 0:
        others += sandbox_rows(args.sandbox_runs, args.out)
    if others:
        print(f"\n{'other targets':<42} {'pycontain':>9} {'baseline':>16} {'ratio':>7}  {'target':<22} met")
        for label, mine, base, ratio, target, met in others:
            print(f"{label:<42} {mine:>9} {base:>16} {ratio:>7}  {target:<22} {met}")
    return 0


OtherRow = tuple[str, str, str, str, str, str]  # label, pycontain, baseline, ratio, target, met


def density_row(pycontain: str, n: int, out: str) -> OtherRow:
    """The start rate at ``n`` containers for pycontain, runc and crun: ``pycontain bench``'s density
    workload (each started with ``run -d``, timed until its service says it is up)."""
    label, target = f"start rate at N = {n} (starts/s)", ">= 1x runc"
    argv = [pycontain, "bench", "--runtimes", "pycontain,runc,crun", "--vm", "none", "--workloads"]
    argv += ["density", "--density", str(n), "--repeat", "1", "--json", "--out", os.path.join(out, "density")]
    log(f"$ {shlex.join(argv)}")
    p = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    try:
        summary = json.loads(p.stdout)["summary"]
    except ValueError:
        lines = [ln for ln in (p.stderr or p.stdout).splitlines() if ln.strip()]
        return label, "n/a", lines[-1][:60] if lines else f"exit status {p.returncode}", "", target, "n/a"
    rate = {s["target"]: s["median"] for s in summary if s["metric"] == f"rate@{n}"}
    mine, runc, crun = rate.get("pycontain"), rate.get("runc"), rate.get("crun")
    base = f"runc {runc:.1f}" if runc else "runc n/a"
    base += f", crun {crun:.1f}" if crun else ""
    if mine is None or runc is None:
        return label, f"{mine:.1f}" if mine else "n/a", base, "n/a", target, "n/a"
    return label, f"{mine:.1f}", base, f"{mine / runc:.2f}x", target, "yes" if mine >= runc else "no"


def sandbox_rows(runs: int, out: str) -> list[OtherRow]:
    """The warm sandbox pool: p50 of acquire + run /bin/true + release against crun run, and the runs per
    second back to back, reset and remade (``benchmarks/sandbox_latency.py``)."""
    export = os.path.join(out, "sandbox.json")
    argv = [sys.executable, os.path.join(REPO, "benchmarks", "sandbox_latency.py"), "--runs", str(runs)]
    argv += ["--json", export]
    log(f"$ {shlex.join(argv)}")
    p = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    warm_label = "sandbox pool, warm: p50 (ms)"
    # The target's row: a read-only root, so released sandboxes are reset and lent again; the default
    # (writable root: each one destroyed and remade) for comparison.
    rate_label = "sandbox pool, back to back, reset (runs/s)"
    remade_label = "sandbox pool, back to back, remade (runs/s)"
    if p.returncode != 0 or not os.path.isfile(export):
        lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
        why = lines[-1][:60] if lines else f"exit status {p.returncode}"
        return [(warm_label, "n/a", why, "", "<= 1x crun run", "n/a")]
    with open(export) as f:
        results = json.load(f)["results"]
    warm = results.get("sandbox acquire+run+release (warm pool)")
    b2b = results.get("sandbox acquire+run+release (back-to-back)")
    reused = results.get("sandbox acquire+run+release (back-to-back, reset)")
    crun = next((v for k, v in results.items() if k.startswith("crun run")), None)
    rows: list[OtherRow] = []
    if warm:
        base = f"crun {crun['p50_ms']:.1f}" if crun else "crun n/a"
        ratio = f"{warm['p50_ms'] / crun['p50_ms']:.2f}x" if crun else "n/a"
        met = ("yes" if warm["p50_ms"] <= crun["p50_ms"] else "no") if crun else "n/a"
        rows.append((warm_label, f"{warm['p50_ms']:.1f}", base, ratio, "<= 1x crun run", met))
    if reused:
        rate = reused["runs_per_s"]
        rows.append((rate_label, f"{rate:.0f}", "", "", ">= 100 runs/s", "yes" if rate >= 100 else "no"))
    if b2b:
        rows.append((remade_label, f"{b2b['runs_per_s']:.0f}", "", "", "", ""))
    return rows


def print_results(results: list[dict], rows: Rows, notes: list[str]) -> None:
    """Every command's figures, then the issue's targets side by side with runc and crun."""
    median: dict[tuple[str, str], float] = {}
    print(f"{'command':<40} {'median ms':>10} {'mean ms':>9} {'± ms':>7} {'min ms':>8}")
    for r in results:
        median[rows.key[r["command"]]] = r["median"]
        print(
            f"{r['command']:<40} {r['median'] * 1e3:10.2f} {r['mean'] * 1e3:9.2f} {r['stddev'] * 1e3:7.2f} "
            f"{r['min'] * 1e3:8.2f}"
        )
    for name, why in rows.skipped:
        print(f"{name:<40} {'n/a':>10}  {why}")

    def ms(key: tuple[str, str]) -> str:
        return f"{median[key] * 1e3:.1f}" if key in median else "n/a"

    def ratio(a: tuple[str, str], b: tuple[str, str]) -> str:
        return f"{median[a] / median[b]:.2f}x" if a in median and b in median else "n/a"

    print(
        f"\n{'measure (medians, ms)':<42} {'pycontain':>9} {'runc':>7} {'crun':>7} {'vs runc':>8} {'vs crun':>8}"
        f"  {'target':<15} met"
    )
    for label, measure, base, target in MEASURES:
        mine, runc, crun = (measure, "pycontain"), (base, "runc"), (base, "crun")
        if mine in median and runc in median:
            met = "yes" if median[mine] / median[runc] <= target else "no"
        else:
            met = "n/a"
        print(
            f"{label:<42} {ms(mine):>9} {ms(runc):>7} {ms(crun):>7} {ratio(mine, runc):>8} "
            f"{ratio(mine, crun):>8}  {f'<= {target:g}x runc':<15} {met}"
        )
    print(f"{'python -c pass, as pycontain starts it':<42} {ms(('floor', 'python')):>9}")
    for note in notes:
        print(f"\nnote: {note}")


if __name__ == "__main__":
    sys.exit(main())
