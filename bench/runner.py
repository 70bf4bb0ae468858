"""Discover bench/<name>.py modules with a ``run(quick)`` and print their figures.

Exit status: 0 when every figure that has a target met it; 1 when any figure
with a target missed it (``ok`` not true), a figure is malformed, or a
benchmark crashed; 2 for bad arguments. A report (``target: null``) never
fails the run.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SKIP = {"harness", "runner"}


def available(directory: Path = HERE) -> list[str]:
    return sorted(
        p.stem for p in directory.glob("*.py") if p.stem not in SKIP and not p.stem.startswith("_")
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench/run", description=__doc__)
    ap.add_argument("names", nargs="*", help=f"benchmarks to run (default all): {available()}")
    ap.add_argument("--quick", action="store_true", help="short runs, under a minute each")
    ap.add_argument(
        "--bench-dir",
        type=Path,
        default=HERE,
        help=argparse.SUPPRESS,  # tests point the runner at their own benchmark modules
    )
    args = ap.parse_args(argv)
    directory: Path = args.bench_dir.resolve()
    names = args.names or available(directory)
    unknown = sorted(set(names) - set(available(directory)))
    if unknown:
        ap.error(f"unknown benchmark(s) {unknown}; available: {available(directory)}")
    sys.path.insert(0, str(HERE))
    if directory != HERE:
        sys.path.insert(0, str(directory))
    from harness import missed

    crashed: list[str] = []
    misses: list[str] = []
    count = 0
    for name in names:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", directory / f"{name}.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
            figs: list[dict[str, Any]] = list(module.run(args.quick))
        except Exception:
            crashed.append(name)
            traceback.print_exc()
            print(json.dumps({"name": name, "error": "benchmark crashed", "ok": False}), flush=True)
            continue
        if not figs:
            crashed.append(name)
            print(json.dumps({"name": name, "error": "no figures", "ok": False}), flush=True)
        for fig in figs:
            count += 1
            print(json.dumps(fig), flush=True)
            if missed(fig):
                misses.append(str(fig.get("name", name)))
    if crashed or misses:
        print(
            f"bench/run: FAILED: {len(misses)} of {count} figure(s) missed their target"
            f" {misses}; crashed or empty: {crashed}",
            file=sys.stderr,
        )
        return 1
    print(f"bench/run: {count} figure(s), every target met", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
