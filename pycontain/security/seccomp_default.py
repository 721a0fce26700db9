"""pycontain's default seccomp profile, as Python data in docker's profile format.

It behaves like docker's default profile: an allow-list. A system call the list does not name fails
with EPERM, except for calls newer than anything the profile names, which fail with ENOSYS (the
builder in ``pycontain.security.seccomp`` adds that rule), so that C libraries fall back to older calls.

The format is docker's (an OCI ``linux.seccomp`` section plus docker's extensions): ``archMap`` picks
the architectures for the machine the container runs on, and a rule's ``includes``/``excludes`` make
it depend on the container's capabilities (``caps``: all of them must be held / none of them may be),
on the machine (``arches``, Go's names: amd64, arm64, ...), or on the kernel (``minKernel``).
Names libseccomp does not know are skipped.

What is left out, and why (each of these fails with EPERM unless a capability brings it back):

- new namespaces and mounts: ``unshare``, ``setns``, ``mount``, ``umount2``, ``open_tree``, the new
  mount API, ``pivot_root``, and ``clone`` with any CLONE_NEW* flag (CAP_SYS_ADMIN brings them
  back, except ``pivot_root``); ``clone3`` fails with ENOSYS without CAP_SYS_ADMIN, because its
  flags live in memory a filter cannot read, and glibc falls back to ``clone`` on ENOSYS;
- the kernel's keyring, which is not namespaced: ``keyctl``, ``add_key``, ``request_key``;
- loading code into the kernel or replacing it: ``init_module``, ``finit_module``,
  ``delete_module`` (CAP_SYS_MODULE), ``kexec_load``, ``kexec_file_load``, ``bpf`` (CAP_SYS_ADMIN or
  CAP_BPF), ``perf_event_open`` (CAP_SYS_ADMIN or CAP_PERFMON);
- the host's clock and power: ``settimeofday``, ``stime``, ``clock_settime`` (CAP_SYS_TIME),
  ``reboot`` (CAP_SYS_BOOT), ``swapon``, ``swapoff``, ``acct`` (CAP_SYS_PACCT);
- old or obscure calls with a history of bugs: ``open_by_handle_at`` (the "shocker" escape;
  CAP_DAC_READ_SEARCH), ``userfaultfd``, ``uselib``, ``sysfs``, ``ustat``, ``_sysctl``, ``vm86``,
  ``vm86old``, ``lookup_dcookie``, ``quotactl``, ``nfsservctl``, ``iopl``/``ioperm``
  (CAP_SYS_RAWIO), ``io_uring_*`` (left out by docker since 2023 for the stream of bugs in it);
- ``personality`` is allowed only for the values programs use (Linux, UNAME26 and their query).

``ptrace``, ``process_vm_readv``/``process_vm_writev`` and ``kcmp`` are allowed on kernels 4.8 and
newer, as docker does: before 4.8 seccomp could be bypassed with ptrace; since then the kernel's own
checks (the pid namespace hides other containers' processes, and tracing a process whose capabilities
exceed the tracer's needs CAP_SYS_PTRACE) are the wall.
"""

from __future__ import annotations

from ..libc import CLONE_NAMESPACE_FLAGS, TIOCLINUX, TIOCSTI

# Bump whenever the data below changes: it is part of the key of the compiled-filter cache.
VERSION = 2

# Every system call ordinary programs need, on every architecture (names a machine lacks are skipped).
_ALLOWED = (
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "bind",
    "brk",
    "cachestat",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_requeue",
    "futex_time64",
    "futex_wait",
    "futex_waitv",
    "futex_wake",
    "futimesat",
    "get_robust_list",
    "get_thread_area",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "io_setup",
    "io_submit",
    "ioprio_get",
    "ioprio_set",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "map_shadow_stack",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pselect6_time64",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "set_robust_list",
    "set_thread_area",
    "set_tid_address",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "setsid",
    "setsockopt",
    "setuid",
    "setuid32",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
)

_S390 = ["s390", "s390x"]

# ioctl(2) requests that let a process act on a terminal it merely holds (refused below): TIOCSTI pushes
# bytes into the terminal's input queue (the caller's shell would run them once the container exits) and
# TIOCLINUX reaches the Linux console's selection and paste buffer.


def _ioctl_rule_except(refused: tuple[int, ...]) -> dict:
    """A rule that allows ioctl(2) for every request whose low 32 bits are not one of ``refused``.

    The kernel reads the request as a 32-bit int, so a caller may set any high bits: only the low 32
    are compared. A filter cannot say "not equal under a mask" and libseccomp lets an unconditional
    allow override any refusal, so the allow-list is spelt as alternatives: a request differing from
    all refused ones in a bit they share, or, matching those bits, a pattern of the bits where they
    differ that none of them has.
    """
    low = 0xFFFFFFFF
    varying = 0
    for r in refused[1:]:
        varying |= r ^ refused[0]
    shared = low & ~varying
    common = refused[0] & shared
    rules = []
    for bit in range(32):
        m = 1 << bit
        if shared & m:
            rules.append({"index": 1, "value": m, "valueTwo": ~common & m, "op": "SCMP_CMP_MASKED_EQ"})
    bits = [1 << b for b in range(32) if varying >> b & 1]
    for n in range(1 << len(bits)):
        pattern = common | sum(b for i, b in enumerate(bits) if n >> i & 1)
        if pattern not in refused:
            rules.append({"index": 1, "value": low, "valueTwo": pattern, "op": "SCMP_CMP_MASKED_EQ"})
    # Comparisons of one argument in one rule are alternatives (ORed), as in docker's format.
    return _rule(("ioctl",), args=rules)


def _rule(names: tuple[str, ...] | list[str], action: str = "SCMP_ACT_ALLOW", **extra: object) -> dict:
    return {"names": list(names), "action": action, **extra}


def _caps(*caps: str) -> dict:
    return {"caps": list(caps)}


PROFILE: dict = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrnoRet": 1,  # EPERM
    "archMap": [
        {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
        {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
        {"architecture": "SCMP_ARCH_MIPS64", "subArchitectures": ["SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64N32"]},
        {
            "architecture": "SCMP_ARCH_MIPSEL64",
            "subArchitectures": ["SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64N32"],
        },
        {"architecture": "SCMP_ARCH_PPC64LE", "subArchitectures": []},
        {"architecture": "SCMP_ARCH_S390X", "subArchitectures": ["SCMP_ARCH_S390"]},
        {"architecture": "SCMP_ARCH_RISCV64", "subArchitectures": []},
    ],
    "syscalls": [
        _rule(_ALLOWED),
        # Any address family but AF_VSOCK (40), which reaches the host's hypervisor sockets.
        _rule(("socket",), args=[{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]),
        _ioctl_rule_except((TIOCSTI, TIOCLINUX)),
        # personality(2): PER_LINUX (0), PER_LINUX32 (0x8), UNAME26 (0x20000) and UNAME26 | PER_LINUX32,
        # and 0xffffffff, which only reads the current one. Nothing that turns off ASLR, for instance.
        _rule(("personality",), args=[{"index": 0, "value": 0x0, "op": "SCMP_CMP_EQ"}]),
        _rule(("personality",), args=[{"index": 0, "value": 0x8, "op": "SCMP_CMP_EQ"}]),
        _rule(("personality",), args=[{"index": 0, "value": 0x20000, "op": "SCMP_CMP_EQ"}]),
        _rule(("personality",), args=[{"index": 0, "value": 0x20008, "op": "SCMP_CMP_EQ"}]),
        _rule(("personality",), args=[{"index": 0, "value": 0xFFFFFFFF, "op": "SCMP_CMP_EQ"}]),
        # Safe since 4.8, when seccomp stopped being bypassable through ptrace.
        _rule(("ptrace", "process_vm_readv", "process_vm_writev", "kcmp"), includes={"minKernel": "4.8"}),
        # Machine-specific calls.
        _rule(("arch_prctl", "modify_ldt"), includes={"arches": ["amd64", "x32", "386"]}),
        _rule(
            (
                "arm_fadvise64_64",
                "arm_sync_file_range",
                "sync_file_range2",
                "breakpoint",
                "cacheflush",
                "set_tls",
            ),
            includes={"arches": ["arm", "arm64"]},
        ),
        _rule(("riscv_flush_icache",), includes={"arches": ["riscv64"]}),
        _rule(
            ("s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr"), includes={"arches": _S390}
        ),
        # Namespaces and mounts: only with CAP_SYS_ADMIN.
        _rule(
            (
                "bpf",
                "clone",
                "clone3",
                "fanotify_init",
                "fsconfig",
                "fsmount",
                "fsopen",
                "fspick",
                "lookup_dcookie",
                "mount",
                "mount_setattr",
                "move_mount",
                "open_tree",
                "perf_event_open",
                "quotactl",
                "quotactl_fd",
                "setdomainname",
                "sethostname",
                "setns",
                "syslog",
                "umount",
                "umount2",
                "unshare",
            ),
            includes=_caps("CAP_SYS_ADMIN"),
        ),
        # Without it, clone(2) only without namespace flags (the flags are argument 1 on s390, 0 elsewhere)...
        _rule(
            ("clone",),
            args=[{"index": 0, "value": CLONE_NAMESPACE_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
            excludes={"caps": ["CAP_SYS_ADMIN"], "arches": _S390},
        ),
        _rule(
            ("clone",),
            args=[{"index": 1, "value": CLONE_NAMESPACE_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
            includes={"arches": _S390},
            excludes=_caps("CAP_SYS_ADMIN"),
        ),
        # ... and clone3(2), whose flags a filter cannot see, fails as if the kernel lacked it.
        _rule(("clone3",), "SCMP_ACT_ERRNO", errnoRet=38, excludes=_caps("CAP_SYS_ADMIN")),
        _rule(("reboot",), includes=_caps("CAP_SYS_BOOT")),
        _rule(("chroot",), includes=_caps("CAP_SYS_CHROOT")),
        _rule(("delete_module", "init_module", "finit_module"), includes=_caps("CAP_SYS_MODULE")),
        _rule(("acct",), includes=_caps("CAP_SYS_PACCT")),
        _rule(
            ("kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace"),
            includes=_caps("CAP_SYS_PTRACE"),
        ),
        _rule(("iopl", "ioperm"), includes=_caps("CAP_SYS_RAWIO")),
        _rule(("settimeofday", "stime", "clock_settime", "clock_settime64"), includes=_caps("CAP_SYS_TIME")),
        _rule(("vhangup",), includes=_caps("CAP_SYS_TTY_CONFIG")),
        _rule(
            ("get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"),
            includes=_caps("CAP_SYS_NICE"),
        ),
        _rule(("syslog",), includes=_caps("CAP_SYSLOG")),
        _rule(("bpf",), includes=_caps("CAP_BPF")),
        _rule(("perf_event_open",), includes=_caps("CAP_PERFMON")),
        _rule(("open_by_handle_at",), includes=_caps("CAP_DAC_READ_SEARCH")),
    ],
}
