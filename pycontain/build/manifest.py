"""Appliance manifests: one TOML file that says how to build an image, checked before anything runs.

::

    base = "debian:bookworm"      # "default" (busybox), "debian:SUITE", "closure:/usr/bin/python3,...", or an image
    variant = "minbase"           # debian: the mmdebstrap variant
    packages = ["python3"]        # debian: installed by the bootstrap itself
    pip = ["flask==3.0.3"]        # PEP 508 names and versions only: wheels fetched in a build container
    run = ["adduser -D app"]      # build commands: /bin/sh -c in a container of the image being built
    entrypoint = ["python3", "/app/app.py"]
    cmd = []
    env = { PORT = "8000" }
    workdir = "/app"
    user = "65534"
    expose = [8000, "53/udp"]

    [[files]]                     # copied from the manifest's directory (symlinks may not lead out of it)
    src = "app.py"
    dest = "/app/app.py"          # a file copied onto a directory of the image (or "/app/") goes into it
    mode = "0644"                 # optional (default: the file's own mode)
    owner = "0:0"                 # optional

    [limits]                      # default resource limits, docker's names and units; 'run' flags win
    memory = "256m"
    cpus = 0.5
    pids = 64

The steps run in a fixed order: base (with its packages), pip, files, run. Each produces at most one layer,
cached by the hash of its parent and of the step itself (``pycontain.build.builder``).

A manifest is untrusted input (the README's "trust model"): nothing it names runs on the host or reads
outside its directory. The Debian mirror and a build's host networking are the command line's to choose
(``pycontain build --mirror URL``, ``--network host``): ``mirror`` and ``build_network`` are refused here.
"""

from __future__ import annotations

import os
import tomllib
from typing import Any, NoReturn

from pycontain import DEFAULT_PATH
from pycontain.errors import InvalidArgument

KEYS = (
    "name",
    "base",
    "variant",
    "packages",
    "pip",
    "files",
    "run",
    "build_network",
    "entrypoint",
    "cmd",
    "env",
    "workdir",
    "user",
    "expose",
    "limits",
    "mirror",
)
LIMIT_KEYS = {
    "memory": "memory",
    "memory_swap": "memory_swap",
    "memory_reservation": "memory_reservation",
    "cpus": "cpus",
    "cpu_shares": "cpu_shares",
    "cpu_quota": "cpu_quota",
    "cpu_period": "cpu_period",
    "cpuset_cpus": "cpuset_cpus",
    "cpuset_mems": "cpuset_mems",
    "pids": "pids_limit",
    "pids_limit": "pids_limit",
    "blkio_weight": "blkio_weight",
}
FILE_KEYS = ("src", "dest", "mode", "owner")


class ManifestError(InvalidArgument):
    """A manifest that cannot be built: the message names the file, the key and the fix."""


class FileSpec:
    __slots__ = ("src", "dest", "mode", "uid", "gid", "into")

    def __init__(self, src: str, dest: str, mode: int | None, uid: int, gid: int, into: bool = False) -> None:
        self.src = src  # absolute host path
        self.dest = dest  # absolute path in the image
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.into = into  # dest ended with "/": a file goes into that directory, under its own name


class Manifest:
    """A checked appliance manifest. ``Manifest.load(path)`` or ``Manifest.parse(text, where, base_dir)``."""

    def __init__(self, where: str, base_dir: str) -> None:
        self.where = where
        self.base_dir = base_dir
        self.name: str | None = None
        self.base = "default"
        self.variant = "minbase"
        self.packages: list[str] = []
        self.pip: list[str] = []
        self.files: list[FileSpec] = []
        self.run: list[str] = []
        self.entrypoint: list[str] | None = None
        self.cmd: list[str] | None = None
        self.env: dict[str, str] = {}
        self.workdir: str | None = None
        self.user: str | None = None
        self.expose: list[str] = []
        self.limits: dict[str, Any] = {}

    @classmethod
    def load(cls, path: str) -> Manifest:
        if os.path.isdir(path) and os.path.isfile(os.path.join(path, "appliance.toml")):
            path = os.path.join(path, "appliance.toml")
        try:
            with open(path, "rb") as f:
                text = f.read().decode()
        except FileNotFoundError:
            raise ManifestError(
                f"no such manifest: {path!r} (give the appliance's TOML file with -f)"
            ) from None
        except IsADirectoryError:
            raise ManifestError(
                f"{path} is a directory: give the manifest file itself (e.g. "
                f"{os.path.join(path, 'appliance.toml')})"
            ) from None
        except UnicodeDecodeError:
            raise ManifestError(f"{path}: not UTF-8 text (a manifest is a TOML file)") from None
        return cls.parse(text, path, os.path.dirname(os.path.abspath(path)))

    @classmethod
    def parse(cls, text: str, where: str, base_dir: str) -> Manifest:
        m = cls(where, base_dir)
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ManifestError(f"{where}: not valid TOML ({e})") from None
        for key in doc:
            if key not in KEYS:
                close = [k for k in KEYS if k.startswith(key[:3])]
                hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(KEYS)}"
                raise ManifestError(f"{where}: unknown key '{key}' ({hint})")
        m.name = m._str(doc, "name", None)
        m.base = m._str(doc, "base", "default") or "default"
        m.variant = m._str(doc, "variant", "minbase") or "minbase"
        m._refuse_host_choices(doc)
        m.packages = m._strings(doc, "packages")
        m.pip = m._strings(doc, "pip")
        m.run = m._strings(doc, "run")
        m.entrypoint = m._strings(doc, "entrypoint") if "entrypoint" in doc else None
        m.cmd = m._strings(doc, "cmd") if "cmd" in doc else None
        m.workdir = m._str(doc, "workdir", None)
        m.user = m._str(doc, "user", None)
        m._check_base(doc)
        m._check_env(doc.get("env"))
        m._check_expose(doc.get("expose"))
        m._check_files(doc.get("files"))
        m._check_limits(doc.get("limits"))
        m._check_pip()
        if m.workdir is not None and not m.workdir.startswith("/"):
            m.fail("workdir", f"is {m.workdir!r}", f'use an absolute path, e.g. "/{m.workdir}"')
        if m.user is not None:
            from pycontain.config_check import parse_user

            try:
                parse_user(m.user)
            except InvalidArgument:
                m.fail("user", f"is {m.user!r}", 'use UID[:GID] with numbers or names, e.g. "65534" or "app"')
        if m.name is not None:
            from rootfs_builder.store import parse_name

            try:
                parse_name(m.name)
            except InvalidArgument as e:
                m.fail(
                    "name", f"is {m.name!r}", str(e).partition(": ")[2] or 'use e.g. "web" or "tools/py:1"'
                )
        return m

    # -- checks -------------------------------------------------------------------------------------
    def fail(self, key: str, problem: str, fix: str) -> NoReturn:
        raise ManifestError(f"{self.where}: '{key}' {problem}: {fix}")

    def _str(self, doc: dict, key: str, default: str | None) -> str | None:
        value = doc.get(key, default)
        if value is not None and not isinstance(value, str):
            self.fail(key, f"is {_kind(value)}", f'give a string, e.g. {key} = "..."')
        return value

    def _strings(self, doc: dict, key: str) -> list[str]:
        value = doc.get(key, [])
        if isinstance(value, str):
            self.fail(
                key, "is a string", f"give a list of strings, e.g. {key} = [{value!r}]".replace("'", '"')
            )
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(key, f"is {_kind(value)}", f'give a list of strings, e.g. {key} = ["..."]')
        if any(not v for v in value) or any("\0" in v for v in value):
            self.fail(key, "has an empty string (or a NUL)", "remove it")
        return list(value)

    def _check_base(self, doc: dict) -> None:
        base = self.base
        if base.startswith("debian:"):
            suite = base[7:]
            if not suite or not suite.replace("-", "").isalnum():
                self.fail("base", f"is {base!r}", 'name a Debian suite, e.g. "debian:bookworm"')
            from rootfs_builder.debian import VARIANTS

            if self.variant not in VARIANTS:
                self.fail("variant", f"is {self.variant!r}", f"use one of {', '.join(VARIANTS)}")
            for p in self.packages:
                if not all(c.isalnum() or c in "+-.:=~" for c in p):
                    self.fail(
                        "packages", f"has {p!r}, not a Debian package name", 'e.g. packages = ["python3"]'
                    )
        else:
            if self.packages:
                self.fail(
                    "packages",
                    f"needs a Debian base, and base is {base!r}",
                    "use base = \"debian:bookworm\", or install them with 'run' commands",
                )
            if "variant" in doc:
                self.fail(
                    "variant", f"only applies to a Debian base, and base is {base!r}", "remove 'variant'"
                )
            if base.startswith("closure:") and not any(p for p in base[8:].split(",")):
                self.fail("base", "names no binary", 'e.g. base = "closure:/usr/bin/python3"')
        if self.pip and base.startswith("closure:"):
            self.fail(
                "pip",
                "needs an image with python3 and its standard library, and a closure has neither",
                'use base = "debian:bookworm" with packages = ["python3"]',
            )
        if self.run and base.startswith("closure:") and "/bin/sh" not in base[8:].split(","):
            self.fail(
                "run",
                "needs /bin/sh in the image",
                'add /bin/sh to the closure: base = "closure:...,/bin/sh"',
            )

    def _refuse_host_choices(self, doc: dict) -> None:
        """What the host trusts is the host's to say: a manifest naming the Debian mirror could bring in an
        unsigned repository whose maintainer scripts run as root in the bootstrap; one asking for the host's
        network would let its build commands reach services bound to the host's 127.0.0.1."""
        if "mirror" in doc:
            self.fail(
                "mirror",
                "may not be set by a manifest (the mirror's packages are trusted by the bootstrap)",
                "remove it; the host's apt sources are used, or give one with 'pycontain build --mirror URL'",
            )
        network = doc.get("build_network")
        if network is not None and network != "none":
            self.fail(
                "build_network",
                f"is {network!r}, and a manifest may not choose the host's network",
                "remove it; build commands have no network unless 'pycontain build --network host' says so",
            )

    def _check_pip(self) -> None:
        """Requirements are PEP 508 names with versions: no paths, URLs or pip options, whose sdists or
        options would run code or fetch from places nobody chose."""
        if not self.pip:
            return
        from packaging.requirements import InvalidRequirement, Requirement

        for text in self.pip:
            try:
                req = Requirement(text)
            except InvalidRequirement:
                req = None
            if req is None or req.url or text.lstrip().startswith("-"):
                self.fail(
                    "pip",
                    f"has {text!r}, not a package name with an optional version",
                    'give PEP 508 names and versions only (no paths, URLs or options), e.g. "flask==3.0.3"',
                )

    def _check_env(self, env: object) -> None:
        if env is None:
            return
        if not isinstance(env, dict):
            self.fail("env", f"is {_kind(env)}", 'give a table, e.g. env = { PORT = "8000" }')
        for k, v in env.items():
            if not k or "=" in k or "\0" in k:
                self.fail("env", f"has the name {k!r}", "use names without '=' (e.g. PORT)")
            if isinstance(v, bool) or not isinstance(v, str | int | float):
                self.fail(f"env.{k}", f"is {_kind(v)}", f'give a string: {k} = "..."')
            self.env[k] = str(v)

    def _check_expose(self, expose: object) -> None:
        if expose is None:
            return
        if not isinstance(expose, list):
            self.fail("expose", f"is {_kind(expose)}", 'give a list of ports, e.g. expose = [8080, "53/udp"]')
        for p in expose:
            port, _, proto = str(p).partition("/")
            if (
                isinstance(p, bool)
                or not port.isdigit()
                or not 0 < int(port) < 65536
                or proto not in ("", "tcp", "udp", "sctp")
            ):
                self.fail(
                    "expose",
                    f"has {p!r}",
                    'give ports 1-65535, optionally /tcp or /udp, e.g. [8080, "53/udp"]',
                )
            self.expose.append(f"{int(port)}/{proto or 'tcp'}")

    def _check_files(self, files: object) -> None:
        if files is None:
            return
        if not isinstance(files, list) or not all(isinstance(f, dict) for f in files):
            self.fail("files", f"is {_kind(files)}", "give [[files]] tables with src and dest")
        for i, f in enumerate(files, 1):
            key = f"files[{i}]"
            for k in f:
                if k not in FILE_KEYS:
                    self.fail(f"{key}.{k}", "is not a known key", f"use {', '.join(FILE_KEYS)}")
            src, dest = f.get("src"), f.get("dest")
            if not isinstance(src, str) or not src:
                self.fail(
                    f"{key}.src", "is missing", 'give the host path, relative to the manifest: src = "app.py"'
                )
            if not isinstance(dest, str) or not dest.startswith("/"):
                self.fail(
                    f"{key}.dest",
                    "is missing or not absolute",
                    'give the path in the image: dest = "/app/app.py"',
                )
            if ".." in dest.split("/") or os.path.normpath(dest) == "/":
                self.fail(f"{key}.dest", f"is {dest!r}", "give a path under / without '..'")
            path = self._source(key, src)
            mode = f.get("mode")
            if mode is not None:
                try:
                    mode = int(mode, 8) if isinstance(mode, str) else None
                except ValueError:
                    mode = None
                if mode is None or not 0 <= mode <= 0o7777:
                    self.fail(
                        f"{key}.mode", f"is {f.get('mode')!r}", 'give an octal string, e.g. mode = "0755"'
                    )
            uid = gid = 0
            owner = f.get("owner")
            if owner is not None:
                u, _, g = str(owner).partition(":")
                if not isinstance(owner, str) or not u.isdigit() or (g and not g.isdigit()):
                    self.fail(
                        f"{key}.owner", f"is {owner!r}", 'give numbers UID[:GID], e.g. owner = "1000:1000"'
                    )
                uid, gid = int(u), int(g or u)
            self.files.append(FileSpec(path, os.path.normpath(dest), mode, uid, gid, dest.endswith("/")))

    def _source(self, key: str, src: str) -> str:
        """``src`` resolved, symbolic links included, to a path beneath the manifest's directory."""
        if os.path.isabs(src):
            self.fail(
                f"{key}.src",
                f"is {src!r}, an absolute path",
                "give a path relative to the manifest's directory",
            )
        base = os.path.realpath(self.base_dir)
        path = os.path.realpath(os.path.join(base, src))
        if os.path.commonpath([base, path]) != base:
            self.fail(
                f"{key}.src",
                f"{src!r} leads out of the manifest's directory (to {path})",
                f"copy only files beneath {base}",
            )
        if not os.path.exists(path):
            self.fail(
                f"{key}.src",
                f"{src!r} does not exist (looked for {path})",
                "paths are relative to the manifest's directory",
            )
        return path

    def _check_limits(self, limits: object) -> None:
        if limits is None:
            return
        if not isinstance(limits, dict):
            self.fail("limits", f"is {_kind(limits)}", 'give a [limits] table, e.g. memory = "256m"')
        options: dict[str, Any] = {}
        for k, v in limits.items():
            dest = LIMIT_KEYS.get(k.replace("-", "_"))
            if dest is None:
                self.fail(f"limits.{k}", "is not a known limit", f"use {', '.join(sorted(LIMIT_KEYS))}")
            if isinstance(v, bool) or not isinstance(v, str | int | float):
                self.fail(f"limits.{k}", f"is {_kind(v)}", f'give a number or a string, e.g. {k} = "256m"')
            options[dest] = str(v)
        from pycontain.cgroups.resources import Resources

        try:
            Resources.from_options(**options)
        except InvalidArgument as e:
            self.fail("limits", f"are invalid ({e})", 'use docker\'s units, e.g. memory = "256m", cpus = 0.5')
        self.limits = options

    # -- what the image gets ------------------------------------------------------------------------
    def image_config(self, base: dict) -> dict:
        """The image's runtime config: the base image's, with this manifest's settings on top."""
        cfg = {k: v for k, v in base.items() if v}
        env = list(cfg.get("Env") or [])
        if not any(e.startswith("PATH=") for e in env):
            env.insert(0, f"PATH={DEFAULT_PATH}")
        for k, v in self.env.items():
            env = [e for e in env if e.partition("=")[0] != k] + [f"{k}={v}"]
        cfg["Env"] = env
        if self.entrypoint is not None:
            cfg["Entrypoint"] = self.entrypoint or None
            if self.cmd is None:
                cfg.pop("Cmd", None)  # docker's rule: a new entrypoint drops the inherited Cmd
        if self.cmd is not None:
            cfg["Cmd"] = self.cmd or None
        if self.workdir:
            cfg["WorkingDir"] = self.workdir
        if self.user:
            cfg["User"] = self.user
        if self.expose:
            cfg["ExposedPorts"] = {**(cfg.get("ExposedPorts") or {}), **{p: {} for p in self.expose}}
        if self.limits:
            cfg["Resources"] = dict(self.limits)
        return {k: v for k, v in cfg.items() if v}


def _kind(value: object) -> str:
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)
