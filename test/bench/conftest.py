"""What the bench's tests share: its ``_``-helper modules, imported by bare name as
``bench/run`` and the helpers' own commands import them (``bench`` on the path)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture
def bench_module(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], ModuleType]:
    """``bench`` on ``sys.path`` for this test, and the importer of its modules."""
    monkeypatch.syspath_prepend(str(BENCH))
    return importlib.import_module
