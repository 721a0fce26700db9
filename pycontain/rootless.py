"""Rootless mode: an unprivileged user runs containers, with no privilege on the host at any point.

``pycontain run`` started by a user other than root first moves itself into a user namespace of its own,
where that user is root (``uid_map`` "0 UID 1": the one id an unprivileged process may map without
newuidmap), and then runs the ordinary path: the pid, mount, uts, ipc, network and cgroup namespaces the
container gets belong to that user namespace, so mounting its root (overlayfs allows user namespaces since
Linux 5.11), /proc and the rest needs nothing from the host. What changes, and is said when it matters:

- **cgroups**: an unprivileged user may not create cgroups unless one was delegated to them (systemd's
  ``Delegate=yes``); without one a container gets no cgroup, and asking for limits fails with one line;
- **network**: ``none`` (loopback only; the default here) or ``host``: a bridge, veths and NAT need root;
- **devices**: mknod is not allowed in a user namespace, so /dev's nodes are bind mounts of the host's;
- **ids**: only the user's own id is mapped; files of other owners in the image appear as ``nobody`` and
  cannot be changed;
- **state**: ``$XDG_RUNTIME_DIR/pycontain`` (or ``/tmp/pycontain-UID``) instead of /var/lib/pycontain/containers.

Commands that only look at or signal containers (ps, logs, kill, stop, rm, exec) run as the user directly:
the container's processes are the user's on the host, and the user owns their user namespace.
"""

from __future__ import annotations

import posix

from . import fastos

_state = {"active": False, "uid": posix.getuid(), "gid": posix.getgid()}


def active() -> bool:
    """Whether this process entered its own user namespace with ``enter()``."""
    return bool(_state["active"])


def unprivileged() -> bool:
    """Whether pycontain runs for a user other than root (before or after ``enter()``)."""
    return bool(_state["active"]) or posix.geteuid() != 0


def default_root() -> str:
    """The state root of the user's containers, made if missing and checked to be the user's alone."""
    runtime = fastos.getenv("XDG_RUNTIME_DIR")
    if runtime and fastos.isdir(runtime) and posix.access(runtime, posix.W_OK):
        path = fastos.join(runtime, "pycontain")
    else:
        path = f"/tmp/pycontain-{_state['uid']}"
    _private_dir(path)
    return path


def _private_dir(path: str) -> None:
    """``path`` as a directory of ours, mode 0700, or refuse: in a shared /tmp another user can make it
    first (or a symlink by that name), then read, hide or replace the containers kept there."""
    import stat

    from .errors import PermissionDenied

    try:
        posix.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as e:
        raise PermissionDenied(f"cannot create the state directory {path}: {e.strerror}") from None
    st = posix.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        problem = "is not a directory (a symbolic link or a file)"
    elif st.st_uid != posix.geteuid():  # in our user namespace the user is uid 0, and lstat says so too
        problem = "belongs to another user"
    elif st.st_mode & 0o777 != 0o700:
        problem = f"has mode {st.st_mode & 0o777:04o}, not 0700"
    else:
        return
    raise PermissionDenied(
        f"the state directory {path} {problem}: refusing to keep containers there (remove it, or set "
        "XDG_RUNTIME_DIR to a directory of your own)"
    )


def enter() -> None:
    """Become root of a new user namespace mapping only our own uid and gid (a no-op once done)."""
    if _state["active"]:
        return
    from . import libc
    from .errors import PermissionDenied

    uid, gid = posix.geteuid(), posix.getegid()
    try:
        libc.unshare(libc.CLONE_NEWUSER)
    except OSError as e:
        raise PermissionDenied(
            f"rootless mode needs unprivileged user namespaces, and this host refuses one "
            f"({e.strerror}): ask root to allow them (sysctl kernel.unprivileged_userns_clone=1, "
            "user.max_user_namespaces > 0) or run pycontain as root"
        ) from None
    for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1\n"), ("gid_map", f"0 {gid} 1\n")):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)
    _state.update(active=True, uid=uid, gid=gid)


def cgroup_delegated() -> bool:
    """Whether the cgroup we run in was delegated to this user (we may create cgroups beneath it)."""
    try:
        from .cgroups import own_cgroup_dirs

        dirs = own_cgroup_dirs()
    except Exception:
        return False
    # Inside our user namespace only directories the user owns are writable: root's stay closed to us.
    return bool(dirs) and all(posix.access(d, posix.W_OK) for d in dirs)
