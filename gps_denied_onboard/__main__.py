"""``python -m gps_denied_onboard COMMAND``: the project's commands in one place.

Commands:
    takeoff   start the nodes and take off in order (Ctrl-C lands)
    demo      the README's main job: take off on embedded defaults, replay the
              sample flight through the stack, print what was recorded
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "takeoff":
        from gps_denied_onboard.nodes.bringup import main as takeoff_main

        return takeoff_main(rest)
    if command == "demo":
        from gps_denied_onboard.nodes.demo import main as demo_main

        return demo_main(rest)
    print(f"unknown command {command!r}\n{__doc__}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
