#!/usr/bin/env bash
# Build (or refresh) the project's environment. Idempotent: a second run with nothing changed takes seconds.
#
# Without ROS 2 installed: a project-local virtual environment in .venv with the ROS 2 Kilted wheels from PyPI,
# torch 2.13.0 (CPU build), the Python dependencies pinned in requirements/lock.txt, the interface packages that
# are not on PyPI (ros_interfaces/: tf2_msgs, bond, the nav2_msgs subset flm_localizer uses) generated with
# rosidl + colcon, and this package (editable).
#
# With ROS 2 sourced (Humble/Jazzy/Kilted: ROS_DISTRO is set and rclpy imports): the venv is created with
# --system-site-packages, no ROS wheels are installed and the system's rclpy/messages are used.
#
# Every failure ends with one line starting "flm-setup: error:" that says what to do.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FLM_VENV:-$ROOT/.venv}"
LOCK="$ROOT/requirements/lock.txt"
STAMP="$VENV/.flm-setup-stamp"
QUIET="${FLM_SETUP_QUIET:-0}"

say() { [ "$QUIET" = 1 ] || echo "flm-setup: $*"; }
die() { echo "flm-setup: error: $*" >&2; exit 1; }
trap 'echo "flm-setup: error: unexpected failure at line $LINENO of scripts/setup.sh; re-run with \"bash -x scripts/setup.sh\" to see why" >&2' ERR

# ---------------------------------------------------------------- preconditions
PY="${FLM_PYTHON:-}"
if [ -n "$PY" ] && ! "$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' >/dev/null 2>&1; then
  die "FLM_PYTHON=$PY is not a working Python 3.11 (the ROS 2 Kilted wheels are built for CPython 3.11): point it at python3.11 or unset it"
fi
if [ -z "$PY" ]; then
  for c in python3.11 python3; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
      PY="$(command -v "$c")"; break
    fi
  done
fi
SYSTEM_ROS=0
if [ -n "${ROS_DISTRO:-}" ] && python3 -c 'import rclpy' >/dev/null 2>&1; then
  SYSTEM_ROS=1; PY="$(command -v python3)"
fi
[ -n "$PY" ] || die "Python 3.11 not found (the ROS 2 Kilted wheels are built for CPython 3.11): install python3.11 (e.g. 'apt-get install python3.11 python3.11-venv' or pyenv) or set FLM_PYTHON=/path/to/python3.11"
"$PY" -c 'import venv, ensurepip' >/dev/null 2>&1 || die "$PY has no venv/ensurepip module: install python3.11-venv (apt-get install python3.11-venv)"
command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 || die "no C compiler found (needed to generate ROS interface packages): install one with 'apt-get install build-essential'"
command -v cmake >/dev/null 2>&1 || die "cmake not found (needed to generate ROS interface packages): install it with 'apt-get install cmake'"

mkdir -p "$(dirname "$VENV")"
need_kb="${FLM_SETUP_MIN_FREE_KB:-$((4 * 1024 * 1024))}"
if [ ! -f "$STAMP" ]; then
  avail_kb=$(df -Pk "$(dirname "$VENV")" | awk 'NR==2 {print $4}')
  [ "${avail_kb:-0}" -ge "$need_kb" ] || die "not enough disk space: the environment needs about 4 GB free under $(dirname "$VENV"), only $((avail_kb / 1024)) MB are free; free some space or set FLM_VENV to a roomier place"
fi

# What the stamp covers: a change to any of these rebuilds what depends on it.
fingerprint() {
  cat "$LOCK" "$ROOT/requirements/bench.txt" "$ROOT/setup.py" "$ROOT/package.xml" "$0"
  find "$ROOT/ros_interfaces" -type f | sort | xargs cat
  echo "system_ros=$SYSTEM_ROS py=$PY"
}
want="$(fingerprint | sha256sum | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$VENV/bin/python" ]; then
  say "environment up to date ($VENV)"
  exit 0
fi

# ---------------------------------------------------------------- venv + wheels
if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtual environment $VENV"
  if [ "$SYSTEM_ROS" = 1 ]; then "$PY" -m venv --system-site-packages "$VENV"; else "$PY" -m venv "$VENV"; fi \
    || die "could not create the virtual environment in $VENV (disk full or permissions?)"
fi
VPY="$VENV/bin/python"
PIP=("$VPY" -m pip install --disable-pip-version-check --no-input -q)
# torch: the CPU build. A local wheel directory (PIP_FIND_LINKS, /opt/wheels) is preferred; otherwise the
# PyTorch CPU index. Plain 'torch' from PyPI would be a multi-GB CUDA build, so it is never asked for unpinned.
TORCH_SRC=()
if ls /opt/wheels/torch-2.13.0+cpu-*.whl >/dev/null 2>&1; then TORCH_SRC=(--find-links /opt/wheels)
elif [ -z "${PIP_FIND_LINKS:-}" ]; then TORCH_SRC=(--extra-index-url https://download.pytorch.org/whl/cpu); fi

reqs="$LOCK"
if [ "$SYSTEM_ROS" = 1 ]; then
  reqs="$VENV/.lock-no-ros.txt"
  grep -v -E '^(ros-|catkin-pkg|colcon-)' "$LOCK" > "$reqs"
fi
say "installing pinned packages (a few minutes the first time)"
pip_log="$VENV/.pip.log"
if ! "${PIP[@]}" "${TORCH_SRC[@]}" -r "$reqs" -r "$ROOT/requirements/bench.txt" >"$pip_log" 2>&1; then
  if grep -q -i -E 'No space left' "$pip_log"; then die "disk full while installing packages: free space (about 4 GB needed) and re-run"; fi
  if grep -q -i -E 'Could not find a version|No matching distribution|connection|Network|timed out|Temporary failure' "$pip_log"; then
    die "the package registry could not be reached or lacks a pinned version (see $pip_log): check network/PyPI access and re-run"
  fi
  die "pip install failed (see $pip_log)"
fi
"$VPY" -c 'import torch, sys; sys.exit(torch.version.cuda is not None)' \
  || die "a CUDA build of torch was installed; remove $VENV and re-run with the CPU wheel available (PIP_FIND_LINKS or the PyTorch CPU index)"

# ---------------------------------------------------------------- ROS wheel fix-ups
if [ "$SYSTEM_ROS" = 0 ]; then
  # open3d needs libusb-1.0.so.0; the ros_wheels_bootstrapper puts $VENV/lib on LD_LIBRARY_PATH.
  usb="$("$VPY" -c 'import libusb_package, os; print(os.path.join(os.path.dirname(libusb_package.__file__), "libusb-1.0.so"))')"
  cp -f "$usb" "$VENV/lib/libusb-1.0.so.0"
  # The wheels' exported CMake files carry the build machine's include paths; point them at this interpreter.
  pyinc="$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
  npinc="$("$VPY" -c 'import numpy; print(numpy.get_include())')"
  { grep -rl --include='*.cmake' '/opt/python/cp311-cp311' "$VENV/share" 2>/dev/null || true; } | xargs -r sed -i \
    -e "s#/opt/python/cp311-cp311/include/python3.11#$pyinc#g" \
    -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$npinc#g"
fi

# ---------------------------------------------------------------- interface packages not on PyPI
build_ifaces=()
for pkg in "$ROOT"/ros_interfaces/*/; do
  name="$(basename "$pkg")"
  if "$VPY" -c "import $name.msg" >/dev/null 2>&1; then
    [ "$SYSTEM_ROS" = 1 ] && continue            # the system provides it
    h="$(find "$pkg" -type f | sort | xargs cat | sha256sum | cut -d' ' -f1)"
    [ "$(cat "$VENV/.iface-$name.hash" 2>/dev/null)" = "$h" ] && continue   # built from these sources already
  fi
  build_ifaces+=("$name")
done
if [ "$SYSTEM_ROS" = 0 ] && [ "${#build_ifaces[@]}" -gt 0 ]; then
  say "generating ROS interface packages: ${build_ifaces[*]}"
  ws="$VENV/.ros_ws"
  rm -rf "$ws"; mkdir -p "$ws"
  (
    # shellcheck disable=SC1091
    source "$VENV/bin/activate"
    export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
    cd "$ws"
    colcon --log-base "$ws/log" build --base-paths "$ROOT/ros_interfaces" --build-base "$ws/build" \
      --merge-install --install-base "$VENV" --packages-select "${build_ifaces[@]}" \
      --cmake-args -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$VPY" >"$ws/colcon.out" 2>&1
  ) || die "generating ${build_ifaces[*]} failed (see $ws/colcon.out and $ws/log)"
  for name in "${build_ifaces[@]}"; do
    find "$ROOT/ros_interfaces/$name/" -type f | sort | xargs cat | sha256sum | cut -d' ' -f1 > "$VENV/.iface-$name.hash"
  done
fi

# ---------------------------------------------------------------- this package
say "installing flm_ros (editable)"
"${PIP[@]}" --no-deps --no-build-isolation -e "$ROOT" >"$pip_log" 2>&1 || die "installing the package failed (see $pip_log)"

"$VPY" - <<'EOF' || die "the environment was built but a smoke import failed (see the traceback above); remove .venv and re-run"
import rclpy, tf2_msgs.msg, sensor_msgs.msg, nav_msgs.msg, torch, rosbags, scipy, open3d, flm_core, flm_ros  # noqa: F401
EOF
echo "$want" > "$STAMP"
say "environment ready: $VENV"
