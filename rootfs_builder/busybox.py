"""Build and verify the ``default`` root filesystem from Debian's busybox-static package.

The package is fetched with ``apt-get download`` into ``<data>/cache/debs`` (a cached .deb is reused;
drop one there to build fully offline), unpacked with ``dpkg-deb -x``, and its static ``bin/busybox``
is copied into a fresh tree with one relative symlink per applet (``busybox --list-full``). The tree
is assembled in a temp dir beside the target and renamed into place under ``flock(<data>/rootfs/.lock)``
so concurrent first runs build it once.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

from pycontain.errors import NotFound, PermissionDenied, PycontainError, Unsupported
from rootfs_builder.layout import DEFAULT_NAME, data_root, is_intact, manifest_path, open_manifest

PACKAGE = "busybox-static"
FORMAT = 1
BUSYBOX = "bin/busybox"

# (path, mode): the standard tree, created before the applet links.
DIRS = [
    ("bin", 0o755),
    ("sbin", 0o755),
    ("usr", 0o755),
    ("usr/bin", 0o755),
    ("usr/sbin", 0o755),
    ("etc", 0o755),
    ("proc", 0o555),
    ("sys", 0o555),
    ("dev", 0o755),
    ("tmp", 0o1777),
    ("root", 0o700),
    ("home", 0o755),
    ("var", 0o755),
    ("var/tmp", 0o1777),
    ("run", 0o755),
]
SYMLINKS = {"var/run": "../run"}

ETC = {
    "passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    "group": "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n",
    "hosts": "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    "nsswitch.conf": "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\n"
    "protocols: files\nservices: files\n",
    "resolv.conf": "",  # a mount point for the runtime's bind mount
}


class _Progress:
    """Status line on a terminal (rich when available); silent otherwise."""

    def __init__(self, enabled: bool) -> None:
        self._status = None
        if enabled and sys.stderr.isatty():
            try:
                from rich.console import Console

                self._status = Console(stderr=True).status("building the default root filesystem")
                self._status.start()
            except Exception:  # rich missing or no usable terminal: stay quiet
                self._status = None

    def step(self, message: str) -> None:
        if self._status is not None:
            self._status.update(f"default root filesystem: {message}")

    def close(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None


def _run(argv: list[str], what: str, cwd: str | None = None) -> str:
    try:
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise Unsupported(
            f"{argv[0]} not found: it is needed to {what} (install it, e.g. apt-get install "
            f"{'dpkg' if 'dpkg' in argv[0] else 'apt'})"
        ) from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        errs = [ln for ln in lines if ln.startswith("E:")] or lines or [f"exit status {proc.returncode}"]
        raise PycontainError(f"cannot {what}: {errs[-1]}")
    return proc.stdout


def _makedirs(path: str) -> None:
    try:
        os.makedirs(path, mode=0o755, exist_ok=True)
    except PermissionError as e:
        raise PermissionDenied(
            f"cannot create {path}: {str(e.strerror).lower()} (run as root, or set "
            "PYCONTAIN_DATA to a writable directory)"
        ) from None


@contextlib.contextmanager
def _locked(path: str):
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _deb_fields(deb: str) -> tuple[str, str]:
    out = _run(["dpkg-deb", "-f", deb, "Package", "Version"], f"read {deb}")
    fields = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
    return fields.get("Package", ""), fields.get("Version", "")


def fetch_deb(cache_dir: str) -> str:
    """A busybox-static .deb in ``cache_dir``: the newest cached one, else ``apt-get download``."""
    _makedirs(cache_dir)
    cached = sorted(glob.glob(os.path.join(cache_dir, f"{PACKAGE}_*.deb")), key=os.path.getmtime)
    for deb in reversed(cached):
        try:
            if _deb_fields(deb)[0] == PACKAGE:
                return deb
        except PycontainError:
            pass
        os.unlink(deb)  # damaged or foreign: drop it and download afresh
    if shutil.which("apt-get") is None:
        raise Unsupported(
            f"apt-get not found: cannot download {PACKAGE} (put a {PACKAGE} .deb in {cache_dir})"
        )
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".download-") as tmp:
        try:
            # Sandbox::User=root: the _apt user may not be able to write into the cache dir.
            _run(
                ["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", PACKAGE],
                f"download {PACKAGE}",
                cwd=tmp,
            )
        except PycontainError as e:
            msg = str(e)
            if "locate package" in msg or "candidate" in msg or "No packages found" in msg:
                raise NotFound(
                    f"apt knows no {PACKAGE} package (run 'apt-get update', or put a {PACKAGE} "
                    f".deb in {cache_dir})"
                ) from None
            raise PycontainError(
                f"{msg} (check the network and apt sources, or put a {PACKAGE} .deb in {cache_dir})"
            ) from None
        debs = glob.glob(os.path.join(tmp, "*.deb"))
        if len(debs) != 1:
            raise PycontainError(f"apt-get download {PACKAGE} produced no .deb (put one in {cache_dir})")
        dest = os.path.join(cache_dir, os.path.basename(debs[0]))
        os.replace(debs[0], dest)
    return dest


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _link_target(link: str) -> str:
    """Relative path from the link's directory to bin/busybox, e.g. ``../../bin/busybox``."""
    return os.path.relpath(BUSYBOX, os.path.dirname(link) or ".")


def _populate(tree: str, busybox_src: str, deb: str, package: str, version: str, progress: _Progress) -> dict:
    """Fill ``tree``; returns its manifest (written beside the tree once it is in place)."""
    for d, mode in DIRS:
        os.makedirs(os.path.join(tree, d), exist_ok=True)
        os.chmod(os.path.join(tree, d), mode)
    for link, target in SYMLINKS.items():
        os.symlink(target, os.path.join(tree, link))

    progress.step("copying busybox")
    dst = os.path.join(tree, BUSYBOX)
    shutil.copyfile(busybox_src, dst)
    os.chmod(dst, 0o755)
    digest, size = _sha256(dst), os.path.getsize(dst)

    progress.step("linking applets")
    listed = _run([busybox_src, "--list-full"], "list busybox applets").split()
    help_line = subprocess.run([busybox_src, "--help"], capture_output=True, text=True).stdout.split("\n", 1)[
        0
    ]
    bb_version = help_line.split()[1].lstrip("v") if help_line.startswith("BusyBox v") else ""
    links = []
    for applet in listed:
        # Skip busybox itself and top-level entries (linuxrc: an initrd hook, not a command).
        if applet == BUSYBOX or "/" not in applet or applet.startswith("/") or ".." in applet.split("/"):
            continue
        path = os.path.join(tree, applet)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if os.path.lexists(path):
            continue
        os.symlink(_link_target(applet), path)
        links.append(applet)
    if "bin/sh" not in links:
        raise PycontainError(
            f"{os.path.basename(deb)} has no sh applet (delete it from {os.path.dirname(deb)} and retry)"
        )

    progress.step("writing /etc")
    etc = dict(ETC)
    etc["os-release"] = (
        'NAME="pycontain busybox"\nID=pycontain-busybox\n'
        f'VERSION_ID="{bb_version}"\n'
        f'PRETTY_NAME="pycontain default root filesystem (BusyBox {bb_version}, Debian {package} {version})"\n'
    )
    for name, text in etc.items():
        with open(os.path.join(tree, "etc", name), "w") as f:
            f.write(text)
        os.chmod(os.path.join(tree, "etc", name), 0o644)

    return {  # busybox_size first: is_intact() reads it from the file's first few bytes
        "format": FORMAT,
        "busybox_size": size,
        "busybox_sha256": digest,
        "busybox_version": bb_version,
        "name": DEFAULT_NAME,
        "source": {
            "package": package,
            "version": version,
            "deb": os.path.basename(deb),
            "deb_sha256": _sha256(deb),
        },
        "applets": len(links),
        "built_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "links": sorted(links),
    }


def _write_manifest(target: str, manifest: dict) -> None:
    """Written whole, then renamed into place: a reader sees the manifest complete or not at all."""
    mpath = manifest_path(target)
    tmp = mpath + ".tmp"
    with open(tmp, "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, mpath)


def _build(rootfs_dir: str, target: str, cache_dir: str, progress: _Progress) -> None:
    name = os.path.basename(target)
    for stale in glob.glob(os.path.join(rootfs_dir, f".{name}.*-*")):  # left by a crashed build
        shutil.rmtree(stale, ignore_errors=True)

    progress.step("fetching busybox-static")
    deb = fetch_deb(cache_dir)
    package, version = _deb_fields(deb)
    tree = tempfile.mkdtemp(dir=rootfs_dir, prefix=f".{name}.tmp-")
    try:
        with tempfile.TemporaryDirectory(dir=rootfs_dir, prefix=f".{name}.extract-") as extract:
            progress.step(f"unpacking {package} {version}")
            _run(["dpkg-deb", "-x", deb, extract], f"unpack {deb}")
            busybox_src = os.path.join(extract, BUSYBOX)
            if not os.path.isfile(busybox_src):
                raise PycontainError(f"{deb} holds no {BUSYBOX} (delete it and retry)")
            os.chmod(tree, 0o755)
            manifest = _populate(tree, busybox_src, deb, package, version, progress)
        # No manifest while the trees are swapped: a crash in between leaves one to rebuild, never a
        # manifest describing the wrong tree.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(manifest_path(target))
        old = None
        if os.path.lexists(target):
            old = tempfile.mkdtemp(dir=rootfs_dir, prefix=f".{name}.old-")
            os.rename(target, os.path.join(old, name))
        os.rename(tree, target)
        _write_manifest(target, manifest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tree, ignore_errors=True)
        raise


def ensure_default(
    data_root_: str | None = None, force: bool = False, progress: bool = True
) -> tuple[str, bool]:
    """Build ``<data>/rootfs/default`` unless intact (or ``force``); returns (path, whether it was built)."""
    data = data_root(data_root_)
    rootfs_dir = os.path.join(data, "rootfs")
    target = os.path.join(rootfs_dir, DEFAULT_NAME)
    _makedirs(rootfs_dir)
    with _locked(os.path.join(rootfs_dir, ".lock")):
        if not force and is_intact(target):  # someone else built it while we waited
            return target, False
        status = _Progress(progress)
        try:
            _build(rootfs_dir, target, os.path.join(data, "cache", "debs"), status)
        finally:
            status.close()
    return target, True


def verify(path: str) -> list[str]:
    """Every problem with the root filesystem at ``path``; empty when intact."""
    if not os.path.isdir(path):
        return [f"{path}: not a directory"]
    problems: list[str] = []
    mpath = manifest_path(path)
    try:
        with open_manifest(path) as f:
            manifest = json.load(f)
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise ValueError("unknown manifest format")
    except FileNotFoundError:
        return [f"{mpath}: missing"]
    except (OSError, ValueError) as e:
        return [f"{mpath}: unreadable ({e})"]

    busybox = os.path.join(path, BUSYBOX)
    if os.path.islink(busybox) or not os.path.isfile(busybox):
        problems.append(f"{BUSYBOX}: missing or not a regular file")
    else:
        if os.path.getsize(busybox) != manifest.get("busybox_size"):
            problems.append(
                f"{BUSYBOX}: size {os.path.getsize(busybox)}, manifest says {manifest.get('busybox_size')}"
            )
        if _sha256(busybox) != manifest.get("busybox_sha256"):
            problems.append(f"{BUSYBOX}: sha256 differs from the manifest")
        if not os.access(busybox, os.X_OK):
            problems.append(f"{BUSYBOX}: not executable")

    links = manifest.get("links") or []
    if len(links) != manifest.get("applets"):
        problems.append(f"{mpath}: lists {len(links)} links but counts {manifest.get('applets')} applets")
    for applet in links:
        p = os.path.join(path, applet)
        if not os.path.islink(p):
            problems.append(f"{applet}: {'not a symlink' if os.path.lexists(p) else 'missing'}")
            continue
        target = os.readlink(p)
        if target not in (_link_target(applet), "/" + BUSYBOX):
            problems.append(f"{applet}: points at {target!r}, not at {BUSYBOX}")

    for d, mode in DIRS:
        p = os.path.join(path, d)
        if not os.path.isdir(p):
            problems.append(f"{d}: missing directory")
        elif os.stat(p).st_mode & 0o7777 != mode:
            problems.append(f"{d}: mode {os.stat(p).st_mode & 0o7777:o}, expected {mode:o}")
    for name in (*ETC, "os-release"):
        if not os.path.isfile(os.path.join(path, "etc", name)):
            problems.append(f"etc/{name}: missing")
    return problems
