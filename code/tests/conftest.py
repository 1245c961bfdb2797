"""Fixtures: a real git project made from this template in a temporary folder, training the tests' research.

Usage (in a test): def test_x(project): result = sh(project, "run t -f"); assert result.returncode == 0

Nothing here runs against the template's own checkout: every command works in tmp_path. The
project's code/ is the template's, with the research files replaced by those of tests/research/
(a tiny two-model regression): the template's tests never depend on the example, so they keep
passing when a researcher replaces it. Tests of the example itself are in test_example.py.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CODE = Path(__file__).resolve().parents[1]
TEMPLATE = CODE.parent
# the example's main.py says what it is in its first line; a recipe's or a researcher's own says otherwise
EXAMPLE_HERE = (CODE / "main.py").read_text().startswith('"""Train the example and record')
NOT_EXAMPLE = "code/ no longer holds the digits example; these tests go with it"
RESEARCH = Path(__file__).resolve().parent / "research"  # config.py, main.py, model.py, dataloader.py, epoch.py
sys.path.insert(0, str(CODE))

from utils.procs import descendants, stat_fields  # noqa: E402


def set_config(project, **values):
    """Rewrite assignments in the project's code/config.py (the name must already be there)."""
    path = Path(project) / "code" / "config.py"
    lines = path.read_text().splitlines()
    for name, value in values.items():
        for i, line in enumerate(lines):
            if line.startswith(f"{name} = "):
                comment = line[line.index("#"):] if "#" in line else ""
                lines[i] = f"{name} = {value!r}  {comment}".rstrip()
                break
        else:
            lines.append(f"{name} = {value!r}")
    path.write_text("\n".join(lines) + "\n")


def git(project, *argv):
    return subprocess.run(["git", "-C", str(project), *argv], check=True, capture_output=True, text=True).stdout.strip()


def commit(project, message="change"):
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", message)


def make_project(folder, research=RESEARCH, **config):
    """A git project of the template in folder, its research files those of `research` (None: the example's)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(CODE, folder / "code", ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    if research is not None:
        for path in Path(research).glob("*.py"):
            shutil.copy(path, folder / "code" / path.name)
    shutil.copy(TEMPLATE / ".gitignore", folder / ".gitignore")
    set_config(folder, **config)
    subprocess.run(["git", "init", "-q", "-b", "main", str(folder)], check=True)
    git(folder, "config", "user.email", "test@example.com")
    git(folder, "config", "user.name", "Test")
    commit(folder, "start from the template")
    return folder


@pytest.fixture
def project(tmp_path):
    return make_project(tmp_path / "project")


def in_project(project, command, cwd=None):
    """A shell script that sources the project's code/source.sh, then runs `command` in cwd (the project)."""
    return f'. "{project}/code/source.sh" && cd "{cwd or project}" && {command}'


def sh(project, command, shell="bash", cwd=None, env=None, timeout=300):
    """Run `command` in a real shell that has sourced the project's code/source.sh."""
    return subprocess.run([shell, "-c", in_project(project, command, cwd)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def start(project, command, env=None, output=subprocess.PIPE):
    """Start `command` as sh() does, in its own process group, as a terminal would: os.killpg(proc.pid,
    SIGINT) is a Ctrl-C reaching every process of the command."""
    return subprocess.Popen(["bash", "-c", in_project(project, command)], stdout=output, stderr=output, text=True,
                            start_new_session=True, env={**os.environ, **(env or {})})


def statistic(project, tag, id_):
    return json.loads((Path(project) / "__result__" / tag / str(id_) / "statistic.json").read_text())


def created(project):
    """Everything a command could have created: tags and the result/statistic trees."""
    files = sorted(str(p.relative_to(project)) for d in ("__result__", "__statistic__")
                   for p in (Path(project) / d).rglob("*")) if Path(project).exists() else []
    return git(project, "tag"), files


# --- the shells the commands live in, and commands that must refuse
SHELLS = ["bash", pytest.param("zsh", marks=pytest.mark.skipif(not shutil.which("zsh"),
                                                              reason="zsh missing: apt-get install zsh"))]


def tree(project):
    """What a refused command must leave as it was: git's refs, HEAD and worktrees (None outside a
    repository), and every file and folder of the project outside .git and __pycache__ (size, mtime),
    but for the empty .<name>.lock files that writers of a shared file create once and keep."""
    project = Path(project)
    out = subprocess.run(["git", "-C", str(project), "for-each-ref", "--format=%(refname) %(objectname)"],
                         capture_output=True, text=True)
    refs = None
    if out.returncode == 0:
        head = subprocess.run(["git", "-C", str(project), "rev-parse", "--symbolic-full-name", "HEAD", "HEAD"],
                              capture_output=True, text=True).stdout
        worktrees = subprocess.run(["git", "-C", str(project), "worktree", "list", "--porcelain"],
                                   capture_output=True, text=True).stdout
        refs = (out.stdout, head, worktrees)
    files = {}
    for folder, dirs, names in os.walk(project):
        dirs[:] = [d for d in dirs if d not in (".git", "__pycache__")]
        for name in dirs + [n for n in names if not (n.startswith(".") and n.endswith(".lock"))]:  # lock files stay
            stat = os.lstat(os.path.join(folder, name))
            is_dir = name in dirs  # a folder's own mtime follows its entries, which are compared themselves
            files[os.path.relpath(os.path.join(folder, name), project)] = (
                (stat.st_mode,) if is_dir else (stat.st_mode, stat.st_size, stat.st_mtime_ns))
    return refs, files


def refused(project, command, words, shell="bash", cwd=None, env=None):
    """`command` fails with one `error:` line holding `words`, no traceback, and changes nothing."""
    before = tree(project)
    result = sh(project, command, shell=shell, cwd=cwd, env=env)
    assert result.returncode != 0, (command, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], (command, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    assert tree(project) == before, command
    return lines[0]


def wait_for(predicate, timeout=120, every=0.02):
    """Poll predicate() until it is true; fail the test after `timeout` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(every)
    raise AssertionError("timed out")


def last_step(run):
    """The step of a run folder's metrics.csv's last whole row (0 before there is one)."""
    try:
        text = (Path(run) / "metrics.csv").read_text()
    except FileNotFoundError:
        return 0
    lines = text[: text.rfind("\n")].splitlines()
    return int(lines[-1].split(",")[1]) if len(lines) > 1 else 0


def kill_tree(proc, signum=signal.SIGKILL):
    """Kill a started command and every process below it at once, as a machine's crash would. The
    command's group is stopped first, so that no process is started between the listing and the kill."""
    os.killpg(proc.pid, signal.SIGSTOP)
    pids = descendants(proc.pid)
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass
    os.killpg(proc.pid, signum)
    proc.communicate(timeout=60)
    return pids


def get(url, path, body=None, raw=False):
    """TensorBoard's HTTP data API: path's JSON (POSTing body when given), or its bytes with raw."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url.rstrip("/") + path, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        content = response.read()
    return content if raw else json.loads(content)


def eventually(check, timeout=60):
    """check()'s value once it is truthy; TensorBoard loads event files in the background."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except OSError:
            value = None
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def stop_itb(project):
    """Stop every TensorBoard `itb` started in the project; a server --stop missed, by its pid."""
    sh(project, "itb --stop all")
    for info in (Path(project) / "__statistic__" / "itb").glob("*/server.json"):
        pid = json.loads(info.read_text()).get("pid")
        if isinstance(pid, int) and alive(pid):
            os.killpg(pid, signal.SIGKILL)


def alive(pid):
    """Whether the process runs (a zombie does not)."""
    fields = stat_fields(pid)
    return bool(fields) and fields[0] != "Z"
