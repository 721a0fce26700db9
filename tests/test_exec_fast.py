"""The command line's exec (pycontain.execjoin: pycontain-init --exec joins and drops privileges in C),
asserted on what the kernel shows of the process it starts, against the container's PID 1 and against
the library's path (``Container.exec``, pycontain.process.exec), which the command line no longer takes."""

from __future__ import annotations

import os
import re
import signal
import time

import pytest

from pycontain.container import Container
from tests.conftest import ROOT_REQUIRED, wait_until

pytestmark = ROOT_REQUIRED

# What the kernel says of the process: its credentials, walls, cgroups and namespaces.
REPORT = (
    "grep -E '^(Uid|Gid|Groups|Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp|SigIgn|SigBlk):' /proc/self/status; "
    "cat /proc/self/cgroup; for n in pid ipc uts net cgroup mnt; do readlink /proc/self/ns/$n; done; "
    "echo cwd=$(pwd) home=$HOME umask=$(umask) nofile=$(ulimit -n) ppid=$(cut -d' ' -f4 /proc/$$/stat); "
    "ls /proc/self/fd | tr '\\n' ' '"
)


def _run(pyc, name: str, *opts: str) -> int:
    p = pyc.leaving("run", "-d", "--network", "none", "--name", name, *opts, "default", "--", "sleep", "600")
    assert p.returncode == 0, p.stderr
    return Container.get(name, pyc.root).pid


def _fields(text: str) -> dict[str, str]:
    return dict(line.split(":", 1) for line in text.splitlines() if re.match(r"^[A-Za-z]+:\t", line))


@pytest.mark.parametrize(
    "opts, user",
    [
        ((), None),
        (("--cap-add", "SYS_PTRACE", "--cap-drop", "CHOWN", "--ulimit", "nofile=512:1024"), "1000:1000"),
        (("--security-opt", "no-new-privileges=false", "--init"), None),
        (("--privileged",), "1000"),
        (("--userns", "0:200000:65536"), None),  # a remapped user namespace, joined last
        (("--userns", "0:200000:65536"), "1000:1000"),
        (("--user", "65534", "--workdir", "/tmp"), None),
    ],
)
def test_exec_gets_what_the_library_path_gives(pyc, opts, user):
    """Every field of /proc/PID/status that security sets, the groups, cgroups, namespaces, working
    directory, HOME, umask and rlimits: the same through the command line as through Container.exec."""
    _run(pyc, "ex", *opts)
    args = ("-u", user) if user else ()
    fast = pyc("exec", *args, "ex", "sh", "-c", REPORT)
    assert fast.returncode == 0, fast.stderr
    slow = Container.get("ex", pyc.root).exec_run(["sh", "-c", REPORT], user=user)
    assert slow.exit_code == 0, slow.stderr
    assert fast.stdout == slow.stdout.decode()


def test_exec_into_an_oci_container_gets_its_process_groups_umask_and_rlimits(pyc, tmp_path):
    """An OCI bundle's process (additional groups, umask, rlimits, no seccomp filter), as runc's create and
    start made it: a plain exec gets the same as through Container.exec."""
    import json

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    assert pyc("spec", cwd=bundle).returncode == 0
    config = json.loads((bundle / "config.json").read_text())
    config["root"] = {"path": "/var/lib/pycontain/rootfs/default", "readonly": True}
    config["process"].update(
        args=["sleep", "600"],
        terminal=False,
        user={"uid": 0, "gid": 0, "additionalGids": [77, 78], "umask": 0o27},
        rlimits=[{"type": "RLIMIT_NOFILE", "hard": 2048, "soft": 1000}],
    )
    (bundle / "config.json").write_text(json.dumps(config))
    assert pyc.leaving("create", "--bundle", str(bundle), "ocix").returncode == 0
    assert pyc("start", "ocix").returncode == 0
    fast = pyc("exec", "ocix", "sh", "-c", REPORT)
    assert fast.returncode == 0, fast.stderr
    slow = Container.get("ocix", pyc.root).exec_run(["sh", "-c", REPORT])
    assert fast.stdout == slow.stdout.decode()
    mine = _fields(fast.stdout)
    assert mine["Groups"].split() == ["77", "78"] and mine["Seccomp"].strip() == "0"
    assert "umask=0027 nofile=1000" in fast.stdout


def test_exec_is_in_the_container_and_confined_like_its_first_process(pyc):
    pid1 = _run(pyc, "ex", "--cap-drop", "NET_RAW", "--cap-add", "SYS_ADMIN")
    p = pyc("exec", "ex", "sh", "-c", REPORT)
    assert p.returncode == 0, p.stderr
    mine = _fields(p.stdout)
    with open(f"/proc/{pid1}/status") as f:
        first = _fields(f.read())
    for key in (
        "Uid",
        "Gid",
        "Groups",
        "CapInh",
        "CapPrm",
        "CapEff",
        "CapBnd",
        "CapAmb",
        "NoNewPrivs",
        "Seccomp",
    ):
        assert mine[key] == first[key], key
    assert mine["NoNewPrivs"].strip() == "1" and mine["Seccomp"].strip() == "2"
    assert (
        int(mine["CapEff"], 16) >> 21 & 1 and not int(mine["CapEff"], 16) >> 13 & 1
    )  # SYS_ADMIN, no NET_RAW
    # Its namespaces are PID 1's, its cgroups too.
    for n in ("pid", "ipc", "uts", "net", "cgroup", "mnt"):
        assert f"{n}:[{os.stat(f'/proc/{pid1}/ns/{n}').st_ino}]" in p.stdout, n
    with open(f"/proc/{pid1}/cgroup") as f:
        host_view = f.read().splitlines()
    inside = [line for line in p.stdout.splitlines() if re.match(r"^\d+:[^:]*:/", line)]
    with open("/proc/self/cgroup") as f:
        ours = f.read()
    assert len(inside) == len(host_view) and inside != ours.splitlines()
    # Its parent (the relay) is outside the container: no pid there. Only stdio (and ls's own fd) open.
    assert "ppid=0" in p.stdout
    assert p.stdout.rstrip().endswith("0 1 2 3")


def _children(pid: int, comm: str) -> list[int]:
    """The children of ``pid`` that run ``comm`` (the joiner is one for a moment)."""
    found = []
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        for child in f.read().split():
            try:
                with open(f"/proc/{child}/comm") as c:
                    if c.read().strip() == comm:
                        found.append(int(child))
            except FileNotFoundError:
                pass
    return found


def test_exec_in_a_remapped_user_namespace_is_the_mapped_user_on_the_host(pyc):
    """The host's view: the command runs as the mapped ids, a child of the relay, which stays outside."""
    pid1 = _run(pyc, "ex", "--userns", "0:200000:65536")
    proc = pyc.popen("exec", "-u", "1000", "ex", "sleep", "30")
    try:
        assert wait_until(lambda: len(_children(proc.pid, "sleep")) == 1)
        (child,) = _children(proc.pid, "sleep")
        with open(f"/proc/{child}/status") as f:
            status = _fields(f.read())
        assert status["Uid"].split() == ["201000"] * 4 and status["Gid"].split() == ["201000"] * 4
        for n in ("user", "mnt", "pid", "net"):
            assert os.readlink(f"/proc/{child}/ns/{n}") == os.readlink(f"/proc/{pid1}/ns/{n}")
            assert os.readlink(f"/proc/{proc.pid}/ns/{n}") == os.readlink(f"/proc/self/ns/{n}")
    finally:
        proc.kill()
        proc.wait()


def test_exec_exit_statuses_and_errors(pyc):
    _run(pyc, "ex")
    for args, code, err in [
        (("true",), 0, ""),
        (("false",), 1, ""),
        (("sh", "-c", "kill -9 $$"), 137, ""),
        (("/etc/passwd",), 126, "pycontain: cannot execute '/etc/passwd': Permission denied\n"),
        (("/etc",), 126, "pycontain: cannot execute '/etc': Permission denied\n"),
        (("/nonexistent",), 127, "pycontain: cannot execute '/nonexistent': No such file or directory\n"),
        (("nosuch",), 127, "pycontain: executable file not found in $PATH: 'nosuch' (PATH="),
        (("-u", "nobody:nosuchgroup", "true"), 125, "pycontain: unable to find group 'nosuchgroup'"),
        (("-u", "nosuch", "true"), 125, "pycontain: unable to find user 'nosuch'"),
    ]:
        p = pyc("exec", *args[:-1], "ex", args[-1]) if args[0] == "-u" else pyc("exec", "ex", *args)
        assert p.returncode == code, (args, p.stderr)
        assert p.stderr.startswith(err) and len(p.stderr.splitlines()) <= 1, (args, p.stderr)
    p = pyc("exec", "ex", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (p.returncode, p.stdout, p.stderr) == (3, "out\n", "err\n")
    p = pyc("exec", "-i", "ex", "sh", "-c", "tr a-z A-Z; exit 4", input="hello\n" * 20000)
    assert (p.returncode, p.stdout) == (4, "HELLO\n" * 20000)


def test_exec_forwards_signals_to_the_command(pyc):
    _run(pyc, "ex")
    proc = pyc.popen(
        "exec", "ex", "sh", "-c", "trap 'echo got; exit 7' TERM; touch /tmp/up; while :; do sleep 0.05; done"
    )
    try:
        assert wait_until(lambda: pyc("exec", "ex", "test", "-e", "/tmp/up").returncode == 0)
        proc.send_signal(signal.SIGTERM)
        out, _err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert (proc.returncode, out) == (7, "got\n")
    proc = pyc.popen("exec", "ex", "sh", "-c", "touch /tmp/up2; exec sleep 600")
    try:
        assert wait_until(lambda: pyc("exec", "ex", "test", "-e", "/tmp/up2").returncode == 0)
        time.sleep(0.2)  # (sh has become sleep)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 128 + signal.SIGINT


# Inside the container, with CAP_SYS_PTRACE: watch for processes that have not executed their command yet
# (their executable is not busybox) and record what /proc shows of them.
WATCHER = r"""
seen=/tmp/seen; : > $seen
while [ ! -e /tmp/stop ]; do
  for d in /proc/[0-9]*; do
    exe=$(readlink $d/exe 2>/dev/null) || continue
    [ "$exe" = /bin/busybox ] && continue
    echo "exe=$exe $(grep -E '^(Seccomp|CapEff|NoNewPrivs|Uid):' $d/status 2>/dev/null | tr '\n\t' '  ')" >> $seen
  done
done
"""


def test_a_container_process_sees_exec_confined_before_the_command_runs(pyc):
    """The relay never enters the container's pid namespace; the command's process is born there with the
    command's credentials, capabilities, no_new_privs and seccomp filter already: a watcher holding
    CAP_SYS_PTRACE (which may read any process of the container) finds no more there, and no host file
    as its executable, only the sealed copy (a chance to see the window, never a false alarm)."""
    _run(pyc, "ex", "--cap-add", "SYS_PTRACE", "--user", "1000")
    watcher = pyc.popen("exec", "-u", "0", "ex", "sh", "-c", WATCHER)
    try:
        for _ in range(40):
            assert pyc("exec", "ex", "true").returncode == 0
    finally:
        pyc("exec", "ex", "touch", "/tmp/stop")
        watcher.communicate(timeout=30)
    seen = pyc("exec", "ex", "cat", "/tmp/seen").stdout
    for line in seen.splitlines():
        assert "memfd:pycontain-init" in line, line  # never a host file, nor the interpreter
        fields = dict(re.findall(r"(\w+): (\S+)", line))
        if "Seccomp" in fields:
            assert fields == {"Uid": "1000", "CapEff": "0" * 16, "NoNewPrivs": "1", "Seccomp": "2"}, line


# Inside the container, as its root with the default capabilities (no CAP_SYS_PTRACE): try to reach every
# process not yet executed (its command line is still pycontain-init's): its descriptors (the channel to
# pycontain among them) are open to whoever may ptrace it.
REACHER = r"""
seen=/tmp/reached; : > $seen
while [ ! -e /tmp/stop ]; do
  for d in /proc/[0-9]*; do
    case "$(tr '\\0' ' ' < $d/cmdline 2>/dev/null)" in
      pycontain-init*) echo "tried $d" >> $seen
                       # (still not executed after the listing: execve is one way, so it was before)
                       readlink $d/fd/0 >/dev/null 2>&1 && tr '\\0' ' ' < $d/cmdline | grep -q ^pycontain-init &&
                         echo "fd $d" >> $seen
                       cat $d/environ >/dev/null 2>&1 && tr '\\0' ' ' < $d/cmdline | grep -q ^pycontain-init &&
                         echo "environ $d" >> $seen;;
    esac
  done
done
"""


@pytest.mark.parametrize("path", ["cli", "library"])
def test_the_process_before_the_command_cannot_be_reached_without_cap_sys_ptrace(pyc, path):
    """Before its execve, the command's process holds pycontain's channel: not dumpable, so a process of
    the container holding the same capabilities cannot open its descriptors nor ptrace it (the library's
    helper was dumpable again after its own execve, until this fix)."""
    _run(pyc, "ex")
    c = Container.get("ex", pyc.root)
    reacher = pyc.popen("exec", "ex", "sh", "-c", REACHER)
    try:
        for _ in range(60):
            if path == "cli":
                assert pyc("exec", "ex", "true").returncode == 0
            else:
                assert c.exec_run(["true"]).exit_code == 0
    finally:
        pyc("exec", "ex", "touch", "/tmp/stop")
        reacher.communicate(timeout=30)
    seen = pyc("exec", "ex", "cat", "/tmp/reached").stdout
    assert not [line for line in seen.splitlines() if not line.startswith("tried ")], seen


def test_exec_leaves_its_modules_in_the_preload(pyc, tmp_path):
    """exec ends in execve, never back in cli.entry, which refreshes the preload on the other fast paths:
    it refreshes it itself, so that a host that only ever execs (a probe) is served its modules too."""
    import marshal
    import shutil
    import subprocess
    import sys

    import pycontain

    tree = os.path.dirname(os.path.dirname(os.path.abspath(pycontain.__file__)))
    shutil.copytree(
        os.path.join(tree, "pycontain"), tmp_path / "pycontain", ignore=shutil.ignore_patterns("__pycache__")
    )
    _run(pyc, "pre")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(tmp_path)
    for _ in range(2):  # the first exec of a container also resolves its security settings
        p = subprocess.run(
            [sys.executable, "-m", "pycontain", "--root", pyc.root, "exec", "pre", "true"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert p.returncode == 0, p.stderr
    from pycontain import preload

    with open(preload.path_for(str(tmp_path / "pycontain")), "rb") as f:
        data = f.read()
    _, table = marshal.loads(data[4 : 4 + int.from_bytes(data[:4], "little")])
    assert {"pycontain.execjoin", "pycontain.init", "pycontain.cgroup_record"} <= set(table)
