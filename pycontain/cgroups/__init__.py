"""cgroup drivers: pick one for the host (``new_manager``), or rebuild one from a state file (``load_manager``).

- ``v2``: the unified hierarchy, native cgroupfs (``pycontain.cgroups.v2``).
- ``v1``: one directory per controller hierarchy, limits through cgroupspy (``pycontain.cgroups.v1``).

A container's cgroup is ``pycontain-<id>`` beneath the cgroup pycontain itself runs in (as read from
``/proc/self/cgroup``), or beneath ``parent`` (a path from the hierarchy root) when one is given.
This package sits on the start path of ``pycontain run``: it imports only ``os`` and ``time``, and the
drivers import nothing more until limits are applied.
"""

from __future__ import annotations

import os

from ..errors import InvalidArgument, Unsupported
from .base import CgroupManager
from .files import read_file

DEFAULT_ROOT = "/sys/fs/cgroup"
V1_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids")
NAME_PREFIX = "pycontain-"

__all__ = ["CgroupManager", "detect_mode", "load_manager", "new_manager"]


# -- host discovery ----------------------------------------------------------------------------
def detect_mode(root: str = DEFAULT_ROOT) -> str:
    """ "unified" (cgroup v2 only), "hybrid" (v1 controllers plus a v2 mount at <root>/unified) or "legacy"."""
    if os.path.exists(os.path.join(root, "cgroup.controllers")):
        return "unified"
    if os.path.exists(os.path.join(root, "unified", "cgroup.controllers")):
        return "hybrid"
    return "legacy"


def own_cgroups(proc_file: str = "/proc/self/cgroup") -> dict[str, str]:
    """/proc/self/cgroup as {controller: path}; the v2 line is under "" ("0::/x" -> {"": "/x"})."""
    out: dict[str, str] = {}
    for line in read_file(proc_file).splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _hid, controllers, path = parts
        if not controllers:
            out[""] = path
            continue
        for c in controllers.split(","):
            out[c] = path
    return out


def v1_mounts(
    root: str = DEFAULT_ROOT, mountinfo: str = "/proc/self/mountinfo"
) -> dict[str, tuple[str, str]]:
    """{controller: (mount point, mount root)} for the v1 hierarchies mounted beneath ``root``.

    Co-mounted controllers ("cpu,cpuacct") share one entry each; named hierarchies (name=systemd) are left
    out. When mountinfo lists none under ``root`` (a test root), ``<root>/<controller>`` directories are used.
    """
    out: dict[str, tuple[str, str]] = {}
    try:
        lines = read_file(mountinfo).splitlines()
    except OSError:
        lines = []
    prefix = root.rstrip("/") + "/"
    for line in lines:
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, rfields = left.split(), right.split()
        if len(fields) < 5 or len(rfields) < 3 or rfields[0] != "cgroup":
            continue
        mount_root, point = fields[3], fields[4].replace("\\040", " ")
        if not point.startswith(prefix):
            continue
        for opt in rfields[2].split(","):
            if opt in V1_CONTROLLERS:
                out[opt] = (point, mount_root)
    if not out:
        for c in V1_CONTROLLERS:
            d = os.path.join(root, c)
            if os.path.isfile(os.path.join(d, "cgroup.procs")):
                out[c] = (d, "/")
    return out


def own_cgroup_dirs(root: str = DEFAULT_ROOT) -> list[str]:
    """The directories of the cgroups pycontain runs in: one per v1 hierarchy, plus the v2 one."""
    own = own_cgroups()
    dirs = {_under(point, mount_root, own.get(c, "/")) for c, (point, mount_root) in v1_mounts(root).items()}
    mode = detect_mode(root)
    if mode != "legacy":
        mount = root if mode == "unified" else os.path.join(root, "unified")
        dirs.add(_under(mount, "/", own.get("", "/")))
    return sorted(dirs)


def _under(mount_point: str, mount_root: str, path: str) -> str:
    """The directory of cgroup ``path`` (from the hierarchy root) in a mount of ``mount_root``."""
    if mount_root != "/" and (path == mount_root or path.startswith(mount_root.rstrip("/") + "/")):
        path = path[len(mount_root) :]
    return mount_point.rstrip("/") + "/" + path.strip("/") if path.strip("/") else mount_point.rstrip("/")


def _check_id(container_id: str) -> None:
    if not container_id or "/" in container_id or container_id in (".", "..") or "\0" in container_id:
        raise InvalidArgument(
            f"invalid container id for a cgroup name: {container_id!r} (use letters, digits, '-', '_' or '.')"
        )


def _check_parent(parent: str) -> str:
    parts = [p for p in parent.split("/") if p]
    if any(p in (".", "..") for p in parts) or "\0" in parent:
        raise InvalidArgument(
            f"invalid cgroup parent: {parent!r} (use a path from the hierarchy root such as /pycontain.slice)"
        )
    return "/" + "/".join(parts)


def new_manager(
    container_id: str,
    parent: str | None = None,
    driver: str = "auto",
    root: str | None = None,
    name: str | None = None,
    every_v1: bool = False,
) -> CgroupManager:
    """The manager for container ``container_id``'s cgroup ``pycontain-<id>`` (not created yet: call ``create()``).

    ``parent``: a cgroup path from the hierarchy root (every v1 controller uses the same one); default:
    the cgroup pycontain runs in. ``driver``: "auto" (v2 on unified hosts, v1 on hybrid and legacy ones,
    where the controllers live on v1), "v1" or "v2". ``root``: the cgroup mount root (default
    $PYCONTAIN_CGROUP_ROOT or /sys/fs/cgroup). ``name``: the cgroup's own name instead of ``pycontain-<id>``, or a relative path
    (a/b/name) beneath ``parent``. ``every_v1``: make the cgroup in every v1 hierarchy at ``create``, not
    only in ``v1.ALWAYS``'s.
    """
    _check_id(container_id)
    root = root or os.environ.get("PYCONTAIN_CGROUP_ROOT") or DEFAULT_ROOT
    # OCI bundles may name the cgroup (linux.cgroupsPath), a relative one with several components.
    name = name or NAME_PREFIX + container_id
    for part in name.split("/"):
        _check_id(part)
    if parent is not None:
        parent = _check_parent(parent)
    mode = detect_mode(root)
    if driver == "auto":
        driver = "v2" if mode == "unified" else "v1"
    if driver == "v2":
        if mode == "legacy":
            raise Unsupported(
                f"cgroup v2 is not mounted at {root} or {root}/unified (use --cgroup-manager v1, or mount cgroup2)"
            )
        mount = root if mode == "unified" else os.path.join(root, "unified")
        base = parent if parent is not None else own_cgroups().get("", "/")
        path = base.rstrip("/") + "/" + name
        from .v2 import V2Manager

        return V2Manager(path, _under(mount, "/", path))
    if driver == "v1":
        mounts = v1_mounts(root) if mode != "unified" else {}
        if not mounts:
            raise Unsupported(
                f"no cgroup v1 controller is mounted under {root} (use --cgroup-manager v2 or auto)"
            )
        own = own_cgroups() if parent is None else {}
        dirs: dict[str, str] = {}
        for c, (point, mount_root) in mounts.items():
            base = parent if parent is not None else own.get(c, "/")
            dirs[c] = _under(point, mount_root, base.rstrip("/") + "/" + name)
        from .v1 import V1Manager

        shown = parent if parent is not None else own.get("freezer", own.get("pids", "/"))
        return V1Manager(shown.rstrip("/") + "/" + name, dirs, every=every_v1)
    raise InvalidArgument(f"invalid cgroup driver: {driver!r} (use auto, v1 or v2)")


def load_manager(record: dict) -> CgroupManager:
    """Rebuild the manager that ``manager.record()`` described (the container's state file)."""
    if not isinstance(record, dict):
        raise InvalidArgument(
            f"invalid cgroup record: {record!r} (expected the object manager.record() wrote)"
        )
    driver = record.get("driver")
    path = record.get("path")
    if not isinstance(path, str):
        raise InvalidArgument(
            f"invalid cgroup record: path {path!r} (expected the object manager.record() wrote)"
        )
    if driver == "v2" and isinstance(record.get("dir"), str):
        from .v2 import V2Manager

        return V2Manager(path, record["dir"])
    if driver == "v1" and isinstance(record.get("dirs"), dict):
        from .v1 import V1Manager

        return V1Manager(path, {str(k): str(v) for k, v in record["dirs"].items()})
    raise InvalidArgument(
        f"invalid cgroup record: driver {driver!r} (expected v1 or v2 with its directories)"
    )
