"""``pycontain check``: what this host offers pycontain, and what to do about what it lacks."""

from __future__ import annotations

import os
import shutil


class Check:
    __slots__ = ("name", "ok", "detail", "fix")

    def __init__(self, name: str, ok: bool | None, detail: str, fix: str = "") -> None:
        self.name = name
        self.ok = ok  # None: optional, not present
        self.detail = detail
        self.fix = fix

    def to_dict(self) -> dict:
        return {"check": self.name, "ok": self.ok, "detail": self.detail, "fix": self.fix}


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def run_checks() -> list[Check]:
    out = []
    root = os.geteuid() == 0
    out.append(
        Check(
            "root",
            root,
            "running as root" if root else f"running as uid {os.geteuid()}",
            ""
            if root
            else "run pycontain with sudo, or as yourself in rootless mode (no cgroup limits, no bridge)",
        )
    )
    release = os.uname().release
    major, minor = (int(x) for x in release.split(".")[:2])
    out.append(
        Check(
            "kernel",
            (major, minor) >= (5, 6),
            f"Linux {release}",
            "pidfd and cgroup namespaces need Linux 5.6 or newer" if (major, minor) < (5, 6) else "",
        )
    )
    for ns in ("pid", "mnt", "uts", "ipc", "net", "cgroup", "user", "time"):
        ok = os.path.exists(f"/proc/self/ns/{ns}")
        required = ns not in ("user", "time")
        out.append(
            Check(
                f"namespace {ns}",
                ok if required or ok else None,
                "available" if ok else "missing",
                "" if ok else f"a kernel built with CONFIG_{ns.upper()}_NS",
            )
        )
    userns = _read("/proc/sys/user/max_user_namespaces").strip()
    out.append(
        Check(
            "user namespaces",
            (userns not in ("", "0")) or None,
            f"max_user_namespaces={userns or '?'}",
            ""
            if userns not in ("", "0")
            else "sysctl user.max_user_namespaces=15000 (needed for --userns and rootless mode)",
        )
    )
    fs = _read("/proc/filesystems")
    out.append(
        Check(
            "overlayfs",
            "overlay" in fs,
            "overlay in /proc/filesystems" if "overlay" in fs else "missing",
            "" if "overlay" in fs else "modprobe overlay",
        )
    )
    from .cgroups import detect_mode, v1_mounts

    mode = detect_mode()
    if mode == "unified":
        ctrls = _read("/sys/fs/cgroup/cgroup.controllers").split()
        from .cgroups import own_cgroups

        own = own_cgroups().get("", "/")
        delegated = _read(os.path.join("/sys/fs/cgroup", own.lstrip("/"), "cgroup.controllers")).split()
        out.append(Check("cgroups", True, f"cgroup v2 (unified); root controllers: {' '.join(ctrls)}"))
        missing = [c for c in ("memory", "pids", "cpu", "io", "cpuset") if c not in delegated]
        out.append(
            Check(
                "cgroup delegation",
                not missing,
                f"controllers available in {own}: {' '.join(delegated) or 'none'}",
                f"limits on {', '.join(missing)} need those controllers delegated to {own} (or "
                "--cgroup-parent a cgroup that has them)"
                if missing
                else "",
            )
        )
        out.append(Check("device rules", True, "cgroup v2: a BPF_CGROUP_DEVICE program per container"))
    else:
        mounts = sorted(v1_mounts())
        out.append(
            Check(
                "cgroups",
                bool(mounts),
                f"{mode}: v1 controllers {' '.join(mounts)}",
                "" if mounts else "mount the cgroup v1 controllers or cgroup2",
            )
        )
        has_devices = "devices" in mounts
        out.append(
            Check(
                "device rules",
                has_devices or None,
                "v1 devices controller: docker's allow list applied"
                if has_devices
                else "no v1 devices hierarchy: device rules are not enforced",
                "" if has_devices else "mount the devices controller at /sys/fs/cgroup/devices",
            )
        )
    status = _read("/proc/self/status")
    seccomp = "Seccomp:" in status
    out.append(
        Check(
            "seccomp",
            seccomp,
            "kernel supports seccomp filters" if seccomp else "missing",
            "" if seccomp else "a kernel built with CONFIG_SECCOMP_FILTER",
        )
    )
    import ctypes.util

    lib = ctypes.util.find_library("seccomp")
    out.append(
        Check("libseccomp", lib is not None, lib or "not found", "" if lib else "apt-get install libseccomp2")
    )
    for tool, why, package in (
        ("nft", "NAT and published ports", "nftables"),
        ("newuidmap", "user namespace mappings", "uidmap"),
        ("hyperfine", "benchmarks", "hyperfine"),
        ("qemu-system-x86_64", "VM comparisons", "qemu-system-x86"),
    ):
        path = shutil.which(tool)
        out.append(
            Check(
                f"tool {tool}",
                True if path else None,
                path or f"not installed (needed for {why})",
                "" if path else f"apt-get install {package}",
            )
        )
    import rootfs_builder

    built = rootfs_builder.is_intact(rootfs_builder.default_path())
    out.append(
        Check(
            "default rootfs",
            built,
            rootfs_builder.default_path() if built else "not built yet",
            "" if built else "python -m rootfs_builder build default (or make setup)",
        )
    )
    return out
