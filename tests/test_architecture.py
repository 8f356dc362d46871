"""STYLE rule 1, enforced: a pure core, adapters that never import each other, print only in cli."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "m365watch"

CORE = ("models", "diff", "render", "errors", "settings", "redact")
ADAPTERS = ("auth", "msal_cache", "certificate", "graph", "store", "notify", "config")
# Rooms of one adapter that wrap the same library; only they may import each other.
SAME_LIBRARY = ({"auth", "msal_cache"},)  # MSAL: the token provider and its persisted caches
# Standard-library helpers with I/O that several adapters share (so not core, not an adapter).
SHARED = ("files",)
HEAVY = ("apprise", "msal", "requests", "tinydb")


def modules() -> list[str]:
    return sorted(p.stem for p in PACKAGE.glob("*.py"))


def tree(module: str) -> ast.Module:
    path = PACKAGE / f"{module}.py"
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def imports(module: str) -> set[str]:
    """Every module name ``module`` imports, at any depth (inside functions too)."""
    path = PACKAGE / f"{module}.py"
    return imports_in(path.read_text(encoding="utf-8"))


def imports_in(source: str) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            # Relative imports resolve against the package; "from m365watch import x" may be a module.
            base = (
                "m365watch" + (f".{node.module}" if node.module else "")
                if node.level
                else node.module
            )
            if base is None:
                continue
            found.add(base)
            if base == "m365watch":
                found.update(f"m365watch.{alias.name}" for alias in node.names)
    return found


def own(names: set[str]) -> set[str]:
    """The m365watch submodules among ``names`` (``m365watch.models`` -> ``models``).

    ``from m365watch import __version__`` names an attribute, not a module: left out.
    """
    known = set(modules())
    return {n.split(".")[1] for n in names if n.startswith("m365watch.")} & known


def test_the_layout_is_known() -> None:
    assert set(CORE) | set(ADAPTERS) | {"cli"} <= set(modules())


def test_import_walker_sees_nested_and_relative_imports() -> None:
    # The checks below are only as good as this walker.
    source = (
        "import json, os.path\n"
        "from . import models\n"
        "from .diff import ChangeKind\n"
        "from m365watch import store\n"
        "def f():\n"
        "    import msal\n"
        "    from m365watch.notify import Notifier\n"
    )
    assert imports_in(source) == {
        "json",
        "os.path",
        "m365watch",
        "m365watch.models",
        "m365watch.diff",
        "m365watch.store",
        "msal",
        "m365watch.notify",
    }


@pytest.mark.parametrize("module", CORE)
def test_core_imports_only_stdlib_and_core(module: str) -> None:
    names = imports(module)
    third_party = {
        n
        for n in names
        if not n.startswith("m365watch") and n.split(".")[0] not in sys.stdlib_module_names
    }
    assert third_party == set()
    assert own(names) <= set(CORE)


@pytest.mark.parametrize("module", ADAPTERS)
def test_adapters_never_import_each_other(module: str) -> None:
    siblings = set().union(*(group for group in SAME_LIBRARY if module in group)) - {module}
    others = set(ADAPTERS) - {module} - siblings
    assert own(imports(module)) & others == set()
    assert own(imports(module)) <= set(CORE) | set(SHARED) | siblings


def test_same_library_groups_are_adapters() -> None:
    # A typo here would quietly allow nothing, or a module that is no adapter.
    assert all(group <= set(ADAPTERS) for group in SAME_LIBRARY)


@pytest.mark.parametrize("module", SHARED)
def test_shared_helpers_use_only_the_standard_library(module: str) -> None:
    third_party = {n.split(".")[0] for n in imports(module)} - set(sys.stdlib_module_names)
    assert third_party <= {"__future__"}
    assert own(imports(module)) == set()


@pytest.mark.parametrize("module", modules())
def test_only_cli_calls_print(module: str) -> None:
    calls = [
        node.lineno
        for node in ast.walk(tree(module))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "print"
    ]
    if module == "cli":
        return
    assert calls == [], f"m365watch/{module}.py calls print() on lines {calls}: use logging"


def test_core_modules_have_no_clock_calls() -> None:
    for module in CORE:
        for node in ast.walk(tree(module)):
            if isinstance(node, ast.Attribute) and node.attr in {"now", "utcnow", "today", "time"}:
                value = node.value
                owner = value.id if isinstance(value, ast.Name) else getattr(value, "attr", "")
                assert owner not in {"datetime", "date", "time"}, f"{module}: {owner}.{node.attr}"


def heavy_modules_loaded_by(module: str) -> list[str]:
    """Which of HEAVY a fresh interpreter has loaded after importing ``module``."""
    script = (
        f"import sys, {module}\nprint(','.join(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return [m for m in result.stdout.strip().split(",") if m]


def test_importing_cli_loads_no_heavy_library() -> None:
    assert heavy_modules_loaded_by("m365watch.cli") == []


def test_heavy_check_would_notice_an_import() -> None:
    # Guards the test above against passing vacuously (e.g. a broken script).
    assert "requests" in heavy_modules_loaded_by("m365watch.graph")
