"""Bad input everywhere, through the real shell functions in bash and zsh.

Usage: python3 -m pytest code/tests/test_errors.py -q

Every refusal is checked the same way (conftest.refused): a non-zero exit, exactly one
`error: ...` line on stderr holding the expected words, no traceback, and nothing created or
changed: git's refs, HEAD and worktrees, and every file and folder of the project.
"""
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import CODE, SHELLS, commit, git, refused, set_config, sh, statistic, tree
from utils.cli import UsageError, call

INJECTIONS = ["a;touch x", "$(touch x)", "`touch x`", "a|touch x", "a&&touch x", "a>x", "../x", "/tmp/x", "x/../../y",
              "a b", "a\nb", "-x", "--foo", "_scratch", "é", "a*"]
SELECTING = ["con", "rerun", "re", "expels", "record", "itb"]  # commands taking <tag>[/<id>]


def write_record(project, tag, id_, **fields):
    """A run's statistic.json as a run writes it (only the fields the commands read)."""
    folder = Path(project) / "__result__" / tag / str(id_)
    folder.mkdir(parents=True, exist_ok=True)
    record = {"schema": 1, "tag": tag, "id": id_, "status": "finished", "commit": "0" * 40, "subject": "s",
              "seed": 1, "fixed_seed": True, "command": f"run {tag}", "pid": 1, "host": {},
              "hyperparameters": {"lr": 0.1}, "metrics": {"val/acc": 0.5}, "error": None, **fields}
    (folder / "statistic.json").write_text(json.dumps(record))
    return folder


# --- names that try the shell, the file system or git
@pytest.mark.parametrize("shell", SHELLS)
def test_tag_names_that_try_injection_or_escape(project, shell, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for i, word in enumerate(INJECTIONS):
        arg = shlex.quote(word)
        refused(project, f"run -- {arg}", "is not a valid tag name", shell=shell)
        command, other = SELECTING[i % len(SELECTING)], SELECTING[(i + 1) % len(SELECTING)]
        # as a selector, the word before the first / is the tag: x/../../y is tag x with a bad id
        good_tag = re.fullmatch(r"[a-z]+", word.partition("/")[0])
        says = "whole number" if good_tag and "/" in word else "not a valid tag name"
        refused(project, f"{command} -- {arg}", says, shell=shell, cwd=elsewhere)
        says = "whole number" if good_tag else "not a valid tag name"
        refused(project, f"{other} -- {shlex.quote(word + '/0')}", says, shell=shell)
    assert not list(elsewhere.iterdir()) and not (project / "x").exists() and not (tmp_path / "y").exists()


@pytest.mark.parametrize("shell", SHELLS)
def test_list_names_that_try_injection_or_escape(project, shell):
    write_record(project, "t", 0)
    for word in ["../x", "/tmp/x", "a;touch x", "$(touch x)", "`touch x`", "-x", ".hidden", "a/b", "a b", ""]:
        arg = shlex.quote(word)
        refused(project, f"record t --list={arg}", "not a valid list name", shell=shell)
        refused(project, f"title -- {arg}", "not a valid list name", shell=shell)
        refused(project, f"table -- {arg}", "not a valid list name", shell=shell)
    assert not (project / "x").exists()


@pytest.mark.parametrize("shell", SHELLS)
def test_options_never_reach_git(project, shell):
    refused(project, "run --foo", "unknown option '--foo'", shell=shell)  # an option is not a tag
    refused(project, "run -x", "unknown option '-x'", shell=shell)  # named, not "the tag is required"
    refused(project, "run", "the following arguments are required: <tag>", shell=shell)
    refused(project, "run t --upload-pack=touch", "unknown option '--upload-pack=touch'", shell=shell)
    refused(project, "run -- --delete", "not a valid tag name", shell=shell)
    refused(project, "rerun -- -d", "not a valid tag name", shell=shell)
    refused(project, "run t extra", "unrecognized arguments", shell=shell)


@pytest.mark.parametrize("shell", SHELLS)
def test_ids_that_are_not_whole_numbers(project, shell):
    write_record(project, "t", 0)
    for i, selector in enumerate(["t/x", "t/-1", "t/1.5", "t/", "t/0/1", "t/+1", "t/ 1", "t/1e3", "t/٣"]):
        command = ["con", "rerun", "record", "itb"][i % 4]
        refused(project, f"{command} {shlex.quote(selector)}", "whole number", shell=shell)


@pytest.mark.parametrize("shell", SHELLS)
def test_expels_of_one_run_and_of_an_id_the_tag_lacks(project, shell):
    write_record(project, "t", 0, seed=11)
    write_record(project, "t", 1, seed=22)
    one = sh(project, "expels t/1", shell=shell)
    assert one.returncode == 0, one.stderr
    rows = [line.split()[:3] for line in one.stdout.splitlines()[2:]]  # under the header and its rule
    assert rows == [["1", "finished", "22"]], one.stdout
    refused(project, "expels t/2", "no run t/2", shell=shell)
    refused(project, "expels u/0", "no runs of tag 'u'", shell=shell)


def test_tag_names_git_or_folders_would_misread(project):
    for tag in ["a" * 101, "HEAD", "ORIG_HEAD", "a.lock", "a.", "a..b", "a@{1}", "a~1", "a^", "a:b", "a\\b"]:
        refused(project, f"run {shlex.quote(tag)}", "not a valid tag name")


# --- the project itself
@pytest.mark.parametrize("shell", SHELLS)
def test_not_a_git_repository(project, shell):
    subprocess.run(["rm", "-rf", str(project / ".git")], check=True)
    refused(project, "run t", "is not a git repository", shell=shell)
    refused(project, "rerun t", "is not a git repository", shell=shell)
    write_record(project, "t", 0, status="interrupted")
    (project / "__result__/t/0/checkpoint").mkdir()
    (project / "__result__/t/0/checkpoint/epoch_1.pth").write_bytes(b"x")
    (project / "__result__/t/0/checkpoint/epoch_last.pth").symlink_to("epoch_1.pth")
    refused(project, "con t", "is not a git repository", shell=shell)


def test_project_inside_another_repository(project, tmp_path):
    subprocess.run(["rm", "-rf", str(project / ".git")], check=True)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    refused(project, "run t", "the project must be a repository of its own")


def test_no_commit_yet(tmp_path):
    project = tmp_path / "fresh"
    shutil.copytree(CODE, project / "code", ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    refused(project, "run t", "no commit yet")
    refused(project, "rerun t", "no commit yet")


@pytest.mark.parametrize("shell", SHELLS)
def test_dirty_tree_and_tag_on_another_commit(project, shell):
    (project / "notes.txt").write_text("not committed\n")
    refused(project, "run t", "commit them", shell=shell)
    (project / "notes.txt").unlink()
    git(project, "tag", "-a", "-m", "old", "taken")
    (project / "code" / "seed").write_text("7\n")
    commit(project, "new seed")
    refused(project, "run taken", "marks another commit", shell=shell)


def test_detached_head_runs_when_clean_and_says_so(project):
    set_config(project, epochs=1)
    commit(project, "one epoch")
    head = git(project, "rev-parse", "HEAD")
    git(project, "checkout", "-q", "--detach")
    (project / "code" / "model.py").write_text((project / "code" / "model.py").read_text() + "# edit\n")
    refused(project, "run loose", "commit them")
    git(project, "checkout", "-q", "--", "code/model.py")
    result = sh(project, "run loose -f")
    assert result.returncode == 0, result.stderr
    assert "note: HEAD is detached" in result.stderr and "Traceback" not in result.stderr
    s = statistic(project, "loose", 0)
    assert s["status"] == "finished" and s["branch"] is None and s["detached"] is True and s["commit"] == head
    git(project, "checkout", "-q", "main")
    assert sh(project, "run onbranch -f").returncode == 0
    s = statistic(project, "onbranch", 0)
    assert s["branch"] == "main" and s["detached"] is False


# --- files of the project
@pytest.mark.parametrize("shell", SHELLS)
def test_seed_files_that_are_not_whole_numbers(project, shell):
    for text in ["twelve\n", "1.5\n", "-3\n", "", f"{2**63}\n", "0x10\n"]:
        (project / "code" / "seed").write_text(text)
        commit(project, f"seed {text!r}")
        refused(project, "run seeded -f", "code/seed", shell=shell)
    git(project, "tag", "-a", "-m", "bad seed", "seeded")
    refused(project, "rerun seeded -f", "code/seed at seeded", shell=shell)
    git(project, "rm", "-q", "code/seed")
    commit(project, "no seed")
    refused(project, "run noseed -f", "code/seed is missing", shell=shell)


def test_config_missing_a_name_the_checks_need(project):
    path = project / "code" / "config.py"
    path.write_text("".join(line for line in path.read_text().splitlines(True) if not line.startswith("cpu_processes")))
    commit(project, "no cpu_processes")
    refused(project, "run t", "cpu_processes is missing")


@pytest.mark.parametrize("shell", SHELLS)
def test_con_of_runs_it_cannot_continue(project, shell):
    head = git(project, "rev-parse", "HEAD")
    write_record(project, "done", 0, commit=head)
    refused(project, "con done", "finished", shell=shell)
    refused(project, "con done/0", "finished", shell=shell)
    refused(project, "con done/3", "no run done/3", shell=shell)
    write_record(project, "early", 0, status="crashed", commit=head)
    refused(project, "con early", "no checkpoint", shell=shell)
    folder = write_record(project, "moved", 0, status="interrupted", commit="1" * 40)
    (folder / "checkpoint").mkdir()
    (folder / "checkpoint" / "epoch_1.pth").write_bytes(b"not loaded before the checks pass")
    (folder / "checkpoint" / "epoch_last.pth").symlink_to("epoch_1.pth")
    refused(project, "con moved", "there is no git tag 'moved'", shell=shell)
    git(project, "tag", "-a", "-m", "m", "moved")
    refused(project, "con moved", "con would mix two versions", shell=shell)
    (folder / "statistic.json").write_text('{"status": "interr')  # torn by hand
    refused(project, "con moved/0", "is corrupt", shell=shell)
    (folder / "statistic.json").unlink()
    refused(project, "con moved/0", "no runs of tag 'moved'", shell=shell)
    refused(project, "rerun nothing", "no git tag", shell=shell)
    refused(project, "record nothing/0", "no runs of tag", shell=shell)
    refused(project, "itb nothing", "nothing", shell=shell)


# --- lists and titles (utils/statistic)
def lists(project, name, text):
    path = project / "__statistic__" / "exper-list" / f"{name}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize("shell", SHELLS)
def test_malformed_list_lines_name_file_and_line(project, shell):
    write_record(project, "t", 0)
    write_record(project, "t", 1)
    for line in ["t", "t/x", "../x/0", "t/0 t/1", "$(touch x)/0"]:
        lists(project, "bad", f"# my runs\nt/0\n{line}\n")
        where = "__statistic__/exper-list/bad.txt:3"
        refused(project, "record t/1 -l bad", where, shell=shell)
        refused(project, "title bad", where, shell=shell)
        refused(project, "table bad", where, shell=shell)
    refused(project, "table nolist", "no list", shell=shell)
    assert not (project / "x").exists()


@pytest.mark.parametrize("shell", SHELLS)
def test_title_files_that_are_not_valid_even_with_comments(project, shell):
    write_record(project, "t", 0)
    lists(project, "mine", "t/0\n")
    title = project / "__statistic__" / "title" / "mine.json"
    title.parent.mkdir(parents=True)
    for text, line in [('[\n  "metrics/val/acc",\n  oops\n]\n', 3), ('[\n  // "seed",\n  "status"\n  "seed"\n]\n', 3),
                       ('{"a": 1}\n', None), ('[\n  "metrics/val/acc",\n', None), ('[\n  "/",\n]\n', 2)]:
        title.write_text(text)
        where = "__statistic__/title/mine.json" + (f":{line}" if line else "")
        refused(project, "table mine", where, shell=shell)
        refused(project, "title mine", where, shell=shell)


@pytest.mark.parametrize("shell", SHELLS)
def test_a_list_naming_a_run_that_no_longer_exists(project, shell):
    """DESIGN: the table is still built from the other runs, with a warning naming the missing one."""
    write_record(project, "t", 0)
    write_record(project, "t", 1, metrics={"val/acc": 0.75})
    lists(project, "mine", "t/0\nt/1\ngone/3\n")
    result = sh(project, "table mine", shell=shell)
    assert result.returncode == 0, result.stderr
    warnings = result.stderr.strip().splitlines()
    assert len(warnings) == 1 and warnings[0].startswith("warning: ") and "gone/3" in warnings[0]
    csv = (project / "__statistic__" / "table" / "mine.csv").read_text()
    assert "t,0," in csv and "t,1," in csv and "gone" not in csv and "Traceback" not in result.stderr
    (project / "__result__" / "t" / "1" / "statistic.json").write_text("{torn")
    result = sh(project, "table mine", shell=shell)
    assert result.returncode == 0 and "t/1" in result.stderr and "corrupt" in result.stderr


# --- what the machine refuses, and genuine bugs
def test_a_file_the_machine_refuses_is_one_error_line(project):
    write_record(project, "t", 0)
    (project / "__statistic__").mkdir()
    (project / "__statistic__" / "exper-list").write_text("a file where a folder belongs\n")
    line = refused(project, "record t/0", "exper-list")
    assert "exist" in line or "directory" in line.lower()


def test_call_keeps_tracebacks_for_bugs(capsys):
    def bad_input(argv):
        raise UsageError("what is wrong; what to do")

    def refused_file(argv):
        open("/nonexistent-folder/x", "w")

    def bug(argv):
        return {}["missing key"]

    def nameless_os_error(argv):
        raise OSError("no file named")

    assert call(bad_input, []) == 1
    assert call(refused_file, []) == 1
    assert capsys.readouterr().err.splitlines() == [
        "error: what is wrong; what to do", "error: /nonexistent-folder/x: No such file or directory"]
    with pytest.raises(KeyError):
        call(bug, [])
    with pytest.raises(OSError):
        call(nameless_os_error, [])


def test_a_bug_in_a_command_shows_its_traceback(project):
    path = project / "code" / "utils" / "statistic" / "listing.py"
    text = path.read_text()
    path.write_text(text.replace("    root = project_root()\n", "    root = project_root()\n    1 / 0\n", 1))
    result = sh(project, "expls")
    assert result.returncode != 0 and "Traceback" in result.stderr and "ZeroDivisionError" in result.stderr


# --- where commands write
@pytest.mark.slow
def test_commands_write_only_inside_the_projects_own_folders(project, tmp_path):
    """run, rerun (in a temporary worktree), record, title, table, expls, expels: every file they
    leave is under __result__, __statistic__ or __data__ (git's own refs aside), and their
    temporary files (rerun's worktree) are gone: $TMPDIR and $HOME end as empty as they began."""
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    env = {"HOME": str(home), "TMPDIR": str(tmp), "XDG_CACHE_HOME": str(home / ".cache")}
    set_config(project, epochs=1)
    commit(project, "one epoch")
    own = ("__result__", "__statistic__", "__data__")

    def outside(files):
        return {k: v for k, v in files.items() if k.split("/")[0] not in own}

    before = outside(tree(project)[1])
    assert sh(project, "run sec -f", env=env).returncode == 0
    assert outside(tree(project)[1]) == before
    (project / "code" / "notes.txt").write_text("later\n")
    commit(project, "HEAD moves on")
    before = outside(tree(project)[1])
    for command in ("rerun sec/0", "record sec", "title", "table", "expls", "expels sec"):
        result = sh(project, command, env=env)
        assert result.returncode == 0, (command, result.stderr)
    assert outside(tree(project)[1]) == before
    assert list(home.iterdir()) == []
    # torch itself makes an empty torchinductor_<user> cache folder in $TMPDIR when imported
    assert [p.name for p in tmp.iterdir() if not p.name.startswith("torchinductor_")] == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "project", "tmp"]
    assert git(project, "worktree", "list").count("\n") == 0
