"""The order of a container's first process's steps, without root and without a fork.

The child's steps (``process.create.CREATE_STEPS``, the last of which hands the privileges drop to
pycontain-init: ``process.finish_in_helper``) and exec's drop (``process.finish_and_exec``) reach
the kernel only through the modules and helpers they name (``libc``, ``os``, ``rootfs``, ``channel``, ``procattr``,
``security_apply``...): the seam. Here those are recorders, the steps run in this process, and the calls
come out in the order the module documents (``pycontain.process``'s docstring and ARCHITECTURE.md, 3.).
"""

from __future__ import annotations

import types

import pytest

from pycontain import channel, libc, process
from pycontain.process import NsPlan, Stdio, create


class Log(list):
    def recorder(self, name: str, result: object = None):
        def record(*args: object, **kw: object) -> object:
            self.append(name)
            return result

        return record


class Standin:
    """A module whose functions named in ``recorded`` are recorders; the rest (constants) are the real ones."""

    def __init__(self, real: types.ModuleType, prefix: str, log: Log, **recorded: object) -> None:
        self._real, self._prefix, self._log, self._recorded = real, prefix, log, recorded

    def __getattr__(self, name: str) -> object:
        if name in self._recorded:
            return self._log.recorder(f"{self._prefix}.{name}", self._recorded[name])
        return getattr(self._real, name)


@pytest.fixture
def log(monkeypatch) -> Log:
    log = Log()
    real_os = create.os
    os_calls = dict(setsid=None, open=100, write=1, close=None, umask=0, chdir=None, getcwd="/", setgroups=None,
                    setgid=None, setuid=None, execve=None, dup2=None, set_inheritable=None)  # fmt: skip
    security = dict(mask_paths=None, before_setuid=None, after_setuid=None, last=None)
    # The steps (process.create) and the privileges drop they end with (process.finish_and_exec): each
    # reaches the kernel through its own module's names.
    for module in (create, process):
        monkeypatch.setattr(module, "os", Standin(real_os, "os", log, **os_calls))
        monkeypatch.setattr(
            module, "security_apply", Standin(module.security_apply, "security", log, **security)
        )
    monkeypatch.setattr(create, "libc", Standin(libc, "libc", log, setns=None, unshare=None,
                                                sethostname=None, setdomainname=None, interface_up=None))  # fmt: skip
    monkeypatch.setattr(create, "rootfs", Standin(create.rootfs, "rootfs", log, build=None))
    monkeypatch.setattr(create, "channel", Standin(channel, "channel", log, recv=(channel.GO, ""), send=None))
    monkeypatch.setattr(create, "procattr", Standin(create.procattr, "procattr", log, apply=None))
    for helper in ("join_cgroup", "setup_stdio", "_take_terminal", "_enter_userns"):
        monkeypatch.setattr(create, helper, log.recorder(helper))
    monkeypatch.setattr(process, "users", Standin(process.users, "users", log,
                                                 resolve=types.SimpleNamespace(uid=1000, gid=1000, groups=[],
                                                                               home="/")))  # fmt: skip
    monkeypatch.setattr(process, "signal", Standin(process.signal, "signal", log, signal=None))
    monkeypatch.setattr(process, "_close_fds", log.recorder("_close_fds"))
    monkeypatch.setattr(process, "_find_executable", log.recorder("_find_executable", "/bin/true"))
    return log


def first_process(
    namespaces: dict[str, str], id_mappings: list | None = None, **kw: object
) -> create._FirstProcess:
    config = types.SimpleNamespace(
        namespaces=namespaces, hostname="c1", domainname=None, time_offsets=None, oom_score_adj=None,
        security=None, masked_paths=None, readonly_paths=None, proc_attrs=None, console_size=None,
        args=["true"], cwd="/", user=None, extra_gids=None, umask=None, preserve_fds=0, init=False,
        id_mappings=id_mappings or [],
    )  # fmt: skip
    args = {
        "stdio": Stdio(),
        "join_fds": [],
        "userns_fd": None,
        "init_fd": None,
        "pty_sock": None,
        "start_fifo": None,
    }
    args.update(kw)
    return create._FirstProcess(
        config, NsPlan(namespaces), args["stdio"], {}, PREPARED, 3, args["join_fds"],
        args["userns_fd"], 9, args["pty_sock"], "/state/c1", ["/sys/fs/cgroup/pids/c1/cgroup.procs"],
        args["start_fifo"],
    )  # fmt: skip


# Security settings as prepare() gives them, without a seccomp program (whose memfd would be a real one).
PREPARED = types.SimpleNamespace(helper_options=lambda: ["--nnp"], program=None)


def run_steps(p: create._FirstProcess) -> None:
    for step in create.CREATE_STEPS:
        step(p)


NEW = {"mount": "", "uts": "", "ipc": "", "network": "", "pid": "", "cgroup": ""}
# A first process's last step: the channel onto the helper's fd 3, then the sealed pycontain-init executed
# with --finish in its place, which drops the privileges in C, in finish_and_exec's order
# (tests/security/test_first_process.py checks what the kernel shows of the result).
HAND_OVER = ["os.dup2", "os.execve"]
# finish_and_exec (exec's joiner): the user is resolved in the container, then working directory, the
# bounding set and rlimits while still root, setgroups/setgid/setuid, the capability sets, every other fd
# closed, no_new_privs and seccomp last, execve.
PRIVILEGES_DROP = [
    "users.resolve", "os.chdir", "os.getcwd", "security.before_setuid", "os.setgroups", "os.setgid",
    "os.setuid", "security.after_setuid", "_close_fds", "_find_executable", "signal.signal",
    "signal.signal", "security.last", "os.execve",
]  # fmt: skip


def test_a_docker_style_first_process_runs_its_steps_in_the_documented_order(log):
    run_steps(first_process(NEW))
    assert log == [
        "join_cgroup",  # the hierarchies it joins itself, first: all that follows is charged to it
        "os.setsid",
        "setup_stdio",
        "libc.unshare",  # mount, uts, ipc, net in one call
        "libc.sethostname",
        "libc.interface_up",  # lo
        "rootfs.build",  # ... pivot_root
        "security.mask_paths",  # after pivot_root: the container's /proc
        "channel.recv",  # GO: the parent has moved it into the rest of its cgroups
        "procattr.apply",
        "libc.unshare",  # the cgroup namespace, once in its cgroup
        *HAND_OVER,
    ]


def test_an_oci_create_with_a_terminal_and_a_user_namespace_waits_for_start_inside_them(log):
    pty = types.SimpleNamespace(detach=lambda: 7)
    p = first_process(
        {**NEW, "user": "", "uts": "/proc/1/ns/uts"},
        stdio=Stdio(tty=True),
        join_fds=[(5, libc.CLONE_NEWUTS), (6, 0)],
        userns_fd=6,
        pty_sock=pty,
        start_fifo="/state/c1/exec.fifo",
        id_mappings=[(0, 100000, 65536)],
    )
    run_steps(p)
    assert log == [
        "join_cgroup",
        "setup_stdio",  # no setsid: taking the terminal starts the session
        "libc.setns",  # the namespaces given by path, but the user namespace, which waits
        "os.close",
        "libc.unshare",
        "libc.sethostname",
        "libc.interface_up",
        "os.open",  # the exec FIFO and our fd directory, held before the root changes
        "os.open",
        "rootfs.build",
        "security.mask_paths",
        "channel.recv",
        "procattr.apply",
        "libc.unshare",
        "_take_terminal",
        "_enter_userns",  # a created process is in all its namespaces
        "channel.send",  # READY
        "os.open",  # blocks until 'start' opens the FIFO
        "os.close",
        "os.write",
        "os.close",
        "os.close",
        *HAND_OVER,
    ]


def test_exec_drops_privileges_in_the_documented_order(log):
    process.finish_and_exec(["true"], {}, "/", None, 3, sec=object())
    assert log == PRIVILEGES_DROP


def test_every_step_is_in_the_table_once():
    steps = [s.__name__ for s in create.CREATE_STEPS]
    assert len(set(steps)) == len(steps)
    assert steps[0] == "_join_cgroup" and steps[-1] == "_exec_command"
