"""Debian root filesystems: ``mmdebstrap`` (``debootstrap`` as a fallback) into a tarball, imported as one layer.

The mirror is the one apt is configured with (``apt-get indextargets``, else the sources files), never a
hard-coded host. mmdebstrap writes a tar directly (its ``/dev`` nodes are skipped on import: pycontain
gives each container its own ``/dev``); debootstrap writes a directory, imported like any other.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator

from pycontain.errors import InvalidArgument, PycontainError, Unsupported
from rootfs_builder.progress import Reporter
from rootfs_builder.store import Store

VARIANTS = (
    "extract",
    "custom",
    "essential",
    "apt",
    "required",
    "minbase",
    "buildd",
    "important",
    "debootstrap",
    "standard",
)
_DEBOOTSTRAP_VARIANT = {
    "minbase": "minbase",
    "buildd": "buildd",
    "extract": "minbase",
    "custom": "minbase",
    "essential": "minbase",
    "apt": "minbase",
    "required": None,
    "important": None,
    "debootstrap": None,
    "standard": None,
}


def apt_mirror() -> str:
    """The Debian mirror apt uses (the Repo-URI of its first non-security, non-update ``deb`` source)."""
    uris: list[str] = []
    try:
        out = subprocess.run(
            ["apt-get", "indextargets", "--format", "$(REPO_URI)\t$(RELEASE)\t$(TARGET_OF)"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout
        for line in out.splitlines():
            uri, _, rest = line.partition("\t")
            release, _, target = rest.partition("\t")
            if target == "deb" and "-" not in release and uri:
                uris.append(uri)
    except (OSError, subprocess.SubprocessError):
        pass
    if not uris:
        uris = _sources_uris()
    uris = [u for u in uris if "security" not in u] or uris
    if not uris:
        raise Unsupported(
            "cannot find the Debian mirror apt uses (no 'deb' source in apt-get indextargets or "
            "/etc/apt/sources.list*): give one with --mirror"
        )
    return uris[0].rstrip("/")


def _sources_uris() -> list[str]:
    uris = []
    paths = ["/etc/apt/sources.list"]
    d = "/etc/apt/sources.list.d"
    if os.path.isdir(d):
        paths += [os.path.join(d, f) for f in sorted(os.listdir(d)) if f.endswith((".list", ".sources"))]
    for path in paths:
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        if path.endswith(".sources"):
            for stanza in text.split("\n\n"):
                fields = {}
                for line in stanza.splitlines():
                    key, sep, value = line.partition(":")
                    if sep and not line.startswith((" ", "#")):
                        fields[key.strip().lower()] = value.strip()
                if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes") != "no":
                    uris += fields.get("uris", "").split()
        else:
            for line in text.splitlines():
                words = line.split("#")[0].split()
                if words[:1] == ["deb"]:
                    words = [w for w in words[1:] if not w.startswith("[")]
                    if words:
                        uris.append(words[0])
    return uris


def _run_with_progress(argv: list[str], bar: Reporter, what: str, work: str) -> None:
    """Run the bootstrap tool with its temporary files (mmdebstrap's gpg home, apt's lists) in ``work``, which
    the caller removes whatever happens, and in a session of its own: a terminal's Ctrl-C reaches pycontain
    alone, which then stops the tool and waits for it, so the result is the same every time."""
    bar.status(f"{what}: starting")
    tmp = os.path.join(work, "tmp")
    os.makedirs(tmp, exist_ok=True)
    try:
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "LC_ALL": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive", "TMPDIR": tmp},
            start_new_session=True,
        )
    except FileNotFoundError:
        raise Unsupported(f"{argv[0]} not found (apt-get install {argv[0]})") from None
    tail: list[str] = []
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            line = line.strip()
            if not line:
                continue
            tail = (tail + [line])[-20:]
            if line.startswith(("I: ", "W: ")):
                bar.status(f"{what}: {line[3:][:100]}")
        code = proc.wait()
    except BaseException:
        proc.terminate()  # mmdebstrap cleans up after SIGTERM; one that does not finish soon is killed
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise
    if code != 0:
        errors = [ln for ln in tail if ln.startswith("E: ")] or tail[-1:]
        raise PycontainError(f"{what} failed (exit status {code}): {errors[-1] if errors else 'no output'}")


def import_debian(
    store: Store,
    suite: str,
    name: str | None,
    bar: Reporter,
    *,
    variant: str = "minbase",
    include: list[str] | None = None,
    mirror: str | None = None,
    config: dict | None = None,
    tool: str | None = None,
) -> dict:
    """Bootstrap ``suite`` and import it as a one-layer image."""
    from pycontain import DEFAULT_PATH
    from rootfs_builder.onelayer import import_single_layer

    if config is None:
        config = {
            "Env": [f"PATH={DEFAULT_PATH}"],
            "Cmd": ["/bin/bash"] if variant not in ("extract", "custom") else None,
        }
    with bootstrap(store, suite, bar, variant=variant, include=include, mirror=mirror, tool=tool) as (
        opener,
        size,
        what,
        source,
        comment,
    ):
        return import_single_layer(store, opener, what, name, source, config, bar, size, comment)


@contextlib.contextmanager
def bootstrap(
    store: Store,
    suite: str,
    bar: Reporter,
    *,
    variant: str = "minbase",
    include: list[str] | None = None,
    mirror: str | None = None,
    tool: str | None = None,
) -> Iterator[tuple]:
    """Bootstrap ``suite`` into the store's tmp dir; yield (opener of its layer tar, size or None, what, source,
    comment). The bootstrap is deleted when the block ends."""
    from rootfs_builder.onelayer import tree_pipe

    if not suite or not suite.replace("-", "").isalnum():
        raise InvalidArgument(f"invalid Debian suite {suite!r} (e.g. bookworm, trixie, sid)")
    if variant not in VARIANTS:
        raise InvalidArgument(f"invalid variant {variant!r}: one of {', '.join(VARIANTS)}")
    include = [p for p in include or [] if p]
    for p in include:
        if not all(c.isalnum() or c in "+-.:=~" for c in p):
            raise InvalidArgument(f"invalid package name {p!r}")
    if variant in ("extract", "custom") and not include:
        raise InvalidArgument(f"the {variant} variant installs only the --include packages: name some")
    mirror = mirror or apt_mirror()
    tool = tool or ("mmdebstrap" if shutil.which("mmdebstrap") else "debootstrap")
    tmpdir = os.path.join(store.root, "tmp")
    os.makedirs(tmpdir, mode=0o700, exist_ok=True)
    work = tempfile.mkdtemp(prefix="bootstrap-", dir=tmpdir)
    what = f"debian:{suite} ({variant}{', ' + ','.join(include) if include else ''})"
    try:
        if tool == "mmdebstrap":
            out = os.path.join(work, "rootfs.tar")
            argv = ["mmdebstrap", f"--variant={variant}", "--mode=root", "--format=tar"]
            if include:
                argv.append(f"--include={','.join(include)}")
            hooks = "/usr/share/mmdebstrap/hooks/merged-usr"
            if variant not in ("extract", "custom") and os.path.isdir(hooks):
                argv.append(f"--hook-dir={hooks}")
            argv += [suite, out, mirror]
            _run_with_progress(argv, bar, f"mmdebstrap {suite}", work)
            source = f"debian:{suite}?variant={variant}&include={','.join(include)}&mirror={mirror}"
            yield (
                (lambda: open(out, "rb")),
                os.path.getsize(out),
                what,
                source,
                f"mmdebstrap --variant={variant} {suite}",
            )
            return
        target = os.path.join(work, "rootfs")
        argv = ["debootstrap"]
        dv = _DEBOOTSTRAP_VARIANT.get(variant)
        if dv:
            argv.append(f"--variant={dv}")
        if include:
            argv.append(f"--include={','.join(include)}")
        argv += [suite, target, mirror]
        _run_with_progress(argv, bar, f"debootstrap {suite}", work)
        source = f"debian:{suite}?variant={dv or 'default'}&include={','.join(include)}&mirror={mirror}"
        yield (
            (lambda: tree_pipe(target)),
            None,
            what,
            source,
            f"debootstrap --variant={dv or 'default'} {suite}",
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
