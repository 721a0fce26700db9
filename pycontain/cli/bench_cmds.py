"""``pycontain bench``: the same appliance on the bare host, in containers and in a VM, with a report.

    pycontain bench [--appliance NAME] [--runtimes pycontain,runc,crun] [--vm auto|kvm|tcg|none]
                    [--repeat N] [--workloads noop,ready,cpu,...] [--density 1,10,50] [--scale F]
                    [--out DIR] [--json]

Writes DIR/bench.json (raw samples with the load average at each, and median/min/max/n per figure),
DIR/report.md and PNG plots; prints a table with the ratio to the bare host beside every figure.
Registered on the typer ``app`` when imported.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from .app import app
from .base import command

WORKLOADS_HELP = "Comma-separated: noop, ready, cpu, syscall, forkexec, fileio, net, density (default: all)."


def _csv(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())


def _counts(value: str) -> tuple[int, ...]:
    from ..errors import InvalidArgument

    try:
        return tuple(int(v) for v in _csv(value))
    except ValueError:
        raise InvalidArgument(
            f"--density takes comma-separated instance counts, e.g. 1,10,50 (got {value!r})"
        ) from None


@command(app, "bench")
def bench(
    appliance: Annotated[
        str,
        typer.Option(
            "--appliance", help="The image to run everywhere (busybox-based: the workloads are sh scripts)."
        ),
    ] = "default",
    runtimes: Annotated[
        str, typer.Option("--runtimes", help="Container runtimes to compare (installed ones).")
    ] = "pycontain,runc,crun",
    vm: Annotated[
        str, typer.Option("--vm", help="auto: KVM if a probe boot works, else TCG; kvm; tcg; none.")
    ] = "auto",
    repeat: Annotated[int, typer.Option("--repeat", help="Samples per figure (interleaved rounds).")] = 5,
    workloads: Annotated[str | None, typer.Option("--workloads", help=WORKLOADS_HELP)] = None,
    density: Annotated[
        str, typer.Option("--density", help="Idle instance counts for the density test.")
    ] = "1,10,50",
    vm_density_max: Annotated[int, typer.Option("--vm-density-max", help="Most VMs started at once.")] = 10,
    scale: Annotated[
        float, typer.Option("--scale", help="Workload size (1.0: about a second each on the host).")
    ] = 1.0,
    vm_memory: Annotated[int, typer.Option("--vm-memory", help="Guest memory in MiB.")] = 256,
    out: Annotated[
        str, typer.Option("--out", help="Directory for bench.json, report.md and the PNG plots.")
    ] = "bench-out",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the summary as JSON instead of a table.")
    ] = False,
) -> int:
    """Measure what OS-level virtualization costs against the bare host and a virtual machine."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from ..bench import BenchOptions, run_bench
    from ..bench.report import table_rows, write_all

    opts = BenchOptions(
        appliance=appliance,
        runtimes=_csv(runtimes),
        vm=vm,
        repeat=repeat,
        workloads=_csv(workloads),
        density=_counts(density),
        vm_density_max=vm_density_max,
        scale=scale,
        vm_memory_mb=vm_memory,
    )
    opts.validate()
    err = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    ) as bar:
        task = bar.add_task("preparing (VM export, bundles)", total=None)

        def progress(what: str, done: int, total: int) -> None:
            bar.update(task, description=what, completed=done, total=total)

        result = run_bench(opts, progress)
    files = write_all(result, out)
    if as_json:
        json.dump(
            {
                "meta": result.meta,
                "summary": result.to_dict()["summary"],
                "notes": result.notes,
                "files": files,
            },
            sys.stdout,
            indent=2,
        )
        sys.stdout.write("\n")
        return 0
    header, rows = table_rows(result)
    table = Table(title=f"pycontain bench: {appliance} (median of {repeat}; ratio to the bare host)")
    for h in header:
        table.add_column(h, justify="left" if h in ("metric", "unit") else "right")
    for r in rows:
        table.add_row(*r)
    console = Console()
    console.print(table)
    console.print(f"VM: {result.meta['vm_accel_why']}")
    for note in result.notes:
        console.print(f"note: {note}")
    wide = sum(1 for s in result.summary if s.warning)
    if wide:
        console.print(
            f"warning: {wide} figure(s) marked ! spread more than 25 % around their median: rerun on "
            "a quieter machine or with a higher --repeat (details in report.md)"
        )
    console.print(f"wrote {files['json']}, {files['report']} and {len(files['plots'])} plot(s) in {out}")
    return 0
