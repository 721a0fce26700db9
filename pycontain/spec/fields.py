"""Typed readers of config.json's fields: each returns the value or raises a one-line
:class:`~pycontain.errors.ConfigError` that starts with the field's JSON path
(``config.json: process.user.uid: must be an integer from 0 to 4294967294, not the string '0'``).

``bundle`` (the document) and ``linux`` (its ``linux`` object) read every field through them.
"""

from __future__ import annotations

import os

from ..errors import ConfigError
from ..users import MAX_ID

DOC = "config.json"


U32_MAX = (1 << 32) - 1


U64_MAX = (1 << 64) - 1


I64_MIN, I64_MAX = -(1 << 63), (1 << 63) - 1


def show(value: object) -> str:
    """A value for a one-line message: short, quoted like Python, newlines escaped."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def kind_of(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {show(value)}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def err(path: str, message: str) -> ConfigError:
    return ConfigError(f"{DOC}: {path}: {message}" if path else f"{DOC}: {message}")


def map_key(parent: str, key: str) -> str:
    """``linux.sysctl["net.ipv4.ip_forward"]``: map keys may hold dots."""
    return f'{parent}["{key}"]'


def obj(value: object, path: str) -> dict:
    if not isinstance(value, dict):
        raise err(path, f"must be an object, not {kind_of(value)}")
    return value


def opt_obj(parent: dict, key: str, path: str) -> dict | None:
    value = parent.get(key)
    return None if value is None else obj(value, path)


def string(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise err(path, f"must be a string, not {kind_of(value)}")
    if "\0" in value:
        raise err(path, "must not contain a NUL character")
    return value


def opt_string(parent: dict, key: str, path: str) -> str | None:
    value = parent.get(key)
    return None if value is None else string(value, path)


def boolean(parent: dict, key: str, path: str) -> bool:
    value = parent.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise err(path, f"must be true or false, not {kind_of(value)}")
    return value


def integer(value: object, path: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise err(path, f"must be an integer from {lo} to {hi}, not {kind_of(value)}")
    return value


def ident(value: object, path: str) -> int:
    return integer(value, path, 0, MAX_ID)


def array(value: object, path: str) -> list:
    if not isinstance(value, list):
        raise err(path, f"must be a list, not {kind_of(value)}")
    return value


def opt_array(parent: dict, key: str, path: str) -> list:
    value = parent.get(key)
    return [] if value is None else array(value, path)


def strings(parent: dict, key: str, path: str) -> list[str]:
    return [string(v, f"{path}[{i}]") for i, v in enumerate(opt_array(parent, key, path))]


def absolute(value: object, path: str) -> str:
    text = string(value, path)
    if not text.startswith("/"):
        raise err(path, f"must be an absolute path, not {show(text)}")
    return os.path.normpath(text)


def env_list(parent: dict, key: str, path: str) -> list[str]:
    out = strings(parent, key, path)
    for i, item in enumerate(out):
        name, eq, _ = item.partition("=")
        if not eq or not name:
            raise err(f"{path}[{i}]", f"must be KEY=VALUE, not {show(item)}")
    return out


def str_map(parent: dict, key: str, path: str) -> dict[str, str]:
    value = opt_obj(parent, key, path) or {}
    for k, v in value.items():
        if not k:
            raise err(path, "keys must not be empty")
        string(v, map_key(path, k))
    return dict(value)
