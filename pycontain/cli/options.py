"""``pycontain run``: its options declared once as data, and its body.

Two parsers read this table: a small one for the hot path (``pycontain run`` without ``--help``
never imports typer/click, which cost more than a whole container start), and the typer command
``cli.run_cmds`` builds from it for help, completion and everything else. Neither can drift from the
other, and both end in ``run``, which hands the values to ``pycontain.api.run_docker``.
"""

from __future__ import annotations

import gc
import sys

from ..errors import InvalidArgument
from .base import FLAG, MULTI, VALUE, Arg, Command, Opt, container, store

RUN_OPTIONS: tuple[Opt, ...] = (
    Opt(("--name",), "name", VALUE, "Name the container (unique).", "NAME"),
    Opt(("-d", "--detach"), "detach", FLAG, "Run in the background; output goes to the container's log."),
    Opt(("-i", "--interactive"), "interactive", FLAG, "Keep stdin open and connected to the container."),
    Opt(
        ("-t", "--tty"), "tty", FLAG, "Give the container a pseudo-terminal (with the caller's window size)."
    ),
    Opt(("--rm",), "rm", FLAG, "Remove the container when it exits."),
    Opt(
        ("--restart",),
        "restart",
        VALUE,
        "Restart policy of a detached container: no, on-failure[:N], always or unless-stopped.",
        "POLICY",
    ),
    Opt(("--stop-signal",), "stop_signal", VALUE, "Signal 'stop' sends first (default TERM).", "SIGNAL"),
    Opt(
        ("--entrypoint",),
        "entrypoint",
        VALUE,
        "Run this program instead of the image's entrypoint (the command becomes its arguments; '' for none).",
        "PROGRAM",
    ),
    Opt(
        ("--health-cmd",),
        "health_cmd",
        VALUE,
        "A command run in the container (by sh) to tell its health.",
        "CMD",
    ),
    Opt(
        ("--health-interval",),
        "health_interval",
        VALUE,
        "Time between health checks (default 30s).",
        "DURATION",
    ),
    Opt(
        ("--health-timeout",),
        "health_timeout",
        VALUE,
        "A check running longer fails (default 30s).",
        "DURATION",
    ),
    Opt(
        ("--health-retries",),
        "health_retries",
        VALUE,
        "Failures in a row that make it unhealthy (default 3).",
        "N",
    ),
    Opt(
        ("--health-start-period",),
        "health_start_period",
        VALUE,
        "Time after start during which failures do not count (default 0s).",
        "DURATION",
    ),
    Opt(("--no-healthcheck",), "no_healthcheck", FLAG, "Run no health check (not even the image's)."),
    Opt(
        ("--log-opt",),
        "log_opt",
        MULTI,
        "Rotate a detached container's log: max-size=SIZE (default 20m, -1: never), max-file=N (default 5).",
        "KEY=VALUE",
    ),
    Opt(("-l", "--label"), "label", MULTI, "Set a label (KEY=VALUE) on the container.", "KEY=VALUE"),
    Opt(
        ("--cidfile",),
        "cidfile",
        VALUE,
        "Write the container's id to this file (which must not exist).",
        "FILE",
    ),
    Opt(("--init",), "init", FLAG, "Run a minimal PID 1 that forwards signals and reaps zombies."),
    Opt(
        ("-e", "--env"),
        "env",
        MULTI,
        "Set an environment variable (KEY=VALUE, or KEY to copy ours).",
        "KEY=VALUE",
    ),
    Opt(
        ("--env-file",),
        "env_file",
        MULTI,
        "Read environment variables from a file (KEY=VALUE lines).",
        "FILE",
    ),
    Opt(("-w", "--workdir"), "workdir", VALUE, "Working directory inside the container (default /).", "DIR"),
    Opt(
        ("-u", "--user"),
        "user",
        VALUE,
        "User to run as: UID[:GID] or names from the container's passwd.",
        "UID[:GID]",
    ),
    Opt(("-h", "--hostname"), "hostname", VALUE, "Hostname (default: the short container id).", "NAME"),
    Opt(
        ("-v", "--volume"),
        "volume",
        MULTI,
        "Bind-mount a host path or a named volume: HOST:CONTAINER[:ro] or NAME:CONTAINER[:ro].",
        "SRC:CTR[:ro]",
    ),
    Opt(
        ("--mount",),
        "mount",
        MULTI,
        "A mount: type=bind|volume|tmpfs,source=SRC,target=PATH[,readonly][,tmpfs-size=64m].",
        "SPEC",
    ),
    Opt(("--tmpfs",), "tmpfs", MULTI, "Mount a tmpfs: PATH[:size=64m,mode=755].", "PATH[:OPTS]"),
    Opt(("--read-only",), "read_only", FLAG, "Mount the container's root filesystem read-only."),
    Opt(
        ("--network", "--net"),
        "network",
        VALUE,
        "Network: bridge (the default: eth0 with an address on the "
        "pycontain0 bridge, a default route, NAT out), none (only lo), host (the host's own), container:NAME|ID "
        "(another container's), or the name of a network made with 'pycontain network create'. Rootless "
        "containers (pycontain run by a user other than root) get none by default, and none or host only.",
        "NETWORK",
    ),
    Opt(
        ("-p", "--publish"),
        "publish",
        MULTI,
        "Publish a container port on the host (bridge networks, the "
        "default): HOSTPORT:CTRPORT or HOSTIP:HOSTPORT:CTRPORT, then /tcp (default) or /udp.",
        "PORTS",
    ),
    Opt(
        ("-P", "--publish-all"),
        "publish_all",
        FLAG,
        "Publish every port the image exposes on a free host port (see 'pycontain port').",
    ),
    Opt(("--add-host",), "add_host", MULTI, "Add a line to /etc/hosts: NAME:IP.", "NAME:IP"),
    Opt(("--dns",), "dns", MULTI, "A nameserver for /etc/resolv.conf (replaces the host's).", "IP"),
    Opt(("--dns-search",), "dns_search", MULTI, "A search domain for /etc/resolv.conf.", "DOMAIN"),
    # Security: docker's flags.
    Opt(("--cap-add",), "cap_add", MULTI, "Add a Linux capability (e.g. NET_ADMIN, or ALL).", "CAP"),
    Opt(("--cap-drop",), "cap_drop", MULTI, "Drop a Linux capability (e.g. NET_RAW, or ALL).", "CAP"),
    Opt(
        ("--privileged",),
        "privileged",
        FLAG,
        "Give the container every capability, no seccomp filter and no masked paths.",
    ),
    Opt(
        ("--security-opt",),
        "security_opt",
        MULTI,
        "no-new-privileges[=false], seccomp=unconfined or seccomp=PROFILE.json.",
        "OPT",
    ),
    Opt(
        ("--userns",),
        "userns",
        VALUE,
        "User namespace: host (the default), remap (root in the container is "
        "the 'pycontain' range of /etc/subuid and /etc/subgid) or CONTAINER:HOST:SIZE (e.g. 0:100000:65536).",
        "MODE",
    ),
    Opt(
        ("--ulimit",),
        "ulimit",
        MULTI,
        "Resource limit, e.g. nofile=1024:2048 or nproc=64.",
        "NAME=SOFT[:HARD]",
    ),
    # Resources: docker's names and units.
    Opt(("-m", "--memory"), "memory", VALUE, "Memory limit (e.g. 512m, 1g).", "SIZE"),
    Opt(("--memory-swap",), "memory_swap", VALUE, "Memory plus swap limit; -1 for unlimited swap.", "SIZE"),
    Opt(("--memory-reservation",), "memory_reservation", VALUE, "Soft memory limit.", "SIZE"),
    Opt(("--cpus",), "cpus", VALUE, "Number of CPUs (e.g. 1.5).", "N"),
    Opt(("-c", "--cpu-shares"), "cpu_shares", VALUE, "CPU shares (relative weight, default 1024).", "N"),
    Opt(("--cpu-quota",), "cpu_quota", VALUE, "CPU CFS quota in microseconds per period.", "US"),
    Opt(("--cpu-period",), "cpu_period", VALUE, "CPU CFS period in microseconds.", "US"),
    Opt(("--cpuset-cpus",), "cpuset_cpus", VALUE, "CPUs the container may use (0-3, 0,1).", "LIST"),
    Opt(("--cpuset-mems",), "cpuset_mems", VALUE, "Memory nodes the container may use.", "LIST"),
    Opt(("--pids-limit",), "pids_limit", VALUE, "Maximum number of processes (-1 for unlimited).", "N"),
    Opt(("--blkio-weight",), "blkio_weight", VALUE, "Block IO weight (10-1000).", "N"),
    Opt(
        ("--device-read-bps",),
        "device_read_bps",
        MULTI,
        "Limit read rate from a device (PATH:RATE).",
        "PATH:RATE",
    ),
    Opt(
        ("--device-write-bps",),
        "device_write_bps",
        MULTI,
        "Limit write rate to a device (PATH:RATE).",
        "PATH:RATE",
    ),
    Opt(
        ("--device-read-iops",),
        "device_read_iops",
        MULTI,
        "Limit read IO/s from a device (PATH:N).",
        "PATH:N",
    ),
    Opt(
        ("--device-write-iops",),
        "device_write_iops",
        MULTI,
        "Limit write IO/s to a device (PATH:N).",
        "PATH:N",
    ),
    Opt(
        ("--cgroup-parent",),
        "cgroup_parent",
        VALUE,
        "Parent cgroup (default: the one pycontain runs in).",
        "PATH",
    ),
    Opt(("--cgroup-manager",), "cgroup_manager", VALUE, "Cgroup driver: auto, v2 or v1.", "auto|v2|v1"),
)

RESOURCE_DESTS = (
    "memory",
    "memory_swap",
    "memory_reservation",
    "cpus",
    "cpu_shares",
    "cpu_quota",
    "cpu_period",
    "cpuset_cpus",
    "cpuset_mems",
    "pids_limit",
    "blkio_weight",
    "device_read_bps",
    "device_write_bps",
    "device_read_iops",
    "device_write_iops",
)


SECURITY_DESTS = ("cap_add", "cap_drop", "privileged", "security_opt", "ulimit")
# --health-* to api.healthcheck's parameters
HEALTH_DESTS = {
    "health_cmd": "cmd",
    "health_interval": "interval",
    "health_timeout": "timeout",
    "health_retries": "retries",
    "health_start_period": "start_period",
    "no_healthcheck": "none",
}


def run(values: dict, rootfs: str, args: list[str]) -> int:
    """``pycontain run``'s body, for both parsers: the flags to ``api.run_docker``; a detached container's id."""
    if not values["detach"]:
        # Until the container runs (_collect_again), no cyclic garbage collection: the imports, the config and
        # the creation allocate thousands of objects that live until we exit, and the collector's passes over
        # them (~2 ms: nine here, one in the forked child, where each page it touches is copied) find nothing.
        # A detached run's monitor is forked from this process and lives on: it keeps the collector.
        gc.disable()
    from .. import api, trace
    from .base import GLOBALS

    trace.step("run imported")
    done = api.run_docker(
        rootfs,
        args,
        GLOBALS.root,
        rootless=GLOBALS.rootless,
        cidfile=values["cidfile"],
        limits={k: values[k] for k in RESOURCE_DESTS},
        security={k: values[k] for k in SECURITY_DESTS},
        health={param: values[dest] for dest, param in HEALTH_DESTS.items()},
        network=values["network"],
        name=values["name"],
        env=values["env"],
        env_files=values["env_file"],
        workdir=values["workdir"],
        user=values["user"],
        hostname=values["hostname"],
        volumes=values["volume"],
        tmpfs=values["tmpfs"],
        read_only=values["read_only"],
        tty=values["tty"],
        interactive=values["interactive"],
        init=values["init"],
        auto_remove=values["rm"],
        detach=values["detach"],
        cgroup_parent=values["cgroup_parent"],
        cgroup_manager=values["cgroup_manager"] or "auto",
        publish=values["publish"],
        userns=values["userns"],
        entrypoint=values["entrypoint"],
        restart=values["restart"] or "no",
        stop_signal=values["stop_signal"],
        labels=values["label"],
        publish_all=values["publish_all"],
        extra_hosts=values["add_host"],
        dns=values["dns"],
        dns_search=values["dns_search"],
        mount=values["mount"],
        log_opts=values["log_opt"],
        on_created=None if values["detach"] else _collect_again,
    )
    if isinstance(done, int):
        return done
    sys.stdout.write(done.id + "\n")
    return 0


def _collect_again(_container: object) -> None:
    """The container runs: the collector back on for the rest of a run that may last, the objects of the
    start-up moved out of its sight (``gc.freeze``: they live until we exit)."""
    gc.freeze()
    gc.enable()


def run_args(argv: list[str]) -> int:
    """The fast path: ``argv`` after ``run``, parsed here, then ``run``."""
    return run(*parse_run_args(argv))


def defaults() -> dict:
    return {o.dest: (False if o.kind == FLAG else [] if o.kind == MULTI else o.default) for o in RUN_OPTIONS}


def parse_run_args(argv: list[str]) -> tuple[dict, str, list[str]]:
    """docker's syntax: ``[OPTIONS] ROOTFS [--] CMD...``; options stop at the root filesystem."""
    by_flag = {f: o for o in RUN_OPTIONS for f in o.flags}
    values = defaults()
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        if arg.startswith("--"):
            name, eq, inline = arg.partition("=")
            opt = by_flag.get(name)
            if opt is None:
                raise InvalidArgument(
                    f"unknown flag {name!r} for 'pycontain run' (see 'pycontain run --help')"
                )
            if opt.kind == FLAG:
                if eq:
                    raise InvalidArgument(f"flag {name} takes no value")
                values[opt.dest] = True
                i += 1
                continue
            if not eq:
                i += 1
                if i >= len(argv):
                    raise InvalidArgument(f"flag {name} needs a value ({opt.metavar})")
                inline = argv[i]
            store(values, opt, inline)
            i += 1
            continue
        # One or more short flags: -it, -dit, -e K=V, -eK=V, -m512m.
        j = 1
        while j < len(arg):
            opt = by_flag.get("-" + arg[j])
            if opt is None:
                raise InvalidArgument(
                    f"unknown flag '-{arg[j]}' for 'pycontain run' (see 'pycontain run --help')"
                )
            if opt.kind == FLAG:
                values[opt.dest] = True
                j += 1
                continue
            rest = arg[j + 1 :]
            if not rest:
                i += 1
                if i >= len(argv):
                    raise InvalidArgument(f"flag -{arg[j]} needs a value ({opt.metavar})")
                rest = argv[i]
            store(values, opt, rest)
            break
        i += 1
    if i >= len(argv):
        raise InvalidArgument(
            "no root filesystem given: 'pycontain run [OPTIONS] ROOTFS [--] CMD...' "
            "(ROOTFS is a directory, or 'default' for the built-in one)"
        )
    rootfs = argv[i]
    command = argv[i + 1 :]
    if command[:1] == ["--"]:
        command = command[1:]
    return values, rootfs, command


# -- update: a running container's limits, with run's resource flags -----------------------------
def update_body(v: dict) -> int:
    from ..cgroups.resources import Resources

    change = Resources.for_update({k: v[k] for k in RESOURCE_DESTS}, v["resources"])
    container(v["ref"]).update(change)
    print(v["ref"])
    return 0


def _runc_spelling(o: Opt) -> Opt:
    """run's resource option for update, with runc's spelling added where it differs (--cpu-share): engines
    that drive runc's update use it."""
    if o.dest != "cpu_shares":
        return o
    return Opt((*o.flags, "--cpu-share"), o.dest, o.kind, o.help, o.metavar, o.default)


UPDATE = Command(
    "update",
    update_body,
    "Change a running container's resource limits: pycontain update [OPTIONS] CONTAINER\n\n"
    "Only the limits given change; the others keep their values. The flags are run's, with the "
    "same units.\n\nExample: pycontain update --memory 512m --cpus 1.5 --pids-limit 100 web",
    (Arg("ref", "CONTAINER", "Container name or id."),),
    (
        Opt(
            ("--resources", "-r"),
            "resources",
            VALUE,
            "An OCI linux.resources JSON file ('-' for stdin); flags override it.",
            "FILE",
        ),
        *(_runc_spelling(o) for o in RUN_OPTIONS if o.dest in RESOURCE_DESTS),
    ),
)

# The fast commands declared here (cli.FAST_COMMANDS), as cli.commands' and cli.ocirun's tables.
COMMANDS: dict[str, Command] = {UPDATE.name: UPDATE}
