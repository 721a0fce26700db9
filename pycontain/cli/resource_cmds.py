"""``stats`` (registered on the typer ``app``); ``update``, ``pause`` and ``unpause`` are in ``cli.commands``."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Annotated, Any

import typer

from .app import app
from .base import GLOBALS, command
from .commands import container

SAMPLE_INTERVAL = 1.0  # seconds between the two samples that give CPU % (and between refreshes)
STATS_COLUMNS = ("CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "PIDS", "BLOCK I/O")


# -- stats ----------------------------------------------------------------------------------------
def _host_memory() -> int | None:
    """MemTotal in bytes: the limit docker stats shows for a container without a memory limit."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _decimal_size(n: int | None) -> str:
    """Decimal human size as docker stats prints block I/O: 1500000 -> "1.5MB"."""
    if n is None:
        return "--"
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{value:.4g}{unit}"
        value /= 1000
    return f"{value:.4g}PB"  # pragma: no cover - unreachable


class _Sampler:
    """Samples containers' cgroups and turns two consecutive samples into docker stats' figures."""

    def __init__(self, refs: list[str]) -> None:
        self.refs = refs
        self.prev: dict[str, tuple[float, Any]] = {}
        self.ncpus = os.cpu_count() or 1
        self.host_memory = _host_memory()

    def containers(self) -> list[Any]:
        """The containers to show: the named ones, or every running one (read anew each time)."""
        from ..container import Container

        if self.refs:
            from ..errors import ContainerNotFound

            found = []
            for ref in self.refs:
                try:
                    found.append(container(ref))
                except ContainerNotFound:
                    continue  # removed while we were watching it
            return [c for c in found if c.running()]
        return [c for c in Container.list(GLOBALS.root) if c.running()]

    def sample(self) -> list[dict]:
        """One row per container that is still running; CPU % from the previous sample, if any."""
        from ..cgroups.resources import cpu_percent
        from ..errors import PycontainError

        rows = []
        seen = set()
        for c in self.containers():
            try:
                now, s = time.monotonic(), c.stats()
            except (OSError, PycontainError):
                continue  # it stopped between the listing and the sample
            seen.add(c.id)
            before = self.prev.get(c.id)
            self.prev[c.id] = (now, s)
            cpu = cpu_percent(before[1], s, now - before[0], self.ncpus) if before else 0.0
            usage = None
            if s.memory_usage is not None:
                usage = max(s.memory_usage - (s.memory_cache or 0), 0)
            limit = s.memory_limit if s.memory_limit is not None else self.host_memory
            if limit is not None and self.host_memory is not None:
                limit = min(limit, self.host_memory)  # a limit above the host's memory is no limit
            rows.append(
                {
                    "Id": c.id,
                    "Name": c.name,
                    "CPUPerc": round(cpu, 2),
                    "MemUsage": usage,
                    "MemLimit": limit,
                    "MemPerc": round(usage / limit * 100, 2) if usage is not None and limit else 0.0,
                    "Pids": s.pids_current,
                    "PidsLimit": s.pids_limit,
                    "BlockRead": s.blkio_read_bytes,
                    "BlockWrite": s.blkio_write_bytes,
                    "Paused": c.status() == "paused",
                }
            )
        self.prev = {k: v for k, v in self.prev.items() if k in seen}
        return rows


def _table(rows: list[dict]) -> Any:
    from rich.table import Table

    from ..units import format_size

    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in STATS_COLUMNS:
        table.add_column(col, no_wrap=True, justify="right" if col in ("CPU %", "MEM %", "PIDS") else "left")
    for r in rows:
        usage = "--" if r["MemUsage"] is None else format_size(r["MemUsage"])
        limit = "--" if r["MemLimit"] is None else format_size(r["MemLimit"])
        table.add_row(
            r["Id"][:12],
            r["Name"],
            f"{r['CPUPerc']:.2f}%",
            f"{usage} / {limit}",
            f"{r['MemPerc']:.2f}%",
            "--" if r["Pids"] is None else str(r["Pids"]),
            f"{_decimal_size(r['BlockRead'])} / {_decimal_size(r['BlockWrite'])}",
        )
    return table


@command(app, "stats")
def stats(
    refs: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="CONTAINER", help="Container names or ids (default: all running).", show_default=False
        ),
    ] = None,
    no_stream: Annotated[bool, typer.Option("--no-stream", help="Print one sample and exit.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one sample as a JSON array (implies --no-stream).")
    ] = False,
) -> int:
    """Show containers' CPU, memory, process and block I/O usage, refreshed every second."""
    wanted = list(dict.fromkeys(refs or []))
    for ref in wanted:  # a name that matches nothing, or a stopped container, is an error up front
        c = container(ref)
        if not c.running():
            from ..errors import InvalidState

            raise InvalidState(f"container {c.name} is not running (status: {c.status()})")
    sampler = _Sampler(wanted)
    sampler.sample()
    if as_json or no_stream:
        time.sleep(SAMPLE_INTERVAL)
        rows = sampler.sample()
        if as_json:
            print(json.dumps(rows, indent=2))
        else:
            _print_table(rows)
        return 0
    return _stream(sampler)


def _print_table(rows: list[dict]) -> None:
    from rich.console import Console

    Console(width=200 if not sys.stdout.isatty() else None).print(_table(rows))


def _stream(sampler: _Sampler) -> int:
    """Refresh the table every SAMPLE_INTERVAL until interrupted (or, with named containers, all stop)."""
    try:
        if not sys.stdout.isatty():
            while True:
                time.sleep(SAMPLE_INTERVAL)
                rows = sampler.sample()
                _print_table(rows)
                print(flush=True)
                if sampler.refs and not rows:
                    return 0
        from rich.live import Live

        with Live(_table([]), auto_refresh=False, transient=False) as live:
            while True:
                time.sleep(SAMPLE_INTERVAL)
                rows = sampler.sample()
                live.update(_table(rows), refresh=True)
                if sampler.refs and not rows:
                    return 0
    except KeyboardInterrupt:
        return 0
