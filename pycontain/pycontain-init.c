/*
 * pycontain-init: the container's PID 1 under --init. It forwards every signal it receives to the
 * command and reaps every process the namespace leaves to it, then exits with the command's status
 * (128+N when signal N killed it).
 *
 *   pycontain-init -- COMMAND [ARG...]
 *
 * pycontain execs it from a sealed memfd as the last step of the container's first process, after the
 * user, capabilities, no_new_privs and seccomp filter are in place: it holds no more than the command
 * does, its /proc/1/exe is a copy nobody can write, and its command line is this short one.
 * Descriptor 3 (or N, given --fd=N first, when descriptors from 3 on are passed on to the command) is
 * pycontain's channel (pycontain/channel.py): a command that cannot be executed is reported there
 * (E<status>\t<message>), and pycontain sees it close once the command has been executed.
 *
 *   pycontain-init --join [--tty] -- COMMAND [ARG...]
 *
 * exec's last step (pycontain.process.exec_in): executed by the process that has joined the container's
 * namespaces (all but pid, whose next child is born in the container's), its root and its cgroup, and
 * dropped to the command's privileges. It forks, with CLONE_PARENT so that pycontain is the parent, the
 * first process the container can see: its executable is this sealed copy, nothing of the host's. That
 * process starts a session (with --tty, on the terminal at fd 0) and executes the command; this one
 * sends its pid on the channel (P<pid>) and exits.
 *
 * Built static by pycontain.init (with gcc), so it runs on any root filesystem.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* pycontain's channel: 3, or the first descriptor after those passed on to the command (--fd=N). */
static int channel_fd = 3;

/* Signals the kernel raises for a fault of this process itself: never blocked, never forwarded. */
static const int synchronous[] = {SIGFPE, SIGILL, SIGSEGV, SIGBUS, SIGABRT, SIGTRAP, SIGSYS};

static void report(int code, const char *what, const char *name) {
    char msg[512];
    int n = snprintf(msg, sizeof msg, "E%d\tcannot execute '%s': %s", code, name, what);
    if (n > 0 && write(channel_fd, msg, (size_t)n) < 0)
        fprintf(stderr, "pycontain-init: %s\n", msg + 1);
}

static void exec_command(char **cmd) {
    fcntl(channel_fd, F_SETFD, FD_CLOEXEC);
    execvp(cmd[0], cmd);
    int code = errno == ENOENT ? 127 : 126;
    report(code, strerror(errno), cmd[0]);
    _exit(code);
}

static int join(char **cmd, int tty) {
    /* A raw clone: fork() has no CLONE_PARENT. The child runs on a copy of this stack, as with fork. */
    long pid = syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0L, 0L, 0L, 0L);
    if (pid < 0) {
        report(125, strerror(errno), cmd[0]);
        return 125;
    }
    if (pid > 0) {
        char msg[32];
        int n = snprintf(msg, sizeof msg, "P%ld", pid);
        return write(channel_fd, msg, (size_t)n) == n ? 0 : 125;
    }
    if (setsid() < 0 || (tty && ioctl(0, TIOCSCTTY, 0) < 0)) {
        report(125, strerror(errno), cmd[0]);
        _exit(125);
    }
    exec_command(cmd);
    return 125;
}

static void usage(void) {
    fprintf(stderr, "usage: pycontain-init [--fd=N] [--join [--tty]] -- COMMAND [ARG...]\n");
    _exit(125);
}

int main(int argc, char **argv) {
    int i = 1, joining = 0, tty = 0;
    if (i < argc && strncmp(argv[i], "--fd=", 5) == 0)
        channel_fd = atoi(argv[i++] + 5);
    if (i < argc && strcmp(argv[i], "--join") == 0) {
        joining = 1;
        if (++i < argc && strcmp(argv[i], "--tty") == 0) {
            tty = 1;
            i++;
        }
    }
    if (i + 1 >= argc || strcmp(argv[i], "--") != 0)
        usage();
    argv += i;
    if (joining)
        return join(argv + 1, tty);
    sigset_t all, old;
    sigfillset(&all);
    for (size_t i = 0; i < sizeof synchronous / sizeof *synchronous; i++)
        sigdelset(&all, synchronous[i]);
    /* Blocked signals reach a namespace's PID 1 even without handlers, and wait here for sigwaitinfo. */
    sigprocmask(SIG_BLOCK, &all, &old);
    pid_t child = fork();
    if (child < 0) {
        report(125, strerror(errno), argv[1]);
        return 125;
    }
    if (child == 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        exec_command(argv + 1);
    }
    close(channel_fd);
    for (;;) {
        siginfo_t info;
        int sig = sigwaitinfo(&all, &info);
        if (sig < 0)
            continue;
        if (sig != SIGCHLD) {
            kill(child, sig);
            continue;
        }
        int status;
        pid_t pid;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
            if (pid != child)
                continue;
            if (WIFSIGNALED(status))
                return 128 + WTERMSIG(status);
            return WEXITSTATUS(status);
        }
    }
}
