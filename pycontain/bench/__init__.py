"""``pycontain bench``: the same appliance on the bare host, in containers and in a virtual machine.

What OS-level virtualization buys against a hypervisor, measured on the user's own machine: start-to-exit
latency of a no-op, time until a service is up, host memory per idle instance, CPU, syscall, fork+exec,
file and loopback-network throughput, and density (memory per instance and start rate with N instances).

Honesty rules: every figure is the median of ``repeat`` samples taken in interleaved order (each round
visits the targets in a rotated order), warm-up runs are discarded, the load average is recorded with every
sample, and a figure whose spread (max-min)/median exceeds 25 % carries a warning. VM figures are labelled
with the accelerator that produced them (KVM only where a probe boot proved it works; TCG otherwise).

``run_bench(BenchOptions(...))`` returns a ``BenchResult``; ``pycontain.bench.report`` writes its JSON,
markdown report and PNG plots.
"""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from pycontain.errors import InvalidArgument, PycontainError

__all__ = ["BenchOptions", "BenchResult", "Sample", "Summary", "run_bench"]

SPREAD_WARNING = 0.25
DEFAULT_RUNTIMES = ("pycontain", "runc", "crun")


@dataclass
class BenchOptions:
    appliance: str = "default"
    runtimes: tuple[str, ...] = DEFAULT_RUNTIMES
    vm: str = "auto"  # auto | kvm | tcg | none
    repeat: int = 5
    workloads: tuple[str, ...] = ()  # empty: all (see workloads.ALL_METRICS)
    density: tuple[int, ...] = (1, 10, 50)
    vm_density_max: int = 10  # each idle TCG guest holds ~100-250 MiB; 50 of them rarely fit
    scale: float = 1.0
    vm_memory_mb: int = 256
    warmup: int = 1

    def validate(self) -> None:
        from pycontain.bench.workloads import ALL_METRICS

        if self.repeat < 1:
            raise InvalidArgument(f"--repeat must be at least 1 (got {self.repeat})")
        if not 0 < self.scale <= 100:
            raise InvalidArgument(f"--scale must be in (0, 100] (got {self.scale:g})")
        if self.vm not in ("auto", "kvm", "tcg", "none"):
            raise InvalidArgument(f"--vm must be auto, kvm, tcg or none (got {self.vm!r})")
        bad = [w for w in self.workloads if w not in ALL_METRICS]
        if bad:
            raise InvalidArgument(f"unknown workload {bad[0]!r}: choose from {', '.join(ALL_METRICS)}")
        bad = [r for r in self.runtimes if r not in DEFAULT_RUNTIMES]
        if bad:
            raise InvalidArgument(f"unknown runtime {bad[0]!r}: choose from {', '.join(DEFAULT_RUNTIMES)}")
        if any(n < 1 or n > 1000 for n in self.density):
            raise InvalidArgument("--density takes instance counts from 1 to 1000, e.g. 1,10,50")

    def selected(self) -> tuple[str, ...]:
        from pycontain.bench.workloads import ALL_METRICS

        return self.workloads or ALL_METRICS


@dataclass
class Sample:
    metric: str  # noop, ready, cpu, ..., mem@N, rate@N
    target: str
    value: float
    unit: str
    round: int
    load1: float  # the 1-minute load average when the sample was taken
    at: float  # seconds since the bench started


@dataclass
class Summary:
    metric: str
    target: str
    unit: str
    n: int
    median: float
    min: float
    max: float
    ratio: float | None  # median / the host's median (None where the host has no figure)
    better: str  # "lower" or "higher"
    warning: str = ""


@dataclass
class BenchResult:
    meta: dict
    samples: list[Sample] = field(default_factory=list)
    summary: list[Summary] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "meta": self.meta,
            "summary": [asdict(s) for s in self.summary],
            "samples": [asdict(s) for s in self.samples],
            "notes": self.notes,
        }


def _load1() -> float:
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return -1.0


def _version(binary: str) -> str:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return out.strip().splitlines()[0] if out.strip() else "?"


def _meta(opts: BenchOptions, accel: str, accel_why: str) -> dict:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
    except OSError:
        pass
    from pycontain import __version__

    versions = {"pycontain": __version__}
    for rt in ("runc", "crun", "qemu-system-x86_64"):
        if shutil.which(rt):
            versions[rt] = _version(rt)
    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "options": asdict(opts),
        "vm_accel": accel,
        "vm_accel_why": accel_why,
        "versions": versions,
    }


Progress = Callable[[str, int, int], None]  # (what, done, total)


def _targets(opts: BenchOptions, work: str, notes: list[str]) -> tuple[list, str, str]:
    import rootfs_builder
    from pycontain.bench.targets import HostTarget, OciTarget, PycontainTarget, VMTarget

    image = rootfs_builder.resolve_image(opts.appliance)
    if len(image.layers) != 1:
        raise PycontainError(
            f"the bench runs single-layer appliances on the bare host; {opts.appliance!r} has "
            f"{len(image.layers)} layers (flatten it first: export it as a rootfs tar and import that)"
        )
    rootfs = image.layers[0]
    targets: list = [HostTarget(rootfs, work)]
    for rt in opts.runtimes:
        if rt == "pycontain":
            targets.append(PycontainTarget(opts.appliance, work))
        elif shutil.which(rt):
            targets.append(OciTarget(rt, rootfs, work))
        else:
            notes.append(f"{rt} is not installed: left out (apt-get install {rt})")
    accel, why = "none", "no VM (--vm none)"
    if opts.vm != "none":
        from pycontain import vm

        try:
            accel, why = vm.choose_accel(opts.vm)
            targets.append(VMTarget(opts.appliance, work, accel, opts.vm_memory_mb))
        except vm.VMUnavailable as e:
            if opts.vm != "auto":
                raise
            accel, why = "none", f"no VM: {e}"
            notes.append(why)
    return targets, accel, why


def run_bench(opts: BenchOptions, progress: Progress | None = None) -> BenchResult:
    """Run every selected workload on every target; the result holds raw samples and their summary."""
    from pycontain.bench.targets import make_work_dir

    opts.validate()
    report = progress or (lambda what, done, total: None)
    notes: list[str] = []
    work = make_work_dir()
    targets: list = []
    try:
        targets, accel, why = _targets(opts, work, notes)
        result = BenchResult(meta=_meta(opts, accel, why), notes=notes)
        vm_target = next((t for t in targets if t.kind == "vm"), None)
        if vm_target is not None:
            result.meta["vm_export_seconds"] = round(vm_target.export_seconds, 2)
        _measure(opts, targets, result, report)
        if vm_target is not None and vm_target.hung:
            notes.append(f"{vm_target.hung} VM boot(s) hung before the guest's /init and were retried")
        result.summary = summarize(result.samples)
        return result
    finally:
        for t in targets:
            try:
                t.close()
            except Exception as e:  # one target's cleanup must not keep the others from theirs
                notes.append(f"cleaning up {t.name} failed: {e}")
        shutil.rmtree(work, ignore_errors=True)


def _measure(opts: BenchOptions, targets: list, result: BenchResult, report: Progress) -> None:
    from pycontain.bench import workloads as wl

    chosen = opts.selected()
    rates = [w for w in wl.RATE_METRICS if w in chosen]
    t_start = time.monotonic()
    densities = sorted(set(opts.density)) if "density" in chosen else []
    steps = (
        opts.warmup * len(targets)
        + opts.repeat
        * len(targets)
        * (("noop" in chosen) + ("ready" in chosen) + ("answer" in chosen) + (1 if rates else 0))
        + len(densities) * len(targets)
    )
    done = 0

    def add(metric: str, target, value: float, unit: str, rnd: int) -> None:
        result.samples.append(
            Sample(metric, target.name, value, unit, rnd, _load1(), round(time.monotonic() - t_start, 3))
        )

    def step(what: str) -> None:
        nonlocal done
        done += 1
        report(what, done, steps)

    port = 20000 + os.getpid() % 20000
    service_port = _service_port(opts, result) if "answer" in chosen else None
    for t in targets:  # warm-up: page cache, bytecode, the kernel's dentries; results discarded
        for _ in range(opts.warmup):
            t.noop()
            step(f"warm-up {t.name}")
    for rnd in range(opts.repeat):
        order = targets[rnd % len(targets) :] + targets[: rnd % len(targets)]
        for t in order:
            if "noop" in chosen:
                add("noop", t, t.noop() * 1000, "ms", rnd)
                step(f"no-op on {t.name}")
            if "ready" in chosen:
                inst = t.start_idle(rnd)
                try:
                    add("ready", t, inst.ready_seconds * 1000, "ms", rnd)
                finally:
                    inst.stop()
                step(f"service up on {t.name}")
            if "answer" in chosen:
                svc = t.start_service(port + 100 + rnd, service_port) if service_port else None
                if svc is not None:
                    try:
                        add("answer", t, svc.ready_seconds * 1000, "ms", rnd)
                    finally:
                        svc.stop()
                step(f"service answers on {t.name}")
            if rates:
                # the VM runs every workload in one boot (timed inside); the others one process each
                scripts = (
                    [wl.combined_script(rates, opts.scale, port)]
                    if t.kind == "vm"
                    else [wl.combined_script([w], opts.scale, port + i) for i, w in enumerate(rates)]
                )
                got: dict[str, float] = {}
                for script in scripts:
                    out = t.run(script)
                    got.update(wl.parse(out.output))
                for w in rates:
                    if w in got:
                        add(w, t, got[w], wl.WORKLOADS[w].unit, rnd)
                    elif f"missing {w} on {t.name}" not in result.notes:
                        result.notes.append(f"missing {w} on {t.name}: the workload failed there")
                step(f"workloads on {t.name}")
    for n in densities:
        for t in targets:
            cap = opts.vm_density_max if t.kind == "vm" else n
            if n > cap:
                result.notes.append(f"density {n} skipped for {t.name} (cap {cap}: --vm-density-max)")
                step(f"density {n} on {t.name} (skipped)")
                continue
            _density(t, n, add)
            step(f"density {n} on {t.name}")


def _service_port(opts: BenchOptions, result: BenchResult) -> int | None:
    """The appliance's first exposed TCP port (what "answer" asks), or None with a note saying why not."""
    import rootfs_builder
    from pycontain.vm import exposed_tcp_ports

    ports = exposed_tcp_ports(rootfs_builder.resolve_image(opts.appliance).config)
    if not ports:
        result.notes.append(f"{opts.appliance} exposes no TCP port: 'time until a service answers' left out")
        return None
    return ports[0]


def _density(target, n: int, add) -> None:
    from pycontain.bench.targets import memory_kib

    instances = []
    try:
        for i in range(n):
            instances.append(target.start_idle(1000 + i))
        time.sleep(0.5)
        pss = sum(memory_kib(inst.pids)[0] for inst in instances)
        add(f"mem@{n}", target, pss / 1024 / n, "MiB PSS/instance", 0)
        # starts until each was up, one after another (the bench's own bookkeeping, e.g. finding a
        # container's pid, is left out)
        add(f"rate@{n}", target, n / sum(inst.ready_seconds for inst in instances), "starts/s", 0)
    finally:
        for inst in instances:
            inst.stop()


def summarize(samples: list[Sample]) -> list[Summary]:
    from pycontain.bench import workloads as wl

    groups: dict[tuple[str, str], list[Sample]] = {}
    for s in samples:
        groups.setdefault((s.metric, s.target), []).append(s)
    host = {m: statistics.median(x.value for x in g) for (m, t), g in groups.items() if t == "host"}
    out = []
    for (metric, target), g in groups.items():
        values = [s.value for s in g]
        med = statistics.median(values)
        better = "higher" if metric in wl.RATE_METRICS or metric.startswith("rate@") else "lower"
        warning = ""
        if len(values) >= 3 and med > 0 and (max(values) - min(values)) / med > SPREAD_WARNING:
            warning = f"wide spread ({min(values):.4g}..{max(values):.4g} around {med:.4g}): rerun on a quieter machine or with a higher --repeat"
        ratio = med / host[metric] if host.get(metric) else None
        out.append(
            Summary(
                metric, target, g[0].unit, len(values), med, min(values), max(values), ratio, better, warning
            )
        )
    return out
