"""Which containers ``ps`` shows, with docker's filters, and the processes of one (runc's ``ps ID``).

Listing is also when a detached ``--rm`` container that ended is removed: nobody was there to do it when it
exited. A light module: ``ps`` is one of the commands users and engines run again and again; it works on
the saved states alone (``pycontain.state``), without loading the lifecycle (container.py).
"""

from __future__ import annotations

from .errors import InvalidArgument

# typing.TYPE_CHECKING without importing typing (4 ms on ps' path); type checkers know the idiom.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from .container import Container
    from .state import ContainerState

FILTER_KEYS = ("name", "id", "status", "label")


def parse_filters(filters: list[str]) -> dict[str, list[str]]:
    """docker's ``--filter KEY=VALUE`` (name=REGEX, id=PREFIX, status=STATUS, label=KEY[=VALUE]), by key."""
    wanted: dict[str, list[str]] = {}
    for f in filters:
        key, eq, value = f.partition("=")
        if not eq or key not in FILTER_KEYS:
            raise InvalidArgument(
                f"invalid filter {f!r}: use name=REGEX, id=PREFIX, status=STATUS or label=KEY[=VALUE]"
            )
        if key == "name":
            import re

            try:
                re.compile(value)
            except re.error as e:
                raise InvalidArgument(f"invalid filter {f!r}: {e}") from None
        wanted.setdefault(key, []).append(value)
    return wanted


def containers(
    root: str | None = None, all: bool = False, wanted: dict[str, list[str]] | None = None
) -> list[tuple[ContainerState, str]]:
    """The containers of state root ``root`` with their status: running and paused ones (every one with
    ``all``, or a status filter), that match ``wanted`` (``parse_filters``)."""
    from .state import StateStore

    store = StateStore(root)
    wanted = wanted or {}
    rows = []
    for st in store.all():
        status = st.status_now()
        if status == "exited" and st.shown.auto_remove:
            from .container import Container

            try:
                Container(st, store).remove(force=True)
            except Exception:
                pass  # removed by its monitor meanwhile, or to be collected by gc
            continue
        if not (all or "status" in wanted) and status not in ("running", "paused"):
            continue
        if wanted and not _matches(st, status, wanted):
            continue
        rows.append((st, status))
    return rows


def _matches(st: ContainerState, status: str, wanted: dict[str, list[str]]) -> bool:
    """docker's rules: values of one key are alternatives, different keys must all match."""
    import re

    labels = st.shown.labels

    def label_ok(v: str) -> bool:
        k, eq, val = v.partition("=")
        return k in labels and (not eq or labels[k] == val)

    tests = {
        "name": lambda v: re.search(v, st.name) is not None,
        "id": lambda v: st.id.startswith(v),
        "status": lambda v: v == status,
        "label": label_ok,
    }
    return all(any(tests[k](v) for v in values) for k, values in wanted.items())


def processes(c: Container) -> list[tuple[int, str | None]]:
    """The processes in the container's cgroup, by pid: (pid, command line), None for one that ended
    while we looked."""
    cg = c.cgroup()
    found: list[tuple[int, str | None]] = []
    for pid in sorted(cg.pids()) if cg is not None and cg.exists() else []:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                found.append((pid, f.read().replace(b"\0", b" ").decode(errors="replace").strip()))
        except OSError:
            found.append((pid, None))
    return found
