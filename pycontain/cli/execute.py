"""``exec``, declared alone (``cli.base.Command``): the command engines and probes call most often, which then
loads no other command's table (``cli.commands``': ~0.6M instructions, ~0.3 ms). ``cli.main`` runs it without
typer, ``cli.commandline`` registers the same declaration on typer's app.
"""

from __future__ import annotations

from .base import ANY, FLAG, GLOBALS, MULTI, OWN_PROCESS, VALUE, Arg, Command, Opt, preserve_fds_count


def exec_body(v: dict) -> int:
    args = list(v["command"])
    args = args[1:] if args[:1] == ["--"] else args
    if (
        OWN_PROCESS["yes"]
        and not (
            v["tty"] or v["detach"] or v["process"] or v["console_socket"] or v["pid_file"] or GLOBALS.log
        )
        and preserve_fds_count(v["preserve_fds"] or "0") == 0
    ):
        # The common case: pycontain-init takes this process over (pycontain.execjoin). No cyclic
        # garbage collection meanwhile: nothing lives long enough.
        import gc

        gc.disable()
        from ..execjoin import exec_in_place
        from ..state import StateStore

        env = []
        if v["env"]:
            from ..config_check import parse_env

            env = parse_env(v["env"])
        store = StateStore(GLOBALS.root)
        st = store.find(v["ref"])
        exec_in_place(
            st,
            store.dir(st.id),
            args,
            env=env,
            cwd=v["workdir"],
            user=v["user"],
            interactive=v["interactive"],
        )
    from .. import api

    return api.exec_attached(
        v["ref"],
        args,
        GLOBALS.root,
        env=v["env"],
        workdir=v["workdir"],
        user=v["user"],
        tty=v["tty"],
        interactive=v["interactive"],
        detach=v["detach"],
        process_file=v["process"],
        console_socket=v["console_socket"],
        pid_file=v["pid_file"],
        preserve_fds=preserve_fds_count(v["preserve_fds"] or "0"),
    )


EXEC = Command(
    "exec",
    exec_body,
    "Run a command in a running container (its namespaces and cgroup).\n\n"
    "Examples: pycontain exec web -- cat /etc/hostname; pycontain exec -it web sh",
    (
        Arg("ref", "CONTAINER", "Container name or id."),
        Arg("command", "COMMAND", "Command and its arguments (after --).", ANY),
    ),
    (
        Opt(("-i", "--interactive"), "interactive", FLAG, "Keep stdin open."),
        Opt(("-t", "--tty"), "tty", FLAG, "Allocate a pseudo-terminal."),
        Opt(("-d", "--detach"), "detach", FLAG, "Run in the background."),
        Opt(("-e", "--env"), "env", MULTI, "KEY=VALUE.", "KEY=VALUE"),
        Opt(("-w", "--workdir", "--cwd"), "workdir", VALUE, "Working directory.", "DIR"),
        Opt(("-u", "--user"), "user", VALUE, "UID[:GID] or names.", "UID[:GID]"),
        Opt(
            ("--process", "-p"),
            "process",
            VALUE,
            "An OCI process.json describing the process (runc's form).",
            "FILE",
        ),
        Opt(("--pid-file",), "pid_file", VALUE, "Write the process's pid here.", "FILE"),
        Opt(
            ("--console-socket",),
            "console_socket",
            VALUE,
            "Unix socket that receives the pty master.",
            "SOCKET",
        ),
        Opt(
            ("--preserve-fds",),
            "preserve_fds",
            VALUE,
            "Pass descriptors 3 .. 3+N-1 on to the process (runc's form).",
            "N",
            "0",
        ),
    ),
    interspersed=False,
)

# The fast commands declared here (cli.FAST_COMMANDS), as cli.commands' table.
COMMANDS: dict[str, Command] = {EXEC.name: EXEC}
