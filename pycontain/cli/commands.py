"""The commands users and engines call again and again (``kill``, ``ps``, ``inspect``, ``pause``,
``unpause``, ``resume``, ``events``, ``features``), declared once as data (``cli.base.Command``):
``cli.main`` runs them without typer, ``cli.commandline`` registers the same declarations on typer's app.
(``update``, whose flags are run's, is declared beside them in ``cli.options``: the others load no run table;
``exec``, the most frequent, alone in ``cli.execute``.)
"""

from __future__ import annotations

import time

from .. import fastjson  # json without the json package (re, enum: ~5 ms)
from ..errors import InvalidArgument
from .base import (
    FLAG,
    GLOBALS,
    MULTI,
    OPTIONAL,
    SOME,
    VALUE,
    Arg,
    Command,
    Opt,
    container,
    for_each,
    printable,
    render_table,
)

# typing.TYPE_CHECKING without importing typing (4 ms here); type checkers know the idiom.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..state import ContainerState


# -- the bodies: parse nothing, call the library, print -------------------------------------------
def _ago(ts: float | None) -> str:
    if not ts:
        return ""
    s = int(time.time() - ts)
    for unit, n in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if s >= n:
            return f"{s // n} {unit} ago"
    return f"{s} seconds ago"


def _short_cmd(args: list[str], width: int = 30) -> str:
    """The command as docker's ps shows it: cut, then quoted with its controls escaped (an image's)."""
    cmd = " ".join(args)
    return '"' + printable(cmd if len(cmd) <= width else cmd[: width - 1] + "…") + '"'


def _status_text(st: ContainerState, status: str) -> str:
    if status == "exited":
        code = st.exit_code
        # Its monitor is still there and 'stop' did not end it: the restart policy's back-off is running.
        policy = st.shown.restart
        restarting = policy != "no" and st.monitored() and not st.manual_stop
        word = "Restarting" if restarting else "Exited"
        return f"{word} ({code if code is not None else '?'}) {_ago(st.finished)}".rstrip()
    if status == "running":
        health = st.health.status if st.health else ""
        shown = {"starting": " (health: starting)", "healthy": " (healthy)", "unhealthy": " (unhealthy)"}
        return f"Up {_ago(st.started).replace(' ago', '')}{shown.get(health, '')}"
    if status == "paused":
        return f"Up {_ago(st.started).replace(' ago', '')} (Paused)"
    return status.capitalize()


def ps_body(v: dict) -> int:
    given = v["format"]
    # docker's -f is --filter, runc's (with an ID) and --format take templates: KEY=VALUE tells them apart.
    filters = v["filter"] + [f for f in given if "=" in f and "{{" not in f]
    templates = [f for f in given if not ("=" in f and "{{" not in f)]
    template = templates[-1] if templates else "table"
    if v["container"] is not None:
        return _container_processes(v["container"], v["json"] or template == "json")
    from .. import listing

    wanted = listing.parse_filters(filters)
    if template not in ("table", "json"):
        from .template import check

        check(template)
    rows = listing.containers(GLOBALS.root, v["all"], wanted)
    if v["quiet"]:
        for st, _ in rows:
            print(st.id[:12])
        return 0
    if v["json"] or template == "json":
        doc = [
            {
                "Id": st.id,
                "Name": st.name,
                "Image": st.shown.image,
                "Command": st.shown.args,
                "Created": st.created,
                "Status": s,
                "Pid": st.pid if s in ("running", "paused") else 0,
                "ExitCode": st.exit_code,
                "Labels": st.shown.labels,
            }
            for st, s in rows
        ]
        print(fastjson.dumps_indented(doc))
        return 0
    if template != "table":
        from .template import render_all

        for line in render_all(template, [_ps_fields(st, s) for st, s in rows]):
            print(line)
        return 0
    header = ("CONTAINER ID", "NAME", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "PID")
    cells: list[tuple[str, ...]] = [
        (
            st.id[:12],
            st.name,
            st.shown.image,
            _short_cmd(st.shown.args),
            _ago(st.created),
            _status_text(st, s),
            _ports(st),
            str(st.pid) if s in ("running", "paused") else "",
        )
        for st, s in rows
    ]
    print(render_table(header, cells))
    return 0


def _ports(st: ContainerState) -> str:
    if not st.shown.publish:
        return ""
    from ..network import published

    return ", ".join(str(p) for p in published(st.net_info))


def _ps_fields(st: ContainerState, status: str) -> dict:
    """A row as docker's ps templates name its fields."""
    cfg = st.shown
    labels = cfg.labels
    return {
        "ID": st.id[:12],
        "Names": st.name,
        "Image": printable(cfg.image),  # (a bundle's root path, an image's labels: not ours to trust)
        "Command": _short_cmd(cfg.args),
        "CreatedAt": time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(st.created)),
        "RunningFor": _ago(st.created),
        "Status": _status_text(st, status),
        "State": status,
        "Ports": _ports(st),
        "Labels": printable(",".join(f"{k}={v}" for k, v in labels.items())),
    }


def _container_processes(ref: str, as_json: bool) -> int:
    from ..listing import processes

    found = processes(container(ref))
    if as_json:
        print(fastjson.dumps([pid for pid, _ in found]))
        return 0
    print(f"{'PID':>8}  CMD")
    for pid, cmd in found:
        if cmd is not None:
            print(f"{pid:>8}  {printable(cmd)}")  # (as the container's processes named themselves)
    return 0


def inspect_body(v: dict) -> int:
    details = [container(r).inspect() for r in v["refs"]]
    if v["format"]:
        from .template import render_all

        for line in render_all(v["format"], details):
            print(line)
        return 0
    print(fastjson.dumps_indented(details))
    return 0


def kill_body(v: dict) -> int:
    from ..errors import PycontainError
    from ..interrupts import parse_signal

    refs, sig = v["refs"], v["signal"]
    if sig is None and len(refs) == 2:
        try:
            parse_signal(refs[1])
            refs, sig = refs[:1], refs[1]  # runc's form: the second argument is a signal, not a container
        except PycontainError:
            # "kill ID 0" or "kill ID SIGFOO": a bad signal in runc's form, unless a container has that name.
            if _signal_like(refs[1]) and not _exists(refs[1]):
                raise
    return for_each(refs, lambda c: c.kill(sig or "KILL", all_processes=v["all"]), quiet=True)


def _signal_like(arg: str) -> bool:
    name = arg.upper()
    return arg.lstrip("-").isdigit() or (
        name.startswith("SIG") and name[3:].replace("+", "").replace("-", "").isalnum()
    )


def _exists(ref: str) -> bool:
    from ..errors import PycontainError

    try:
        container(ref)
        return True
    except PycontainError:
        return False


def pause_body(v: dict) -> int:
    return for_each(v["refs"], lambda c: c.pause())


def unpause_body(v: dict) -> int:
    return for_each(v["refs"], lambda c: c.unpause())


def resume_body(v: dict) -> int:
    container(v["id"]).unpause()
    return 0


def features_body(_v: dict) -> int:
    from .. import oci

    print(fastjson.dumps_indented(oci.features()))
    return 0


def events_body(v: dict) -> int:
    try:
        interval = float(v["interval"])
    except ValueError:
        raise InvalidArgument(f"--interval {v['interval']!r}: not a number of seconds") from None
    c = container(v["id"])
    while True:
        st = c.stats()
        print(fastjson.dumps({"type": "stats", "id": c.name, "data": st.to_dict()}), flush=True)
        if v["stats"] or not c.running():
            return 0
        time.sleep(interval)


# -- the table ------------------------------------------------------------------------------------
_REFS = Arg("refs", "CONTAINER", "Container names or ids.", SOME)
_ID = Arg("id", "ID", "The container's id or name.")

COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        Command(
            "ps",
            ps_body,
            "List containers (running ones unless -a); with an ID, the processes in that container.\n\n"
            "Examples: pycontain ps -a --filter status=exited; pycontain ps --format '{{.Names}} {{.Status}}'",
            (Arg("container", "[ID]", "runc's form: list this container's processes.", OPTIONAL),),
            (
                Opt(("-a", "--all"), "all", FLAG, "Show stopped containers too."),
                Opt(("-q", "--quiet"), "quiet", FLAG, "Only print ids."),
                Opt(("--json",), "json", FLAG, "Print JSON (one array)."),
                Opt(
                    ("--filter",),
                    "filter",
                    MULTI,
                    "name=REGEX, id=PREFIX, status=STATUS, label=KEY[=VALUE] (repeatable).",
                    "FILTER",
                ),
                Opt(
                    ("--format", "-f"),
                    "format",
                    MULTI,
                    "A Go template ({{.Names}} {{.ID}} {{.Status}} {{.Ports}} {{json .}}, 'table ...'); "
                    "-f KEY=VALUE is a --filter, as docker reads it; with an ID (runc's form): table or json.",
                    "FORMAT",
                ),
            ),
        ),
        Command(
            "inspect",
            inspect_body,
            "Show containers' details as JSON (or each through a --format template).",
            (_REFS,),
            (
                Opt(
                    ("-f", "--format"),
                    "format",
                    VALUE,
                    "A Go template per container, e.g. '{{.State.ExitCode}}'.",
                    "TEMPLATE",
                ),
            ),
        ),
        Command(
            "kill",
            kill_body,
            "Send a signal to containers' main process: docker's 'kill [-s SIG] ID...' or runc's 'kill ID SIG'.\n\n"
            "Examples: pycontain kill -s HUP web; pycontain kill web TERM",
            (Arg("refs", "ID... | ID SIGNAL", "Containers (and, in runc's form, a signal).", SOME),),
            (
                Opt(("-s", "--signal"), "signal", VALUE, "Signal name or number (default KILL).", "SIGNAL"),
                Opt(("--all", "-a"), "all", FLAG, "Signal every process of the container."),
            ),
        ),
        Command(
            "pause", pause_body, "Suspend every process of running containers (cgroup freezer).", (_REFS,)
        ),
        Command("unpause", unpause_body, "Resume the processes of paused containers.", (_REFS,)),
        Command("resume", resume_body, "Resume a paused container (runc's name for unpause).", (_ID,)),
        Command(
            "features", features_body, "What this runtime supports (the runtime spec's features document)."
        ),
        Command(
            "events",
            events_body,
            "Stream stats events for a container as JSON lines (runc events).",
            (_ID,),
            (
                Opt(("--stats",), "stats", FLAG, "Print one stats event and exit."),
                Opt(("--interval",), "interval", VALUE, "Seconds between stats events.", "SECONDS", "5"),
            ),
        ),
    )
}
