#!/usr/bin/env bash
# The main job: build/refresh the environment (idempotent), then run the demo. Arguments go to flm-demo.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
export ROS_LOG_DIR="${ROS_LOG_DIR:-$ROOT/out/ros_log}" MPLBACKEND=Agg
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
exec "${FLM_VENV:-$ROOT/.venv}/bin/python" -m flm_ros.demo "$@"
