"""code/source.sh in real bash and zsh: sourcing, strict shells, aliases, Tab completion, shellcheck.

Usage: python3 -m pytest code/tests/test_shell.py -q

Completion is tested three ways: the candidate function itself, the registered completion
function fed the words a shell would give it (bash's COMP_WORDS), and an interactive shell on
a pseudo-terminal that is sent real Tab key presses.
"""
import json
import os
import re
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import CODE, SHELLS, sh
from utils.commands import COMMANDS as TABLE
from utils.commands import SHELL_FUNCTIONS

COMMANDS = [*SHELL_FUNCTIONS, "exper"]
COMPLETED = COMMANDS  # every one is registered (expls completes to nothing)


def fake_runs(project, runs=(("small-lr", 0), ("small-lr", 1), ("small-lr", 12), ("smile", 0), ("wide", 3)),
              lists=("record", "finished", "best")):
    """Run folders and lists as completion sees them: folder names (and a statistic.json in each run)."""
    for tag, id_ in runs:
        folder = Path(project) / "__result__" / tag / str(id_)
        folder.mkdir(parents=True)
        (folder / "statistic.json").write_text(json.dumps({"tag": tag, "id": id_, "status": "interrupted"}))
    (Path(project) / "__result__" / tag / "99").mkdir()  # an id being created: no statistic.json yet
    (Path(project) / "__result__" / "_scratch" / "0").mkdir(parents=True)
    for name in lists:
        folder = Path(project) / "__statistic__" / "exper-list"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.txt").write_text("")


def shell_script(shell, script, cwd, env=None, timeout=60):
    return subprocess.run([shell, "-c", script], capture_output=True, text=True, cwd=cwd, timeout=timeout,
                          env={**os.environ, "HOME": str(cwd), **(env or {})})


@pytest.mark.skipif(not shutil.which("shellcheck"), reason="shellcheck missing: apt-get install shellcheck")
def test_the_shell_defines_the_commands_of_the_one_list():
    """source.sh's names are utils/commands.py's: one list of the commands on each side of the shell."""
    line = next(line for line in (CODE / "source.sh").read_text().splitlines() if line.startswith("_EXPER_COMMANDS="))
    assert line.split("=", 1)[1].strip("'").split() == list(SHELL_FUNCTIONS)
    assert set(SHELL_FUNCTIONS) <= set(TABLE) and "continue" not in SHELL_FUNCTIONS


def test_shellcheck_is_clean(project):
    result = subprocess.run(["shellcheck", str(project / "code" / "source.sh")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


# --- sourcing
@pytest.mark.parametrize("shell", SHELLS)
def test_sourced_twice_from_anywhere_under_strict_options(project, tmp_path, shell):
    other = tmp_path / "other"  # a second project: commands follow the current directory
    shutil.copytree(project / "code", other / "code", ignore=shutil.ignore_patterns("__pycache__"))
    fake_runs(other, runs=[("elsewhere", 0)], lists=())
    outside = tmp_path / "outside"
    outside.mkdir()
    script = f"""set -eu; set -o pipefail
cd /
. "{project}/code/source.sh"
. "{project}/code/source.sh"
cd "{project}/code/utils" && expls && run -h | head -1
cd "{other}/__result__/elsewhere" && expls
cd "{outside}" && expls
cd "{project}/code" && . ./source.sh && cd "{outside}" && exper expls
echo survived
"""
    result = shell_script(shell, script, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    assert out[0] == "no runs yet: `run <tag> -f` starts one"
    assert out[1].startswith("usage: run")
    assert out[2].startswith("tag") and out[4].startswith("elsewhere")  # the project around the folder
    assert out[5:] == ["no runs yet: `run <tag> -f` starts one"] * 2 + ["survived"]  # outside: the sourced one
    assert result.stderr == ""


SNAPSHOT = {
    "bash": "set -o; shopt; trap -p; alias; echo flags $-; echo '==='; compgen -v; echo '==='; compgen -A function||:",
    "zsh": "set -o; trap; alias; echo '==='; print -l ${(k)parameters}; echo '==='; print -l ${(k)functions}",
}
RESERVED = {"bash": "compgen -b; compgen -k", "zsh": "print -l ${(k)builtins} ${(k)reswords}"}


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("options", ["", "set -u; set -o pipefail; set -e"])
def test_sourcing_leaves_the_shell_as_it_was(project, shell, options):
    snapshot = SNAPSHOT[shell]
    modules = "zmodload zsh/zle zsh/compctl" if shell == "zsh" else ""  # loaded in any interactive zsh
    script = f"""{options}
{modules}
{snapshot}
echo '==='
. "{project}/code/source.sh"
{snapshot}
echo '==='
{RESERVED[shell]}
"""
    result = shell_script(shell, script, cwd=project)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    parts = result.stdout.split("===\n")
    (settings, variables, functions), (settings2, variables2, functions2) = parts[0:3], parts[3:6]
    reserved = set(parts[6].split())
    assert settings2 == settings  # options, traps, aliases
    new_variables = set(variables2.split()) - set(variables.split()) - {"_"}
    assert new_variables and all(v.startswith("_EXPER_") for v in new_variables), new_variables
    new_functions = set(functions2.split()) - set(functions.split())
    assert set(COMMANDS) <= new_functions
    assert all(f in COMMANDS or f.startswith("_exper_") for f in new_functions), new_functions
    assert "continue" in reserved and not new_functions & reserved


@pytest.mark.parametrize("shell", SHELLS)
def test_continue_and_loops_still_work(project, shell):
    script = f""". "{project}/code/source.sh"
for i in 1 2 3; do [ "$i" = 2 ] && continue; printf '%s ' "$i"; done
echo; type continue
"""
    result = shell_script(shell, script, cwd=project)
    assert result.stdout.splitlines()[0] == "1 3 " and "builtin" in result.stdout.splitlines()[1]


@pytest.mark.parametrize("shell", SHELLS)
def test_an_alias_named_like_a_command_does_not_break_sourcing(project, shell):
    aliases = "shopt -s expand_aliases; " if shell == "bash" else ""
    script = f"""{aliases}alias re='echo mine'; alias table='echo mine too'
. "{project}/code/source.sh"
echo sourced
"""
    # eval: aliases apply to code read after they are defined (zsh -c reads its whole script at once)
    result = shell_script(shell, script + "eval re; eval '\\rerun -h | head -1; \\expls'\n", cwd=project)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert result.stdout.splitlines() == ["sourced", "mine", "usage: rerun [-h] [-f] <tag>[/<id>]",
                                          "no runs yet: `run <tag> -f` starts one"]


@pytest.mark.parametrize("shell", SHELLS)
def test_arguments_reach_python_unevaluated(project, shell, tmp_path):
    """Quotes, globs, $(...), backquotes and ; in arguments arrive as the very characters typed."""
    words = ["a;touch x", "$(touch x)", "`touch x`", "*", "a b", "--foo", "'", '"']
    quoted = " ".join("'" + w.replace("'", "'\\''") + "'" for w in words)
    script = f""". "{project}/code/source.sh"
cd "{tmp_path}"
EXPER_PYTHON="{tmp_path}/argv.py" exper record {quoted}
"""
    (tmp_path / "argv.py").write_text("#!/bin/sh\nshift; for a do printf '%s\\n' \"$a\"; done\n")
    (tmp_path / "argv.py").chmod(0o755)
    result = shell_script(shell, script, cwd=tmp_path)
    assert result.stdout.splitlines() == ["record", *words]
    assert not (tmp_path / "x").exists() and not (project / "x").exists()


# --- completion
def candidates(shell, project, words, index=None, cwd=None):
    index = len(words) - 1 if index is None else index
    quoted = " ".join(f"'{w}'" for w in words)
    script = f'. "{project}/code/source.sh"; _exper_candidates {index} {quoted}'
    result = shell_script(shell, script, cwd=cwd or project)
    assert result.stderr == ""
    return result.stdout.split()


@pytest.mark.parametrize("shell", SHELLS)
def test_candidates(project, shell):
    fake_runs(project)
    case = {
        ("con", ""): ["small-lr", "smile", "wide"],
        ("con", "sm"): ["small-lr", "smile"],
        ("con", "sma"): ["small-lr", "small-lr/0", "small-lr/1", "small-lr/12"],  # one tag: its ids too
        ("rerun", "small-lr/1"): ["small-lr/1", "small-lr/12"],
        ("record", "wide", "w"): ["wide", "wide/3"],  # record takes many runs
        ("itb", "small-lr/"): ["small-lr/0", "small-lr/1", "small-lr/12"],
        ("re", "nothing"): [],
        ("run", "w"): ["wide"],  # run and expels take a tag
        ("expels", ""): ["small-lr", "smile", "wide"],
        ("expels", "wide", ""): [],  # only one
        ("con", "wide", ""): [],
        ("con", "-"): [],
        ("title", ""): ["best", "finished", "record"],
        ("table", "f"): ["finished"],
        ("table", "-s", ""): [],  # an option's value
        ("record", "-l", "b"): ["best"],
        ("record", "small-lr/0", "--list", ""): ["best", "finished", "record"],
        ("exper", "co"): ["con", "continue"],
        ("exper", "con", "w"): ["wide", "wide/3"],
        ("expls", ""): [],
    }
    for words, expected in case.items():
        assert candidates(shell, project, words) == expected, words
    subfolder = project / "__result__" / "wide"
    assert candidates(shell, project, ["con", "sm"], cwd=subfolder) == ["small-lr", "smile"]


def test_bash_registers_and_fills_compreply(project):
    fake_runs(project)
    script = f""". "{project}/code/source.sh"; . "{project}/code/source.sh"
for c in {' '.join(COMPLETED)}; do complete -p "$c"; done
COMP_WORDS=(con sma); COMP_CWORD=1; _exper_complete_bash; echo "${{COMPREPLY[*]}}"
COMP_WORDS=(record -l ''); COMP_CWORD=2; _exper_complete_bash; echo "${{COMPREPLY[*]}}"
COMP_WORDS=(expls ''); COMP_CWORD=1; _exper_complete_bash; echo "${{#COMPREPLY[@]}}"
"""
    result = shell_script("bash", script, cwd=project / "code")
    lines = result.stdout.splitlines()
    assert lines[:len(COMPLETED)] == [f"complete -F _exper_complete_bash {c}" for c in COMPLETED]
    assert lines[len(COMPLETED):] == ["small-lr small-lr/0 small-lr/1 small-lr/12", "best finished record", "0"]


@pytest.mark.skipif(not shutil.which("zsh"), reason="zsh missing: apt-get install zsh")
def test_zsh_registers_with_compdef_when_compinit_is_loaded_else_compctl(project):
    with_compinit = f"""autoload -Uz compinit && compinit -u -D
. "{project}/code/source.sh"; . "{project}/code/source.sh"
for c in {' '.join(COMPLETED)}; do print -r -- "$c $_comps[$c]"; done
"""
    result = shell_script("zsh", with_compinit, cwd=project)
    assert result.stdout.splitlines() == [f"{c} _exper_complete_zsh" for c in COMPLETED], result.stderr
    without = f'. "{project}/code/source.sh"; compctl -L {" ".join(COMPLETED)}; whence compinit compdef || echo none'
    result = shell_script("zsh", without, cwd=project)
    assert result.stdout.splitlines() == [f"compctl -K _exper_complete_compctl -S '' {c}" for c in COMPLETED] + ["none"]


def shown(screen):
    """The terminal's text without escape sequences and bells."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x07", "", screen.decode(errors="replace"))


def interactive(argv, setup, keys, expect, cwd, timeout=30):
    """Type `keys` (one string a key press batch) into an interactive shell on a pseudo-terminal;
    return what the terminal showed after them, once every string of `expect` appeared."""
    master, slave = os.openpty()
    env = {**os.environ, "TERM": "xterm", "HOME": str(cwd), "PS1": "$ "}
    process = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env, start_new_session=True)
    os.close(slave)
    screen = b""

    def read_until(done, seconds):
        nonlocal screen
        end = time.monotonic() + seconds
        while not done() and time.monotonic() < end:
            if select.select([master], [], [], 0.1)[0]:
                try:
                    screen += os.read(master, 65536)
                except OSError:
                    return

    try:
        os.write(master, f"{setup}; echo READY\n".encode())
        read_until(lambda: screen.count(b"READY") >= 2, timeout)  # the echoed line, then the output
        read_until(lambda: False, 0.5)  # the prompt
        start = len(screen)
        for key in keys:
            os.write(master, key.encode())
            read_until(lambda: False, 0.3)
        read_until(lambda: all(e in shown(screen[start:]) for e in expect), timeout)
        return shown(screen[start:])
    finally:
        process.kill()
        process.wait()
        os.close(master)


SESSIONS = {
    "bash": (["bash", "--norc", "--noprofile", "-i"], ""),
    "zsh compinit": (["zsh", "-f", "-i"], "autoload -Uz compinit; compinit -u -D; "),
    "zsh compctl": (["zsh", "-f", "-i"], ""),
}


@pytest.mark.parametrize("session", list(SESSIONS))
def test_tab_in_an_interactive_shell(project, session):
    if session.startswith("zsh") and not shutil.which("zsh"):
        pytest.skip("zsh missing: apt-get install zsh")
    fake_runs(project)
    argv, setup = SESSIONS[session]
    setup += f'. "{project}/code/source.sh"'
    screen = interactive(argv, setup, ["con sma\t"], ["small-lr"], cwd=project)
    assert "con small-lr" in screen, screen
    screen = interactive(argv, setup, ["con small-lr\t", "\t"], ["small-lr/12"], cwd=project)
    assert "small-lr/0" in screen and "small-lr/12" in screen and "smile" not in screen, screen
    screen = interactive(argv, setup, ["table fin\t"], ["finished"], cwd=project)
    assert "table finished" in screen, screen


def test_candidates_are_instant_and_import_neither_torch_nor_git(project):
    fake_runs(project)
    complete = project / "code" / "utils" / "statistic" / "complete.py"
    argv = ["python3", "-S", "-X", "importtime", str(complete), "1", "con", "sma"]
    result = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "EXPER_ROOT": str(project)})
    assert result.stdout.split() == ["small-lr", "small-lr/0", "small-lr/1", "small-lr/12"]
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines()[1:]}
    assert not {"torch", "subprocess", "json", "argparse"} & imported, imported
    script = f""". "{project}/code/source.sh"; _exper_python; echo "$_EXPER_PY"
start=$(date +%s%N); for i in 1 2 3 4 5; do _exper_candidates 1 con sma >/dev/null; done; end=$(date +%s%N)
echo $(( (end - start) / 5000000 ))"""
    interpreter, milliseconds = shell_script("bash", script, cwd=project).stdout.split()
    assert os.path.isabs(interpreter) and os.access(interpreter, os.X_OK)  # no shim in between
    assert int(milliseconds) < 500, milliseconds  # about 10 ms on an idle machine
    via_exper = sh(project, "exper complete 1 con sma")
    assert via_exper.stdout.split() == ["small-lr", "small-lr/0", "small-lr/1", "small-lr/12"]
    assert sh(project, "exper complete").returncode != 0
