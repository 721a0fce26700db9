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
 *   pycontain-init --exec [OPTION...] -- COMMAND [ARG...]
 *
 * exec's whole path for the command line (pycontain.execjoin), which executes this sealed copy in its own
 * place instead of forking Python: see exec_main below. The environment is the command's.
 *
 *   pycontain-init [--fd=N] --finish [OPTION...] -- COMMAND [ARG...]
 *
 * The last steps of a container's first process (pycontain.process.create): executed by it once its
 * namespaces, root filesystem and terminal are in place, it drops to the command's privileges as
 * pycontain.process.finish_and_exec does and executes the command (with --init=FD, this program again
 * from its sealed copy FD, as PID 1 above it). See finish_main below. The environment is the command's.
 *
 * Built static by pycontain.init (with gcc), so it runs on any root filesystem.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int exec_main(int argc, char **argv);
int finish_main(char **argv);

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
    /* Our execve made us dumpable again: the child, the first process the container sees, holds the
     * channel until its own execve, and a process of the container with the same capabilities could
     * ptrace it and send pycontain what it likes. Not dumpable, only CAP_SYS_PTRACE reaches it. A
     * seccomp profile may refuse prctl (the filter is in place already): pycontain still takes only a
     * child of its own as the command, so that is a defence less, not a hole. */
    (void)prctl(PR_SET_DUMPABLE, 0L, 0L, 0L, 0L);
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
    fprintf(stderr, "usage: pycontain-init [--fd=N] [--join [--tty] | --exec OPTION...] -- COMMAND [ARG...]\n");
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
    if (!joining && i < argc && strcmp(argv[i], "--exec") == 0)
        return exec_main(argc - i - 1, argv + i + 1);
    if (!joining && i < argc && strcmp(argv[i], "--finish") == 0)
        return finish_main(argv + i + 1);
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

/* ---- --exec: the command line's exec, joined and dropped to the command's privileges here -------------
 *
 * pycontain (pycontain.execjoin) has checked the container, opened what must be opened from the host's
 * view (the namespaces of its PID 1, the cgroup files, /dev/null) and resolved the security settings
 * (capability sets, rlimits, no_new_privs, the compiled seccomp program), and executed this sealed copy
 * in its own place with the command's environment. Three processes, as exec's Python path has:
 *
 *   relay (this one)   never joins anything: outside the container, nothing inside can see, signal or
 *     │                ptrace it. Relays stdio through pipes (no descriptor of ours reaches the
 *     │                container), forwards signals to the command, exits with its status.
 *     └─fork─▶ joiner  invisible too (outside the pid namespace): joins the cgroup and the namespaces
 *                │     (pid only for its children; mount last but one: root and cwd the container's),
 *                │     resolves the user in the container's /etc/passwd, drops every privilege down to
 *                │     the seccomp filter, exactly as pycontain.process.finish_and_exec does.
 *                └─clone(CLONE_PARENT)─▶ command: the first process the container can see, confined
 *                                        from its first instruction; setsid, execve. Our child.
 *
 * The joiner sends the command's pid (P<pid>) or its failure (E<status>\t<message>) on a SOCK_SEQPACKET
 * channel, as pycontain's own channel does; the command reports a failed execve there too.
 *
 * Options (numbers in decimal):
 *   --ns=FD            a namespace to join, in the order given (pycontain orders them)
 *   --cgroup=FD        a cgroup's tasks or cgroup.procs file: "0" written to it moves the joiner
 *   --null=FD          /dev/null for the command's stdin (without --stdin)
 *   --stdin            relay our stdin to the command's
 *   --user=SPEC        UID[:GID] with numbers or names (the container's /etc/passwd and /etc/group)
 *   --group=GID        an additional group (repeated)
 *   --umask=MASK  --cwd=DIR
 *   --caps=BND,PERM,EFF,INH,AMB  --exact-caps  --last-cap=N  --nnp
 *   --rlimit=RES,SOFT,HARD,SPEC  (SPEC: the --ulimit text, for the error)
 *   --seccomp=FD,OFFSET  --seccomp-flags=FLAGS   the BPF program: FD's bytes from OFFSET to its end
 *   --seccomp-early              loaded before setuid (no no_new_privs: it needs CAP_SYS_ADMIN then)
 *   --userns=FD,UID,GID,DENIED   the container's user namespace: joined first when it owns the mount
 *                                namespace (rootless), else last; then UID/GID (its root's, or its lowest
 *                                mapped ids) taken; DENIED 1: setgroups is denied there
 *   --crash-when-started         SIGKILL ourselves once the command runs (PYCONTAIN_CRASH_AT=exec-started:
 *                                the tests' proof that a killed exec leaves nothing behind)
 * and, for --finish only:
 *   --init=FD                    execute this program's sealed copy FD as PID 1 above the command
 */
#include <grp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>

extern char **environ;

/* The kernel's ABI, spelled out: the linux/ headers are not there when it is built with musl. */
struct cap_header {
    unsigned version;
    int pid;
};
struct cap_data {
    unsigned effective, permitted, inheritable;
};
#define CAPABILITY_VERSION_3 0x20080522
struct bpf_insn {
    unsigned short code;
    unsigned char jt, jf;
    unsigned k;
};
struct bpf_prog {
    unsigned short len;
    struct bpf_insn *filter;
};
#define BPF_MAXINSNS 4096
#define SECCOMP_MODE_FILTER 2
#define SECCOMP_SET_MODE_FILTER 1
#ifndef SYS_close_range
#define SYS_close_range 436
#endif

/* Groups a process may hold: the kernel's NGROUPS_MAX (an image may list a user in more than a few). */
#define MAX_GROUPS 65536

struct rlim {
    int resource;
    unsigned long long soft, hard;
    const char *spec;
};

static struct {
    int ns[16], n_ns, cgroup[16], n_cgroup, null_fd, relay_stdin;
    const char *user, *cwd;
    int n_groups; /* in extra_groups */
    long umask;
    unsigned long long caps[5]; /* bounding, permitted, effective, inheritable, ambient */
    int exact_caps, last_cap, nnp;
    struct rlim rlimits[16];
    int n_rlimits;
    int seccomp_fd, seccomp_early, crash_when_started;
    int userns_fd, groups_denied; /* the container's user namespace, if not ours */
    int init_fd;                  /* --finish --init: our sealed copy */
    uid_t userns_uid;
    gid_t userns_gid;
    long long seccomp_offset;
    unsigned seccomp_flags;
    struct bpf_insn *program;
    unsigned short program_len;
} opt = {.null_fd = -1, .umask = -1, .seccomp_fd = -1, .last_cap = 40, .userns_fd = -1, .init_fd = -1};
/* --group (zero-initialised, out of opt: a list this long would be stored in the program file) */
static gid_t extra_groups[MAX_GROUPS];

/* The signals the relay forwards to the command (pycontain.process.FORWARDED_SIGNALS), and those of them
 * that pycontain's caller had ignored (a mask of 1 << signal). */
static const int forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGCONT};
static int ignored;

/* The joiner's channel end (3 once it has set its descriptors up). */
static int chan = -1;

static void send_msg(const char *msg) {
    if (send(chan, msg, strlen(msg), MSG_NOSIGNAL) < 0)
        fprintf(stderr, "pycontain: %s\n", msg[0] == 'E' && strchr(msg, '\t') ? strchr(msg, '\t') + 1 : msg);
}

/* The joiner's (or the command's) failure: one line to pycontain's user, and exit with its status. */
__attribute__((format(printf, 2, 3), noreturn)) static void die(int code, const char *fmt, ...) {
    char msg[1024];
    int n = snprintf(msg, sizeof msg, "E%d\t", code);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    va_end(ap);
    send_msg(msg);
    _exit(code);
}

/* --finish: a container's first process, whose stderr is the container's: every error goes on the channel. */
static int finishing;

/* The relay's own errors, before any joiner exists (--finish: the process's own, on the channel). */
__attribute__((format(printf, 1, 2), noreturn)) static void fatal(const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (finishing)
        die(125, "%s", msg);
    fprintf(stderr, "pycontain: %s\n", msg);
    exit(125);
}

/* A whole decimal number in [0, max], else -1 (ours: the caller says what was wrong). */
static int parse_num(const char *s, unsigned long long max, unsigned long long *out) {
    if (!*s)
        return -1;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9')
            return -1;
    errno = 0;
    unsigned long long v = strtoull(s, NULL, 10);
    if (errno || v > max)
        return -1;
    *out = v;
    return 0;
}

static unsigned long long num(const char *s, unsigned long long max, const char *what) {
    unsigned long long v;
    if (parse_num(s, max, &v) < 0)
        fatal("pycontain-init --exec: bad %s %s", what, s);
    return v;
}

/* Split "A,B,C" in place into at most n fields; returns how many. */
static int fields(char *s, char sep, char **out, int n) {
    int k = 0;
    out[k++] = s;
    for (char *p = s; *p && k < n; p++)
        if (*p == sep) {
            *p = 0;
            out[k++] = p + 1;
        }
    return k;
}

static void add_group(gid_t *list, int *n, gid_t g) {
    for (int i = 0; i < *n; i++)
        if (list[i] == g)
            return;
    if (*n >= MAX_GROUPS)
        die(125, "more than %d additional groups", MAX_GROUPS);
    list[(*n)++] = g;
}

static void parse_options(char **argv, char ***cmd) {
    for (; *argv && strcmp(*argv, "--") != 0; argv++) {
        /* (a copy: ps shows our command line as given) */
        char *a = strdup(*argv), *v = a ? strchr(a, '=') : NULL, *f[5];
        if (!a)
            fatal("out of memory");
        if (v)
            *v++ = 0;
        if (!strcmp(a, "--ns") && v && opt.n_ns < 16)
            opt.ns[opt.n_ns++] = (int)num(v, 1 << 20, "descriptor");
        else if (!strcmp(a, "--cgroup") && v && opt.n_cgroup < 16)
            opt.cgroup[opt.n_cgroup++] = (int)num(v, 1 << 20, "descriptor");
        else if (!strcmp(a, "--null") && v)
            opt.null_fd = (int)num(v, 1 << 20, "descriptor");
        else if (!strcmp(a, "--stdin") && !v)
            opt.relay_stdin = 1;
        else if (!strcmp(a, "--user") && v)
            opt.user = v;
        else if (!strcmp(a, "--group") && v)
            add_group(extra_groups, &opt.n_groups, (gid_t)num(v, 0xfffffffeULL, "group"));
        else if (!strcmp(a, "--umask") && v)
            opt.umask = (long)num(v, 07777, "umask");
        else if (!strcmp(a, "--cwd") && v)
            opt.cwd = v;
        else if (!strcmp(a, "--caps") && v && fields(v, ',', f, 5) == 5)
            for (int i = 0; i < 5; i++)
                opt.caps[i] = num(f[i], ~0ULL, "capability set");
        else if (!strcmp(a, "--exact-caps") && !v)
            opt.exact_caps = 1;
        else if (!strcmp(a, "--last-cap") && v)
            opt.last_cap = (int)num(v, 63, "capability");
        else if (!strcmp(a, "--nnp") && !v)
            opt.nnp = 1;
        else if (!strcmp(a, "--rlimit") && v && opt.n_rlimits < 16 && fields(v, ',', f, 4) == 4) {
            struct rlim *r = &opt.rlimits[opt.n_rlimits++];
            r->resource = (int)num(f[0], 64, "rlimit");
            r->soft = num(f[1], ~0ULL, "rlimit");
            r->hard = num(f[2], ~0ULL, "rlimit");
            r->spec = f[3];
        } else if (!strcmp(a, "--seccomp") && v && fields(v, ',', f, 2) == 2) {
            opt.seccomp_fd = (int)num(f[0], 1 << 20, "descriptor");
            opt.seccomp_offset = (long long)num(f[1], 1ULL << 40, "offset");
        } else if (!strcmp(a, "--seccomp-flags") && v)
            opt.seccomp_flags = (unsigned)num(v, 0xffffffffULL, "seccomp flags");
        else if (!strcmp(a, "--seccomp-early") && !v)
            opt.seccomp_early = 1;
        else if (!strcmp(a, "--userns") && v && fields(v, ',', f, 4) == 4) {
            opt.userns_fd = (int)num(f[0], 1 << 20, "descriptor");
            opt.userns_uid = (uid_t)num(f[1], 0xfffffffeULL, "user id");
            opt.userns_gid = (gid_t)num(f[2], 0xfffffffeULL, "group id");
            opt.groups_denied = (int)num(f[3], 1, "setgroups flag");
        } else if (!strcmp(a, "--crash-when-started") && !v)
            opt.crash_when_started = 1;
        else if (!strcmp(a, "--init") && v && finishing)
            opt.init_fd = (int)num(v, 1 << 20, "descriptor");
        else
            fatal("pycontain-init --exec: unknown option %s", a);
    }
    if (!*argv || !argv[1])
        fatal("pycontain-init --exec: no command after --");
    *cmd = argv + 1;
}

/* The seccomp program, read by the relay while the host's files are its own. */
static void read_program(void) {
    struct stat st;
    if (fstat(opt.seccomp_fd, &st) < 0)
        fatal("cannot read the seccomp program: %s", strerror(errno));
    long long len = st.st_size - opt.seccomp_offset;
    if (len <= 0 || len % 8 || len / 8 > BPF_MAXINSNS)
        fatal("the seccomp program is not a whole BPF program (%lld bytes)", len);
    opt.program = malloc((size_t)len);
    if (!opt.program)
        fatal("cannot read the seccomp program: out of memory");
    for (long long got = 0; got < len;) {
        ssize_t n = pread(opt.seccomp_fd, (char *)opt.program + got, (size_t)(len - got), opt.seccomp_offset + got);
        if (n <= 0)
            fatal("cannot read the seccomp program: %s", n < 0 ? strerror(errno) : "cut short");
        got += n;
    }
    opt.program_len = (unsigned short)(len / 8);
    close(opt.seccomp_fd);
}

/* -- the joiner -------------------------------------------------------------------------------------- */

/* The most of a database read (pycontain.users.MAX_DB): read as root, bound by no limit of the container
 * but its cgroup's, and a sparse file of a terabyte costs the image nothing. */
#define MAX_DB (64 << 20)

/* The lines of a database in the container (/etc/passwd, /etc/group), split on ':' into at most 8
 * fields; calls fn for each until it returns nonzero. A missing or unreadable file has no lines (as
 * pycontain.users reads them); not a regular file (a FIFO would block us): none either. */
static int each_entry(const char *path, int (*fn)(char **f, int n, void *arg), void *arg) {
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return 0;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return 0;
    }
    /* Read whole (at most MAX_DB: the file may grow while read), then split: no line is bigger than that. */
    size_t cap = st.st_size < MAX_DB ? (size_t)st.st_size + 1 : MAX_DB + 1, len = 0;
    char *data = malloc(cap + 1);
    if (!data)
        die(125, "out of memory");
    ssize_t n;
    while ((n = read(fd, data + len, cap - len)) > 0)
        if ((len += (size_t)n) == cap) {
            if (cap > MAX_DB)
                die(125, "the container's %s is larger than %d MiB", path, MAX_DB >> 20);
            cap = cap * 2 < MAX_DB ? cap * 2 : MAX_DB + 1;
            if (!(data = realloc(data, cap + 1)))
                die(125, "out of memory");
        }
    close(fd);
    if (n < 0) {
        free(data);
        return 0;
    }
    data[len] = 0;
    int found = 0;
    for (char *line = data, *next; !found && line < data + len; line = next) {
        char *nl = memchr(line, '\n', (size_t)(data + len - line)), *end = nl ? nl : data + len;
        next = nl ? nl + 1 : data + len;
        *end = 0;
        if (end > line && end[-1] == '\r') /* a file with CRLF endings (as Go's line scanner, runc's) */
            end[-1] = 0;
        if (!*line || line[0] == '#')
            continue;
        char *f[8];
        int nf = fields(line, ':', f, 8);
        found = fn(f, nf, arg);
    }
    free(data);
    return found;
}

struct user {
    const char *want;        /* the name or number looked for */
    const char *name, *home; /* whole, however long the image's entry: a prefix could be another user's */
    int named;               /* an entry was found */
    unsigned long long uid, gid;
    int have_gid;
    gid_t groups[MAX_GROUPS];
    int n_groups;
};

static char *copy(const char *s) {
    char *c = strdup(s);
    if (!c)
        die(125, "out of memory");
    return c;
}

static unsigned long long db_num(const char *s, const char *path) {
    unsigned long long v;
    if (parse_num(s, 0xfffffffeULL, &v) < 0)
        die(125, "invalid entry in the container's %s: %s is not an id", path, s);
    return v;
}

static int passwd_by_uid(char **f, int n, void *arg) {
    struct user *u = arg;
    if (n < 6 || strcmp(f[2], u->want) != 0)
        return 0;
    u->name = copy(f[0]);
    u->gid = db_num(f[3], "/etc/passwd");
    u->home = copy(*f[5] ? f[5] : "/");
    return u->named = u->have_gid = 1;
}

static int passwd_by_name(char **f, int n, void *arg) {
    struct user *u = arg;
    if (n < 6 || strcmp(f[0], u->want) != 0)
        return 0;
    u->name = copy(f[0]);
    u->uid = db_num(f[2], "/etc/passwd");
    u->gid = db_num(f[3], "/etc/passwd");
    u->home = copy(*f[5] ? f[5] : "/");
    return u->named = u->have_gid = 1;
}

static int group_by_name(char **f, int n, void *arg) {
    struct user *u = arg;
    if (n < 3 || strcmp(f[0], u->want) != 0)
        return 0;
    u->gid = db_num(f[2], "/etc/group");
    return 1;
}

static int is_number(const char *s) {
    unsigned long long v;
    return parse_num(s, ~0ULL, &v) == 0;
}


static int listed_member(char **f, int n, void *arg) {
    struct user *u = arg;
    if (n < 4 || !is_number(f[2]))
        return 0;
    char *saveptr = NULL;
    for (char *m = strtok_r(f[3], ",", &saveptr); m; m = strtok_r(NULL, ",", &saveptr))
        if (strcmp(m, u->name) == 0) {
            unsigned long long g;
            if (parse_num(f[2], 0xfffffffeULL, &g) == 0)
                add_group(u->groups, &u->n_groups, (gid_t)g);
            break;
        }
    return 0;
}

/* --user resolved as pycontain.users.resolve does, in the container's root. */
static void resolve_user(const char *spec, struct user *u) {
    char *buf = copy(spec && *spec ? spec : "0");
    char *colon = strchr(buf, ':'), *group = colon ? colon + 1 : NULL;
    if (colon)
        *colon = 0;
    memset(u, 0, sizeof *u);
    u->home = "/";
    u->want = buf;
    if (is_number(buf)) {
        unsigned long long uid;
        if (parse_num(buf, 0xfffffffeULL, &uid) < 0)
            die(125, "user id %s is out of range", buf);
        u->uid = uid;
        each_entry("/etc/passwd", passwd_by_uid, u);
        if (uid == 0 && !u->named)
            u->home = "/root";
    } else if (!each_entry("/etc/passwd", passwd_by_name, u))
        die(125, "unable to find user '%s': no matching entries in the container's /etc/passwd (use a numeric UID[:GID])",
            buf);
    if (group && *group) {
        if (is_number(group)) {
            if (parse_num(group, 0xfffffffeULL, &u->gid) < 0)
                die(125, "group id %s is out of range", group);
        } else {
            u->want = group;
            if (!each_entry("/etc/group", group_by_name, u))
                die(125, "unable to find group '%s': no matching entries in the container's /etc/group (use a numeric GID)",
                    group);
        }
        u->have_gid = 1;
    }
    if (!u->have_gid)
        u->gid = u->uid;
    /* Supplementary groups are the memberships /etc/group lists, not the primary group (runc's rule). */
    if (u->named && !(group && *group))
        each_entry("/etc/group", listed_member, u);
}

static void mkdirs(char *path) {
    for (char *p = path + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(path, 0755) < 0 && errno != EEXIST)
                die(125, "cannot make working directory %s: %s", path, strerror(errno));
            *p = '/';
        }
    if (mkdir(path, 0755) < 0 && errno != EEXIST)
        die(125, "cannot make working directory %s: %s", path, strerror(errno));
}

static void checked_prctl(const char *what, int option, unsigned long a2, unsigned long a3) {
    if (prctl(option, a2, a3, 0L, 0L) < 0)
        die(125, "%s: %s", what, strerror(errno));
}

static void load_seccomp(void) {
    struct bpf_prog prog = {.len = opt.program_len, .filter = opt.program};
    long r = opt.seccomp_flags ? syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, opt.seccomp_flags, &prog)
                               : prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0L, 0L);
    if (r < 0 && errno == ENOSYS && opt.seccomp_flags)
        die(125, "seccomp flags are not supported on this machine: remove linux.seccomp.flags");
    if (r < 0)
        die(125, "cannot load the seccomp filter: %s", strerror(errno));
}

/* Still root: rlimits, the bounding set, keep-caps; the filter when no_new_privs is off. */
static void before_setuid(void) {
    for (int i = 0; i < opt.n_rlimits; i++) {
        struct rlim *r = &opt.rlimits[i];
        struct rlimit lim = {.rlim_cur = r->soft, .rlim_max = r->hard};
        if (setrlimit(r->resource, &lim) < 0)
            die(125, "cannot set --ulimit %s: %s (pycontain's own hard limit is the most it can give without "
                     "CAP_SYS_RESOURCE)", r->spec, strerror(errno));
    }
    for (int cap = 0; cap <= opt.last_cap; cap++) {
        if (opt.caps[0] >> cap & 1)
            continue;
        int r = prctl(PR_CAPBSET_READ, cap, 0L, 0L, 0L);
        if (r < 0)
            die(125, "PR_CAPBSET: %s", strerror(errno));
        if (r)
            checked_prctl("PR_CAPBSET", PR_CAPBSET_DROP, (unsigned long)cap, 0);
    }
    checked_prctl("PR_SET_KEEPCAPS", PR_SET_KEEPCAPS, 1, 0);
    if (opt.seccomp_early && opt.program)
        load_seccomp();
}

/* After setuid: permitted, effective and inheritable exactly; the ambient set cleared, or OCI's. */
static void after_setuid(uid_t uid) {
    unsigned long long known = opt.last_cap >= 63 ? ~0ULL : (1ULL << (opt.last_cap + 1)) - 1;
    unsigned long long eff = (uid == 0 || opt.exact_caps) ? opt.caps[2] : 0;
    unsigned long long sets[3] = {eff & known, opt.caps[1] & known, opt.caps[3] & known};
    struct cap_header hdr = {.version = CAPABILITY_VERSION_3, .pid = 0};
    struct cap_data data[2];
    for (int w = 0; w < 2; w++) {
        data[w].effective = (unsigned)(sets[0] >> (32 * w));
        data[w].permitted = (unsigned)(sets[1] >> (32 * w));
        data[w].inheritable = (unsigned)(sets[2] >> (32 * w));
    }
    if (syscall(SYS_capset, &hdr, data) < 0)
        die(125, "capset: %s", strerror(errno));
    checked_prctl("PR_SET_KEEPCAPS", PR_SET_KEEPCAPS, 0, 0);
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0L, 0L, 0L) < 0 && (errno != EINVAL || opt.caps[4]))
        die(125, "prctl(PR_CAP_AMBIENT): %s", strerror(errno));
    for (int cap = 0; cap <= opt.last_cap; cap++)
        if (opt.caps[4] >> cap & 1)
            checked_prctl("prctl(PR_CAP_AMBIENT_RAISE)", PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, (unsigned long)cap);
}

/* The command's path as pycontain.process's _find_executable finds it (after setuid: as the user). */
static const char *find_executable(const char *name, char *buf, size_t size) {
    if (strchr(name, '/'))
        return name;
    const char *path = getenv("PATH");
    path = path ? path : "";
    for (int pass = 0; pass < 2; pass++) {
        for (const char *d = path;; d++) {
            const char *end = strchrnul(d, ':');
            int len = (int)(end - d);
            const char *dir = len ? d : ".";
            int dlen = len ? len : 1;
            snprintf(buf, size, "%.*s%s%s", dlen, dir, dir[dlen - 1] == '/' ? "" : "/", name);
            struct stat st;
            if (pass == 0 && stat(buf, &st) == 0 && S_ISREG(st.st_mode) && access(buf, X_OK) == 0)
                return buf;
            if (pass == 1 && lstat(buf, &st) == 0 && stat(buf, &st) == 0)
                die(126, "cannot execute '%s': %s is not an executable file", name, buf);
            if (!*end)
                break;
            d = end;
        }
    }
    die(127, "executable file not found in $PATH: '%s' (PATH=%s)", name, path);
}

static void put_env_home(const char *home) {
    if (!getenv("HOME") && setenv("HOME", home, 1) < 0)
        die(125, "setenv: %s", strerror(errno));
}

static void join_ns(int fd) {
    if (setns(fd, 0) < 0)
        die(125, "cannot join the container's namespaces (has it stopped?): %s", strerror(errno));
    close(fd);
}

#define NS_GET_USERNS 0xb701 /* _IO(0xb7, 0x1) */
#define NS_GET_NSTYPE 0xb703 /* _IO(0xb7, 0x3) */

/* Whether the user namespace userns_fd owns the mount namespace we join: a rootless container's
 * namespaces are its user namespace's, joined first to hold capabilities over them; a remapped one's
 * are the host's, and its user namespace is joined last (its capabilities would not reach them). */
static int owns_mount_ns(int userns_fd) {
    struct stat user, owner;
    for (int i = 0; i < opt.n_ns; i++) {
        if (ioctl(opt.ns[i], NS_GET_NSTYPE) != CLONE_NEWNS)
            continue;
        int fd = ioctl(opt.ns[i], NS_GET_USERNS);
        if (fd < 0)
            die(125, "cannot read the owner of the container's mount namespace: %s", strerror(errno));
        int same = fstat(fd, &owner) == 0 && fstat(userns_fd, &user) == 0 && owner.st_ino == user.st_ino &&
                   owner.st_dev == user.st_dev;
        close(fd);
        return same;
    }
    return 0;
}

/* Whether setgroups is denied in our user namespace (unprivileged mappings): the joiner is told (it
 * cannot read its own /proc/self, outside the container's pid namespace); --finish reads it, as
 * pycontain.userns.setgroups_denied does, when setgroups fails. */
static int groups_denied(void) {
    if (!finishing)
        return opt.groups_denied;
    char buf[16] = "";
    int fd = open("/proc/self/setgroups", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        die(125, "cannot read /proc/self/setgroups: %s", strerror(errno));
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    return n >= 4 && strncmp(buf, "deny", 4) == 0;
}

/* The command's user (resolved in the container's /etc/passwd and /etc/group), groups, umask, HOME,
 * working directory, rlimits, bounding set and capabilities: pycontain.process.finish_and_exec's steps
 * down to setuid and the capability sets, in its order. */
static void drop_privileges(void) {
    static struct user u; /* (static: its group list is too big for a stack frame) */
    resolve_user(opt.user, &u);
    for (int i = 0; i < opt.n_groups; i++)
        add_group(u.groups, &u.n_groups, extra_groups[i]);
    if (opt.umask >= 0)
        umask((mode_t)opt.umask);
    put_env_home(u.home);
    const char *cwd = opt.cwd ? opt.cwd : "/";
    if (chdir(cwd) < 0) {
        if (errno != ENOENT)
            die(125, "cannot enter working directory %s: %s", cwd, strerror(errno));
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s", cwd);
        mkdirs(tmp);
        if (chdir(cwd) < 0)
            die(125, "cannot enter working directory %s: %s", cwd, strerror(errno));
    }
    /* A working directory inherited through a leaked host fd shows up as "(unreachable)" (CVE-2024-21626). */
    char here[4096];
    if (!getcwd(here, sizeof here) || here[0] != '/')
        die(125, "working directory '%s' is outside the container", cwd);
    before_setuid();
    /* (a rootless user namespace denies setgroups, as unprivileged mappings need: the groups stay) */
    if (setgroups((size_t)u.n_groups, u.groups) < 0 && !(errno == EPERM && groups_denied()))
        die(125, "setgroups: %s", strerror(errno));
    if (setgid((gid_t)u.gid) < 0)
        die(125, "setgid: %s", strerror(errno));
    if (setuid((uid_t)u.uid) < 0)
        die(125, "setuid: %s", strerror(errno));
    after_setuid((uid_t)u.uid);
}

/* The very last steps before execve: ignored signals back to their defaults, no_new_privs, seccomp. */
static void seal(void) {
    /* Ignored signals survive execve (Python ignores these two): the command gets the defaults. */
    if (signal(SIGPIPE, SIG_DFL) == SIG_ERR || signal(SIGXFSZ, SIG_DFL) == SIG_ERR)
        die(125, "signal: %s", strerror(errno));
    if (opt.nnp)
        checked_prctl("PR_SET_NO_NEW_PRIVS", PR_SET_NO_NEW_PRIVS, 1, 0);
    if (opt.program && !opt.seccomp_early)
        load_seccomp();
}

/* The joiner: never returns. Descriptors: 0-2 the relay's pipes once set up, chan the channel. */
__attribute__((noreturn)) static void joiner(char **cmd, int in_r, int out_w, int err_w, const sigset_t *old) {
    /* stdio first: from here on, nothing of ours above 2 but the channel and the files to join. */
    if (dup2(in_r >= 0 ? in_r : opt.null_fd, 0) < 0 || dup2(out_w, 1) < 0 || dup2(err_w, 2) < 0)
        die(125, "cannot set up stdio: %s", strerror(errno));
    for (int i = 0; i < opt.n_cgroup; i++) {
        if (write(opt.cgroup[i], "0", 1) != 1)
            die(125, "cannot join the container's cgroup: %s", strerror(errno));
        close(opt.cgroup[i]);
    }
    int user_first = opt.userns_fd >= 0 && owns_mount_ns(opt.userns_fd);
    if (user_first)
        join_ns(opt.userns_fd);
    for (int i = 0; i < opt.n_ns; i++)
        join_ns(opt.ns[i]);
    if (opt.userns_fd >= 0) {
        if (!user_first)
            join_ns(opt.userns_fd);
        /* Until now we hold the host's ids, which owner checks on host files would honour. */
        if (setgroups(0, NULL) < 0 && !(errno == EPERM && opt.groups_denied))
            die(125, "setgroups: %s", strerror(errno));
        if (setresgid(opt.userns_gid, opt.userns_gid, opt.userns_gid) < 0 ||
            setresuid(opt.userns_uid, opt.userns_uid, opt.userns_uid) < 0)
            die(125, "cannot become the user namespace's root: %s", strerror(errno));
    }
    /* Root and working directory are the container's now (the mount namespace's). */
    drop_privileges();
    /* No host descriptor survives: 0-2 (pipes) and the channel, moved to 3, close-on-exec. */
    if (chan != 3) {
        if (dup3(chan, 3, O_CLOEXEC) < 0)
            die(125, "dup3: %s", strerror(errno));
        chan = 3;
    }
    if (syscall(SYS_close_range, 4U, ~0U, 0U) < 0)
        for (int fd = 4; fd < 65536; fd++)
            close(fd);
    char buf[4096];
    const char *path = find_executable(cmd[0], buf, sizeof buf);
    seal();
    /* Born in the container's pid namespace, confined already, and the relay's child. */
    long pid = syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0L, 0L, 0L, 0L);
    if (pid < 0)
        die(125, "cannot start the command: %s", strerror(errno));
    if (pid == 0) {
        if (setsid() < 0)
            die(125, "setsid: %s", strerror(errno));
        for (int sig = 1; sig < 32; sig++)
            if (ignored >> sig & 1 && signal(sig, SIG_IGN) == SIG_ERR)
                die(125, "signal: %s", strerror(errno));
        if (sigprocmask(SIG_SETMASK, old, NULL) < 0)
            die(125, "sigprocmask: %s", strerror(errno));
        execve(path, cmd, environ);
        int code = errno == ENOENT ? 127 : 126;
        die(code, "cannot execute '%s': %s", cmd[0], strerror(errno));
    }
    char msg[32];
    snprintf(msg, sizeof msg, "P%ld", pid);
    _exit(send(chan, msg, strlen(msg), MSG_NOSIGNAL) < 0 ? 125 : 0);
}

/* -- the relay --------------------------------------------------------------------------------------- */


/* Write all of data to fd (ours: it may be non-blocking); -1 once its reader is gone. */
static int write_all(int fd, const char *data, size_t len) {
    while (len) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            poll(&p, 1, -1);
            continue;
        }
        if (n < 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* One read from an output pipe to its destination; 0 once it has nothing more (closed: *fd = -1). */
static int copy_out(int *fd, int dest) {
    char buf[65536];
    ssize_t n = read(*fd, buf, sizeof buf);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    /* the end, or our reader gone: closing ours gives the command its SIGPIPE, as if it wrote there */
    if (n <= 0 || write_all(dest, buf, (size_t)n) < 0) {
        close(*fd);
        *fd = -1;
        return 0;
    }
    return 1;
}

/* Whether pid is a child of ours (waitid, without reaping it). */
static int is_our_child(pid_t pid) {
    siginfo_t info;
    return pid > 0 && waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0;
}

int exec_main(int argc, char **argv) {
    (void)argc;
    char **cmd;
    /* Nothing may ptrace us or open our /proc files while we hold the host's descriptors. */
    if (prctl(PR_SET_DUMPABLE, 0L, 0L, 0L, 0L) < 0 || prctl(PR_SET_NAME, "pycontain-exec", 0L, 0L, 0L) < 0)
        fatal("prctl: %s", strerror(errno));
    parse_options(argv, &cmd);
    if (opt.seccomp_fd >= 0)
        read_program();
    if (!opt.relay_stdin && opt.null_fd < 0)
        fatal("pycontain-init --exec: --null or --stdin is needed");
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) /* a reader gone is EPIPE to the relay, not its death */
        fatal("signal: %s", strerror(errno));
    sigset_t mask, old;
    sigemptyset(&mask);
    /* An ignored signal never reaches the signalfd (an ignored SIGCHLD even reaps the children): take
     * it, and give the command the disposition it inherited (ignored ones survive execve: a shell's
     * background job ignores SIGINT). */
    for (size_t i = 0; i <= sizeof forwarded / sizeof *forwarded; i++) {
        int sig = i < sizeof forwarded / sizeof *forwarded ? forwarded[i] : SIGCHLD;
        struct sigaction sa;
        if (sigaction(sig, NULL, &sa) < 0)
            fatal("sigaction: %s", strerror(errno));
        if (sa.sa_handler == SIG_IGN) {
            ignored |= 1 << sig;
            if (signal(sig, SIG_DFL) == SIG_ERR)
                fatal("signal: %s", strerror(errno));
        }
        sigaddset(&mask, sig);
    }
    if (sigprocmask(SIG_BLOCK, &mask, &old) < 0)
        fatal("sigprocmask: %s", strerror(errno));
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    int sp[2], outp[2], errp[2], inp[2] = {-1, -1};
    if (sfd < 0 || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0 || pipe2(outp, O_CLOEXEC) < 0 ||
        pipe2(errp, O_CLOEXEC) < 0 || (opt.relay_stdin && pipe2(inp, O_CLOEXEC) < 0))
        fatal("cannot set up exec's pipes: %s", strerror(errno));
    fflush(NULL);
    pid_t joiner_pid = fork();
    if (joiner_pid < 0)
        fatal("cannot fork: %s", strerror(errno));
    if (joiner_pid == 0) {
        chan = sp[1];
        joiner(cmd, inp[0], outp[1], errp[1], &old);
    }
    /* Ours from here: the host's view; the joiner had what it needed. */
    close(sp[1]);
    close(outp[1]);
    close(errp[1]);
    for (int i = 0; i < opt.n_ns; i++)
        close(opt.ns[i]);
    for (int i = 0; i < opt.n_cgroup; i++)
        close(opt.cgroup[i]);
    if (opt.userns_fd >= 0)
        close(opt.userns_fd);
    if (opt.null_fd >= 0)
        close(opt.null_fd);
    int in_w = inp[1], read_stdin = opt.relay_stdin;
    if (inp[0] >= 0) {
        close(inp[0]);
        /* a command that does not read must not stall its output */
        if (fcntl(in_w, F_SETFL, O_NONBLOCK) < 0)
            fatal("fcntl: %s", strerror(errno));
    }
    int out_r = outp[0], err_r = errp[0], chan_r = sp[0];
    pid_t cmd_pid = 0;
    int joiner_status = -1, cmd_status = -1, pending_signals = 0;
    char error[1024] = "", pending[65536];
    size_t pending_len = 0, pending_off = 0;
    int error_code = 0;
    for (;;) {
        int cmd_done = cmd_status >= 0 || (joiner_status >= 0 && chan_r < 0 && !cmd_pid);
        if (cmd_done && joiner_status >= 0 && chan_r < 0)
            break;
        struct pollfd p[6];
        int n = 0, i_sig = n++, i_chan = -1, i_out = -1, i_err = -1, i_in = -1, i_inw = -1;
        p[i_sig] = (struct pollfd){.fd = sfd, .events = POLLIN};
        if (chan_r >= 0)
            p[i_chan = n++] = (struct pollfd){.fd = chan_r, .events = POLLIN};
        if (out_r >= 0)
            p[i_out = n++] = (struct pollfd){.fd = out_r, .events = POLLIN};
        if (err_r >= 0)
            p[i_err = n++] = (struct pollfd){.fd = err_r, .events = POLLIN};
        if (read_stdin && pending_off == pending_len)
            p[i_in = n++] = (struct pollfd){.fd = 0, .events = POLLIN};
        if (in_w >= 0 && pending_off < pending_len)
            p[i_inw = n++] = (struct pollfd){.fd = in_w, .events = POLLOUT};
        if (poll(p, (nfds_t)n, -1) < 0) {
            if (errno == EINTR)
                continue;
            fatal("poll: %s", strerror(errno));
        }
        if (i_chan >= 0 && p[i_chan].revents) {
            char msg[1024];
            ssize_t len = recv(chan_r, msg, sizeof msg - 1, 0);
            if (len <= 0) {
                close(chan_r);
                chan_r = -1;
            } else {
                msg[len] = 0;
                /* Only a child of ours: the command's process, before its execve, holds the channel, and
                 * one inside with CAP_SYS_PTRACE could make it name any host process to forward to. */
                if (msg[0] == 'P' && !cmd_pid && is_our_child(atoi(msg + 1))) {
                    cmd_pid = atoi(msg + 1);
                    if (opt.crash_when_started)
                        kill(getpid(), SIGKILL);
                }
                else if (msg[0] == 'E' && !error_code && strchr(msg, '\t')) {
                    error_code = atoi(msg + 1);
                    snprintf(error, sizeof error, "%s", strchr(msg, '\t') + 1);
                }
            }
        }
        if (i_out >= 0 && p[i_out].revents)
            copy_out(&out_r, 1);
        if (i_err >= 0 && p[i_err].revents)
            copy_out(&err_r, 2);
        if (i_in >= 0 && p[i_in].revents) {
            ssize_t len = read(0, pending, sizeof pending);
            if (len < 0 && (errno == EAGAIN || errno == EINTR))
                len = -2;
            if (len >= 0 || len == -1) {
                pending_off = 0;
                pending_len = len > 0 ? (size_t)len : 0;
                if (len <= 0) { /* our stdin ended: so does the command's */
                    read_stdin = 0;
                    if (in_w >= 0)
                        close(in_w);
                    in_w = -1;
                }
            }
        }
        if (i_inw >= 0 && p[i_inw].revents) {
            ssize_t len = write(in_w, pending + pending_off, pending_len - pending_off);
            if (len > 0)
                pending_off += (size_t)len;
            else if (len < 0 && errno != EAGAIN && errno != EINTR) {
                /* the command closed its stdin: the rest is not wanted */
                pending_off = pending_len = 0;
                read_stdin = 0;
                close(in_w);
                in_w = -1;
            }
        }
        struct signalfd_siginfo si;
        while (read(sfd, &si, sizeof si) == sizeof si) {
            if (si.ssi_signo != SIGCHLD) {
                pending_signals |= 1 << si.ssi_signo;
                continue;
            }
            int status;
            pid_t pid;
            while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
                int code = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
                if (pid == joiner_pid)
                    joiner_status = code;
                else
                    cmd_status = code, cmd_pid = pid;
            }
        }
        if (pending_signals && cmd_pid > 0 && cmd_status < 0) {
            for (int sig = 1; sig < 32; sig++)
                if (pending_signals >> sig & 1)
                    kill(cmd_pid, sig);
            pending_signals = 0;
        }
    }
    /* The command is gone: what it left in the pipes still goes out (a process of its own it left behind
     * may hold them open: not waited for). */
    for (int *fd = &out_r; fd; fd = fd == &out_r ? &err_r : NULL)
        if (*fd >= 0 && fcntl(*fd, F_SETFL, O_NONBLOCK) == 0)
            while (*fd >= 0 && copy_out(fd, fd == &out_r ? 1 : 2))
                ;
    if (error_code) {
        fprintf(stderr, "pycontain: %s\n", error);
        return error_code;
    }
    if (cmd_status >= 0)
        return cmd_status;
    if (joiner_status != 0)
        fprintf(stderr, "pycontain: the process joining the container died before it started the command\n");
    return 125;
}

/* ---- --finish: the last steps of a container's first process --------------------------------------------
 *
 * pycontain.process.create's child has made the container (namespaces, root filesystem, masked paths, its
 * cgroup namespace, terminal and user namespace) and executed this sealed copy in its own place with the
 * command's environment: the channel at channel_fd (descriptors 3 up to it are passed on to the command),
 * the security settings pycontain.security.apply.prepare resolved as the options --exec takes (the seccomp
 * program from a descriptor). What pycontain.process.finish_and_exec does in Python, in its order: user,
 * groups, umask, HOME, working directory, rlimits, bounding set, setuid, capability sets, every other
 * descriptor closed, the command found in PATH, no_new_privs and the seccomp filter, execve. Its failures
 * go on the channel as the Python child's do (E<status>\t<message>), with the same statuses.
 */

/* An execve that failed, as pycontain.process.finish_and_exec says it (and with its statuses). */
__attribute__((noreturn)) static void exec_failed(const char *name) {
    if (errno == ENOENT)
        die(127, "cannot execute '%s': no such file (or its interpreter is missing)", name);
    if (errno == EACCES || errno == EPERM)
        die(126, "cannot execute '%s': permission denied", name);
    die(126, "cannot execute '%s': %s", name, strerror(errno));
}

int finish_main(char **argv) {
    char **cmd;
    finishing = 1;
    chan = channel_fd;
    /* Not dumpable while we hold the channel (see join): the command's execve makes it so again. */
    if (prctl(PR_SET_DUMPABLE, 0L, 0L, 0L, 0L) < 0 || prctl(PR_SET_NAME, "pycontain-start", 0L, 0L, 0L) < 0)
        die(125, "prctl: %s", strerror(errno));
    parse_options(argv, &cmd);
    if (opt.seccomp_fd >= 0)
        read_program();
    drop_privileges();
    /* No descriptor survives but 0-2, those passed on (below the channel) and, until the execve, the
     * channel and our sealed copy (moved just above it). */
    if (fcntl(chan, F_SETFD, FD_CLOEXEC) < 0)
        die(125, "fcntl: %s", strerror(errno));
    int first = chan + 1;
    if (opt.init_fd >= 0) {
        if (opt.init_fd != first && dup3(opt.init_fd, first, O_CLOEXEC) < 0)
            die(125, "dup3: %s", strerror(errno));
        opt.init_fd = first++;
    }
    if (syscall(SYS_close_range, (unsigned)first, ~0U, 0U) < 0)
        for (int fd = first; fd < 65536; fd++)
            close(fd);
    char buf[4096];
    const char *path = find_executable(cmd[0], buf, sizeof buf);
    seal();
    if (opt.init_fd < 0) {
        execve(path, cmd, environ);
        exec_failed(cmd[0]);
    }
    /* PID 1 above the command: this program again, as "pycontain-init [--fd=N] -- COMMAND..." (the
     * command line the container sees for its PID 1). */
    int n = 0;
    while (cmd[n])
        n++;
    char **args = calloc((size_t)n + 4, sizeof *args), fd_arg[32];
    if (!args)
        die(125, "out of memory");
    int k = 0;
    args[k++] = "pycontain-init";
    if (chan != 3) {
        snprintf(fd_arg, sizeof fd_arg, "--fd=%d", chan);
        args[k++] = fd_arg;
    }
    args[k++] = "--";
    memcpy(args + k, cmd, (size_t)(n + 1) * sizeof *cmd);
    fexecve(opt.init_fd, args, environ);
    exec_failed(cmd[0]); /* (as finish_and_exec names it: the copy takes the command's arguments) */
}
