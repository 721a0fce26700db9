"""The container's filesystem, built inside its new mount namespace: overlay, volumes, /proc, /sys, /dev,
then pivot_root with the old root detached.

Everything here runs in the container's first process after ``unshare(CLONE_NEWNS)``, so every mount
lives in the container's own mount namespace: the host never sees them, and they vanish with the
container's last process, whatever happens to pycontain.
"""

from __future__ import annotations

import errno
import os
import stat

from . import libc
from .errors import InvalidArgument, PycontainError
from .libc import escape_overlay

# typing.TYPE_CHECKING without importing typing; type checkers know the idiom.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from .config import ContainerConfig
    from .config_fields import Mount
    from .spec.model import OciDevice
    from .userns import IdMappings

_DEV_NODES = (  # name, major, minor
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
)
_DEV_LINKS = (
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
)
_NOSUID_NODEV_NOEXEC = libc.MS_NOSUID | libc.MS_NODEV | libc.MS_NOEXEC


def secure_join(root: str, path: str) -> str:
    """``root/path`` with every symlink on the way resolved *inside* root, never escaping it.

    A root filesystem is untrusted data: a ``/data -> /etc`` link in an image must not turn a volume
    mounted at /data into a mount over the host's /etc.
    """
    parts = [p for p in path.split("/") if p and p != "."]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            resolved.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            hops += 1
            if hops > 40:
                raise InvalidArgument(
                    f"too many levels of symbolic links under {path!r} in the root filesystem"
                )
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p and p != "."] + parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)


def mount_point(root: str, target: str) -> str:
    """``secure_join(root, target)`` for a mount, which may never cover the container's root itself: with
    ``data -> /`` in the image, ``-v DIR:/data`` would otherwise hide the whole image under DIR and make
    /proc, /sys and /dev in the host's DIR (runc refuses the same)."""
    dest = secure_join(root, target)
    if os.path.normpath(dest) == os.path.normpath(root):
        raise InvalidArgument(
            f"mount destination {target!r} resolves to the container's root directory (through a "
            "symbolic link in the image): a mount may not cover the root"
        )
    return dest


def _mkdirs(path: str) -> None:
    """``os.makedirs(path, 0o755, exist_ok=True)`` with one system call less where ``path`` exists, as the
    image's /proc, /sys and /dev do (makedirs stats the parent before each mkdir)."""
    try:
        os.mkdir(path, 0o755)
    except FileExistsError:
        if not os.path.isdir(path):
            raise
    except FileNotFoundError:
        os.makedirs(path, 0o755, exist_ok=True)


def mount_overlay(
    layers: list[str],
    container_dir: str,
    userns_fd: int | None = None,
    root_ids: tuple[int, int] = (0, 0),
    volatile: bool = False,
) -> str:
    """Mount the image's layers (lowest first) read-only under a writable layer kept in the container's
    directory: copy-on-write, so one image serves many containers.

    With a user namespace, each layer is first bound through an idmapped mount (its owners shifted into the
    namespace's range) and the writable layer belongs to the range's root (``root_ids`` on the host).

    ``volatile`` (a container removed when it exits, ``--rm``, as podman does for those): overlayfs skips
    every sync of the writable layer, above all the sync of the whole upper file system when the mount goes
    away with the container's last process, which its exit, and so the caller's wait, paid (1.4 ms on a
    quiet host here, several under other writers' load). Nothing of such a layer outlives the container,
    and a volatile layer is never mounted again (overlayfs refuses it after a crash)."""
    upper, work = os.path.join(container_dir, "upper"), os.path.join(container_dir, "work")
    for d in (upper, work):
        _mkdirs(d)
    if userns_fd is not None:
        os.chown(upper, *root_ids)
        shifted = []
        for i, layer in enumerate(layers):
            target = os.path.join(container_dir, "idmapped", str(i))
            _mkdirs(target)
            try:
                libc.idmapped_bind(layer, target, userns_fd)
            except OSError as e:
                raise PycontainError(
                    f"cannot shift the image layer {layer!r} into the user namespace: {e.strerror} "
                    "(idmapped mounts need Linux 5.12+ and a file system that supports them)"
                ) from None
            shifted.append(target)
        layers = shifted
    lower = ":".join(escape_overlay(layer) for layer in reversed(layers))  # overlayfs lists the top first
    data = f"lowerdir={lower},upperdir={escape_overlay(upper)},workdir={escape_overlay(work)}"
    from . import rootless

    if (
        rootless.active()
    ):  # trusted.* xattrs are root's: overlayfs keeps its own in user.* in a user namespace
        data += ",userxattr"
    try:
        # Over its own work directory: overlayfs holds that directory from here on, and the mount is seen
        # in the container's mount namespace only, so no directory of its own is made (and removed, on
        # ext4 a journalled rmdir, at every container's end).
        try:
            libc.mount("overlay", work, "overlay", 0, f"{data},volatile" if volatile else data)
        except OSError as e:
            if not (volatile and e.errno == errno.EINVAL):
                raise
            libc.mount("overlay", work, "overlay", 0, data)  # a kernel before 5.10: no volatile mounts
    except OSError as e:
        raise PycontainError(
            f"cannot mount the root filesystem {layers[-1]!r} with overlayfs: {e.strerror} "
            "(is the overlay module loaded? try 'modprobe overlay')"
        ) from None
    return work


def bind_console(slave_path: str) -> None:
    """After pivot_root: make /dev/console the container's own terminal."""
    try:
        libc.umount2("/dev/console", libc.MNT_DETACH)  # the /dev/null placeholder of docker-style containers
    except OSError:
        if not os.path.exists("/dev/console"):
            open("/dev/console", "a").close()
    libc.mount(slave_path, "/dev/console", None, libc.MS_BIND)


_PROPAGATION = {
    "private": libc.MS_PRIVATE,
    "rprivate": libc.MS_PRIVATE | libc.MS_REC,
    "slave": libc.MS_SLAVE,
    "rslave": libc.MS_SLAVE | libc.MS_REC,
    "shared": libc.MS_SHARED,
    "rshared": libc.MS_SHARED | libc.MS_REC,
    "unbindable": libc.MS_UNBINDABLE,
    "runbindable": libc.MS_UNBINDABLE | libc.MS_REC,
}


def bind_rootfs(path: str) -> str:
    """Use the root filesystem in place (OCI bundles): bind it onto itself so it is a mount point."""
    libc.mount(path, path, None, libc.MS_BIND | libc.MS_REC)
    return path


def _is_bind(m) -> bool:
    return m.fstype == "bind" or bool(m.flags & libc.MS_BIND)


def mount_oci(root: str, m, cgroup_procs: list[str]) -> None:
    """One mount of an OCI bundle, its options already translated by pycontain.spec."""
    dest = mount_point(root, m.target)
    if _is_bind(m):
        if not os.path.exists(m.source):
            raise PycontainError(f"mount source {m.source!r} for {m.target} does not exist")
        if os.path.isdir(m.source):
            _mkdirs(dest)
        elif not os.path.exists(dest):
            _mkdirs(os.path.dirname(dest))
            open(dest, "a").close()
        if m.id_mappings:
            _idmapped_bind(m, dest)
        else:
            libc.mount(m.source, dest, None, libc.MS_BIND | (libc.MS_REC if m.recursive else 0))
        rest = m.flags & ~(libc.MS_BIND | libc.MS_REC)
        if rest:  # bind mounts take their flags only on a remount
            libc.mount(None, dest, None, rest | libc.MS_BIND | libc.MS_REMOUNT)
    elif m.fstype == "sysfs":
        _mkdirs(dest)
        try:
            libc.mount(m.source or "sysfs", dest, "sysfs", m.flags, m.data or None)
        except PermissionError:
            # a user namespace that does not own the network namespace (rootless with --network host) may
            # not mount a sysfs: the host's, read-only, as runc does
            libc.mount("/sys", dest, None, libc.MS_BIND | libc.MS_REC)
            libc.mount(
                None, dest, None, libc.MS_BIND | libc.MS_REMOUNT | libc.MS_RDONLY | _NOSUID_NODEV_NOEXEC
            )
    elif m.fstype in ("cgroup", "cgroup2"):
        _mkdirs(dest)
        if not cgroup_view(dest, cgroup_procs, m.flags):
            # No cgroup of its own (rootless without delegation): the unified hierarchy as this namespace sees it.
            libc.mount("cgroup", dest, "cgroup2", m.flags | _NOSUID_NODEV_NOEXEC, None)
    else:
        data = m.data
        if m.fstype == "tmpfs":
            # A tmpfs over a directory of the image takes that directory's mode unless a mode= says
            # otherwise (runc's rule; the later mode= wins).
            try:
                data = f"mode={stat.S_IMODE(os.stat(dest).st_mode):04o}" + (f",{data}" if data else "")
            except FileNotFoundError:
                pass
        _mkdirs(dest)
        libc.mount(m.source or m.fstype, dest, m.fstype, m.flags, data or None)
    if m.attr_set or m.attr_clr:
        try:
            libc.mount_setattr(dest, m.attr_set, m.attr_clr)
        except OSError as e:
            raise PycontainError(
                f"cannot apply the recursive options of the mount on {m.target}: {os.strerror(e.errno or 0)} "
                "(mount_setattr needs Linux 5.12 or later)"
            ) from None
    for flag in m.propagation:
        libc.mount(None, dest, None, flag)


def _idmapped_bind(m, dest: str) -> None:
    """An OCI bind mount with uidMappings/gidMappings: the source's owners shifted through a user namespace
    made with those mappings (files on disk owned by containerID show as hostID), kept only while mounting."""
    from . import userns

    try:
        ns = userns.create(m.id_mappings)
    except OSError as e:
        raise PycontainError(
            f"cannot make the user namespace for the id-mapped mount on {m.target}: {e.strerror}"
        ) from None
    try:
        libc.idmapped_bind(m.source, dest, ns, m.recursive)
    except OSError as e:
        raise PycontainError(
            f"cannot make the id-mapped mount of {m.source} on {m.target}: {os.strerror(e.errno or 0)} (the file system "
            "must support id-mapped mounts, Linux 5.12 or later)"
        ) from None
    finally:
        os.close(ns)


_CGROUP_VIEW_FLAGS = libc.MS_RDONLY | _NOSUID_NODEV_NOEXEC


def cgroup_view(dest: str, procs_files: list[str], flags: int = _CGROUP_VIEW_FLAGS) -> bool:
    """The container's own cgroups at ``dest`` (its /sys/fs/cgroup), as runc shows them: with cgroup v2 the
    container's cgroup2 directory itself; with v1 (or hybrid) a tmpfs holding one directory per hierarchy
    (``memory``, ``cpu,cpuacct``, ...) onto which the container's directory in that hierarchy is bound.
    The container reads its limits there (a JVM or Go runtime sizes itself from them); with ``flags``
    holding MS_RDONLY it cannot change them. False, with nothing mounted, for a container with no cgroup.

    Runs before pivot_root, while ``procs_files`` (the host's paths of its cgroup.procs files) resolve."""
    dirs = [os.path.dirname(p) for p in procs_files]
    if not dirs:
        return False
    flags |= _NOSUID_NODEV_NOEXEC
    if len(dirs) == 1 and os.path.exists(os.path.join(dirs[0], "cgroup.controllers")):
        _bind_with_flags(dirs[0], dest, flags)
        return True
    libc.mount("tmpfs", dest, "tmpfs", _NOSUID_NODEV_NOEXEC, "mode=755")
    seen: dict[tuple[str, bool], os.stat_result] = {}
    for d in dirs:
        name = os.path.basename(_mount_point_of(d, seen))
        target = os.path.join(dest, name)
        os.mkdir(target, 0o755)
        _bind_with_flags(d, target, flags)
        for controller in name.split(","):  # co-mounted hierarchies: cpu -> cpu,cpuacct, as on the host
            if controller != name:
                os.symlink(name, os.path.join(dest, controller))
    libc.mount(None, dest, None, libc.MS_REMOUNT | flags, "mode=755")
    return True


def _mount_point_of(path: str, seen: dict[tuple[str, bool], os.stat_result]) -> str:
    """The deepest mount point at or above ``path`` (a cgroup directory: its hierarchy's root), as the
    ``os.path.ismount`` of each directory up from it finds it (not a symbolic link, and on another device
    than its parent, or the parent itself), with each stat taken once for all the hierarchies (``seen``):
    ismount resolves every parent through realpath, a dozen lstats per hierarchy."""

    def stat_of(p: str, follow: bool) -> os.stat_result:
        st = seen.get((p, follow))
        if st is None:
            st = seen[p, follow] = os.stat(p) if follow else os.lstat(p)
        return st

    while path != "/":
        parent = os.path.dirname(path)
        try:
            st = stat_of(path, False)
            if not stat.S_ISLNK(st.st_mode):
                up = stat_of(parent, True)
                if st.st_dev != up.st_dev or st.st_ino == up.st_ino:
                    return path
        except OSError:
            pass  # (ismount's answer for what it cannot stat: not a mount point)
        path = parent
    return path


def _bind_with_flags(source: str, target: str, flags: int) -> None:
    libc.mount(source, target, None, libc.MS_BIND)
    libc.mount(None, target, None, libc.MS_BIND | libc.MS_REMOUNT | flags)


def _mknod(path: str, mode: int, rdev: int) -> bool:
    """mknod, or where a user namespace forbids it (rootless), a bind mount of the host's node of that number.
    True when a node of our own was made."""
    try:
        os.mknod(path, mode, rdev)
        return True
    except PermissionError:
        pass
    kind = stat.S_IFMT(mode)
    candidates = [os.path.join("/dev", os.path.basename(path))] + [
        os.path.join("/dev", n) for n in os.listdir("/dev")
    ]
    for host in candidates:
        try:
            st = os.lstat(host)  # a node itself: /dev/stdin links to whatever our stdin is
        except OSError:
            continue
        if stat.S_IFMT(st.st_mode) == kind and st.st_rdev == rdev:
            open(path, "a").close()
            libc.mount(host, path, None, libc.MS_BIND)
            return False
    raise PycontainError(
        f"cannot create device {path} ({os.major(rdev)}:{os.minor(rdev)}): mknod is not allowed "
        "here (a user namespace) and the host's /dev has no such node to bind"
    )


def make_devices(root: str, devices: list[OciDevice]) -> None:
    """OCI linux.devices: character, block and FIFO nodes in the container's /dev."""
    old = os.umask(0)
    made: set[str] = set()  # the directories known to exist (every start makes these nodes)
    try:
        for d in devices:
            if os.path.normpath(d.path) == "/dev/ptmx":
                # Always the link to the container's own devpts (as runc makes it): docker --privileged
                # lists the host's 5:2 node, and making it would go through the link into devpts.
                continue
            path = secure_join(root, d.path)
            parent = os.path.dirname(path)
            if parent not in made:
                _mkdirs(parent)
                made.add(parent)
            mode = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}[d.type]
            mode |= d.file_mode or 0o666
            try:
                own = _mknod(path, mode, os.makedev(d.major, d.minor))
            except FileExistsError:  # the image's own node, or anything else there: replaced
                os.unlink(path)
                own = _mknod(path, mode, os.makedev(d.major, d.minor))
            # A node of our own is root's already (we are root here); only another owner needs a chown.
            if own and (d.uid or d.gid):
                os.chown(path, d.uid or 0, d.gid or 0)
    finally:
        os.umask(old)


def _default_dev(root: str) -> None:
    """What an OCI runtime must provide in /dev whatever the bundle mounts there."""
    from .spec.model import OciDevice

    dev = os.path.join(root, "dev")
    _mkdirs(dev)
    make_devices(root, [OciDevice(f"/dev/{n}", "c", ma, mi) for n, ma, mi in _DEV_NODES])
    for name, target in _DEV_LINKS:
        link = os.path.join(dev, name)
        if not os.path.lexists(link):
            os.symlink(target, link)


def write_sysctls(sysctl: dict[str, str]) -> None:
    """After pivot_root: each ``key = value`` written to the container's own /proc/sys.

    Every component is opened beneath the previous one without following symlinks, and /proc must be a
    procfs, so neither a key nor the root filesystem can turn the write into one on another file.
    """
    try:
        proc = os.open("/proc", os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        raise PycontainError(f"cannot set sysctls: the container has no /proc ({e.strerror})") from None
    try:
        if libc.fstatfs_type(proc) != libc.PROC_SUPER_MAGIC:
            raise PycontainError("cannot set sysctls: /proc in the container is not a proc file system")
        for key, value in sysctl.items():
            parts = ["sys", *key.split(".")]
            fd = os.dup(proc)
            try:
                for part in parts[:-1]:
                    nxt = os.open(part, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
                    os.close(fd)
                    fd = nxt
                leaf = os.open(parts[-1], os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
                try:
                    if libc.fstatfs_type(leaf) != libc.PROC_SUPER_MAGIC:  # a mount over part of /proc/sys
                        raise OSError(errno.EXDEV, "not in the proc file system")
                    os.write(leaf, value.encode())
                finally:
                    os.close(leaf)
            except OSError as e:
                raise PycontainError(f"cannot set sysctl {key}={value}: {e.strerror}") from None
            finally:
                os.close(fd)
    finally:
        os.close(proc)


# -- the plan -------------------------------------------------------------------------------------
class Context:
    """What the steps share while they run: the container's directory (its overlay's upper layer), its new
    user namespace (whose range the image's layers are shifted into), the host paths of its cgroup.procs
    files (shown at /sys/fs/cgroup) and, once a root step ran, the root being built."""

    __slots__ = ("container_dir", "userns_fd", "cgroup_procs", "root")

    def __init__(self, container_dir: str, userns_fd: int | None, cgroup_procs: list[str]) -> None:
        self.container_dir = container_dir
        self.userns_fd = userns_fd
        self.cgroup_procs = cgroup_procs
        self.root = ""


class Step:
    """One step of the plan: an operation (a function of this module taking the Context first) and its
    arguments. Plain data until ``run`` (in the child, in its new mount namespace) makes the system calls;
    compared and shown by operation and arguments."""

    __slots__ = ("op", "args")

    def __init__(self, op: Callable[..., None], *args: object) -> None:
        self.op = op
        self.args = args

    def run(self, ctx: Context) -> None:
        self.op(ctx, *self.args)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Step) and other.op is self.op and other.args == self.args

    __hash__ = None  # type: ignore[assignment]  # compared by value, never a key

    def __repr__(self) -> str:
        return f"{self.op.__name__}({', '.join(map(repr, self.args))})"


# The operations, in the order a plan uses them.
def chroot(ctx: Context, path: str) -> None:
    """No mount namespace of its own (an OCI config, validated to ask for no mount): the root is entered by
    chroot alone, as runc does, and nothing may touch the host's mounts."""
    os.chroot(path)
    os.chdir("/")


def make_private(ctx: Context) -> None:
    """Nothing mounted from here on may propagate back to the host, whatever the host's propagation is."""
    libc.mount(None, "/", None, libc.MS_REC | libc.MS_PRIVATE)


def overlay_root(ctx: Context, layers: list[str], id_mappings: IdMappings | None, volatile: bool) -> None:
    """The image's layers under a writable layer of the container's own (see ``mount_overlay``); a volatile
    one for a container removed when it exits."""
    root_ids = (0, 0)
    if ctx.userns_fd is not None and id_mappings is not None:
        root_ids = id_mappings.host_root()
    ctx.root = mount_overlay(layers, ctx.container_dir, ctx.userns_fd, root_ids, volatile)


def bind_root(ctx: Context, path: str) -> None:
    """A bundle's root filesystem, used in place."""
    ctx.root = bind_rootfs(path)


def mount(ctx: Context, m: Mount) -> None:
    """One mount of the config (every mount has the OCI form: see ``mount_oci``)."""
    mount_oci(ctx.root, m, ctx.cgroup_procs)


def default_devices(ctx: Context) -> None:
    """The nodes and links an OCI runtime provides in a /dev of the container's own."""
    _default_dev(ctx.root)


def devices(ctx: Context, nodes: list[OciDevice]) -> None:
    """``linux.devices``: nodes in the container's /dev."""
    make_devices(ctx.root, nodes)


def pivot_root(ctx: Context) -> None:
    """pivot_root into the new root, the old one detached (``pivot``)."""
    pivot(ctx.root)


def move_root(ctx: Context) -> None:
    """--no-pivot (for ramdisk roots, where pivot_root fails): the root moved over / and chrooted into."""
    os.chdir(ctx.root)
    libc.mount(ctx.root, "/", None, libc.MS_MOVE)
    os.chroot(".")
    os.chdir("/")


def sysctls(ctx: Context, sysctl: dict[str, str]) -> None:
    """``write_sysctls``, through the container's own /proc."""
    write_sysctls(sysctl)


def root_propagation(ctx: Context, propagation: str) -> None:
    """``linux.rootfsPropagation`` on the new root."""
    libc.mount(None, "/", None, _PROPAGATION[propagation])


def readonly_root(ctx: Context, cwd: str) -> None:
    """The root remounted read-only; a missing working directory is made first, while it is still writable,
    as runc does (otherwise the process would make it itself, as its own user)."""
    try:
        os.makedirs(cwd, 0o755, exist_ok=True)
    except OSError as e:
        raise PycontainError(
            f"cannot create the working directory {cwd}: {os.strerror(e.errno or 0)}"
        ) from None
    libc.mount(None, "/", None, libc.MS_BIND | libc.MS_REMOUNT | libc.MS_RDONLY)


def readonly_proc(ctx: Context) -> None:
    """/proc read-only once set up: only through the container's own mount of it could a process reach the
    kernel's writable knobs (/proc/sys, /proc/sysrq-trigger)."""
    libc.mount(None, "/proc", None, libc.MS_BIND | libc.MS_REMOUNT | libc.MS_RDONLY | _NOSUID_NODEV_NOEXEC)


def plan(config: ContainerConfig) -> list[Step]:
    """The container's filesystem, step by step, from its config alone (a pure function: the tests read it
    without root): the root, every mount in the config's order, /dev's nodes, pivot_root, then what needs
    the new root (sysctls, propagation, read-only root and /proc)."""
    if "mount" not in config.namespaces:
        return [Step(chroot, config.rootfs)]
    steps = [Step(make_private)]
    steps.append(
        Step(overlay_root, config.layers, config.id_mappings, config.auto_remove)
        if config.overlay
        else Step(bind_root, config.rootfs)
    )
    steps += [Step(mount, m) for m in config.mounts]
    # A host directory bound at /dev is the user's (the host's own /dev, even): nothing is created in it,
    # neither the default nodes nor linux.devices (runc and crun make nodes only on a /dev of their own).
    if not any(os.path.normpath(m.target) == "/dev" and _is_bind(m) for m in config.mounts):
        steps.append(Step(default_devices))
        if config.devices:
            steps.append(Step(devices, config.devices))
    steps.append(Step(move_root) if config.no_pivot else Step(pivot_root))
    if config.sysctl:
        steps.append(Step(sysctls, config.sysctl))
    if config.rootfs_propagation:
        steps.append(Step(root_propagation, config.rootfs_propagation))
    if config.readonly:
        steps.append(Step(readonly_root, config.cwd))
    if config.proc_readonly:
        steps.append(Step(readonly_proc))
    return steps


def build(
    config: ContainerConfig,
    container_dir: str,
    userns_fd: int | None = None,
    cgroup_procs: list[str] | None = None,
) -> None:
    """Run the container's ``plan``: every mount, in order, then pivot_root. Runs in the new mount namespace.

    ``userns_fd``: the container's new user namespace, whose range the image's layers are shifted into.
    ``cgroup_procs``: the cgroup.procs files of the container's cgroups, shown at its /sys/fs/cgroup."""
    ctx = Context(container_dir, userns_fd, cgroup_procs or [])
    for step in plan(config):
        step.run(ctx)


def pivot(root: str) -> None:
    """pivot_root into ``root`` and detach the old root, leaving no path back to the host's tree."""
    os.chdir(root)
    # pivot_root(".", ".") stacks the old root under the new one; detaching it leaves the new root alone,
    # with no directory inside the container to hold the old one.
    libc.pivot_root(".", ".")
    libc.umount2(".", libc.MNT_DETACH)
    os.chdir("/")
