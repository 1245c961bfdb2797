"""The template's tests guard the template whatever the research: swap the gan recipe in for the example
and run them. Usage: python3 -m pytest code/tests/test_any_research.py -q

A researcher who starts from a recipe (or their own code) keeps a passing suite: the template's
tests train the research fixture of tests/research/, never what code/ holds, and the example's
own tests (test_example.py) skip once the example is gone.
"""
import shutil
import subprocess
import sys

import pytest

from conftest import CODE, TEMPLATE, commit, git

CHOSEN = ["test_run.py::test_run_records_everything", "test_run.py::test_sigterm_interrupts", "test_values.py",
          "test_errors.py::test_dirty_tree_and_tag_on_another_commit", "test_example.py",
          "test_bench_quick.py::test_overhead_quick"]


@pytest.mark.slow
@pytest.mark.skipif(not (CODE / "examples" / "gan").is_dir(), reason="code/examples/gan/ is gone: nothing to swap in")
def test_the_template_tests_pass_with_the_gan_recipe_in_place_of_the_example(tmp_path):
    project = tmp_path / "project"
    shutil.copytree(CODE, project / "code", ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    shutil.copy(TEMPLATE / ".gitignore", project / ".gitignore")
    subprocess.run(["git", "init", "-q", "-b", "main", str(project)], check=True)
    git(project, "config", "user.email", "test@example.com")
    git(project, "config", "user.name", "Test")
    commit(project, "start from the template")
    for path in (CODE / "examples" / "gan").glob("*.py"):  # as README says: copy the recipe over code/, commit
        shutil.copy(path, project / "code" / path.name)
    commit(project, "start from the gan recipe")
    assert "Generator" in (project / "code" / "model.py").read_text()

    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
                           f"--basetemp={tmp_path / 'nested'}", *(f"code/tests/{t}" for t in CHOSEN)],
                          cwd=project, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    summary = done.stdout.strip().splitlines()[-1]
    assert "failed" not in summary and "passed" in summary, summary
    assert "code/ no longer holds the digits example" in done.stdout  # the example's own tests step aside
