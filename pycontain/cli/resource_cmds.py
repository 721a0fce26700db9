"""Resource commands: ``stats``, ``update``, ``pause`` and ``unpause`` (registered on the typer ``app``).

``update``'s limit flags are generated from ``run``'s option table (``cli.options``), so the two
commands share names, short flags and help texts and cannot drift apart.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Annotated, Any

import typer

from ..errors import InvalidArgument
from . import guarded
from .app import _container, _exit, _root, app

SAMPLE_INTERVAL = 1.0  # seconds between the two samples that give CPU % (and between refreshes)
STATS_COLUMNS = ("CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "PIDS", "BLOCK I/O")


# -- pause / unpause ------------------------------------------------------------------------------
def _each(refs: list[str], action: Callable[[Any], None]) -> None:
    """Apply ``action`` to each container, printing its reference on success; exit with the worst status."""
    worst = 0
    for ref in refs:

        def body(ref: str = ref) -> int:
            action(_container(ref))
            print(ref)
            return 0

        worst = max(worst, guarded(body))
    _exit(worst)


@app.command("pause")
def pause(
    refs: Annotated[list[str], typer.Argument(metavar="CONTAINER", help="Container names or ids.")],
) -> None:
    """Suspend every process of running containers (cgroup freezer)."""
    _each(refs, lambda c: c.pause())


@app.command("unpause")
def unpause(
    refs: Annotated[list[str], typer.Argument(metavar="CONTAINER", help="Container names or ids.")],
) -> None:
    """Resume the processes of paused containers."""
    _each(refs, lambda c: c.unpause())


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
                    found.append(_container(ref))
                except ContainerNotFound:
                    continue  # removed while we were watching it
            return [c for c in found if c.running()]
        return [c for c in Container.list(_root["root"]) if c.running()]

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


@app.command("stats")
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
) -> None:
    """Show containers' CPU, memory, process and block I/O usage, refreshed every second."""

    def body() -> int:
        wanted = list(dict.fromkeys(refs or []))
        for ref in wanted:  # a name that matches nothing, or a stopped container, is an error up front
            c = _container(ref)
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

    _exit(guarded(body))


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


# -- update ---------------------------------------------------------------------------------------
def _load_resources_file(path: str) -> Any:
    """An OCI ``linux.resources`` JSON document from ``path`` ("-" reads stdin), as Resources."""
    from ..cgroups.resources import Resources

    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path) as f:
                text = f.read()
    except OSError as e:
        raise InvalidArgument(
            f"cannot read resources file {path!r} ({(e.strerror or str(e)).lower()})"
        ) from None
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise InvalidArgument(f"invalid resources file {path!r}: not JSON ({e})") from None
    return Resources.from_oci(doc)


def _overlay(base: Any, top: Any) -> Any:
    """``base`` with every field ``top`` sets replaced, unchecked (the flags given win over --resources)."""
    from ..cgroups.resources import Resources

    r = Resources()
    for f in Resources.__slots__:
        new = getattr(top, f)
        setattr(r, f, new if new is not None else getattr(base, f))
    if top.cpu_quota is not None and top.cpus is None:
        r.cpus = None
    return r


def update_command(ref: str, values: dict, resources_file: str | None) -> int:
    """``pycontain update``: the limits given (flags, and/or an OCI resources file) on top of the saved ones."""
    from ..cgroups.resources import Resources

    given = {k: v for k, v in values.items() if v not in (None, "", [], ())}
    if not given and resources_file is None:
        raise InvalidArgument(
            "nothing to update: give at least one limit, e.g. --memory 512m (see 'pycontain update --help')"
        )
    flags = Resources.from_options(**given, partial=True)
    update = _overlay(_load_resources_file(resources_file), flags) if resources_file is not None else flags
    _container(ref).update(update)
    print(ref)
    return 0


def _register_update() -> None:
    """``update`` as a typer command whose limit options come from ``run``'s option table."""
    from .options import MULTI, RESOURCE_DESTS, RUN_OPTIONS

    params = [
        inspect.Parameter(
            "ref",
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            annotation=Annotated[str, typer.Argument(metavar="CONTAINER", help="Container name or id.")],
        ),
        inspect.Parameter(
            "resources_file",
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=Annotated[
                str | None,
                typer.Option(
                    "--resources",
                    "-r",
                    metavar="FILE",
                    show_default=False,
                    help="An OCI linux.resources JSON file ('-' for stdin); flags override it.",
                ),
            ],
        ),
    ]
    opts = [o for o in RUN_OPTIONS if o.dest in RESOURCE_DESTS]
    for o in opts:
        ann = list[str] | None if o.kind == MULTI else str | None
        # runc spells it --cpu-share; engines that drive runc's update use that name
        names = (*o.flags, "--cpu-share") if o.dest == "cpu_shares" else o.flags
        info = typer.Option(*names, help=o.help, metavar=o.metavar or None, show_default=False)
        params.append(
            inspect.Parameter(
                o.dest, inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[ann, info], default=None
            )
        )

    def update(ref: str, resources_file: str | None = None, **values: Any) -> None:
        _exit(guarded(update_command, ref, values, resources_file))

    update.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    update.__annotations__ = {p.name: p.annotation for p in params}
    update.__doc__ = (
        "Change a running container's resource limits: pycontain update [OPTIONS] CONTAINER\n\n"
        "Only the limits given change; the others keep their values. The flags are run's, with the "
        "same units (e.g. --memory 512m, --cpus 1.5, --pids-limit 100)."
    )
    app.command("update")(update)


_register_update()
