"""``pycontain run``: exit statuses, signals, terminals, volumes, read-only roots, users, environment."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from conftest import ROOT_REQUIRED

pytestmark = ROOT_REQUIRED


def test_exit_codes(pyc):
    assert pyc("run", "--rm", "default", "--", "true").returncode == 0
    assert pyc("run", "--rm", "default", "--", "sh", "-c", "exit 1").returncode == 1
    p = pyc("run", "--rm", "default", "--", "/etc/passwd")
    assert p.returncode == 126 and "permission denied" in p.stderr
    p = pyc("run", "--rm", "default", "--", "no-such-command")
    assert p.returncode == 127 and "not found" in p.stderr and "Traceback" not in p.stderr
    # --init makes sh an ordinary process, which SIGKILL can end: 128 + 9.
    assert pyc("run", "--rm", "--init", "default", "--", "sh", "-c", "kill -9 $$").returncode == 137


def test_signals_are_forwarded(pyc):
    proc = pyc.popen(
        "run",
        "--rm",
        "--name",
        "sig",
        "default",
        "--",
        "sh",
        "-c",
        "trap 'exit 42' TERM; echo ready; while :; do sleep 0.05; done",
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 42
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_signals_the_caller_ignores_stay_ignored_in_the_container(pyc):
    """nohup pycontain run: SIGHUP is neither forwarded nor caught, and the container inherits the ignored
    SIGHUP (as exec's command does); a caller that ignores nothing gives the container nothing ignored."""

    def ignore_hup() -> None:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    report = "grep SigIgn /proc/self/status; echo ready; sleep 1; echo survived"
    proc = pyc.popen("run", "--rm", "--network", "none", "default", "sh", "-c", report, preexec_fn=ignore_hup)
    try:
        ignored = int(proc.stdout.readline().split()[1], 16)
        assert ignored & 1 << (signal.SIGHUP - 1), hex(ignored)
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGHUP)  # what a closing terminal sends nohup's command
        assert proc.stdout.readline().strip() == "survived"
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    def default_hup() -> None:  # (this test may itself run under nohup)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)

    plain = pyc(
        "run",
        "--rm",
        "--network",
        "none",
        "default",
        "grep",
        "SigIgn",
        "/proc/self/status",
        preexec_fn=default_hup,
    )
    assert int(plain.stdout.split()[1], 16) & 1 << (signal.SIGHUP - 1) == 0, plain.stdout


def test_init_forwards_sigterm_and_reaps(pyc):
    proc = pyc.popen(
        "run", "--rm", "--init", "default", "--", "sh", "-c", "(sleep 0.1 &) ; echo ready; exec sleep 30"
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_tty_gives_a_pts_path(pyc):
    p = pyc("run", "--rm", "-t", "default", "--", "tty")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().startswith("/dev/pts/"), p.stdout
    p = pyc("run", "--rm", "-t", "default", "--", "sh", "-c", "echo $TERM; ls -l /dev/console")
    assert "xterm" in p.stdout


def test_tty_window_size_and_ctrl_c(pyc):
    # A real terminal on our side: pycontain copies its size and sends Ctrl-C through the pty.
    import fcntl
    import pty
    import struct
    import termios

    pid, master = pty.fork()
    if pid == 0:
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 111, 0, 0))
        os.execv(
            pyc.argv()[0],
            pyc.argv(
                "run",
                "--rm",
                "-it",
                "default",
                "--",
                "sh",
                "-c",
                "stty size; trap 'echo got-int; exit 3' INT; echo armed; while :; do sleep 0.05; done",
            ),
        )
    out = b""
    try:
        deadline = time.monotonic() + 15
        while b"armed" not in out and time.monotonic() < deadline:
            out += os.read(master, 4096)
        assert b"33 111" in out, out
        os.write(master, b"\x03")
        while b"got-int" not in out and time.monotonic() < deadline:
            try:
                out += os.read(master, 4096)
            except OSError:
                break
        _, status = os.waitpid(pid, 0)
        assert b"got-int" in out, out
        assert os.WEXITSTATUS(status) == 3
    finally:
        os.close(master)


def test_rm_container_leaves_no_writes(pyc, state_root):
    assert (
        pyc("run", "--rm", "default", "--", "sh", "-c", "echo x > /etc/written; ls /etc/written").returncode
        == 0
    )
    p = pyc("run", "--rm", "default", "--", "sh", "-c", "ls /etc/written")
    assert p.returncode != 0
    import rootfs_builder

    assert not os.path.exists(os.path.join(rootfs_builder.resolve("default"), "etc", "written"))
    assert pyc.ids() == []


def test_volumes_rw_and_ro(pyc, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "in.txt").write_text("hello")
    p = pyc(
        "run",
        "--rm",
        "-v",
        f"{data}:/data",
        "default",
        "--",
        "sh",
        "-c",
        "cat /data/in.txt; echo out > /data/out.txt",
    )
    assert p.stdout.strip() == "hello"
    assert (data / "out.txt").read_text().strip() == "out"
    p = pyc("run", "--rm", "-v", f"{data}:/data:ro", "default", "--", "sh", "-c", "echo no > /data/ro.txt")
    assert p.returncode != 0 and "Read-only" in p.stderr, p.stderr
    assert not (data / "ro.txt").exists()


def test_volume_target_symlink_cannot_escape(pyc, tmp_path):
    # An image whose /evil points at the host's /etc: mounting a volume at /evil must stay inside the rootfs.
    import rootfs_builder

    rootfs = tmp_path / "rootfs"
    subprocess.run(["cp", "-a", rootfs_builder.resolve("default"), str(rootfs)], check=True)
    os.symlink("/../../../../etc", rootfs / "evil")
    src = tmp_path / "src"
    src.mkdir()
    before = os.listdir("/etc")
    p = pyc("run", "--rm", "-v", f"{src}:/evil/x", str(rootfs), "--", "true")
    assert p.returncode == 0, p.stderr
    assert os.listdir("/etc") == before and not os.path.exists("/etc/x")


def test_read_only_root_and_tmpfs(pyc):
    p = pyc("run", "--rm", "--read-only", "default", "--", "sh", "-c", "echo x > /file")
    assert p.returncode != 0 and "Read-only" in p.stderr
    p = pyc(
        "run",
        "--rm",
        "--read-only",
        "--tmpfs",
        "/scratch:size=1m",
        "default",
        "--",
        "sh",
        "-c",
        "echo x > /scratch/f && cat /scratch/f && grep ' /scratch ' /proc/mounts",
    )
    assert p.returncode == 0, p.stderr
    assert "tmpfs" in p.stdout and "size=1024k" in p.stdout


def test_user_env_workdir(pyc, tmp_path):
    p = pyc("run", "--rm", "-u", "65534:65534", "default", "--", "id")
    assert "uid=65534" in p.stdout and "gid=65534" in p.stdout
    p = pyc("run", "--rm", "-u", "nobody", "default", "--", "id", "-u")
    assert p.stdout.strip() == "65534"
    envfile = tmp_path / "env"
    envfile.write_text("# comment\nFROM_FILE=yes\n")
    p = pyc(
        "run",
        "--rm",
        "-e",
        "A=1",
        "--env-file",
        str(envfile),
        "-w",
        "/tmp/work",
        "default",
        "--",
        "sh",
        "-c",
        "echo $A $FROM_FILE $(pwd) $HOME",
    )
    assert p.stdout.split() == ["1", "yes", "/tmp/work", "/root"]


def test_tmp_is_writable(pyc):
    p = pyc("run", "--rm", "default", "--", "sh", "-c", "echo x > /tmp/f && stat -c %a /tmp")
    assert p.returncode == 0 and p.stdout.strip() == "1777"
