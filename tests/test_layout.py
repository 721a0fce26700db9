"""The package's floor plan, read from its source: imports go one way where the design says they do.

An import cycle hides behind function-level imports until the day someone moves one to the top of a module.
These tests parse every module (no import runs) and follow module-level and function-level imports alike.
"""

from __future__ import annotations

import ast
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("pycontain", "rootfs_builder")


def _modules() -> dict[str, str]:
    found = {}
    for pkg in PACKAGES:
        for d, _dirs, files in os.walk(os.path.join(REPO, pkg)):
            for f in files:
                if f.endswith(".py"):
                    rel = os.path.relpath(os.path.join(d, f), REPO)[:-3].replace(os.sep, ".")
                    found[rel.removesuffix(".__init__")] = os.path.join(d, f)
    return found


MODULES = _modules()


def _imports(module: str) -> set[str]:
    """The project modules ``module`` imports, anywhere in its body."""
    path = MODULES[module]
    package = module.split(".") if path.endswith("__init__.py") else module.split(".")[:-1]
    out = set()
    with open(path) as f:
        tree = ast.parse(f.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            prefix = ".".join(base + ([node.module] if node.module else []))
            targets = [f"{prefix}.{a.name}" for a in node.names] + [prefix]
        else:
            continue
        for t in targets:
            while t and t not in MODULES:
                t = t.rpartition(".")[0]
            if t and t != module:
                out.add(t)
    return out


def _reaches(start: str, goal: str) -> bool:
    seen, todo = set(), [start]
    while todo:
        m = todo.pop()
        if m == goal:
            return True
        if m not in seen:
            seen.add(m)
            todo.extend(_imports(m))
    return False


def test_the_image_sources_and_their_builders_import_one_way():
    # sources detects a source and calls the Debian and closure builders; they and sources share onelayer.
    for builder in ("rootfs_builder.debian", "rootfs_builder.closure", "rootfs_builder.onelayer"):
        assert "rootfs_builder.sources" not in _imports(builder), builder
    assert "rootfs_builder.sources" not in _imports("rootfs_builder.onelayer")
    assert not _reaches("rootfs_builder.onelayer", "rootfs_builder.debian")


def test_command_modules_register_on_the_app_which_imports_none_of_them():
    commands = [m for m in MODULES if m.startswith("pycontain.cli.") and m.endswith("_cmds")]
    assert len(commands) >= 5
    app_imports = _imports("pycontain.cli.app")
    assert not app_imports & set(commands)
    assert "pycontain.cli.commandline" not in app_imports
    for m in commands:
        assert "pycontain.cli.commandline" not in _imports(m), m
    assert set(commands) <= _imports("pycontain.cli.commandline")


def test_no_private_name_of_the_tar_streams_crosses_a_module():
    for m, path in MODULES.items():
        if m == "rootfs_builder.onelayer":
            continue
        with open(path) as f:
            text = f.read()
        assert "_add_tree" not in text, m


def _names_from_package(module: str, package: str) -> set[str]:
    """What ``module`` takes from ``package``'s own ``__init__`` (names that are not submodules of it)."""
    with open(MODULES[module]) as f:
        tree = ast.parse(f.read())
    base = module.split(".")[:-1]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            prefix = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
            if not node.level:
                prefix = node.module or ""
            if prefix == package:
                names |= {a.name for a in node.names if f"{package}.{a.name}" not in MODULES}
        elif isinstance(node, ast.Import):
            names |= {"*" for a in node.names if a.name == package}
    return names


def test_the_command_line_imports_one_way():
    # cli/__init__ is only the entry point: the command modules and the fast tables take the global flags,
    # the guard and the command decorator from cli.base, never from the package they are part of (that
    # was a cycle: __init__ -> commands -> __init__).
    cli = [m for m in MODULES if m.startswith("pycontain.cli.")]
    for m in cli:
        assert not _names_from_package(m, "pycontain.cli"), m
    # base is a leaf of the command line: the guard and the flags import no command.
    assert not {m for m in _imports("pycontain.cli.base") if m.startswith("pycontain.cli")}
    # No cycle among the command line's modules (a submodule's import of its package aside).
    graph = {m: {t for t in _imports(m) if t in cli} for m in cli}
    for m in cli:
        for t in graph[m]:
            assert not _reaches_within(t, m, graph), f"{m} <-> {t}"


def _reaches_within(start: str, goal: str, graph: dict[str, set[str]]) -> bool:
    seen, todo = set(), [start]
    while todo:
        m = todo.pop()
        if m == goal:
            return True
        if m not in seen:
            seen.add(m)
            todo.extend(graph.get(m, ()))
    return False


def test_every_command_is_one_guarded_function():
    # One command pattern: no command wraps its work in a nested body run through guarded by hand.
    for m, path in MODULES.items():
        if m.startswith("pycontain.cli.") and m != "pycontain.cli.base":  # base: the decorator itself
            with open(path) as f:
                text = f.read()
            assert "def body(" not in text and "exit_with(guarded" not in text, m
