"""Starting processes in containers: create's sequence, exec's sequence, and the channel between.

- ``create``: a container's first process, ``start_container`` and the child's steps (``CREATE_STEPS``);
- ``exec``: a new process in a running container (``exec_in``);
- ``finish``: the last steps of both, privileges drop and execve (``finish_and_exec``);
- ``fork``: what both share: forking (into a pid namespace), stdio, the terminal's channel, the cgroup,
  waiting until the child has executed (``Stdio``, ``Child``, ``wait_status``, ``join_cgroup``).

Parent and child talk over one SOCK_SEQPACKET pair of named messages (``pycontain.channel``: GO,
READY, PID, ERROR, and the end of the channel when the command is executed). Privileges drop in one
place, ``finish_and_exec``, for every process: user and groups, umask, working directory, capabilities,
rlimits, no_new_privs, and the seccomp filter last, just before execve.

create / run (``start_container``)::

    pycontain ──unshare(CLONE_NEWPID), fork, setns back──▶ child = PID 1 of a new pid namespace
      │                                                     joins its v1 cgroups (tasks, "0")
      │                                                     setsid (or, with -t, later on its pty)
      │                                                     stdio: relayed pipes / log / pty
      │                                                     join namespaces given by path (type-checked)
      │                                                     unshare mnt uts ipc net [time]; hostname; lo
      ├─ moves the child into its v2 cgroup                 build the root filesystem, pivot_root,
      │                                                     masked and read-only paths
      ├─ GO ───────────────────────────────────────────────▶ unshare cgroup namespace
      │                                                     take the pty (master ──▶ pycontain)
      │                                                     enter the user namespace (become its root)
      │◀──────────────────────────────────────────── READY  (OCI create: blocks on the exec FIFO
      │                                                       until 'start' opens it)
      │                                                     finish_and_exec: privileges drop; execve of
      │◀──────────────────────────────── end of channel      the command, or with --init of
      │                                                     pycontain-init from its sealed copy, which
      ▼ waits for PID 1                                     forks the command (see pycontain.init)

exec (``exec_in``), joining before being seen::

    pycontain ──fork──▶ joiner (outside the container's pid namespace: nothing inside can see it)
      │                   not dumpable; stdio; joins the cgroup
      │                   setns: [user, if it owns the others] pid (only its children's) ipc uts net
      │                          cgroup mnt (root and cwd now the container's) time [user, else]
      │                   opens the pty in the container's devpts (master ──▶ pycontain)
      │                   finish_and_exec: create's privileges drop, host fds closed, then
      │                   execve of pycontain-init --join from its sealed memfd
      │                     └─clone(CLONE_PARENT)─▶ the command's process, pycontain's child,
      │◀─────────────── PID <host pid>                first thing the container can see: root, cwd
      │  (joiner exits; reaped)                        and executable are the container's or the
      │                                                sealed copy; setsid (+ TIOCSCTTY with -t);
      │◀─────────────── end of channel                 execve of the command
      ▼ waits for the command

Why a sealed memfd and not the interpreter: runc re-executes a sealed copy of its own binary so that a
container that opens /proc/<pid>/exe of a runtime process cannot reach (and overwrite) the host's
binary (CVE-2019-5736). pycontain's own executable is the host's Python interpreter, tens of
megabytes with its library, so it is never what the container sees: every process the container can
observe has either executed the command already or is the small static helper, copied into a memfd
sealed against writes. The ERROR and PID messages of the helper use the same channel, as fd 3.
"""

from __future__ import annotations

from .. import lazy_exports

# Re-exported lazily: ``run`` needs create's half, ``exec`` its own; each module loaded costs start-up time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from .create import start_container
    from .exec import exec_in
    from .fork import FORWARDED_SIGNALS, Child, Stdio, join_cgroup, moves_itself, wait_status

_EXPORTS = {
    "Child": "fork",
    "FORWARDED_SIGNALS": "fork",
    "Stdio": "fork",
    "exec_in": "exec",
    "join_cgroup": "fork",
    "moves_itself": "fork",
    "start_container": "create",
    "wait_status": "fork",
}
__all__ = [
    "FORWARDED_SIGNALS",
    "Child",
    "Stdio",
    "exec_in",
    "join_cgroup",
    "moves_itself",
    "start_container",
    "wait_status",
]
__getattr__ = lazy_exports(__name__, _EXPORTS)
