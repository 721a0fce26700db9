"""Attacks on what session 5 added for speed (issue 18): the command line's exec in C (pycontain-init
--exec), the warm network pool, the state root's name index and the monitor as a subreaper. Each test
performs the attack against the real runtime and asserts on what the kernel (or the file system) shows."""

from __future__ import annotations

import os
import subprocess

from pycontain.container import Container
from tests.conftest import ROOT_REQUIRED, wait_until

pytestmark = ROOT_REQUIRED

# What exec's process is: its ids, its groups and the length of its HOME.
WHO = "id -u; id -g; id -G; echo ${#HOME}"


def _run(pyc, name: str) -> int:
    p = pyc.leaving("run", "-d", "--network", "none", "--name", name, "default", "--", "sleep", "600")
    assert p.returncode == 0, p.stderr
    return Container.get(name, pyc.root).pid


def test_exec_resolves_an_image_user_by_its_whole_entry(pyc):
    """A hostile image's /etc/passwd and /etc/group: a 300-character user name whose 255-character prefix
    is another user, a home of 5000 characters, users in 70 groups, and a group that lists only the
    prefix. The C joiner must find what the library's path finds (pycontain.users): the user's own
    groups, not the prefix's, and its whole home (it cut both at fixed sizes, and refused 64+ groups)."""
    pid = _run(pyc, "walls")
    name = "u" * 300
    etc = f"/proc/{pid}/root/etc"
    with open(f"{etc}/passwd", "a") as f:
        f.write(f"{name[:255]}:x:2001:2001::/prefix:/bin/sh\n")
        f.write(f"{name}:x:2000:2000::/h{'o' * 5000}:/bin/sh\n")
        f.write("many:x:2002:2002::/many:/bin/sh\n")
    with open(f"{etc}/group", "a") as f:
        f.write(f"prefix:x:4000:{name[:255]}\n")
        for i in range(70):
            f.write(f"g{i}:x:{3000 + i}:nobody,{name},many\n")
    # (by its uid: the command line takes names of up to 32 characters; the entry's name is any length)
    fast = pyc("exec", "-u", "2000", "walls", "sh", "-c", WHO)
    assert fast.returncode == 0, fast.stderr
    slow = Container.get("walls", pyc.root).exec_run(["sh", "-c", WHO], user="2000")
    assert slow.exit_code == 0, slow.stderr
    assert fast.stdout == slow.stdout.decode()
    uid, gid, groups, home = fast.stdout.split("\n")[:4]
    assert (uid, gid, home) == ("2000", "2000", "5002")
    assert set(groups.split()) == {"2000", *(str(3000 + i) for i in range(70))}
    many = pyc("exec", "-u", "many", "walls", "sh", "-c", "id -G")
    assert many.returncode == 0, many.stderr
    assert set(many.stdout.split()) == {"2002", *(str(3000 + i) for i in range(70))}


def test_a_fifo_user_database_blocks_no_exec(pyc):
    """/etc/passwd made a FIFO by the container: the user is not found, at once, on both exec paths (the
    library's, which ``exec -d`` takes, opened it blocking and waited for a writer forever)."""
    pid = _run(pyc, "walls")
    passwd = f"/proc/{pid}/root/etc/passwd"
    os.unlink(passwd)
    os.mkfifo(passwd)
    for args in (("exec",), ("exec", "-d")):
        p = pyc(*args, "-u", "someone", "walls", "true", timeout=30)
        assert p.returncode == 125, p.stderr
        assert "unable to find user 'someone'" in p.stderr


def test_an_oversized_user_database_is_refused_not_read(pyc):
    """A sparse /etc/passwd bigger than users.MAX_DB costs the image nothing and would be read whole, as
    root, by exec's joiner (one line: all of it in memory) or by the library's path: both refuse it
    in one line. (Only just over the limit here: the old code read it whole, as it would a terabyte.)"""
    from pycontain.users import MAX_DB

    pid = _run(pyc, "walls")
    with open(f"/proc/{pid}/root/etc/passwd", "r+b") as f:
        f.truncate(MAX_DB + 1)
    for args in (("exec",), ("exec", "-d")):
        p = pyc(*args, "-u", "someone", "walls", "true", timeout=60)
        assert p.returncode == 125, p.stderr
        assert p.stderr.strip().splitlines() == [
            "pycontain: the container's /etc/passwd is larger than 64 MiB"
        ]


def test_malformed_user_entries_get_the_same_answer_on_both_exec_paths(pyc):
    """An entry whose gid is no number fails exec in one line, the same on the C path and the library's
    (it said "ValueError: invalid literal for int()"); a group whose id is out of range or not ASCII
    digits is passed over by both (the library's failed on '²', which str.isdigit() takes); a line ends
    at a NUL for both (the library's put the NUL in HOME, which execve refused), and at "\n" only, a
    CRLF's "\r" dropped (the C path kept it: no CRLF entry's last member matched; the library split at
    "\v" too)."""
    pid = _run(pyc, "walls")
    etc = f"/proc/{pid}/root/etc"
    with open(f"{etc}/passwd", "a") as f:
        f.write("bad:x:2003:abc::/:/bin/sh\nodd:x:2004:2004::/home/odd\0junk:/bin/sh\n")
    with open(f"{etc}/group", "a") as f:
        f.write("big:x:4294967295:odd\nsup:x:\u00b2:odd\nfine:x:3100:odd\r\nvt:x:3101:x\vodd\n")
    for args in (("exec",), ("exec", "-d")):
        p = pyc(*args, "-u", "bad", "walls", "true")
        assert p.returncode == 125
        assert p.stderr == "pycontain: invalid entry in the container's /etc/passwd: abc is not an id\n"
    report = ["sh", "-c", "id -G; echo $HOME"]
    fast = pyc("exec", "-u", "odd", "walls", *report)
    assert (fast.returncode, fast.stdout) == (0, "2004 3100\n/home/odd\n"), fast.stderr
    slow = Container.get("walls", pyc.root).exec_run(report, user="odd")
    assert (slow.exit_code, slow.stdout) == (0, b"2004 3100\n/home/odd\n"), slow.stderr


def planted_package(d) -> str:
    """Another user's ``pycontain`` package in ``d`` (a directory they can write, such as /tmp): a Python
    that puts ``d`` first on sys.path (``-m`` or ``-c`` in that working directory) imports it and runs
    its code as root. The path of the file it writes then."""
    marker = str(d / "ran-as-root")
    (d / "pycontain").mkdir()
    (d / "pycontain" / "__init__.py").write_text(f"open({marker!r}, 'w').close()\n")
    return marker


def test_the_monitor_runs_no_code_from_its_starters_working_directory(pyc, tmp_path):
    """A detached container started from a directory another user can write: the monitor keeps that
    working directory, and its exit hook (``python -m pycontain.monitor exited``) imported the planted
    package from it (a local user's code as root). The command line itself is started with -P here."""
    hostile = tmp_path / "shared"
    hostile.mkdir()
    marker = planted_package(hostile)
    argv = pyc.argv("run", "-d", "--network", "none", "--name", "walls", "default", "--", "true")
    p = subprocess.run(
        [argv[0], "-P", *argv[1:]], cwd=hostile, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60
    )
    assert p.returncode == 0, p.stderr
    # The exit hook records the status (a hijacked one writes the marker instead).
    recorded = wait_until(
        lambda: os.path.exists(marker) or Container.get("walls", pyc.root).state.exit_code is not None, 30
    )
    assert not os.path.exists(marker)
    assert recorded
