"""STYLE rule 1, enforced: every module has a layer, and each layer imports only what it may.

A pure core; adapters that never import each other; use cases that receive
their adapters and import none; the wiring, which builds the adapters, used
only by the command line; print only in cli.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "m365watch"

# Every module of the package, by layer; a module missing here fails the test below.
LAYERS: dict[str, tuple[str, ...]] = {
    # Pure: standard library only, no clock, no files, no network.
    "core": (
        "__init__",
        "models",
        "diff",
        "posts",
        "sections",
        "messages",
        "channels",
        "channels.teams",
        "channels.slack",
        "errors",
        "settings",
        "records",
        "plan",
        "deliver",
        "feeds",
        "feeds.issues",
        "feeds.messages",
        "redact",
        "budget",
    ),
    # Each wraps one library (or the file system) and never imports another adapter.
    "adapter": (
        "auth",
        "msal_cache",
        "certificate",
        "graph",
        "store",
        "state_reader",  # the state file's issues, read with json alone (store's format)
        "notify",
        "config",
        "prometheus",
        "outputs.atom",  # feedgen
    ),
    # Standard-library helpers with I/O that several adapters share (so not core, not an adapter).
    "shared": ("files", "deadline"),
    # What a command does, given its adapters: no adapter module, no adapter library.
    "use case": (
        "poll",
        "tenants",
        "tenant_query",
        "watcher",
        "query",
        "message_query",
        "doctor",
        "watch",
        "demo",
        "outputs",
        "outputs.metrics",
        "check",
        "outputs.pir",
    ),
    # Builds the concrete adapters from the settings; only cli imports it.
    "wiring": ("wiring",),
    # The command line and what it prints with; reaches adapters only through the wiring.
    "cli": ("cli", "__main__", "tables"),
}
CORE = LAYERS["core"]
ADAPTERS = LAYERS["adapter"]
SHARED = LAYERS["shared"]
USE_CASES = LAYERS["use case"]
CLI = LAYERS["cli"]
# Rooms of one adapter that wrap the same library; only they may import each other.
SAME_LIBRARY = ({"auth", "msal_cache"},)  # MSAL: the token provider and its persisted caches
HEAVY = ("apprise", "msal", "requests", "tinydb", "prometheus_client")
# The libraries behind the adapters: a use case that needs one needs an adapter instead.
ADAPTER_LIBRARIES = (*HEAVY, "cryptography", "filelock", "platformdirs", "feedgen")

# Use cases that still import an adapter (module -> what it imports that it should not).
# The poll pipeline's reshape removes these; delete each entry as it goes (a stale entry fails).
PENDING_PIPELINE_RESHAPE: dict[str, set[str]] = {}


def modules() -> list[str]:
    """Every module, a subpackage's named like ``channels.teams`` (its ``__init__``: ``channels``)."""
    names = []
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        names.append(".".join(parts[:-1] if len(parts) > 1 and parts[-1] == "__init__" else parts))
    return sorted(names)


def source(module: str) -> Path:
    path = PACKAGE.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def tree(module: str) -> ast.Module:
    path = source(module)
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def imports(module: str) -> set[str]:
    """Every module name ``module`` imports, at any depth (inside functions too)."""
    return imports_in(source(module).read_text(encoding="utf-8"))


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
    """The m365watch submodules among ``names`` (``m365watch.models`` -> ``models``,
    ``m365watch.channels.teams`` -> ``channels.teams``).

    ``from m365watch import __version__`` names an attribute, not a module: left out.
    """
    known = set(modules())
    return {n.removeprefix("m365watch.") for n in names if n.startswith("m365watch.")} & known


def test_every_module_has_exactly_one_layer() -> None:
    classified = [module for layer in LAYERS.values() for module in layer]
    assert sorted(classified) == sorted(set(classified)), "a module is in two layers"
    unclassified = sorted(set(modules()) - set(classified))
    assert unclassified == [], f"add {unclassified} to a layer in LAYERS"
    gone = sorted(set(classified) - set(modules()))
    assert gone == [], f"{gone} no longer exist: remove them from LAYERS"


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


def forbidden_for_use_case(module: str) -> set[str]:
    """The adapter modules and adapter libraries ``module`` imports (and wiring or cli)."""
    return forbidden_in(imports(module))


def forbidden_in(names: set[str]) -> set[str]:
    """Which of the imported ``names`` a use case may not import."""
    libraries = {n.split(".")[0] for n in names} & set(ADAPTER_LIBRARIES)
    layers = own(names) & (set(ADAPTERS) | set(LAYERS["wiring"]) | set(CLI))
    return layers | libraries


@pytest.mark.parametrize("module", USE_CASES)
def test_use_cases_import_no_adapter(module: str) -> None:
    pending = PENDING_PIPELINE_RESHAPE.get(module, set())
    found = forbidden_for_use_case(module)
    assert found - pending == set(), f"{module} must receive these, not import them"
    assert pending - found == set(), f"{module} no longer imports these: shrink the allow-list"


def test_pending_reshape_names_only_use_cases() -> None:
    assert set(PENDING_PIPELINE_RESHAPE) <= set(USE_CASES)


def test_use_case_check_would_notice_an_adapter_import() -> None:
    # Guards the test above against passing vacuously.
    source = "from m365watch.store import StateStore\ndef f():\n    import apprise\n"
    assert forbidden_in(imports_in(source)) == {"store", "apprise"}


@pytest.mark.parametrize("module", modules())
def test_only_cli_imports_the_wiring(module: str) -> None:
    if module != "cli":
        assert "wiring" not in own(imports(module))


@pytest.mark.parametrize("module", CLI)
def test_the_command_line_reaches_adapters_only_through_the_wiring(module: str) -> None:
    assert own(imports(module)) & set(ADAPTERS) == set()


def test_the_wiring_imports_no_command_line() -> None:
    assert own(imports("wiring")) & set(CLI) == set()


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


@pytest.mark.parametrize("module", ["m365watch.cli", "m365watch.wiring"])
def test_importing_cli_loads_no_heavy_library(module: str) -> None:
    assert heavy_modules_loaded_by(module) == []


def test_heavy_check_would_notice_an_import() -> None:
    # Guards the test above against passing vacuously (e.g. a broken script).
    assert "requests" in heavy_modules_loaded_by("m365watch.graph")
