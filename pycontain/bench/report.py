"""What ``pycontain bench`` writes: bench.json (raw samples and their summary), report.md, PNG plots."""

from __future__ import annotations

import json
import os

from pycontain.bench import BenchResult, Summary

METRIC_TEXT = {
    "noop": (
        "Start-to-exit latency of a no-op",
        "The whole cost of one instance that does nothing: for the host a fork+exec; for the containers "
        "the runtime's process plus namespaces, cgroups, mounts and pivot_root; for the VM a full boot of "
        "a kernel, its initramfs and a power-off.",
    ),
    "ready": (
        "Time until a service is up",
        "From the start command until the instance prints its ready marker (on stdout, in the log file, "
        "or on the VM's serial console).",
    ),
    "answer": (
        "Time until a service answers",
        "From the start command until an HTTP request to the appliance's first exposed TCP port, "
        "published on 127.0.0.1, gets a reply: a container on the bridge network behind a DNAT rule, the "
        "VM behind QEMU's user-mode network. Targets that cannot publish a port are left out.",
    ),
    "cpu": (
        "CPU-bound throughput",
        "A shell arithmetic loop: no system calls. Containers run on the host's "
        "kernel and CPU at full speed; a VM without KVM emulates every instruction (TCG).",
    ),
    "syscall": (
        "Syscall-heavy loop",
        "dd with 1-byte blocks: two system calls per byte. Seccomp filters add "
        "a small cost per call in containers; emulation multiplies it in the VM.",
    ),
    "forkexec": ("fork+exec rate", "A loop running /bin/true: process creation, exec, page faults."),
    "fileio": (
        "File I/O",
        "256 MiB in 1 MiB writes with fsync at the end, after a sync (so the fsync flushes this file "
        "alone): the host and every container write to the same file system (pycontain through "
        "overlayfs, runc and crun to a bundle's copy); the VM through virtio-blk to a QEMU snapshot file.",
    ),
    "net": (
        "Loopback TCP throughput",
        "busybox nc over the instance's own loopback device (each container "
        "and the VM have their own network stack; the host uses its own).",
    ),
}


def _fmt(v: float) -> str:
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}"


def _metric_order(result: BenchResult) -> list[str]:
    from pycontain.bench import workloads as wl

    seen = []
    for s in result.summary:
        if s.metric not in seen:
            seen.append(s.metric)
    key = {m: i for i, m in enumerate(wl.SERIES_METRICS + wl.RATE_METRICS)}

    def order(m: str) -> tuple:
        if m in key:
            return (0, key[m], 0)
        kind, _, n = m.partition("@")
        return (1, 0 if kind == "mem" else 1, int(n or 0))

    return sorted(seen, key=order)


def _targets(result: BenchResult) -> list[str]:
    out = []
    for s in result.samples:
        if s.target not in out:
            out.append(s.target)
    return out


def table_rows(result: BenchResult) -> tuple[list[str], list[list[str]]]:
    """(header, rows): one row per metric, per target "median (ratio to host)"."""
    targets = _targets(result)
    by = {(s.metric, s.target): s for s in result.summary}
    accel = result.meta.get("vm_accel")
    header = ["metric", "unit"] + [f"vm ({accel})" if t == "vm" else t for t in targets]
    rows = []
    for m in _metric_order(result):
        unit = next(s.unit for s in result.summary if s.metric == m)
        row = [m, unit]
        for t in targets:
            s = by.get((m, t))
            if s is None:
                row.append("-")
                continue
            cell = _fmt(s.median)
            if s.ratio is not None and t != "host":
                cell += f" ({s.ratio:.2f}x)"
            if s.warning:
                cell += " !"
            row.append(cell)
        rows.append(row)
    return header, rows


def write_json(result: BenchResult, path: str) -> None:
    with open(path, "w") as f:
        json.dump(result.to_dict(), f, indent=2)


def plot(result: BenchResult, out: str) -> list[str]:
    """PNG plots: latency (log scale), throughput relative to the host, memory per instance, start rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = _targets(result)
    by = {(s.metric, s.target): s for s in result.summary}
    label = {t: (f"vm ({result.meta.get('vm_accel')})" if t == "vm" else t) for t in targets}
    files = []

    def bars(metrics: list[str], title: str, ylabel: str, name: str, value, log: bool = False) -> None:
        metrics = [m for m in metrics if any((m, t) in by for t in targets)]
        if not metrics:
            return
        fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(metrics) * max(1, len(targets)) / 3), 4.2))
        width = 0.8 / len(targets)
        for i, t in enumerate(targets):
            xs, ys, lo, hi = [], [], [], []
            for j, m in enumerate(metrics):
                s: Summary | None = by.get((m, t))
                if s is None:
                    continue
                v, vmin, vmax = value(s), value(s, "min"), value(s, "max")
                if v is None:
                    continue
                xs.append(j + i * width)
                ys.append(v)
                lo.append(max(0.0, v - min(vmin, vmax)))
                hi.append(max(0.0, max(vmin, vmax) - v))
            ax.bar(xs, ys, width, yerr=[lo, hi], capsize=3, label=label[t])
        ax.set_xticks([j + width * (len(targets) - 1) / 2 for j in range(len(metrics))], metrics)
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        if log:
            ax.set_yscale("log")
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        path = os.path.join(out, name)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        files.append(path)

    def raw(s: Summary, which: str = "median") -> float:
        return getattr(s, which)

    def relative(s: Summary, which: str = "median") -> float | None:
        host = by.get((s.metric, "host"))
        return getattr(s, which) / host.median if host and host.median else None

    from pycontain.bench import workloads as wl

    metrics = _metric_order(result)
    bars(
        [m for m in metrics if m in wl.SERIES_METRICS],
        "Latency (median, min..max)",
        "milliseconds (log)",
        "latency.png",
        raw,
        log=True,
    )
    bars(
        [m for m in metrics if m in wl.RATE_METRICS],
        "Throughput relative to the bare host (1.0 = host)",
        "x host",
        "throughput.png",
        relative,
    )
    bars(
        [m for m in metrics if m.startswith("mem@")],
        "Host memory per idle instance (PSS)",
        "MiB (log)",
        "memory.png",
        raw,
        log=True,
    )
    bars(
        [m for m in metrics if m.startswith("rate@")],
        "Start rate with N instances",
        "instances/s (log)",
        "start_rate.png",
        raw,
        log=True,
    )
    return files


def write_markdown(result: BenchResult, path: str, plots: list[str]) -> None:
    meta = result.meta
    header, rows = table_rows(result)
    lines = [
        f"# pycontain bench: {meta['options']['appliance']} on {meta['cpu']} ({meta['cpus']} CPUs)",
        "",
        f"Started {meta['started']}, kernel {meta['kernel']}; medians of {meta['options']['repeat']} interleaved "
        f"rounds after {meta['options']['warmup']} warm-up run(s); ratios are to the bare host.",
        "",
        f"VM: {meta['vm_accel_why']}.",
        "",
    ]
    if meta.get("vm_export_seconds") is not None:
        lines += [f"The VM export (ext4 disk + kernel + initramfs) took {meta['vm_export_seconds']} s.", ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += [
        "",
        "`!` marks a figure whose spread (max-min)/median is above 25 %.",
        "",
        "## What each figure means",
        "",
    ]
    present = {s.metric for s in result.summary}
    for m, (title, text) in METRIC_TEXT.items():
        if m in present:
            lines += [f"**{title}** (`{m}`). {text}", ""]
    if any(m.startswith("mem@") for m in present):
        lines += [
            "**Density** (`mem@N`, `rate@N`). N idle instances started one after another: the proportional "
            "set size (PSS) of every host process an instance costs, divided by N, and N divided by the "
            "time to start them all. A container costs its own processes (pycontain leaves no daemon or "
            "shim behind); a VM costs its QEMU process, whose PSS includes the guest memory it touched.",
            "",
        ]
    lines += [
        "## Where the overhead comes from",
        "",
        "- **Namespaces and cgroups** cost at creation (clone flags, mounts, pivot_root, cgroup setup): "
        "that is the containers' no-op latency over the host's. Once running, a container's process is an "
        "ordinary host process: CPU, fork and syscall throughput stay at the host's level, minus seccomp's "
        "filter per system call and overlayfs on the file path.",
        "- **Emulation** (TCG) translates every guest instruction: CPU-bound work runs several times slower, "
        "and booting a kernel takes seconds. With KVM, guest code runs natively and the cost moves to "
        "exits (I/O, interrupts, page faults under nested paging).",
        "- **Paravirtual I/O** (virtio-blk, virtio-mmio) still crosses into QEMU for every request, so file "
        "I/O in the VM pays a context switch to the host per batch on top of the guest's own file system.",
        "- **Memory**: a VM reserves and touches memory for a whole kernel and its page cache; containers share "
        "the host's kernel and page cache, so an idle container costs little more than its processes.",
        "",
    ]
    if result.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in result.notes] + [""]
    wide = [s for s in result.summary if s.warning]
    if wide:
        lines += [
            "## Wide spreads",
            "",
            "Rerun on a quieter machine or with a higher `--repeat` before trusting these:",
            "",
        ]
        lines += [f"- `{s.metric}` on {s.target}: {s.warning.split(':')[0]}" for s in wide] + [""]
    if plots:
        lines += ["## Plots", ""] + [f"![{os.path.basename(p)}]({os.path.basename(p)})" for p in plots] + [""]
    lines += ["Raw samples (with the load average at each) are in `bench.json`.", ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))


def write_all(result: BenchResult, out: str) -> dict[str, str | list[str]]:
    os.makedirs(out, exist_ok=True)
    write_json(result, os.path.join(out, "bench.json"))
    plots = plot(result, out)
    write_markdown(result, os.path.join(out, "report.md"), plots)
    return {"json": os.path.join(out, "bench.json"), "report": os.path.join(out, "report.md"), "plots": plots}
