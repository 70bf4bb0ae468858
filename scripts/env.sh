# Source me (bash): the project venv plus the colcon install of the package.
_gdo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# colcon's setup scripts read unset variables: tolerate callers running under set -u
case $- in *u*) _gdo_nounset=1; set +u ;; *) _gdo_nounset=0 ;; esac
# shellcheck disable=SC1091
source "${GDO_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/gps_denied_onboard/venv}/bin/activate"
export AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
if [[ -f "$_gdo_root/.colcon/install/local_setup.bash" ]]; then
  # shellcheck disable=SC1091
  source "$_gdo_root/.colcon/install/local_setup.bash"
fi
[[ $_gdo_nounset == 1 ]] && set -u
unset _gdo_root _gdo_nounset
# Never let the current directory shadow the installed package (the source
# tree has no generated gps_denied_onboard.msg): Python 3.11+ honours this.
export PYTHONSAFEPATH=1
