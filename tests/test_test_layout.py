"""The test suite's own layout: no test module imports another test module or conftest.

Test modules are leaves. What several of them share lives in helper modules
(tests/helpers.py, tests/identity.py, tests/installation.py, ...), and
conftest.py holds only pytest fixtures, which pytest hands out by name.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def forbidden(module: str) -> bool:
    """Whether importing ``module`` (dotted, absolute) reaches a test module or conftest."""
    parts = module.split(".")
    if parts[0] == "tests":
        parts = parts[1:]
    return bool(parts) and (parts[0] == "conftest" or parts[0].startswith("test_"))


def imported_modules(node: ast.AST) -> list[str]:
    """The modules an import statement brings in (``from tests import x`` brings in tests.x)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        # A relative import inside tests/ names a sibling: read it as tests.<module>.
        base = ("tests." if node.level else "") + (node.module or "")
        base = base.rstrip(".")
        modules = [base] if base and base != "tests" else []
        if base in ("tests", ""):
            modules += [f"tests.{alias.name}" for alias in node.names]
        return modules
    return []


def offences(source: str, filename: str) -> list[str]:
    """Every import of a test module or conftest in ``source``, as "file:line: imports x"."""
    found = sorted(
        (node.lineno, module)
        for node in ast.walk(ast.parse(source, filename))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for module in imported_modules(node)
        if forbidden(module)
    )
    return [f"{filename}:{line}: imports {module}" for line, module in found]


def test_no_test_module_imports_another_test_module_or_conftest() -> None:
    found = [
        line
        for path in sorted(TESTS.glob("*.py"))
        for line in offences(path.read_text(encoding="utf-8"), f"tests/{path.name}")
    ]
    assert not found, (
        "test modules and conftest are not libraries; move what is shared to a helper "
        "module such as tests/helpers.py:\n" + "\n".join(found)
    )


def test_the_check_notices_every_form_of_such_an_import() -> None:
    source = "\n".join(
        [
            "import json",  # 1
            "from tests.helpers import load_json",  # 2
            "from tests.test_auth import mock_identity",  # 3
            "import tests.conftest",  # 4
            "from conftest import timeline_steps",  # 5
            "from tests import helpers, test_cli",  # 6
            "from . import conftest",  # 7
            "from .test_query import NOW",  # 8
            "import tests.identity, tests.installation",  # 9
            "def later() -> None:",  # 10
            "    from tests.conftest import free_port",  # 11
            "from m365watch.cli import main",  # 12
        ]
    )
    assert offences(source, "tests/test_example.py") == [
        "tests/test_example.py:3: imports tests.test_auth",
        "tests/test_example.py:4: imports tests.conftest",
        "tests/test_example.py:5: imports conftest",
        "tests/test_example.py:6: imports tests.test_cli",
        "tests/test_example.py:7: imports tests.conftest",
        "tests/test_example.py:8: imports tests.test_query",
        "tests/test_example.py:11: imports tests.conftest",
    ]
