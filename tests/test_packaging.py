"""The wheel `pip install .` builds: every package and data file inside, no setuptools warnings.

Built offline from a copy of the sources with the test environment's setuptools
(``--no-build-isolation``), as pip builds it for a user, so nothing is fetched
and the checkout is left untouched.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build_wheel(tmp_path: Path) -> tuple[Path, str]:
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "m365watch", source / "m365watch", ignore=shutil.ignore_patterns("__pycache__")
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-build-isolation",
            "--no-deps",
            "--no-index",
            "--verbose",
            "--wheel-dir",
            str(tmp_path / "dist"),
            str(source),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    (wheel,) = (tmp_path / "dist").glob("m365watch-*.whl")
    return wheel, output


def test_the_wheel_holds_every_package_and_data_file_and_builds_without_warnings(
    tmp_path: Path,
) -> None:
    wheel, output = build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA")))
    expected = {
        str(path.relative_to(ROOT)).replace("\\", "/")
        for path in (ROOT / "m365watch").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert expected <= names, sorted(expected - names)
    assert {"m365watch/py.typed", "m365watch/data/demo-timeline.json"} <= names
    assert {"m365watch/channels/__init__.py", "m365watch/feeds/__init__.py"} <= names
    assert b"\nLicense-Expression: MIT\n" in metadata
    # The license table form and a package missing from `packages` each printed a
    # screenful of SetuptoolsDeprecationWarning / "Package would be ignored".
    noisy = [
        line
        for line in output.splitlines()
        if "Deprecat" in line or "would be ignored" in line or "absent from the" in line
    ]
    assert noisy == []
