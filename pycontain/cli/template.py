"""docker's ``--format`` templates, the subset people type: ``{{.Field}}``, ``{{.A.B}}``, ``{{json .}}``,
``{{json .Field}}``, and a leading ``table`` (a header row, columns separated by tabs).

Anything else inside ``{{ }}`` is an error naming it, never printed as is.
"""

from __future__ import annotations

import json
import re

from ..errors import InvalidArgument

_ACTION = re.compile(r"{{\s*(json\s+)?\.([A-Za-z0-9_.]*)\s*}}")
_ANY_ACTION = re.compile(r"{{.*?}}")


def _lookup(obj: object, path: str, template: str) -> object:
    for part in [p for p in path.split(".") if p]:
        if not isinstance(obj, dict) or part not in obj:
            raise InvalidArgument(
                f"invalid --format {template!r}: no field {part!r} (fields: {_fields(obj)})"
            )
        obj = obj[part]
    return obj


def _fields(obj: object) -> str:
    return ", ".join(sorted(obj)) if isinstance(obj, dict) else "none"


def _text(value: object) -> str:
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def check(template: str) -> None:
    """Refuse a template with actions outside the subset before anything is printed."""
    for action in _ANY_ACTION.findall(template):
        if not _ACTION.fullmatch(action):
            raise InvalidArgument(
                f"invalid --format action {action}: supported are {{{{.Field}}}}, {{{{.A.B}}}} and {{{{json .}}}}"
            )


def render(template: str, obj: dict) -> str:
    """One object through the template (without its ``table`` prefix)."""

    def sub(m: re.Match) -> str:
        value = _lookup(obj, m.group(2), template)
        return json.dumps(value) if m.group(1) else _text(value)

    return _ACTION.sub(sub, template.replace("\\t", "\t").replace("\\n", "\n"))


def render_all(template: str, objs: list[dict]) -> list[str]:
    """Every object's line; ``table ...`` adds a header row made of the field names in upper case."""
    check(template)
    lines = []
    if template.startswith("table"):
        template = template[len("table") :].lstrip()
        header = _ACTION.sub(lambda m: m.group(2).rsplit(".", 1)[-1].upper() or "OBJECT", template)
        lines.append(header.replace("\\t", "\t"))
    lines.extend(render(template, o) for o in objs)
    return lines
