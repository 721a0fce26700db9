"""JSON for state files, through CPython's C accelerator without the ``json`` package.

``import json`` pulls in ``re``, ``enum``, ``functools`` and ``collections``: about 5 ms, a sixth of a
whole ``pycontain run``. The C encoder and scanner in ``_json`` need none of them. Output is the same
JSON the ``json`` module writes; on interpreters without ``_json`` the ``json`` module is used.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing itself costs ~3 ms (it loads re): only mypy reads the import below
if TYPE_CHECKING:
    from typing import Any

try:
    import _json
except ImportError:  # pragma: no cover - PyPy and friends
    _json = None  # type: ignore[assignment]


def _reject(obj: object) -> object:
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serializable")


def _constant(name: str) -> float:
    return {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}[name]


class _Context:
    """What the C scanner reads off its context (json.JSONDecoder's attributes)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_constant)
    memo: dict = {}


# What loads says of a document nested deeper than the interpreter recurses.
NESTED = "nested too deeply"

if _json is not None:
    _encode = _json.make_encoder(
        None, _reject, _json.encode_basestring_ascii, None, ": ", ", ", False, False, True
    )
    _scan = _json.make_scanner(_Context())  # type: ignore[arg-type]  # duck-typed like JSONDecoder

    def dumps(obj: object) -> str:
        return "".join(_encode(obj, 0))

    def loads(text: str) -> Any:  # JSON: whatever the document holds, as json.loads
        text = text.strip()
        try:
            obj, pos = _scan(text, 0)
        except StopIteration:
            raise ValueError("not a JSON document") from None
        except SystemError:
            # The scanner raises json.decoder.JSONDecodeError, which it looks up among the imported
            # modules only: without the json package loaded it fails with SystemError instead.
            raise ValueError("malformed JSON") from None
        except RecursionError:
            # (a hostile bundle's config.json, or a state file, of a hundred thousand nested "[")
            raise ValueError(NESTED) from None
        if pos != len(text):
            raise ValueError(f"extra data at position {pos}")
        return obj
else:  # pragma: no cover
    import json

    dumps = json.dumps

    def loads(text: str) -> Any:  # JSON: whatever the document holds, as json.loads
        try:
            return json.loads(text)
        except RecursionError:
            raise ValueError(NESTED) from None


def dumps_indented(obj: object, level: int = 0) -> str:
    """``json.dumps(obj, indent=2)``, without the ``json`` package (the C encoder cannot indent before
    Python 3.13): what ``state``, ``inspect`` and ``ps --json`` print."""
    pad = "  " * (level + 1)
    if isinstance(obj, dict) and obj:
        items = [f"{pad}{dumps(str(k))}: {dumps_indented(v, level + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + "  " * level + "}"
    if isinstance(obj, list | tuple) and obj:
        return "[\n" + ",\n".join(pad + dumps_indented(v, level + 1) for v in obj) + "\n" + "  " * level + "]"
    return dumps(obj)
