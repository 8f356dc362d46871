"""The README's channel examples are what the code renders today."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_channel_examples_are_current() -> None:
    spec = importlib.util.spec_from_file_location(
        "channel_examples", ROOT / "bench" / "channel_examples.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert module.examples() in readme, "run: python bench/channel_examples.py --write"
