#!/usr/bin/env bash
# ibc_ros entry point. Sets up (or reuses) .venv, then:
#   ./run.sh demo [ARGS]   the simulated stack with the shipped pixel policy, 10 episodes, then its
#                          success summary (episodes:=N for another count, episodes:=0 endless)
#   ./run.sh test [ARGS]   the test suite CI runs (slow experiments excluded)
#   ./run.sh CMD [ARGS]    any command inside the environment (ibc-train, pytest -m slow, ...)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$repo/scripts/bootstrap.sh"
export PATH="${IBC_VENV:-$repo/.venv}/bin:$PATH"
cd "$repo"
cmd="${1:-help}"
[ $# -gt 0 ] && shift
case "$cmd" in
  demo) exec ibc-ros launch real_push sim:=true episodes:=10 "$@" ;;   # later arguments win
  test) exec python -m pytest -m "not slow" "$@" ;;
  help|-h|--help) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) exec "$cmd" "$@" ;;
esac
