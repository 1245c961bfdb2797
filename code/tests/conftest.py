"""Fixtures: a real git project made from this template in a temporary folder, with a tiny config.

Usage (in a test): def test_x(project): result = sh(project, "run t -f"); assert result.returncode == 0

Nothing here runs against the template's own checkout: every command works in tmp_path.
"""
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

CODE = Path(__file__).resolve().parents[1]
TEMPLATE = CODE.parent

# The test config: the shipped config.py with these values replaced (a few seconds per run)
TINY = {"epochs": 2, "log_every_steps": 10, "progress_bar": False, "keep_checkpoints": 2}


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


def make_project(folder, **config):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(CODE, folder / "code", ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    shutil.copy(TEMPLATE / ".gitignore", folder / ".gitignore")
    set_config(folder, **{**TINY, **config})
    subprocess.run(["git", "init", "-q", "-b", "main", str(folder)], check=True)
    git(folder, "config", "user.email", "test@example.com")
    git(folder, "config", "user.name", "Test")
    commit(folder, "start from the template")
    return folder


@pytest.fixture
def project(tmp_path):
    return make_project(tmp_path / "project")


def sh(project, command, shell="bash", cwd=None, env=None, timeout=300):
    """Run `command` in a real shell that has sourced the project's code/source.sh."""
    script = f'. "{project}/code/source.sh" && cd "{cwd or project}" && {command}'
    return subprocess.run([shell, "-c", script], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def statistic(project, tag, id_):
    return json.loads((Path(project) / "__result__" / tag / str(id_) / "statistic.json").read_text())


def created(project):
    """Everything a command could have created: tags and the result/statistic trees."""
    files = sorted(str(p.relative_to(project)) for d in ("__result__", "__statistic__")
                   for p in (Path(project) / d).rglob("*")) if Path(project).exists() else []
    return git(project, "tag"), files
