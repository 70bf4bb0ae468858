"""ruff and mypy are part of the test suite: a lint or type error fails the run."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:  # scripts/test always has them; a bare ROS workspace may not
        pytest.skip(f"{name} is not installed here (scripts/bootstrap.sh installs it)")
    return found


def test_ruff_reports_no_lint_errors() -> None:
    proc = subprocess.run(
        [_tool("ruff"), "check", "--no-cache", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_strict_is_clean_on_the_package() -> None:
    proc = subprocess.run(
        [_tool("mypy"), "--no-incremental"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
