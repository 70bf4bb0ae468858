"""pip install of the ROS-free core and the operator tools (ground-station laptops).

On the aircraft the package is built with colcon (package.xml + CMakeLists.txt),
which also generates the typed ROS interfaces; this file is what
``pip install .`` uses where there is no ROS: the core packages
(tile_cache, fdr, fc_bridge, takeoff, replay readers) and the command-line
tools. The ROS nodes (``gps_denied_onboard.nodes``) are installed too but
need rclpy and the colcon-built interfaces to import.
"""

from pathlib import Path

from setuptools import find_packages, setup


def _tree(src: str, dest: str) -> list[tuple[str, list[str]]]:
    """data_files entries for every file under ``src`` (the Alembic env for `migrate`)."""
    out: dict[str, list[str]] = {}
    for path in sorted(Path(src).rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            out.setdefault(str(Path(dest) / path.parent), []).append(str(path))
    return sorted(out.items())


setup(
    name="gps_denied_onboard",
    version="0.1.0",
    description="Onboard software for GNSS-denied drones: tile cache, flight data recorder, "
    "MAVLink FC bridge, ordered take-off",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["gps_denied_onboard", "gps_denied_onboard.*"]),
    package_data={"gps_denied_onboard": ["py.typed"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/gps_denied_onboard"]),
        ("share/gps_denied_onboard", ["package.xml"]),
        *_tree("db", "share/gps_denied_onboard"),
    ],
    install_requires=[
        "numpy",
        "psycopg[binary]>=3.1",
        "psycopg-pool>=3.2,<4",
        "alembic>=1.13",
        "sqlalchemy>=2",
        "pymavlink>=2.4",
        "mcap>=1.1",
        "mcap-ros2-support",
        "orjson>=3.10",  # the flight data recorder's payload JSON (writer CPU)
        "rosbags>=0.10",
        "rosbags-image",
        "opencv-python-headless",
        "pyproj>=3.6",  # every CRS transform (visual navigation, sample flight)
        "tifffile",  # GeoTIFF orthophotos (sample flight, benchmarks)
        "matplotlib",  # the main job's report pictures
        "pyyaml",
    ],
    entry_points={
        "console_scripts": [
            "gdo-tile-cache=gps_denied_onboard.tile_cache.tools:main",
            "gdo-fdr=gps_denied_onboard.fdr.tools:main",
            "gdo-replay=gps_denied_onboard.replay.__main__:main",
            "gdo-takeoff=gps_denied_onboard.nodes.bringup:main",  # needs rclpy + the interfaces
        ],
    },
)
