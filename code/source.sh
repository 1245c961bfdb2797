# shellcheck shell=bash
# exper-template commands. Usage: `. code/source.sh` (bash or zsh), then `run <tag> -f`, `expls`, ...
# Each command only finds the project and hands over to code/exper.py, where all logic lives.

# The project this file belongs to: the fallback when the current directory is outside any project.
# shellcheck disable=SC2128  # BASH_SOURCE's first element is this file; zsh sets $0 to it instead
_EXPER_HOME=$(cd "$(dirname -- "${BASH_SOURCE:-$0}")/.." && pwd -P)

# Print the project around the current directory (the nearest folder holding code/exper.py).
_exper_root() {
  local _exper_d
  _exper_d=$(pwd -P)
  while [ -n "$_exper_d" ] && [ ! -f "$_exper_d/code/exper.py" ]; do
    _exper_d=${_exper_d%/*}
  done
  printf '%s\n' "${_exper_d:-$_EXPER_HOME}"
}

exper() {
  local _exper_r
  _exper_r=$(_exper_root) || return 1
  EXPER_ROOT="$_exper_r" "${EXPER_PYTHON:-python3}" "$_exper_r/code/exper.py" "$@"
}

run() { exper run "$@"; }
con() { exper continue "$@"; }
re() { exper rerun "$@"; }
rerun() { exper rerun "$@"; }
expls() { exper expls "$@"; }
expels() { exper expels "$@"; }
record() { exper record "$@"; }
title() { exper title "$@"; }
table() { exper table "$@"; }
itb() { exper itb "$@"; }
