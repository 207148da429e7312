#!/usr/bin/env bash
# Sets up the development environment inside the repository, from files in the repository only:
#   .venv/            Python 3.11 venv: requirements.txt, ROS 2 Jazzy wheels (requirements-ros.txt)
#                     unless a ROS 2 install is sourced, colcon, and ros2_lmd itself (editable).
#   build/ install/ log/   colcon build of this package (generated messages, launch, config).
#   .venv/lmd_env.sh  the environment to use it: `source .venv/lmd_env.sh`.
# Idempotent: package installs are skipped while a stamp (a hash of the pins, this script and
# setup.py) matches; colcon's incremental build is about a second when nothing changed.
#
# Environment: LMD_PYTHON picks the interpreter for a new venv (default python3.11 without ROS,
# python3 with a sourced ROS 2, whose Python it must be).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
STAMP="$VENV/.lmd_bootstrap_stamp"
ENV_SCRIPT="$VENV/lmd_env.sh"

log() { printf '[bootstrap %5ss] %s\n' "$SECONDS" "$*"; }
die() { printf 'bootstrap: error: %s\n' "$*" >&2; exit 1; }

# --- Which ROS 2 -------------------------------------------------------------------------------
# A sourced ROS 2 install (ROS_DISTRO set) is used as it is; otherwise the pinned Jazzy wheels.
if [[ -n "${ROS_DISTRO:-}" ]]; then
  MODE="system-$ROS_DISTRO"
  PYTHON="${LMD_PYTHON:-python3}"
  # The setup script of that install, recorded so that lmd_env.sh can source it in a new shell
  # (LMD_ROS_SETUP for an install outside /opt/ros, e.g. built from source).
  ROS_SETUP="${LMD_ROS_SETUP:-/opt/ros/$ROS_DISTRO/setup.bash}"
  [[ -f "$ROS_SETUP" ]] ||
    die "ROS_DISTRO=$ROS_DISTRO is set but $ROS_SETUP does not exist (set LMD_ROS_SETUP)"
else
  MODE="wheels-jazzy"
  # The ROS 2 Jazzy wheels and the local torch==2.13.0 CPU wheel are built for CPython 3.11.
  PYTHON="${LMD_PYTHON:-python3.11}"
  ROS_SETUP=""
fi

# --- The venv ------------------------------------------------------------------------------------
if [[ ! -x "$VENV/bin/python" ]]; then
  command -v "$PYTHON" >/dev/null || die "$PYTHON not found (set LMD_PYTHON to a Python 3.11)"
  log "creating $VENV with $("$PYTHON" --version 2>&1)"
  if [[ "$MODE" == system-* ]]; then
    # The ROS Python dependencies the message generators need (catkin_pkg, empy, lark, numpy)
    # come from the system's Debian packages in this mode.
    "$PYTHON" -m venv --system-site-packages "$VENV"
  else
    "$PYTHON" -m venv "$VENV"
  fi
fi
PY="$VENV/bin/python"
PY_VERSION="$("$PY" -c 'import sys; print(f"{sys.version_info.major}.{sys.version_info.minor}")')"
if [[ "$MODE" == wheels-* && "$PY_VERSION" != "3.11" ]]; then
  die ".venv has Python $PY_VERSION; the ROS 2 Jazzy wheels need 3.11" \
    "(remove .venv, set LMD_PYTHON)"
fi
SITE="$VENV/lib/python$PY_VERSION/site-packages"

# Quirk: every ros-* wheel installs a .pth (ros_wheels_bootstrapper) that re-executes each Python
# start with LD_LIBRARY_PATH extended, unless this guard is set. lmd_env.sh sets the library path
# itself and the guard, so Python starts once; here it avoids the re-exec for each pip call.
export _ROS_WHEELS_BOOTSTRAP_COMPLETE=1
export PIP_DISABLE_PIP_VERSION_CHECK=1

# --- Packages (skipped while the stamp matches) -----------------------------------------------
stamp_inputs=(requirements.txt setup.py tools/bootstrap.sh)
[[ "$MODE" == wheels-* ]] && stamp_inputs+=(requirements-ros.txt)
# LMD_TORCH=cuda (opt-in, for a machine with an NVIDIA GPU): the same torch version as a CUDA build
# from the package index instead of the pinned CPU wheel, so the GPU tests run (`LMD_TORCH=cuda
# make test`). The default stays the CPU pin.
LMD_TORCH="${LMD_TORCH:-cpu}"
[[ "$LMD_TORCH" == cpu || "$LMD_TORCH" == cuda ]] || die "LMD_TORCH must be cpu or cuda, got '$LMD_TORCH'"
STAMP_KEY="$( { echo "$MODE $PY_VERSION torch-$LMD_TORCH"; cat "${stamp_inputs[@]}"; } | sha256sum | cut -d' ' -f1)"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$STAMP_KEY" ]]; then
  log "packages up to date (stamp matches)"
else
  rm -f "$STAMP"
  log "installing Python dependencies (requirements.txt)"
  if [[ "$MODE" == system-* ]]; then
    # Quirk: the distribution's ROS 2 binaries (message C extensions) are built against its own
    # numpy; the newer pin of requirements.txt in the venv would shadow it (numpy 1 -> 2 breaks
    # their ABI). Keep the system numpy, and let pip fail loudly if another pin cannot.
    system_numpy="$("$PY" -c 'import numpy; print(numpy.__version__)' 2>/dev/null || true)"
    if [[ -n "$system_numpy" ]]; then
      echo "numpy==$system_numpy" > "$VENV/constraints-system-ros.txt"
      grep -v '^numpy==' requirements.txt > "$VENV/requirements-system-ros.txt"
      "$PY" -m pip install --quiet -r "$VENV/requirements-system-ros.txt" \
        -c "$VENV/constraints-system-ros.txt"
    else
      "$PY" -m pip install --quiet -r requirements.txt
    fi
  else
    "$PY" -m pip install --quiet -r requirements.txt
  fi

  if [[ "$MODE" == wheels-* ]]; then
    log "installing ROS 2 Jazzy wheels and colcon (requirements-ros.txt)"
    "$PY" -m pip install --quiet -r requirements-ros.txt
    # Quirk: the message packages' CMake export files name the include directories of the
    # machine the wheels were built on (/opt/python/cp311-cp311/...: Python and numpy headers).
    # CMake rejects an imported target whose include directory does not exist, so every
    # rosidl_generate_interfaces() fails until they name this venv's Python and numpy headers.
    py_include="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
    np_include="$("$PY" -c 'import numpy; print(numpy.get_include())')"
    mapfile -t stale_exports < <(grep -rlI --include='*.cmake' '/opt/python/cp3' "$VENV/share" || true)
    if (( ${#stale_exports[@]} )); then
      log "rewriting build-machine include paths in ${#stale_exports[@]} CMake export files"
      sed -i -E \
        -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/include/python3\.[0-9]+#$py_include#g" \
        -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/lib/python3\.[0-9]+/site-packages/numpy/_core/include#$np_include#g" \
        "${stale_exports[@]}"
    fi
    if grep -rqI --include='*.cmake' '/opt/python/cp3' "$VENV/share"; then
      die "CMake export files still name /opt/python/...: extend the rewrite above"
    fi
  else
    command -v colcon >/dev/null || die "colcon not found: install python3-colcon-common-extensions"
  fi

  if [[ "$LMD_TORCH" == cuda ]]; then
    torch_pin="$(grep -E '^torch==' requirements.txt)"
    log "LMD_TORCH=cuda: replacing the CPU wheel by the package index's CUDA build of $torch_pin"
    # The local wheel directory and the constraint file hold the CPU build: leave both out here.
    PIP_FIND_LINKS="" PIP_CONSTRAINT="" "$PY" -m pip install --quiet --force-reinstall --no-deps \
      "$torch_pin"
    PIP_FIND_LINKS="" PIP_CONSTRAINT="" "$PY" -m pip install --quiet "$torch_pin"  # its CUDA libraries
    "$PY" -c 'import sys, torch; sys.exit(torch.version.cuda is None)' ||
      die "LMD_TORCH=cuda: the installed torch is not a CUDA build"
  fi

  log "installing ros2_lmd (editable) and the ros2-lmd command"
  # --no-deps: the pins above are the dependencies; --no-build-isolation: use the venv's
  # setuptools instead of fetching one into a temporary build environment; no PYTHONPATH, so
  # that a sourced ROS 2 cannot put an older setuptools ahead of the venv's.
  env -u PYTHONPATH "$PY" -m pip install --quiet --no-deps --no-build-isolation -e .
  echo "$STAMP_KEY" > "$STAMP"
fi

# --- lmd_env.sh ----------------------------------------------------------------------------------
# Written on every run (cheap) so it always matches this script. Paths are derived from the
# script's own location when sourced, so it names no absolute path of the machine it was made on.
{
  echo "# Generated by tools/bootstrap.sh ($MODE): source it (bash) to use the development set-up."
  echo "_lmd_root=\"\$(cd \"\$(dirname \"\${BASH_SOURCE[0]}\")/..\" && pwd)\""
  if [[ -n "$ROS_SETUP" ]]; then
    echo "# The ROS 2 install that was sourced when the environment was bootstrapped."
    echo "[ -n \"\${ROS_DISTRO:-}\" ] || source \"$ROS_SETUP\""
  fi
  cat <<'EOF'
export VIRTUAL_ENV="$_lmd_root/.venv"
export PATH="$VIRTUAL_ENV/bin:$PATH"
# The package's colcon install (generated messages, launch, config) comes first, so that ament
# index look-ups find ros2_lmd and `ros2_lmd.msg` is found (see ros2_lmd/__init__.py). The
# install's site-packages is deliberately not on PYTHONPATH: the library is imported from the
# source tree, so edits take effect without a rebuild.
_lmd_prefixes="$_lmd_root/install/ros2_lmd"
_lmd_libs="$_lmd_root/install/ros2_lmd/lib"
EOF
  if [[ "$MODE" == wheels-* ]]; then
    cat <<'EOF'
# The ROS 2 wheels install their ament prefix (share/ament_index, share/*/cmake, lib/*.so) into
# the venv itself; their shared libraries also live in site-packages/ros_*.libs.
_lmd_prefixes="$_lmd_prefixes:$VIRTUAL_ENV"
_lmd_libs="$_lmd_libs:$VIRTUAL_ENV/lib"
for _lmd_dir in "$VIRTUAL_ENV"/lib/python3.11/site-packages/ros_*.libs; do
  [ -d "$_lmd_dir" ] && _lmd_libs="$_lmd_libs:$_lmd_dir"
done
# The wheels have no tf2_msgs (/tf, /tf_static): vendor/tf2_msgs builds TFMessage beside ros2_lmd.
_lmd_prefixes="$_lmd_prefixes:$_lmd_root/install/tf2_msgs"
_lmd_libs="$_lmd_libs:$_lmd_root/install/tf2_msgs/lib"
export PYTHONPATH="$_lmd_root/install/tf2_msgs/lib/python3.11/site-packages${PYTHONPATH:+:$PYTHONPATH}"
export CMAKE_PREFIX_PATH="$VIRTUAL_ENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
# Quirk: see tools/bootstrap.sh; the library path is set here, so skip the wheels' re-exec.
export _ROS_WHEELS_BOOTSTRAP_COMPLETE=1
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
# Keep DDS discovery on this machine (no multicast on the network) unless asked otherwise.
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
EOF
  fi
  cat <<'EOF'
export AMENT_PREFIX_PATH="$_lmd_prefixes${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export LD_LIBRARY_PATH="$_lmd_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
unset _lmd_root _lmd_prefixes _lmd_libs _lmd_dir
EOF
} > "$ENV_SCRIPT"

# --- colcon build --------------------------------------------------------------------------------
log "colcon build (messages, launch, config) into build/ install/"
# vendor/tf2_msgs stands in for the tf2_msgs wheel that does not exist; a ROS 2 install has the
# real package (with its services and actions), which must not be shadowed.
skip_packages=()
[[ "$MODE" == system-* ]] && skip_packages=(--packages-skip tf2_msgs)
(
  if [[ "$MODE" == wheels-* ]]; then
    # Only the venv prefix during the build: the package's own install must not be an
    # underlay of itself. (colcon warns that this prefix has no local_setup.* files: harmless,
    # the wheels ship none.)
    export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
    export LD_LIBRARY_PATH="$VENV/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  fi
  export PATH="$VENV/bin:$PATH"
  colcon --log-base log build \
    --base-paths "$ROOT" "$ROOT/vendor" --build-base build --install-base install "${skip_packages[@]}" \
    --cmake-args -DPython3_EXECUTABLE="$PY" -DBUILD_TESTING=OFF
) || die "colcon build failed: see log/latest_build/ros2_lmd/stdout_stderr.log"

log "ready: source .venv/lmd_env.sh"
