#!/usr/bin/env bash
# Opt-in: installs the ROS 2 launch system and command line (launch, launch_ros, ros2launch,
# ros2cli with ros2 lifecycle/node/topic/param/..., rosidl_runtime_py, composition_interfaces)
# into .venv from a folder of their Jazzy sources, so that `ros2 launch ros2_lmd monitor.launch.py`
# and the launch tests (test/ros/test_launch_real.py) run where no registry has them.
#
#   bash tools/install_launch.sh DIR     # DIR: e.g. ../shared/ros2-jazzy-src (its README.md says
#                                        # which upstream commits it holds)
#
# Needs `make bootstrap` first (the venv with the ROS 2 Jazzy wheels). Idempotent: skipped in a
# second while a stamp (a hash of DIR's file list and sizes) matches and the packages import.
# A sourced ROS 2 install (ROS_DISTRO set) has all of this already: nothing to do.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
log() { printf '[install_launch %4ss] %s\n' "$SECONDS" "$*"; }
die() { printf 'install_launch: error: %s\n' "$*" >&2; exit 1; }

(( $# == 1 )) || die "usage: tools/install_launch.sh DIR (the ROS 2 Jazzy launch/ros2cli sources)"
SRC="$(cd "$1" 2>/dev/null && pwd)" || die "$1: no such folder"
for folder in launch launch_ros ros2cli rcl_interfaces/composition_interfaces rosidl_runtime_py; do
  [[ -d "$SRC/$folder" ]] || die "$SRC/$folder missing: not the ROS 2 Jazzy launch sources"
done
if [[ -n "${ROS_DISTRO:-}" ]]; then
  log "ROS_DISTRO=$ROS_DISTRO is sourced: it has launch and ros2cli already, nothing to install"
  exit 0
fi

cd "$ROOT"
VENV="$ROOT/.venv"
[[ -x "$VENV/bin/python" && -f "$VENV/lmd_env.sh" ]] || die "no .venv: run \`make bootstrap\` first"
# shellcheck disable=SC1091
source "$VENV/lmd_env.sh"
PY="$VENV/bin/python"
STAMP="$VENV/.lmd_launch_stamp"
STAMP_KEY="$( { sha256sum < "${BASH_SOURCE[0]}";
  (cd "$SRC" && find . -type f -printf '%p %s\n' | LC_ALL=C sort); } | sha256sum | cut -d' ' -f1)"

installed() {
  [[ -x "$VENV/bin/ros2" ]] && "$PY" -c \
    'import launch, launch_ros, ros2launch, ros2lifecycle, ros2topic, rosidl_runtime_py, composition_interfaces.srv' \
    2>/dev/null
}
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$STAMP_KEY" ]] && installed; then
  log "launch system up to date (stamp matches): $("$VENV/bin/ros2" pkg prefix launch_ros)"
  exit 0
fi
rm -f "$STAMP"

# pip and colcon write build/ and *.egg-info inside the source folders: build a writable copy.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -r "$SRC"/. "$work"/
export PIP_DISABLE_PIP_VERSION_CHECK=1
log "installing osrf-pycommon and psutil (PyPI dependencies of launch)"
"$PY" -m pip install --quiet --no-deps osrf-pycommon==2.0.2 psutil==7.2.2
# --no-deps: their install_requires name ament_index_python, which the wheels provide under
# another distribution name; every other dependency is pinned in the venv already.
log "installing launch, launch_ros, ros2launch, ros2cli and its verbs, rosidl_runtime_py"
"$PY" -m pip install --quiet --no-deps --no-build-isolation \
  "$work"/launch/launch "$work"/launch/launch_xml "$work"/launch/launch_yaml \
  "$work"/launch_ros/launch_ros "$work"/launch_ros/ros2launch "$work"/ros2cli/ros2cli \
  "$work"/ros2cli/ros2{pkg,node,service,lifecycle,param,topic,run,interface} \
  "$work"/rosidl_runtime_py
log "colcon build of composition_interfaces into .venv"
(
  export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
  colcon --log-base "$work/log" build --base-paths "$work/rcl_interfaces/composition_interfaces" \
    --build-base "$work/build" --install-base "$VENV" --merge-install \
    --cmake-args -DPython3_EXECUTABLE="$PY" -DBUILD_TESTING=OFF > "$work/colcon.log" 2>&1
) || { cat "$work/colcon.log" >&2; die "colcon build of composition_interfaces failed"; }
installed || die "installed, but launch_ros / ros2cli / composition_interfaces do not import"
echo "$STAMP_KEY" > "$STAMP"
log "ready: ros2 launch ros2_lmd monitor.launch.py (after source .venv/lmd_env.sh)"
