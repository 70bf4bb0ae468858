"""``bench/run`` fails when a figure misses its target, and only then.

Each case points the real runner (``bench/runner.py``, what ``bench/run`` execs)
at benchmark modules written into a temporary directory, so the exit status is
checked end to end without running a real benchmark.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNNER = ROOT / "bench" / "runner.py"

MODULES = {
    "meets": """
        from harness import figure
        def run(quick):
            return [figure("meets_p50", 1.0, "ms", 2.0, "<= 1x baseline", 1.0 <= 2.0)]
    """,
    "misses": """
        from harness import figure
        def run(quick):
            value, base = 5.0, 2.0
            return [figure("misses_p50", value, "ms", base, "<= 2x baseline", value <= 2 * base)]
    """,
    "reports": """
        from harness import report
        def run(quick):
            return [report("reports_p99", 9.0, "ms", 3.0, "tail, no target")]
    """,
    "crashes": """
        def run(quick):
            raise RuntimeError("boom")
    """,
    "no_ok": """
        def run(quick):
            return [{"name": "no_ok", "value": 1, "target": "<= 1"}]
    """,
}


def _bench_dir(tmp_path: Path) -> Path:
    for name, body in MODULES.items():
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))
    return tmp_path


def _run(bench_dir: Path, *names: str) -> tuple[int, list[dict[str, object]], str]:
    proc = subprocess.run(
        [sys.executable, str(RUNNER), "--quick", "--bench-dir", str(bench_dir), *names],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    figs = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return proc.returncode, figs, proc.stderr


def test_every_target_met_exits_zero(tmp_path: Path) -> None:
    rc, figs, err = _run(_bench_dir(tmp_path), "meets", "reports")
    assert rc == 0, err
    assert [f["name"] for f in figs] == ["meets_p50", "reports_p99"]
    assert figs[0]["ok"] is True and figs[0]["ratio"] == 0.5
    assert figs[1]["target"] is None and figs[1]["ok"] is None
    assert "every target met" in err


@pytest.mark.parametrize("bad", ["misses", "crashes", "no_ok"])
def test_a_missed_target_crash_or_missing_ok_exits_non_zero(tmp_path: Path, bad: str) -> None:
    rc, figs, err = _run(_bench_dir(tmp_path), "meets", bad, "reports")
    assert rc == 1, err
    assert figs[0]["name"] == "meets_p50" and figs[-1]["name"] == "reports_p99"
    assert "FAILED" in err


def test_missed_figure_is_printed_with_ok_false(tmp_path: Path) -> None:
    rc, figs, err = _run(_bench_dir(tmp_path), "misses")
    assert rc == 1
    assert figs == [
        {
            "name": "misses_p50",
            "value": 5.0,
            "unit": "ms",
            "baseline": 2.0,
            "ratio": 2.5,
            "target": "<= 2x baseline",
            "ok": False,
        }
    ]
    assert "misses_p50" in err


def test_figure_refuses_a_report_that_claims_ok() -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from harness import figure
    finally:
        sys.path.remove(str(ROOT / "bench"))
    with pytest.raises(ValueError, match="report"):
        figure("x", 1.0, "ms", 1.0, None, True, note="n")
    with pytest.raises(ValueError, match="ok true or false"):
        figure("x", 1.0, "ms", 1.0, "<= 1", None)
    with pytest.raises(ValueError, match="note"):
        figure("x", 1.0, "ms", 1.0, None, None)


def test_a_figure_of_no_number_is_printed_as_json_null() -> None:
    """A median over no fix is NaN, which strict JSON has no word for: value, baseline
    and ratio go out as null, and the line parses."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from harness import figure, report
    finally:
        sys.path.remove(str(ROOT / "bench"))
    fig = report("x", 2.5, "m", float("nan"), "median against none fixed")
    assert (fig["value"], fig["baseline"], fig["ratio"]) == (2.5, None, None)
    fig = figure("y", float("nan"), "m", 1.0, "<= 2", False)
    assert (fig["value"], fig["ratio"]) == (None, None)
    assert json.loads(json.dumps(fig, allow_nan=False)) == fig
