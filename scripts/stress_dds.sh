#!/usr/bin/env bash
# Run the DDS test modules N times in a row while two busy loops load the cores; print pass/fail per run.
#
#   bash scripts/stress_dds.sh N [TEST_FILE_OR_PYTEST_ARG ...]
#
# Without test arguments: every test module that starts ROS processes or rclpy nodes over DDS (DDS_MODULES below).
# Each run's pytest output goes to $STRESS_LOGS/run_<k>.log (default: a new folder under /tmp, printed first).
# The busy loops (`while :; do :; done`, two of them) are stopped when the script ends, however it ends.
# Exit status: 0 when every run passed, 1 otherwise, 2 for bad arguments. On a machine shared with others, run it
# as `nice -n 10 bash scripts/stress_dds.sh N`: the loops and the tests inherit the same niceness.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DDS_MODULES=(test/test_dds.py test/test_player.py test/test_sensor_hub.py test/test_localizer_node.py
             test/test_localizer_nav2.py test/test_bringup.py test/test_faults.py test/test_eval.py
             test/test_localizer_multitopic.py)

usage() { sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
if [[ $# -lt 1 || "$1" == -h || "$1" == --help ]]; then usage; [[ $# -ge 1 ]] && exit 0 || exit 2; fi
N="$1"; shift
if ! [[ "$N" =~ ^[1-9][0-9]*$ ]]; then echo "stress_dds: error: N must be a positive integer, not '$N'" >&2; exit 2; fi
TESTS=("$@")
[[ ${#TESTS[@]} -eq 0 ]] && TESTS=("${DDS_MODULES[@]}")
PY="${FLM_VENV:-$ROOT/.venv}/bin/python"
if [[ ! -x "$PY" ]]; then
    echo "stress_dds: error: no Python at $PY: run scripts/setup.sh, or set FLM_VENV to the environment" >&2; exit 2
fi
LOGS="${STRESS_LOGS:-$(mktemp -d /tmp/flm-stress-dds.XXXXXX)}"
mkdir -p "$LOGS"

LOOPS=()
stop_loops() {
    for pid in "${LOOPS[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${LOOPS[@]}"; do wait "$pid" 2>/dev/null; done
    LOOPS=()
}
trap stop_loops EXIT
trap 'stop_loops; exit 130' INT
trap 'stop_loops; exit 143' TERM
for _ in 1 2; do
    bash -c 'while :; do :; done' &
    LOOPS+=($!)
done

cd "$ROOT"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
echo "stress_dds: $N runs of ${TESTS[*]} with two busy loops (pids ${LOOPS[*]}); logs in $LOGS"
passed=0
for k in $(seq 1 "$N"); do
    log="$LOGS/run_$k.log"
    t0=$SECONDS
    "$PY" -m pytest -q -p no:cacheprovider "${TESTS[@]}" >"$log" 2>&1
    rc=$?
    summary="$(grep -E '(passed|failed|error|no tests ran).* in [0-9.]+s' "$log" | tail -1 | tr -d '=' | xargs)"
    if [[ $rc -eq 0 ]]; then
        passed=$((passed + 1)); verdict=PASS
    else
        verdict=FAIL
    fi
    echo "run $k/$N: $verdict (exit $rc, $((SECONDS - t0)) s): ${summary:-no pytest summary, see $log}"
    [[ $rc -ne 0 ]] && grep -E '^(FAILED|ERROR) ' "$log" | sed 's/^/    /'
done
stop_loops
echo "stress_dds: $passed of $N runs passed (logs in $LOGS)"
[[ $passed -eq $N ]]
