"""The starter ``config.json`` that ``pycontain spec`` writes (``runc spec``, with docker's default
capabilities)."""

from __future__ import annotations

import os

from .. import DEFAULT_PATH, SPEC_VERSION
from ..security.caps import DEFAULT_CAPABILITIES

# The masked and read-only paths are docker's, as for every docker-style container (and a config.json that
# gives none): they mask /proc/interrupts and /sys/devices/virtual/powercap, side channels on the host's
# activity, which runc's example does not.
from ..security.options import DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS


# -- `pycontain spec` -------------------------------------------------------------------------------
def default_spec(rootless: bool = False, args: list[str] | None = None) -> dict:
    """The starter config.json ``pycontain spec`` writes: ``runc spec`` with docker's default capabilities.

    ``rootless`` makes it fit an unprivileged user, as ``runc spec --rootless`` does: a user namespace
    mapping the caller's uid and gid to root, no network namespace (an unprivileged user cannot
    give it a usable network), /sys bound from the host instead of a new sysfs (which needs
    privileges over the network namespace), no uid=/gid= mount options, and no cgroup resources.
    """
    caps = list(DEFAULT_CAPABILITIES)
    doc: dict = {
        "ociVersion": SPEC_VERSION,
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": list(args) if args else ["sh"],
            "env": [f"PATH={DEFAULT_PATH}", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": list(caps), "effective": list(caps), "permitted": list(caps)},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "pycontain",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {
                "destination": "/dev",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
            },
            {
                "destination": "/dev/pts",
                "type": "devpts",
                "source": "devpts",
                "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
            },
            {
                "destination": "/dev/shm",
                "type": "tmpfs",
                "source": "shm",
                "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
            },
            {
                "destination": "/dev/mqueue",
                "type": "mqueue",
                "source": "mqueue",
                "options": ["nosuid", "noexec", "nodev"],
            },
            {
                "destination": "/sys",
                "type": "sysfs",
                "source": "sysfs",
                "options": ["nosuid", "noexec", "nodev", "ro"],
            },
            {
                "destination": "/sys/fs/cgroup",
                "type": "cgroup",
                "source": "cgroup",
                "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
            },
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "cgroup")],
            "maskedPaths": list(DEFAULT_MASKED_PATHS),
            "readonlyPaths": list(DEFAULT_READONLY_PATHS),
        },
    }
    if rootless:
        linux = doc["linux"]
        linux["namespaces"] = [ns for ns in linux["namespaces"] if ns["type"] != "network"] + [
            {"type": "user"}
        ]
        linux["uidMappings"] = [{"containerID": 0, "hostID": os.geteuid(), "size": 1}]
        linux["gidMappings"] = [{"containerID": 0, "hostID": os.getegid(), "size": 1}]
        del linux["resources"]
        mounts = []
        for m in doc["mounts"]:
            if m["destination"] == "/sys":
                m = {
                    "destination": "/sys",
                    "type": "none",
                    "source": "/sys",
                    "options": ["rbind", "nosuid", "noexec", "nodev", "ro"],
                }
            elif "options" in m:
                m["options"] = [o for o in m["options"] if not o.startswith(("uid=", "gid="))]
            mounts.append(m)
        doc["mounts"] = mounts
    return doc
