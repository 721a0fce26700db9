"""``stats`` (registered on the typer ``app``; the figures are ``pycontain.stats``'); ``update``, ``pause`` and
``unpause`` are in ``cli.commands``."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .app import app
from .base import GLOBALS, command

if TYPE_CHECKING:
    from ..stats import Sampler

STATS_COLUMNS = ("CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "PIDS", "BLOCK I/O")


# -- stats ----------------------------------------------------------------------------------------
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
    from ..stats import Sampler

    sampler = Sampler(refs or [], GLOBALS.root)
    if as_json or no_stream:
        rows = sampler.next()
        if as_json:
            print(json.dumps(rows, indent=2))
        else:
            _print_table(rows)
        return 0
    return _stream(sampler)


def _print_table(rows: list[dict]) -> None:
    from rich.console import Console

    Console(width=200 if not sys.stdout.isatty() else None).print(_table(rows))


def _stream(sampler: Sampler) -> int:
    """Refresh the table at every sample until interrupted (or, with named containers, all stop)."""
    try:
        if not sys.stdout.isatty():
            while True:
                rows = sampler.next()
                _print_table(rows)
                print(flush=True)
                if sampler.refs and not rows:
                    return 0
        from rich.live import Live

        with Live(_table([]), auto_refresh=False, transient=False) as live:
            while True:
                rows = sampler.next()
                live.update(_table(rows), refresh=True)
                if sampler.refs and not rows:
                    return 0
    except KeyboardInterrupt:
        return 0
