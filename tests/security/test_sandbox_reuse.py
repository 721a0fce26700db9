"""A read-only sandbox pool lends a sandbox again after a reset: attacks by the borrower before.

Each test makes run 1 (a hostile borrower) leave something behind for run 2 (another borrower of the
same pool), then checks from run 2 that it is gone, or that the pool destroyed the sandbox instead of
lending it again. The programs are one static C file (busybox has no sockets API nor prlimit).
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from conftest import ROOT_REQUIRED

from pycontain.sandbox.sandbox import IDLE_COMMAND

pytestmark = [
    ROOT_REQUIRED,
    pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed (make setup)"),
]

_ATTACKS_C = r"""
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

static struct sockaddr_in lo(const char *port) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(port))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

static socklen_t abstract(struct sockaddr_un *a, const char *name) {
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    strcpy(a->sun_path + 1, name);
    return offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name);
}

int main(int argc, char **argv) {
    if (argc < 3)
        return 2;
    if (!strcmp(argv[1], "timewait")) { /* the accepting side closes first: its port stays in TIME_WAIT */
        struct sockaddr_in a = lo(argv[2]);
        int l = socket(AF_INET, SOCK_STREAM, 0), c = socket(AF_INET, SOCK_STREAM, 0);
        if (bind(l, (void *)&a, sizeof a) || listen(l, 1) || connect(c, (void *)&a, sizeof a))
            return perror("timewait"), 1;
        close(accept(l, 0, 0));
        usleep(20000);
        return 0;
    }
    if (!strcmp(argv[1], "bind")) { /* a server as programs start one: no SO_REUSEADDR */
        struct sockaddr_in a = lo(argv[2]);
        int l = socket(AF_INET, SOCK_STREAM, 0);
        if (bind(l, (void *)&a, sizeof a) || listen(l, 1))
            return printf("bind: %s\n", strerror(errno)), 1;
        return puts("bound"), 0;
    }
    if (!strcmp(argv[1], "inflight")) { /* an abstract socket held only by its own fd, in flight to it */
        struct sockaddr_un a;
        socklen_t n = abstract(&a, argv[2]);
        int s = socket(AF_UNIX, SOCK_DGRAM, 0);
        char buf[CMSG_SPACE(sizeof(int))] = {0}, byte = 'x';
        struct iovec iov = {&byte, 1};
        struct msghdr m = {.msg_name = &a, .msg_namelen = n, .msg_iov = &iov, .msg_iovlen = 1,
                           .msg_control = buf, .msg_controllen = sizeof buf};
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &s, sizeof s);
        if (bind(s, (void *)&a, n) || sendmsg(s, &m, 0) < 0)
            return perror("inflight"), 1;
        return 0;
    }
    if (!strcmp(argv[1], "connect")) {
        struct sockaddr_un a;
        socklen_t n = abstract(&a, argv[2]);
        if (connect(socket(AF_UNIX, SOCK_DGRAM, 0), (void *)&a, n))
            return printf("connect: %s\n", strerror(errno)), 1;
        return puts("connected"), 0;
    }
    if (!strcmp(argv[1], "prlimit-as")) { /* PID 1's: the same uid is all prlimit(2) asks for */
        struct rlimit r = {atol(argv[2]), atol(argv[2])};
        if (prlimit(1, RLIMIT_AS, &r, 0))
            return perror("prlimit"), 1;
        return 0;
    }
    if (!strcmp(argv[1], "add_key")) /* uid 0's user keyring: the host root's (keys are not namespaced) */
        return syscall(SYS_add_key, "user", argv[2], "x", 1, -4 /* KEY_SPEC_USER_KEYRING */) < 0;
    if (!strcmp(argv[1], "zombies")) { /* children that exit, never waited for by their live parent */
        for (int i = atoi(argv[2]); i > 0; i--)
            if (fork() == 0)
                _exit(0);
        puts("made");
        fflush(stdout);
        for (;;)
            pause();
    }
    if (!strcmp(argv[1], "traced")) { /* a child in a ptrace stop, its tracer asleep */
        pid_t p = fork();
        if (p == 0) {
            ptrace(PTRACE_TRACEME, 0, 0, 0);
            raise(SIGSTOP);
            for (;;)
                pause();
        }
        if (fork() == 0) { /* a vfork parent, waiting for a child that never execs */
            if (vfork() == 0)
                for (;;)
                    pause();
            _exit(0);
        }
        for (;;)
            pause();
    }
    return 2;
}
"""


@pytest.fixture(scope="module")
def attacks(tmp_path_factory) -> bytes:
    """The attack program, compiled static (the default image has no C library to link against)."""
    d = tmp_path_factory.mktemp("attacks")
    (d / "attacks.c").write_text(_ATTACKS_C)
    subprocess.run(["gcc", "-static", "-O", "-o", str(d / "attacks"), str(d / "attacks.c")], check=True)
    return (d / "attacks").read_bytes()


# What ``ps -o args`` shows where nothing else runs: PID 1 and its idle loop's sleep (and ps itself).
IDLE = [" ".join(IDLE_COMMAND), "sleep 3600"]


def _ps(out: str) -> list[str]:
    return sorted(line.strip() for line in out.splitlines()[1:] if not line.strip().endswith("ps -o args"))


def _two_borrowers(
    state_root: str, attacks: bytes, attack: str, *checks: str, attack_ends: bool = True
) -> tuple[list[str], int, int]:
    """Run ``attack`` as one borrower of a one-sandbox read-only pool (successfully, unless not
    ``attack_ends``), then each of ``checks`` as the next: their stdouts, and how many sandboxes the pool
    reused and destroyed in between."""
    from pycontain.sandbox import SandboxPool

    with SandboxPool(size=1, root=state_root, read_only=True) as pool:
        with pool.acquire(timeout=30) as first:
            assert first.not_resettable is None
            first.put_file("/tmp/attacks", attacks, mode=0o755)
            r = first.run(attack, timeout=30)
            assert r.ok or not attack_ends, (attack, r)
        with pool.acquire(timeout=30) as second:
            second.put_file("/tmp/attacks", attacks, mode=0o755)
            outs = [second.run(check, timeout=30).stdout.decode() for check in checks]
            return outs, pool.reused, pool.destroyed


def test_reuse_mqueue_root_mode_and_owner(state_root, attacks):
    """The mqueue filesystem is the IPC namespace's own (a new mount shows the same root): a mode or an
    owner set on it would stay for the next borrower, whose non-root user could lose POSIX queues."""
    (out,), reused, destroyed = _two_borrowers(
        state_root, attacks, "chmod 700 /dev/mqueue && chown 65534 /dev/mqueue", "stat -c '%a %u' /dev/mqueue"
    )
    assert out == "1777 0\n" and (reused, destroyed) == (0, 1)


def test_reuse_mqueue_root_times_are_set_back(state_root, attacks):
    """A queue made and removed, times set: the sandbox is reused and the next borrower finds the times
    it had before any run, not 64 bits each chosen by the previous one (removing a queue left would have
    set them to the reset's time, hiding this)."""
    (out,), reused, destroyed = _two_borrowers(
        state_root,
        attacks,
        ": > /dev/mqueue/q && rm /dev/mqueue/q && touch -m -d @424242 /dev/mqueue && touch -a -d @434343 /dev/mqueue",
        "stat -c '%X %Y' /dev/mqueue",
    )
    assert (reused, destroyed) == (1, 0)
    assert "424242" not in out and "434343" not in out


def test_reuse_time_wait_port(state_root, attacks):
    """A TCP port in TIME_WAIT outlives the processes (a minute): the next borrower's server could not
    bind it. The sandbox's network namespace must hold no socket, else it is destroyed."""
    (out,), reused, destroyed = _two_borrowers(
        state_root,
        attacks,
        "/tmp/attacks timewait 8080 && grep -q ' 06 ' /proc/net/tcp",
        "/tmp/attacks bind 8080",
    )
    assert out == "bound\n" and destroyed == 1


def test_reuse_socket_in_flight_to_itself(state_root, attacks):
    """An abstract unix socket whose only reference is its own fd, sent to itself (SCM_RIGHTS): it stays
    bound until the kernel's garbage collector finds the cycle, whenever that runs."""
    (out,), reused, destroyed = _two_borrowers(
        state_root,
        attacks,
        "/tmp/attacks inflight leak44 && grep -q @leak44 /proc/net/unix",
        "grep -c @leak44 /proc/net/unix; /tmp/attacks connect leak44",
    )
    assert out == "0\nconnect: Connection refused\n"


def test_reuse_pid1_resource_limits(state_root, attacks):
    """prlimit(2) on PID 1 needs only the same uid: with a tiny address space every ``sleep`` of the idle
    loop fails, and PID 1 forks in a busy loop that the next borrower's CPU time would pay for."""
    (limit, ps), reused, destroyed = _two_borrowers(
        state_root,
        attacks,
        "/tmp/attacks prlimit-as 1000000 && kill $(pidof sleep)",
        "grep 'Max address space' /proc/1/limits",
        "ps -o args",
    )
    assert limit.split()[3:5] == ["unlimited", "unlimited"] and _ps(ps) == IDLE and destroyed == 1


def test_reuse_processes_that_resist_the_kill(state_root, attacks):
    """Stopped, ptrace-stopped, a vfork parent, TERM/HUP ignored, a new session, a double fork: all are
    killed (SIGKILL, the sandbox frozen meanwhile) and the sandbox is lent again."""
    attack = (
        "/tmp/attacks traced x >/dev/null 2>&1 & "
        "sleep 1000 & kill -STOP $!; "
        "setsid sh -c 'trap \"\" TERM HUP INT; while :; do sleep 1; done' >/dev/null 2>&1 & "
        "(sh -c 'while :; do :; done' & ) ; sleep 0.1"
    )
    (out,), reused, destroyed = _two_borrowers(state_root, attacks, attack, "ps -o args")
    assert _ps(out) == IDLE and (reused, destroyed) == (1, 0)


def test_reuse_what_a_run_cannot_change(state_root, attacks):
    """What a reset neither renews nor checks, because no run can change it (no CAP_SYS_ADMIN,
    CAP_NET_ADMIN, CAP_SYS_RESOURCE; /proc/sys and the cgroup filesystem read-only; unshare and the
    keyring closed by seccomp): each attempt fails, and the next borrower sees the sandbox as it was."""
    attempts = [
        "hostname evil",
        "ip addr add 10.9.9.9/32 dev lo",
        "ip route add 10.0.0.0/8 dev lo",
        "ip link set lo down",
        "sysctl -w net.ipv4.ip_unprivileged_port_start=0",
        "echo 1 > /proc/sys/net/ipv4/tcp_syncookies",
        "echo 1 > /sys/fs/cgroup/memory/memory.limit_in_bytes",
        "touch /var/tmp/x",
        "touch /run/x",
        "mkdir /mnt/x",
        "mount -t tmpfs t /mnt",
        "unshare -U true",
        "/tmp/attacks add_key leak44",
    ]
    attack = " ; ".join(f"if {a} 2>/dev/null; then echo 'DONE: {a}'; exit 1; fi" for a in attempts)
    (host, addrs), reused, destroyed = _two_borrowers(
        state_root, attacks, attack + "; true", "hostname", "ip -o addr"
    )
    assert host.strip() != "evil" and "10.9.9.9" not in addrs and len(addrs.splitlines()) == 2
    assert (reused, destroyed) == (1, 0)


def test_reuse_waits_for_the_zombies_to_be_reaped(state_root, attacks):
    """A process that never waits for its exited children: killed, it leaves them to PID 1 to reap, after
    it has left the cgroup's list. Until reaped they hold pids (the pids limit) and show in ps: the
    reset waits for PID 1 to have no child but its idle loop's. PID 1 reniced to 19 (same uid: allowed)
    only makes it reap more slowly."""
    from pycontain.sandbox import SandboxPool

    with SandboxPool(size=1, root=state_root, read_only=True) as pool:
        with pool.acquire(timeout=30) as first:
            first.put_file("/tmp/attacks", attacks, mode=0o755)
            r = first.run(
                "renice -n 19 -p 1; /tmp/attacks zombies 300 > /tmp/out & until [ -s /tmp/out ]; do :; done",
                timeout=30,
            )
            assert r.ok and len(_zombies(first.pid)) == 300, r
        with pool.acquire(timeout=30) as second:
            assert pool.reused == 1 and _zombies(second.pid) == []
            assert _ps(second.run("ps -o args").stdout.decode()) == IDLE


def _zombies(pid1: int) -> list[str]:
    """The sandbox's zombies (from the host): each process's children, in state Z."""
    out = []
    for pid in os.listdir(f"/proc/{pid1}/root/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid1}/root/proc/{pid}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                        out.append(pid)
            except OSError:
                pass
    return out


@pytest.mark.parametrize("signal", ["TERM", "INT"])
def test_reuse_after_a_signal_to_pid1(state_root, attacks, signal):
    """TERM and INT are the signals PID 1 (ash) catches. Were they deferred (a trap waits for the
    foreground command, the idle loop's hour-long sleep) the sandbox would be lent again and its PID 1
    exit in a later borrower's run, killing it. PID 1 acts on them at once: the sandbox is destroyed."""
    (out,), reused, destroyed = _two_borrowers(
        state_root,
        attacks,
        f"kill -{signal} 1; sleep 1",
        "kill $(pidof sleep); sleep 0.2; echo alive",
        attack_ends=False,
    )
    assert out == "alive\n" and (reused, destroyed) == (0, 1)
