"""Named volumes (docker's local driver): directories under ``<data root>/volumes/<name>/_data`` that
outlive the containers mounting them (``-v NAME:/path``, ``--mount type=volume,...``).

The data root is ``$PYCONTAIN_DATA``, else ``/var/lib/pycontain`` (the image store's). A volume is
created on first use, as docker does; ``remove`` refuses one a container of the state root still has.
"""

from __future__ import annotations

import os
import re
import time

from .errors import AlreadyExists, InvalidArgument, InvalidState, NotFound

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def volumes_dir(data_root: str | None = None) -> str:
    import rootfs_builder  # the image store's data root, defined once

    return os.path.join(rootfs_builder.data_root(data_root), "volumes")


def is_name(value: str) -> bool:
    return bool(_NAME.fullmatch(value))


def _check(name: str) -> None:
    if not is_name(name):
        raise InvalidArgument(
            f"invalid volume name {name!r}: use letters, digits, '_', '.' and '-', starting with a letter or "
            "digit (a host directory must be an absolute path)"
        )


def mountpoint(name: str, data_root: str | None = None) -> str:
    return os.path.join(volumes_dir(data_root), name, "_data")


def create(name: str | None = None, data_root: str | None = None, exist_ok: bool = True) -> dict:
    """Make volume ``name`` (a random one when None); an existing one is returned as it is."""
    name = name or os.urandom(32).hex()
    _check(name)
    path = mountpoint(name, data_root)
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=False)
        os.mkdir(path, 0o755)  # world-readable inside, as docker's: the container's users read it
    except FileExistsError:
        if not exist_ok:
            raise AlreadyExists(f"volume {name!r} exists already") from None
        os.makedirs(path, mode=0o755, exist_ok=True)
    return inspect(name, data_root)


def inspect(name: str, data_root: str | None = None) -> dict:
    _check(name)
    path = mountpoint(name, data_root)
    try:
        st = os.stat(os.path.dirname(path))
    except FileNotFoundError:
        raise NotFound(f"no such volume: {name!r} (see 'pycontain volume ls')") from None
    return {
        "Name": name,
        "Driver": "local",
        "Mountpoint": path,
        "CreatedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(st.st_mtime)),
        "Scope": "local",
    }


def names(data_root: str | None = None) -> list[str]:
    try:
        return sorted(n for n in os.listdir(volumes_dir(data_root)) if is_name(n))
    except FileNotFoundError:
        return []


def users(name: str, state_root: str | None = None, data_root: str | None = None) -> list[str]:
    """The containers of ``state_root`` that mount volume ``name``."""
    from .state import StateStore

    path = mountpoint(name, data_root)
    return [st.name for st in StateStore(state_root).all() if any(m.source == path for m in st.config.mounts)]


def remove(name: str, state_root: str | None = None, data_root: str | None = None) -> None:
    inspect(name, data_root)
    using = users(name, state_root, data_root)
    if using:
        raise InvalidState(
            f"volume {name!r} is in use by container {', '.join(using)}: remove the container first"
        )
    from .state import rmtree

    rmtree(os.path.dirname(mountpoint(name, data_root)))
