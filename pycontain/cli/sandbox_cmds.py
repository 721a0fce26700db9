"""``pycontain sandbox run``: one command in a throw-away sandbox, with limits, a timeout and a result.

    pycontain sandbox run [--memory M] [--cpus N] [--pids-limit N] [--timeout S] [--max-output N] [--json]
                          IMAGE -- CMD...

Prints the command's stdout and stderr as they were (capped at --max-output bytes each), or with --json
one JSON object: ``returncode, stdout, stderr, encoding, truncated, wall_time, cpu_time, peak_memory,
oom_killed, timed_out, pids_limited``. The outputs in JSON are UTF-8 with U+FFFD for bytes that are not
(``"encoding": "utf-8"``), or base64 with --base64 (``"encoding": "base64"``) for binary output.

Exit status: the command's own (128+N if signal N killed it); 124 when it timed out (like timeout(1));
137 when the OOM killer ended it; 125 when pycontain itself failed, 126/127 when the command cannot be
executed / is not found. Registered on the typer ``app`` when imported.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from .app import app
from .base import GLOBALS, command

EXIT_TIMEOUT = 124
EXIT_OOM = 137

sandbox_app = typer.Typer(
    help="Run untrusted commands in throw-away, limited sandboxes.", no_args_is_help=True
)
app.add_typer(sandbox_app, name="sandbox")


def exit_status(result) -> int:
    """The CLI's exit status for a result: 124 on timeout, 137 on OOM, else the command's."""
    if result.timed_out:
        return EXIT_TIMEOUT
    if result.oom_killed:
        return EXIT_OOM
    return result.returncode


@command(sandbox_app, "run", context_settings={"allow_interspersed_args": False})
def run(
    image: Annotated[
        str, typer.Argument(help="A root filesystem directory, or 'default' for the built-in one.")
    ],
    command: Annotated[list[str], typer.Argument(help="The command and its arguments (after --).")],
    memory: Annotated[
        str | None, typer.Option("-m", "--memory", help="Memory limit, no swap (e.g. 64m).")
    ] = None,
    cpus: Annotated[str | None, typer.Option("--cpus", help="Number of CPUs (e.g. 0.5).")] = None,
    pids_limit: Annotated[
        int | None, typer.Option("--pids-limit", help="Maximum number of processes.")
    ] = None,
    disk: Annotated[
        str | None, typer.Option("--disk", help="Size of the writable /tmp (makes / read-only).")
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", help="Seconds before every process is killed (exit status 124)."),
    ] = None,
    max_output: Annotated[
        int, typer.Option("--max-output", help="Bytes kept of stdout and of stderr each.")
    ] = 1 << 20,
    env: Annotated[list[str] | None, typer.Option("-e", "--env", help="KEY=VALUE.")] = None,
    workdir: Annotated[str, typer.Option("-w", "--workdir", help="Working directory.")] = "/",
    user: Annotated[str | None, typer.Option("-u", "--user", help="UID[:GID] or a name.")] = None,
    network: Annotated[str, typer.Option("--network", help="none (only loopback) or host.")] = "none",
    read_only: Annotated[
        bool, typer.Option("--read-only", help="Read-only root (a 64m tmpfs on /tmp).")
    ] = False,
    interactive: Annotated[
        bool, typer.Option("-i", "--interactive", help="Feed our stdin to the command.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")] = False,
    as_base64: Annotated[bool, typer.Option("--base64", help="With --json: outputs in base64.")] = False,
) -> int:
    """Run CMD in a new sandbox on IMAGE, print its output (or the JSON result), remove the sandbox.

    Example: pycontain sandbox run -m 64m --timeout 5 --json default -- sh -c 'echo hi'

    Exit status: the command's; 124 on timeout, 137 when the OOM killer ended it, 125 when pycontain fails.
    """
    from ..config_check import parse_env
    from ..errors import InvalidArgument
    from ..sandbox import Sandbox

    args = command[1:] if command[:1] == ["--"] else list(command)
    if not args:
        raise InvalidArgument("no command given: pycontain sandbox run IMAGE -- CMD...")
    data = sys.stdin.buffer.read() if interactive else None
    with Sandbox(
        image,
        memory=memory,
        cpus=cpus,
        pids=pids_limit,
        disk=disk,
        network=network,
        env=parse_env(env or []),
        workdir=workdir,
        read_only=read_only,
        user=user,
        root=GLOBALS.root,
    ) as sb:
        result = sb.run(args, input=data, timeout=timeout, max_output=max_output)
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict("base64" if as_base64 else "utf-8")) + "\n")
    else:
        sys.stdout.buffer.write(result.stdout)
        sys.stdout.buffer.flush()
        sys.stderr.buffer.write(result.stderr)
        sys.stderr.buffer.flush()
        if result.truncated:
            sys.stderr.write(f"pycontain: output truncated at {max_output} bytes\n")
        if result.timed_out:
            sys.stderr.write(
                f"pycontain: timed out after {timeout:g} s: every process of the sandbox was killed\n"
            )
        elif result.oom_killed:
            sys.stderr.write(f"pycontain: the OOM killer ended a process (memory limit {memory})\n")
        elif result.pids_limited:
            sys.stderr.write(f"pycontain: the process limit ({pids_limit}) refused some forks\n")
    sys.stdout.flush()
    return exit_status(result)
