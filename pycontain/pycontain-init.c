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
 * Descriptor 3, when open, is pycontain's error pipe: a command that cannot be executed is reported
 * there (E<status>\t<message>), and pycontain sees the pipe close once the command has been executed.
 *
 * Built static by pycontain.init (with gcc), so it runs on any root filesystem.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define ERROR_FD 3

/* Signals the kernel raises for a fault of this process itself: never blocked, never forwarded. */
static const int synchronous[] = {SIGFPE, SIGILL, SIGSEGV, SIGBUS, SIGABRT, SIGTRAP, SIGSYS};

static void report(int code, const char *what, const char *name) {
    char msg[512];
    int n = snprintf(msg, sizeof msg, "E%d\tcannot execute '%s': %s", code, name, what);
    if (n > 0 && write(ERROR_FD, msg, (size_t)n) < 0)
        fprintf(stderr, "pycontain-init: %s\n", msg + 1);
}

int main(int argc, char **argv) {
    if (argc < 3 || strcmp(argv[1], "--") != 0) {
        fprintf(stderr, "usage: pycontain-init -- COMMAND [ARG...]\n");
        return 125;
    }
    sigset_t all, old;
    sigfillset(&all);
    for (size_t i = 0; i < sizeof synchronous / sizeof *synchronous; i++)
        sigdelset(&all, synchronous[i]);
    /* Blocked signals reach a namespace's PID 1 even without handlers, and wait here for sigwaitinfo. */
    sigprocmask(SIG_BLOCK, &all, &old);
    pid_t child = fork();
    if (child < 0) {
        report(125, strerror(errno), argv[2]);
        return 125;
    }
    if (child == 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        fcntl(ERROR_FD, F_SETFD, FD_CLOEXEC);
        execvp(argv[2], argv + 2);
        int code = errno == ENOENT ? 127 : 126;
        report(code, strerror(errno), argv[2]);
        _exit(code);
    }
    close(ERROR_FD);
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
