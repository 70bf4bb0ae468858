"""Discover bench/<name>.py modules with a ``run(quick)`` and print their figures."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
SKIP = {"harness", "runner"}


def available() -> list[str]:
    return sorted(
        p.stem for p in HERE.glob("*.py") if p.stem not in SKIP and not p.stem.startswith("_")
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench/run", description=__doc__)
    ap.add_argument("names", nargs="*", help=f"benchmarks to run (default all): {available()}")
    ap.add_argument("--quick", action="store_true", help="short runs, under a minute each")
    args = ap.parse_args(argv)
    names = args.names or available()
    unknown = sorted(set(names) - set(available()))
    if unknown:
        ap.error(f"unknown benchmark(s) {unknown}; available: {available()}")
    sys.path.insert(0, str(HERE))
    failed = 0
    for name in names:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", HERE / f"{name}.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
            for fig in module.run(args.quick):
                print(json.dumps(fig), flush=True)
        except Exception:
            failed += 1
            traceback.print_exc()
            print(json.dumps({"name": name, "error": "benchmark crashed", "ok": False}), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
