"""Attacks on the fast paths of issue 18 (sessions 5 and 6): exec's cached security settings, the state
reader, the monitor, and what the command line shows of a container. Each test performs the attack against
the real runtime and asserts on what the kernel, the file system or the terminal's bytes show."""

from __future__ import annotations

import fcntl
import json
import os
import resource
import subprocess
import termios

from pycontain.container import Container
from tests.conftest import CLI, ROOT_REQUIRED, wait_until
from tests.security import test_rootless
from tests.security.test_rootless import as_user, user  # noqa: F401  (user: the fixture)

pytestmark = ROOT_REQUIRED

# Text a terminal acts on: retitle the window, clear the screen.
ESCAPES = "\x1b]2;owned\x07\x1b[2J"


def test_what_ps_shows_of_a_container_cannot_drive_the_terminal(pyc):
    """An image's (or a bundle's) command and the command lines a container's processes give themselves
    were printed raw by ``ps``, ``ps ID``, ``top`` and ``ps --format`` (with its labels too): the container
    wrote escape sequences to the terminal of whoever listed it (ps(1) and docker's ps escape them)."""
    # The command starts with them (ps shows its first 30 characters), and PID 1 names itself with them
    script = f": '{ESCAPES}'; exec sh -c 'sleep 600; :' '{ESCAPES}'"
    label = f"from-the-image={ESCAPES}"
    run = ("run", "-d", "--network", "none", "--name", "esc", "--label", label, "default")
    p = pyc.leaving(*run, "--", "sh", "-c", script)
    assert p.returncode == 0, p.stderr
    outputs = [
        pyc("ps").stdout,
        pyc("ps", "esc").stdout,
        pyc("top", "esc").stdout,
        pyc("ps", "--format", "{{.Command}} {{.Labels}}").stdout,
    ]
    for out in outputs:
        assert "\x1b" not in out and "\x07" not in out, out
    # What was escaped is still shown: PID 1's command line, whole, and the start of the image's command
    assert r"sh -c sleep 600; : \x1b]2;owned\x07\x1b[2J" in outputs[1]
    assert r"sh -c sleep 600; : \x1b]2;owned\x07\x1b[2J" in outputs[2]
    assert r"\x1b]2;owned\x07\x1b[2J" in outputs[0] and r"\x1b]2;owned\x07\x1b[2J" in outputs[3]


def _rootless(fn):
    for mark in test_rootless.pytestmark[1:]:  # (its skips: no user namespaces, no useradd)
        fn = mark(fn)
    return fn


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


def test_an_exec_settings_file_that_is_none_of_ours_is_made_anew(pyc):
    """exec's cached security settings in the container's state directory: a FIFO in their place made
    exec wait forever, a sparse file of 8 GiB was read whole (past the 1 GiB address space given here),
    and through a symbolic link it failed in one line. Each is replaced by a file made anew."""
    p = pyc.leaving("run", "-d", "--network", "none", "--name", "cached", "default", "--", "sleep", "600")
    assert p.returncode == 0, p.stderr
    state_dir = os.path.join(pyc.root, Container.get("cached", pyc.root).id)
    assert pyc("exec", "cached", "true").returncode == 0
    (name,) = [n for n in os.listdir(state_dir) if n.startswith("exec-security-")]
    path = os.path.join(state_dir, name)
    for plant in ("fifo", "huge", "link"):
        os.unlink(path)
        if plant == "fifo":
            os.mkfifo(path, 0o600)
        elif plant == "huge":
            with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as f:
                f.truncate(8 << 30)
        else:
            os.symlink("/etc/hostname", path)
        e = pyc("exec", "cached", "sh", "-c", "echo joined", timeout=30, preexec_fn=_limit_memory)
        assert (e.returncode, e.stdout, e.stderr) == (0, "joined\n", ""), plant
        st = os.lstat(path)
        assert (st.st_mode, st.st_size < 1 << 20) == (0o100600, True)  # written anew


@_rootless
def test_root_acts_on_no_other_users_state_root(user, tmp_path):  # noqa: F811
    """A rootless user's state files (``--root`` their state root, given to root) say which process is the
    container, which files are its cgroup's and what its command's environment is: the user recorded
    their container's cgroup as a directory of theirs whose cgroup.procs links to a file of root's, and
    root's exec wrote "0" over that file's first byte (/etc/passwd's would have renamed root). Root now
    refuses that state root in one line, for every command; the user's own exec still works."""
    p = as_user(user, "run", "-d", "--name", "rl-exec", "default", "--", "sleep", "600")
    assert p.returncode == 0, p.stderr
    root = f"/tmp/pycontain-{user[1]}"
    state_file = os.path.join(root, p.stdout.strip(), "state.json")
    target = tmp_path / "roots-file"
    target.write_text("root:secret\n")
    fake = tmp_path / "cgroup"
    fake.mkdir()
    (fake / "cgroup.procs").symlink_to(target)
    os.chown(fake, user[1], user[1])
    with open(state_file) as f:
        genuine = f.read()
    try:
        mine = as_user(user, "exec", "rl-exec", "sh", "-c", "echo mine")
        assert (mine.returncode, mine.stdout) == (0, "mine\n"), mine.stderr
        forged = json.loads(genuine) | {"cgroup": {"driver": "v2", "dir": str(fake)}}
        with open(state_file, "w") as f:  # (as the user would: the file is theirs)
            json.dump(forged, f)
        for args in (("exec", "rl-exec", "true"), ("ps",), ("rm", "-f", "rl-exec")):
            e = CLI(root)(*args)
            assert e.returncode == 125, (args, e.stderr)
            assert e.stderr == (
                f"pycontain: the state root {root} belongs to user {user[1]}: root does not act on another "
                "user's containers (their state files would choose what it runs, writes and kills); run "
                "pycontain as that user\n"
            )
        assert target.read_text() == "root:secret\n"
        shared = tmp_path / "shared"  # (a root of root's that others may write in: as good as theirs)
        shared.mkdir(mode=0o1777)
        os.chmod(shared, 0o1777)
        e = CLI(str(shared))("ps")
        assert (e.returncode, e.stderr) == (
            125,
            f"pycontain: the state root {shared} is writable by other users: root does not act on another "
            "user's containers (their state files would choose what it runs, writes and kills); run "
            "pycontain as that user\n",
        )
    finally:
        with open(state_file, "w") as f:
            f.write(genuine)
        as_user(user, "rm", "-f", "rl-exec")


def test_an_environment_too_large_to_execute_fails_naming_the_command(pyc, tmp_path):
    """A container whose environment, with exec's -e, is more than execve takes (E2BIG): one line naming
    the command, status 126, on both exec paths (the C path said "Argument list too long: 16", its
    program's descriptor; the library's named pycontain-init)."""
    env_file = tmp_path / "env"
    env_file.write_text("".join(f"V{i}={'a' * 100_000}\n" for i in range(12)))
    run = ("run", "-d", "--network", "none", "--env-file", str(env_file), "--name", "big", "default")
    p = pyc.leaving(*run, "--", "sleep", "600")
    assert p.returncode == 0, p.stderr
    more = [a for i in range(9) for a in ("-e", f"W{i}={'b' * 100_000}")]
    for args in (("exec",), ("exec", "-d")):
        e = pyc(*args, *more, "big", "true")
        assert (e.returncode, e.stderr) == (126, "pycontain: cannot execute 'true': Argument list too long\n")


def test_a_container_that_does_not_read_its_stdin_cannot_stop_its_monitor(pyc, tmp_path):
    """``run -d -i`` of a command that never reads its stdin, and an attach client that sends more than
    its pipe holds: the monitor wrote clients' input blocking, so it stopped there, logging nothing more
    (the container then stops when its output pipe fills) until the container ended. Now the input waits
    (the client with it) and the log goes on. And all of a client's input still reaches a container that
    reads it, however much: the monitor passes it on as the container takes it."""
    p = pyc.leaving("run", "-d", "-i", "--network", "none", "--name", "deaf", "default", "--", "sleep", "600")
    assert p.returncode == 0, p.stderr
    pid = Container.get("deaf", pyc.root).pid
    data = tmp_path / "data"
    data.write_bytes(b"x" * 1_000_000)
    with open(data, "rb") as src:
        client = subprocess.Popen(pyc.argv("attach", "deaf"), stdin=src, stdout=subprocess.DEVNULL)
    try:
        stdin = os.open(f"/proc/{pid}/fd/0", os.O_RDONLY | os.O_NONBLOCK)  # (the pipe's read end)
        try:
            assert wait_until(lambda: _unread(stdin) >= 65536, timeout=30)  # its pipe is full
        finally:
            os.close(stdin)
        e = pyc("exec", "deaf", "sh", "-c", "echo still-logged > /proc/1/fd/1")
        assert e.returncode == 0, e.stderr
        assert wait_until(lambda: "still-logged" in pyc("logs", "deaf").stdout, timeout=30)
    finally:
        client.kill()
        client.wait()
    script = "head -c 1000000 | wc -c"
    p = pyc.leaving(
        "run", "-d", "-i", "--network", "none", "--name", "reads", "default", "--", "sh", "-c", script
    )
    assert p.returncode == 0, p.stderr
    with open(data, "rb") as src:
        a = subprocess.run(pyc.argv("attach", "reads"), stdin=src, capture_output=True, text=True, timeout=60)
    assert (a.returncode, a.stdout.strip()) == (0, "1000000"), a.stderr


def _unread(fd: int) -> int:
    """The bytes waiting in the pipe ``fd`` is an end of."""
    return int.from_bytes(fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4), "little")


def test_hostile_state_files_are_listed_as_damaged(tmp_path):
    """Damaged state files (by a disk, by a hand): a state.json that is a FIFO made ``ps`` wait forever, a
    sparse one of 3 GiB was read whole (past the 1 GiB address space given here), and one of 100000 nested
    "[" ended ``ps``, ``inspect`` and a bundle's ``create`` with "internal error: RecursionError". Each is
    now a damaged container, named with why."""
    root = tmp_path / "root"
    plants = {
        "a": lambda p: os.mkfifo(p),
        "b": lambda p: open(p, "wb").truncate(3 << 30),
        "c": lambda p: p.write_text("[" * 100_000 + "]" * 100_000),
        "d": lambda p: os.symlink("/etc/shadow", p),
    }
    for c, plant in plants.items():
        (root / (c * 64)).mkdir(parents=True)
        plant(root / (c * 64) / "state.json")
    cli = CLI(str(root))
    p = cli("ps", "-a", "--format", "{{.ID}} {{.Status}}", timeout=30, preexec_fn=_limit_memory)
    assert (p.returncode, p.stdout.split("\n")) == (0, [f"{c * 12} Creating" for c in plants] + [""]), (
        p.stderr
    )
    errors = cli("inspect", "-f", "{{.State.Error}}", *(c * 64 for c in plants), timeout=30).stdout.split(
        "\n"
    )
    whys = [
        "not a regular file",
        "larger than 64 MiB",
        "nested too deeply",
        "Too many levels of symbolic links",
    ]
    assert [e.rpartition(": ")[2] for e in errors[:-1]] == whys
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}")
    c = cli("create", "--bundle", str(bundle), "deep")
    assert (c.returncode, c.stderr) == (125, "pycontain: config.json: invalid JSON: nested too deeply\n")


def test_a_full_disk_loses_log_lines_not_the_monitor(tmp_path):
    """A state root on a full file system (any container's log, or its writable layer, can fill a shared
    disk): the monitor's first log write failing (ENOSPC) ended it, so nothing drained the container's
    pipes (its next write killed it with SIGPIPE) nor recorded its exit. Now the lines are lost and the
    container runs on, monitored: it gets to its sleep, and its exit is recorded once there is room."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], check=True)
    cli = CLI(str(mnt / "root"))
    try:
        script = "yes a-line-of-output | head -c 4000000; echo; exec sleep 600"  # (twice what fits)
        p = cli.leaving(
            "run", "-d", "--network", "none", "--name", "loud", "default", "--", "sh", "-c", script
        )
        assert p.returncode == 0, p.stderr
        st = Container.get("loud", cli.root).state

        def sleeping() -> bool:
            try:
                with open(f"/proc/{st.pid}/comm") as f:
                    return f.read() == "sleep\n"
            except OSError:
                return False

        assert wait_until(sleeping, timeout=60)
        assert os.statvfs(mnt).f_bavail == 0  # (the disk did fill)
        assert st.monitor is not None and st.monitor.alive()
        with open(f"/proc/{st.pid}/stat") as f:
            assert int(f.read().rpartition(")")[2].split()[1]) == st.monitor.pid  # still its child
        os.truncate(os.path.join(cli.root, st.id, "container.log"), 0)  # room for the state again
        assert cli("kill", "loud").returncode == 0
        assert wait_until(lambda: cli("inspect", "-f", "{{.State.ExitCode}}", "loud").stdout == "137\n")
    finally:
        cli("rm", "-f", "loud")
        subprocess.run(["umount", str(mnt)], check=True)


def test_diff_shows_each_file_the_container_made_on_one_line_escaped(pyc):
    """``diff`` printed the names of the container's files raw: one with a newline forged a line of its
    own ("D /etc/shadow": a deletion that never happened), one with escapes drove the terminal."""
    forged = "/tmp/x$(printf '\\nD ')/etc"  # a directory "x\nD " holding etc/shadow
    script = f'mkdir -p "{forged}" && touch "{forged}/shadow" "/tmp/{ESCAPES}" && sleep 600'
    p = pyc.leaving("run", "-d", "--network", "none", "--name", "files", "default", "--", "sh", "-c", script)
    assert p.returncode == 0, p.stderr
    assert wait_until(lambda: "owned" in pyc("diff", "files").stdout)
    out = pyc("diff", "files").stdout.splitlines()
    assert "D /etc/shadow" not in out and not any("\x1b" in line for line in out), out
    assert r"A /tmp/x\nD /etc/shadow" in out and r"A /tmp/\x1b]2;owned\x07\x1b[2J" in out


# A module of the image's that pycontain would run if it imported anything once in the container's mount
# namespace: it says so and ends the process (posix is built in: no file of the image's can stand for it).
DECOY = b"import posix\nposix.write(2, b'PLANTED-CODE-RAN\\n')\nposix._exit(99)\n"
SKIPPED_DIRS = {"__pycache__", "test", "tests", "idlelib", "tkinter", "turtledemo", "lib2to3"}


def _plant_decoys(rootfs) -> int:
    """A decoy in ``rootfs`` at the place of every module of our interpreter's path (the standard library,
    site-packages, this tree's pycontain), extension modules included; how many."""
    import sys

    planted = 0
    for entry in {p for p in sys.path if p and os.path.isdir(p)}:
        real = os.path.realpath(entry)  # (planted at both: the interpreter looks where its path says)
        for dirpath, dirnames, filenames in os.walk(real):
            dirnames[:] = [d for d in dirnames if d not in SKIPPED_DIRS]
            names = {f.partition(".")[0] for f in filenames if f.endswith((".py", ".so"))}
            for where in {dirpath, entry + dirpath[len(real) :]} if names else ():
                os.makedirs(f"{rootfs}{where}", exist_ok=True)
                for name in names:
                    with open(f"{rootfs}{where}/{name}.py", "wb") as f:
                        f.write(DECOY)
                    planted += 1
    return planted


def test_no_code_of_the_image_runs_in_pycontains_processes(pyc, tmp_path):
    """An image holding a Python module at the place of each of the interpreter's (the standard library,
    site-packages, pycontain's own tree): whatever module pycontain imported once in the container's mount
    namespace (a lazy import moved there to shorten the start, a preload read by path) would run the image's
    code as root, before the privileges drop. Run, exec (both paths) and a health check import none."""
    import shutil

    rootfs = tmp_path / "rootfs"
    shutil.copytree("/var/lib/pycontain/rootfs/default", rootfs, symlinks=True)
    assert _plant_decoys(rootfs) > 1000
    once = pyc(
        "run", "--rm", "--network", "none", "-u", "nobody", "--init", "--ulimit", "nofile=100:200",
        "--cap-drop", "ALL", "--read-only", "-w", "/made/here", "--tmpfs", "/t", str(rootfs), "id", "-u",
    )  # fmt: skip
    assert (once.returncode, once.stdout, once.stderr) == (0, "65534\n", "")
    run = ("run", "-d", "--network", "none", "--name", "decoyed", "--health-cmd", "true")
    p = pyc.leaving(*run, "--health-interval", "1s", "-u", "nobody", str(rootfs), "sleep", "600")
    assert p.returncode == 0, p.stderr
    for args in (("exec",), ("exec", "-d"), ("exec", "-u", "root", "-w", "/tmp"), ("exec", "-d", "-u", "0")):
        e = pyc(*args, "decoyed", "true")
        assert (e.returncode, e.stderr) == (0, ""), args
    health = lambda: pyc("inspect", "-f", "{{.State.Health.Status}}", "decoyed").stdout  # noqa: E731
    assert wait_until(lambda: health() == "healthy\n", timeout=30), health()
    assert "PLANTED" not in pyc("logs", "decoyed").stderr


def test_output_without_newlines_costs_the_monitor_no_memory(pyc):
    """32 MB of output without a newline: the monitor logs it in pieces (P) as it comes, its memory stays
    that of a small interpreter (holding "the line" until its end would take the 32 MB, or a terabyte)."""
    script = "head -c 32000000 /dev/zero; exec sleep 600"
    p = pyc.leaving("run", "-d", "--network", "none", "--name", "flood", "default", "--", "sh", "-c", script)
    assert p.returncode == 0, p.stderr
    st = Container.get("flood", pyc.root).state

    def sleeping() -> bool:
        with open(f"/proc/{st.pid}/comm") as f:
            return f.read() == "sleep\n"

    assert wait_until(sleeping, timeout=120)  # (all of it written: the monitor has read all but 64 KiB)
    assert st.monitor is not None
    with open(f"/proc/{st.monitor.pid}/status") as f:
        peak = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    assert peak < 24 << 10, f"the monitor's peak resident memory: {peak} KiB"


def _close_stdio() -> None:
    for fd in (0, 1, 2):
        os.close(fd)


def test_a_caller_with_its_stdio_closed_gets_the_commands_status(pyc):
    """pycontain started with its descriptors 0-2 closed (a daemon's child): every fast path failed with
    status 1 and a traceback (Python leaves such a stream None), and the files exec opens for its helper
    (namespaces, cgroup files) would take those numbers. Each now runs on /dev/null there."""
    p = pyc.leaving("run", "-d", "--network", "none", "--name", "closed", "default", "--", "sleep", "600")
    assert p.returncode == 0, p.stderr
    pid = Container.get("closed", pyc.root).pid
    script = "readlink /proc/self/ns/mnt > /tmp/where; exit 3"
    for args in (
        ("exec", "closed", "sh", "-c", script),
        ("run", "--rm", "--network", "none", "default", "false"),
    ):
        p = subprocess.run(pyc.argv(*args), preexec_fn=_close_stdio, timeout=60)
        assert p.returncode == (3 if args[0] == "exec" else 1), args
    with open(f"/proc/{pid}/root/tmp/where") as f:
        assert f.read().strip() == os.readlink(f"/proc/{pid}/ns/mnt")  # (ran in the container)
    assert subprocess.run(pyc.argv("ps"), preexec_fn=_close_stdio, timeout=60).returncode == 0


def test_a_bundles_text_in_a_warning_cannot_drive_the_terminal(pyc, tmp_path):
    """A bundle's mount destination quoted raw in a warning ("tmpcopyup ignored on ..."): escaped now, as
    errors are."""
    subprocess.run(pyc.argv("spec"), cwd=tmp_path, check=True, capture_output=True)
    (tmp_path / "rootfs").symlink_to("/var/lib/pycontain/rootfs/default")
    config = json.loads((tmp_path / "config.json").read_text())
    config["process"] |= {"args": ["true"], "terminal": False}
    mount = {"destination": f"/mnt/{ESCAPES}", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup"]}
    config["mounts"].append(mount)
    (tmp_path / "config.json").write_text(json.dumps(config))
    p = pyc("run", "--bundle", str(tmp_path), "warned")
    assert p.returncode == 0, p.stderr
    assert "\x1b" not in p.stderr and r"ignored on /mnt/\x1b]2;owned\x07\x1b[2J" in p.stderr, p.stderr
