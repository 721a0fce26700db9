"""A container config checked and made: ``validate`` (the config as a whole), ``from_spec`` (THE conversion
of an OCI spec, a bundle's or ``spec.docker``'s, into a ``ContainerConfig``, validated once), and the
parsers of docker-style options it shares (names, ``--user``, ``--env``). Creating a container needs this
module; reading one's state does not.
"""

from __future__ import annotations

import os

from .config import ContainerConfig
from .config_fields import Mount
from .errors import InvalidArgument, NotFound, Unsupported

# typing.TYPE_CHECKING without importing typing; type checkers know the idiom.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from .security.options import SecurityOptions
    from .spec.model import OciSpec
    from .userns import IdMappings

# Character classes instead of regular expressions: ``re`` (and the ``enum`` it loads) costs ~3 ms.
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


def _word(s: str, first: frozenset, rest: frozenset, max_len: int) -> bool:
    return 0 < len(s) <= max_len and s[0] in first and all(c in rest for c in s[1:])


def _valid_name(s: str) -> bool:
    return _word(s, _ALNUM, _ALNUM | frozenset("_.-"), 128)


def _valid_user_part(s: str) -> bool:
    return (s.isascii() and s.isdigit()) or _word(
        s, _ALNUM - frozenset("0123456789") | {"_"}, _ALNUM | frozenset("_.-"), 32
    )


def _valid_hostname(s: str) -> bool:
    return _word(s, _ALNUM, _ALNUM | frozenset(".-"), 63)


def validate(config: ContainerConfig) -> None:
    """The config as a whole, once (``from_spec``, ``Container.create``): InvalidArgument naming what is wrong."""
    if not config.args:
        raise InvalidArgument(
            "no command given: put it after the root filesystem, e.g. "
            "'pycontain run default -- sh -c \"echo hi\"'"
        )
    if not os.path.isdir(config.rootfs):
        raise NotFound(f"root filesystem {config.rootfs!r} is not a directory")
    if not config.cwd.startswith("/"):
        raise InvalidArgument(f"working directory must be an absolute path: {config.cwd!r}")
    if config.name is not None:
        validate_name(config.name)
    # "" keeps the hostname the UTS namespace starts with (an OCI config may leave it out).
    if config.hostname and not _valid_hostname(config.hostname):
        raise InvalidArgument(
            f"invalid hostname {config.hostname!r}: use letters, digits, '-' and '.', at most 63 characters"
        )
    if config.user is not None:
        parse_user(config.user)
    if "mount" not in config.namespaces and (
        config.mounts or config.overlay or config.readonly or config.devices
    ):
        raise InvalidArgument(
            "mounts need a mount namespace of the container's own (add one to linux.namespaces): "
            "without one the root filesystem is entered by chroot alone"
        )
    if (config.namespaces.get("user") == "") != bool(config.id_mappings):
        raise InvalidArgument("a new user namespace needs uid and gid mappings (and mappings need one)")
    if config.hostname and "uts" not in config.namespaces:
        raise InvalidArgument("a hostname needs a UTS namespace of the container's own")
    # none and host need no checking: a plain 'run --network none' never loads the network package
    if config.network not in (None, "none", "host") or config.publish:
        from . import network

        mode, _ = network.resolve_mode(config.network or "none")
        for p in config.publish:
            network.parse_publish(p)
        if config.publish and mode != "bridge":
            raise InvalidArgument(
                f"-p/--publish {config.publish[0]!r} needs a bridge network: add --network bridge "
                "(or a network's name)"
            )
    if config.extra_hosts or config.dns or config.dns_search:
        _check_name_service(config)
    if config.restart != "no":
        from .restart import parse_restart

        parse_restart(config.restart)
        if config.auto_remove:
            raise InvalidArgument(f"--restart {config.restart} and --rm cannot be combined: choose one")
    if config.stop_signal is not None:
        from .interrupts import parse_signal

        parse_signal(config.stop_signal)
    if config.log_opts:
        from .logs import parse_log_opts

        parse_log_opts(config.log_opts)


def _check_name_service(config: ContainerConfig) -> None:
    import ipaddress

    from . import network

    mode, _ = network.resolve_mode(config.network or "none")
    if mode != "bridge":
        raise InvalidArgument(
            "--add-host, --dns and --dns-search write the container's own /etc/hosts and "
            f"/etc/resolv.conf: they need a bridge network, not {config.network or 'none'!r}"
        )
    for entry in config.extra_hosts:
        name, colon, ip = entry.partition(":")
        try:
            ipaddress.ip_address(ip)
            ok = bool(colon) and _valid_hostname(name)
        except ValueError:
            ok = False
        if not ok:
            raise InvalidArgument(f"invalid --add-host {entry!r}: use NAME:IP, e.g. db:10.0.0.5")
    for server in config.dns:
        try:
            ipaddress.ip_address(server)
        except ValueError:
            raise InvalidArgument(f"invalid --dns {server!r}: give a nameserver's IP address") from None
    for domain in config.dns_search:
        if not _valid_hostname(domain.rstrip(".")):
            raise InvalidArgument(f"invalid --dns-search {domain!r}: give a domain name, e.g. example.com")


# linux.resources.memory's fields that Resources has none for (cgroups.extras writes them)
_EXTRA_MEMORY = frozenset(("swappiness", "disableOOMKiller", "kernelTCP"))


def from_spec(
    spec: OciSpec,
    name: str | None,
    *,
    image: str = "",
    layers: list[str] | None = None,
    security: SecurityOptions | dict | None = None,
    **engine: object,
) -> ContainerConfig:
    """The one conversion of an OCI spec (a bundle's, or ``spec.docker``'s from docker-style options) into
    the runtime's config, validated.

    ``layers``: an image's layers, lowest first, for a copy-on-write overlay; without them the spec's root
    is used in place (a bundle). ``security``: ``SecurityOptions`` (or its ``to_dict()``: the CLI's flags),
    or a bundle's process as ``oci`` reads it. ``engine``: what the spec has no field for (``--restart``, ``--network``,
    labels, ``detach``, ...) and what a road decides itself (a bundle's missing hostname is "", the UTS
    namespace's own; docker-style containers default to their id), as ``ContainerConfig``'s keywords.
    """
    p = spec.process
    if p is None:
        raise InvalidArgument("config.json: process: needed to create a container")
    if isinstance(security, dict):  # the CLI's and the Python API's SecurityOptions.to_dict()
        from .security.options import SecurityOptions

        security = SecurityOptions.from_dict(security)
    doc = spec.resources or {}
    resources = None
    if any(k != "devices" for k in doc):  # (a plain 'run' has no limits to check)
        from .cgroups.resources import Resources

        resources = Resources.from_oci(doc)
        if resources.is_empty():
            resources = None
    writes: list[tuple[str, str, str, str]] = []
    memory = doc.get("memory")
    if (
        "hugepageLimits" in doc
        or "network" in doc
        or (isinstance(memory, dict) and _EXTRA_MEMORY & set(memory))
    ):
        from .cgroups.extras import writes as extra_writes

        writes = extra_writes(doc)
    from .cgroups.devices import rules_for

    device_rules = rules_for(bool(security and security.privileged), doc.get("devices"), spec.devices)
    cgroup_path = spec.cgroups_path
    if cgroup_path and ":" in cgroup_path:
        raise Unsupported(
            f"config.json: linux.cgroupsPath: {cgroup_path!r} is a systemd slice path, and pycontain "
            "has no systemd cgroup driver (use a cgroupfs path such as /parent/name)"
        )
    fields: dict = dict(
        image=image,
        env=p.env,
        cwd=p.cwd,
        user=p.user if p.user is not None else f"{p.uid}:{p.gid}",
        hostname=spec.hostname,
        mounts=[Mount.from_oci(m) for m in spec.mounts],
        readonly=spec.root_readonly,
        tty=p.terminal,
        name=name,
        resources=resources,
        device_rules=device_rules,
        cgroup_writes=writes,
        namespaces=spec.namespaces,
        overlay=layers is not None,
        layers=layers,
        id_mappings=_id_mappings(spec),
        time_offsets=spec.time_offsets,
        devices=spec.devices,
        extra_gids=p.additional_gids,
        umask=p.umask,
        oom_score_adj=p.oom_score_adj,
        domainname=spec.domainname,
        sysctl=spec.sysctl,
        # A spec that lists no masked or read-only paths gets none (runc's behaviour); spec.docker lists docker's.
        masked_paths=spec.masked_paths or [],
        readonly_paths=spec.readonly_paths or [],
        security=security,
        hooks={k: v for k, v in spec.hooks.items() if v},
        cgroup_path=cgroup_path,
        rootfs_propagation=spec.rootfs_propagation,
        console_size=p.console_size,
        annotations=spec.annotations,
        proc_attrs=spec.proc_attrs,
    )
    fields.update(engine)
    config = ContainerConfig(spec.root_path, p.args, **fields)
    validate(config)
    return config


def _id_mappings(spec: OciSpec) -> IdMappings | None:
    """A new user namespace's mappings (a namespace joined by path, or none, has none of its own)."""
    if spec.namespaces.get("user") != "":
        return None
    from .userns import IdMappings

    return IdMappings(spec.uid_mappings, spec.gid_mappings)


def validate_name(name: str) -> None:
    if not _valid_name(name):
        raise InvalidArgument(
            f"invalid container name {name!r}: use letters, digits, '_', '.' and '-', "
            "starting with a letter or digit, at most 128 characters"
        )


def parse_user(spec: str) -> tuple[str, str | None]:
    """Split ``UID[:GID]`` (numbers or names); names are looked up inside the container later."""
    user, _, group = spec.partition(":")
    if not _valid_user_part(user) or (group and not _valid_user_part(group)) or (_ and not group):
        raise InvalidArgument(
            f"invalid --user {spec!r}: expected UID[:GID] with numbers or names, e.g. 1000:1000"
        )
    from .users import MAX_ID

    for part in (user, group):
        # uid_t is 32 bits and (uid_t)-1 means "unchanged" to the kernel: anything above fails only in the child.
        if part.isdigit() and (len(part) > 10 or int(part) > MAX_ID):
            raise InvalidArgument(
                f"invalid --user {spec!r}: {part} is out of range (ids go from 0 to {MAX_ID})"
            )
    return user, group or None


def parse_env(values: list[str], env_files: list[str] | None = None) -> list[str]:
    """``-e K=V`` / ``-e K`` (taken from pycontain's own environment) and ``--env-file`` lines."""
    out: list[str] = []
    for path in env_files or []:
        try:
            with open(path) as f:
                lines = f.read().splitlines()
        except OSError as e:
            raise NotFound(f"cannot read --env-file {path!r}: {e.strerror}") from None
        for line in lines:
            line = line.strip()
            if line and not line.startswith("#"):
                out.extend(_env_item(line, path))
    for v in values:
        out.extend(_env_item(v, "-e"))
    return out


def _env_item(item: str, where: str) -> list[str]:
    key, eq, _ = item.partition("=")
    if not key or "\0" in item:
        raise InvalidArgument(f"invalid environment variable {item!r} in {where}: expected KEY=VALUE")
    if eq:
        return [item]
    return [f"{key}={os.environ[key]}"] if key in os.environ else []
