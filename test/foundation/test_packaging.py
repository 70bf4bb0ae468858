"""setup.py is how the ROS-free core and the operator tools install with plain pip."""

from __future__ import annotations

import configparser
import importlib
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_carries_core_packages_and_working_console_scripts(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    (wheel,) = tmp_path.glob("gps_denied_onboard-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        (ep_name,) = [n for n in names if n.endswith("entry_points.txt")]
        entry_points = zf.read(ep_name).decode()
    for module in (
        "tile_cache/store.py",
        "fdr/writer.py",
        "fc_bridge/link.py",
        "takeoff/sequence.py",
        "replay/player.py",
        "py.typed",
    ):
        assert f"gps_denied_onboard/{module}" in names
    parser = configparser.ConfigParser()
    parser.read_string(entry_points)
    scripts = dict(parser["console_scripts"])
    assert {"gdo-tile-cache", "gdo-fdr", "gdo-replay", "gdo-takeoff"} <= set(scripts)
    for target in scripts.values():
        module_name, func = target.split(":")
        module = importlib.import_module(module_name.strip())
        assert callable(getattr(module, func.strip())), target
