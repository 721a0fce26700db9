"""``--network`` values: none, host, bridge/default, container:ID, or a named network."""

from __future__ import annotations

from ..errors import InvalidArgument, NotFound
from . import settings


# -- --network values --------------------------------------------------------------------------------
def resolve_mode(value: str) -> tuple[str, str | None]:
    """``--network`` → ("none"|"host"|"bridge"|"container", argument).

    ``none`` and ``host`` have no argument; ``bridge``/``default`` and a network's name give ("bridge",
    network name); ``container:ID`` gives ("container", "ID") for the caller to look up.
    """
    if value in ("none", "host"):
        return value, None
    if value in ("bridge", "default"):
        return "bridge", settings.DEFAULT_NETWORK
    if value.startswith("container:"):
        ref = value[len("container:") :]
        if not ref or "/" in ref or "\0" in ref or ref in (".", ".."):
            raise InvalidArgument(f"invalid --network {value!r}: expected container:NAME or container:ID")
        return "container", ref
    from .ipam import Registry, valid_network_name

    if not valid_network_name(value):
        raise InvalidArgument(
            f"invalid --network {value!r}: use none, host, bridge, container:NAME or the name of "
            "a network ('pycontain network ls')"
        )
    if Registry().load(value) is None:
        raise NotFound(
            f"no such network: {value!r} (see 'pycontain network ls', or create it with "
            f"'pycontain network create {value}')"
        )
    return "bridge", value
