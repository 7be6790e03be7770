# Set-up output for the project's scripts: one line per step, the step's own output (pip,
# CMake, compilers) kept in a log file and shown only when the step fails.
#
#   source "$(dirname "$0")/_log.sh"
#   log_to setup                               # log: build/logs/setup.log (appended to)
#   step "installing torch" pip install ...    # "[setup] installing torch ... ok (12 s)"
#   step "building" some_shell_function args   # any command or function
#
# GAPO_VERBOSE=1 shows every step's output as it runs (it still goes to the log).
# The log file of a script that calls another is shared: log_to keeps GAPO_LOG when set.

_GAPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# log_to NAME: steps from here on log to build/logs/NAME.log, unless a calling script chose a
# log already (GAPO_LOG); NAME also prefixes each line.
log_to() {
  GAPO_LOG_TAG="$1"
  if [[ -z "${GAPO_LOG:-}" ]]; then
    mkdir -p "$_GAPO_ROOT/build/logs"
    export GAPO_LOG="$_GAPO_ROOT/build/logs/$1.log"
    : >"$GAPO_LOG"
  else
    mkdir -p "$(dirname "$GAPO_LOG")"
    touch "$GAPO_LOG"
  fi
}

# step DESCRIPTION COMMAND [ARGS...]: run the command with its output in the log; print one
# line with the outcome. On failure print the step's output and exit with the command's status.
step() {
  local what="$1" start=$SECONDS status=0
  shift
  [[ -n "${GAPO_LOG:-}" ]] || log_to "${GAPO_LOG_TAG:-setup}"
  printf '[%s] %s ... ' "${GAPO_LOG_TAG:-setup}" "$what"
  local first_line=$(($(wc -l <"$GAPO_LOG") + 2))  # this step's header, below
  {
    echo
    echo "### $(date -u '+%H:%M:%S') [${GAPO_LOG_TAG:-setup}] $what"
    echo "### \$ $*"
  } >>"$GAPO_LOG"
  # The command runs in a subshell with errexit on (a function stops at its first failing
  # command), and not inside `||`, where bash would switch errexit off for it.
  local errexit=0
  [[ $- == *e* ]] && errexit=1
  set +e
  if [[ "${GAPO_VERBOSE:-0}" == "1" ]]; then
    echo
    (set -e; "$@") 2>&1 </dev/null | tee -a "$GAPO_LOG"
    status=${PIPESTATUS[0]}
  else
    (set -e; "$@") >>"$GAPO_LOG" 2>&1 </dev/null
    status=$?
  fi
  [[ $errexit -eq 1 ]] && set -e
  if [[ $status -eq 0 ]]; then
    echo "ok ($((SECONDS - start)) s)"
    return 0
  fi
  echo "FAILED (exit $status after $((SECONDS - start)) s)"
  echo "----- the step's output (its last 80 lines) -----" >&2
  tail -n "+$first_line" "$GAPO_LOG" | tail -n 80 >&2
  echo "----- the log of every step: $GAPO_LOG -----" >&2
  exit "$status"
}

# say TEXT: a line in the same style, for facts that are not steps.
say() {
  echo "[${GAPO_LOG_TAG:-setup}] $*"
}
