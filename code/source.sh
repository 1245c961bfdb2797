# shellcheck shell=bash
# exper-template commands. Usage: `. code/source.sh` (bash or zsh), then `run <tag> -f`, `expls`, ...
# Each command only finds the project and hands over to code/utils/exper.py, where all logic lives.
#
# Sourced into a researcher's interactive shell, so: no shell option, trap or alias is set, every
# variable is local or named _EXPER_*, no name shadows a builtin (`con`, never `continue`),
# nothing user-typed is evaluated, and sourcing twice is harmless. Functions are defined as
# `function name {`: with `name() {`, an alias of that name (say `alias re=...`) would be
# expanded while this file is read and break it, in bash and zsh alike.

# The project this file belongs to: the fallback when the current directory is outside any project.
if [ -n "${ZSH_VERSION:-}" ]; then
  # the file being sourced (whatever $0 holds), made absolute (:A), then two folders up (:h:h)
  eval '_EXPER_HOME=${${(%):-%x}:A:h:h}'  # no cd: zsh would run the user's chpwd hooks
else
  # shellcheck disable=SC2128  # BASH_SOURCE's first element is this file
  _EXPER_HOME=$(CDPATH='' cd -- "$(dirname -- "${BASH_SOURCE:-$0}")/.." && pwd -P)
fi

# Print the project around the current directory (the nearest folder holding code/utils/exper.py).
function _exper_root {
  local _exper_d
  _exper_d=$(pwd -P 2>/dev/null)
  while [ -n "$_exper_d" ] && [ ! -f "$_exper_d/code/utils/exper.py" ]; do
    _exper_d=${_exper_d%/*}
  done
  printf '%s\n' "${_exper_d:-$_EXPER_HOME}"
}

function exper {
  local _exper_r
  _exper_r=$(_exper_root) || return 1
  EXPER_ROOT="$_exper_r" "${EXPER_PYTHON:-python3}" "$_exper_r/code/utils/exper.py" "$@"
}

# One function a command, each calling `exper <name>`: the names are those of code/utils/commands.py
# (a test keeps the two alike). eval only joins these constant names into definitions.
_EXPER_COMMANDS='run con re rerun expls expels expdel record title table itb plot sweep'
for _EXPER_CMD in $(printf '%s' "$_EXPER_COMMANDS"); do
  eval "function $_EXPER_CMD { exper $_EXPER_CMD \"\$@\"; }"
done
unset _EXPER_CMD

# --- Tab completion: tags and <tag>/<id> for run, con, rerun, expels, record, itb, plot, sweep; list names
# for title, table, record -l and plot -l; sweep names for sweep --status and --stop.
# code/utils/statistic/complete.py reads folder names only, run by the interpreter itself with -S
# (no site-packages): a few milliseconds, no torch, no git.
# Arrays appear only here, because COMPREPLY (bash) and words/reply (zsh) are how shells complete.

# Remember the interpreter's own path in _EXPER_PY, once per shell: a pyenv or conda shim in
# front of python3 costs more than the whole completion. Only the standard library is needed.
function _exper_python {
  [ -x "${_EXPER_PY:-}" ] && return 0
  _EXPER_PY=$("${EXPER_PYTHON:-python3}" -c 'import sys; print(sys.executable)' 2>/dev/null)
}

# Print the candidates for word <index> of the words that follow (the command first), one a line.
function _exper_candidates {
  local _exper_r
  _exper_r=$(_exper_root) && _exper_python || return 1
  EXPER_ROOT="$_exper_r" "$_EXPER_PY" -S "$_exper_r/code/utils/statistic/complete.py" "$@" 2>/dev/null
}

function _exper_complete_bash {
  local IFS='
'
  _exper_python  # here, not in the $(...) below, which could not keep it
  # shellcheck disable=SC2207  # candidates are names without blanks or glob characters
  COMPREPLY=($(_exper_candidates "$COMP_CWORD" "${COMP_WORDS[@]}"))
  if [ "${#COMPREPLY[@]}" = 1 ]; then  # one tag: no space after it, so that /<id> can follow
    case ${COMPREPLY[0]} in */*) ;; *) compopt -o nospace 2>/dev/null ;; esac
  fi
}

function _exper_complete_zsh {
  local _exper_found
  _exper_python
  # shellcheck disable=SC2154,SC2207  # zsh's completion sets words and CURRENT; one name a line, split on purpose
  _exper_found=($(_exper_candidates "$((CURRENT - 1))" "${words[@]}"))
  case "${#_exper_found[@]} ${_exper_found[*]}" in
    "1 "*/*|0*) compadd -- "${_exper_found[@]}" ;;
    "1 "*) compadd -S '' -- "${_exper_found[@]}" ;;  # one tag: no space after it, so that /<id> can follow
    *) compadd -- "${_exper_found[@]}" ;;
  esac
}

function _exper_complete_compctl {
  local _exper_words _exper_n
  read -rAc _exper_words
  read -rcn _exper_n
  _exper_python
  # shellcheck disable=SC2034,SC2207  # reply is what compctl reads; names without blanks or glob characters
  reply=($(_exper_candidates "$((_exper_n - 1))" "${_exper_words[@]}"))
}

if [ -n "${ZSH_VERSION:-}" ]; then
  if command -v compdef >/dev/null 2>&1; then  # compinit is loaded (we never load it ourselves)
    eval 'compdef _exper_complete_zsh ${=_EXPER_COMMANDS} exper'
  else  # -S '': no space after a tag, so that /<id> can follow
    eval 'compctl -S "" -K _exper_complete_compctl ${=_EXPER_COMMANDS} exper'
  fi
elif command -v complete >/dev/null 2>&1; then
  # shellcheck disable=SC2086  # the constant list of names, split on purpose
  complete -F _exper_complete_bash $_EXPER_COMMANDS exper
fi
