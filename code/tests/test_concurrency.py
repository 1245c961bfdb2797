"""Runs next to each other: eight `run`s of one tag started at one instant, readers while they
write, and two `con`s of one run. Real trainings through the real shell, tiny configs.

Usage: python3 -m pytest code/tests/test_concurrency.py -q
"""
import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import commit, git, set_config, sh, start, statistic

TINY = {"epochs": 1}
ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # eight trainings on two cores: no thread oversubscription


def at_once(commands, project):
    """Start every command in its own shell at the same instant (a barrier); return the threads and results."""
    barrier = threading.Barrier(len(commands))
    results = [None] * len(commands)

    def one(i, command):
        barrier.wait()
        results[i] = sh(project, command, env=ONE_THREAD, timeout=600)

    threads = [threading.Thread(target=one, args=(i, c)) for i, c in enumerate(commands)]
    for t in threads:
        t.start()
    return threads, results


def whole_lines(path):
    """The lines of a list file, each checked to be a whole `<tag>/<id>` line."""
    text = path.read_text()
    assert text == "" or text.endswith("\n"), text
    lines = text.splitlines()
    assert all(re.fullmatch(r"conc/\d+", line) for line in lines), text
    return lines


@pytest.mark.slow
def test_eight_runs_of_one_tag_at_once_while_others_read(project):
    set_config(project, **TINY)
    commit(project, "tiny")
    threads, results = at_once(["run conc -f"] * 8, project)

    finished = project / "__statistic__" / "exper-list" / "finished.txt"
    readings = reads = 0
    while any(t.is_alive() for t in threads):
        for folder in (project / "__result__" / "conc").glob("*"):
            try:
                text = (folder / "statistic.json").read_text()
            except FileNotFoundError:  # its id is taken, its record not yet written
                continue
            assert json.loads(text)["tag"] == "conc"  # never torn
            reads += 1
        if finished.exists():
            whole_lines(finished)
        for command in ("record conc", "table"):
            result = sh(project, command)
            # a title made while the runs had no metrics yet rightly warns of new keys; a torn
            # statistic.json would say "skipped ... corrupt"
            assert not re.search(r"Traceback|skipped|corrupt|missing", result.stderr), result.stderr
            if result.returncode:  # before the first record exists
                assert re.fullmatch(r"error: (no runs of tag 'conc'|no list \S+ yet).*\n", result.stderr), result.stderr
            else:
                readings += 1
    for t in threads:
        t.join()

    assert [r.returncode for r in results] == [0] * 8, [r.stderr[-2000:] for r in results if r.returncode]
    said = sorted(int(re.search(r"^run conc/(\d+):", r.stdout, re.M).group(1)) for r in results)
    assert said == list(range(8))
    records = [statistic(project, "conc", i) for i in range(8)]
    assert all(s["status"] == "finished" and s["id"] == i for i, s in enumerate(records))
    assert len({s["weights_sha256"] for s in records}) == 1  # -f: one seed, eight identical trainings
    assert sorted(whole_lines(finished), key=lambda line: int(line.split("/")[1])) == [f"conc/{i}" for i in range(8)]
    assert git(project, "tag") == "conc" and git(project, "cat-file", "-t", "conc") == "tag"
    assert not [p for p in (project / "__result__").rglob("*.tmp")]
    assert reads > 0 and readings > 0  # the readers did read while the runs wrote
    table = sh(project, "table")
    assert table.returncode == 0 and len(re.findall(r"^conc\s+\d\s", table.stdout, re.M)) == 8, table.stdout


@pytest.mark.slow
def test_two_cons_of_one_run_at_once(project):
    set_config(project, **{**TINY, "epochs": 3, "pause": 0.03})
    commit(project, "three epochs")
    proc = start(project, "run twice -f", output=subprocess.DEVNULL)
    last = project / "__result__" / "twice" / "0" / "checkpoint" / "epoch_last.pth"
    deadline = time.monotonic() + 300
    while not last.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=120) == 130
    assert statistic(project, "twice", 0)["status"] == "interrupted"

    threads, results = at_once(["con twice", "con twice/0"], project)
    for t in threads:
        t.join()
    ok = [r for r in results if r.returncode == 0]
    refused = [r for r in results if r.returncode != 0]
    assert len(ok) == 1 and len(refused) == 1, [r.stderr[-1000:] for r in results]
    lines = refused[0].stderr.strip().splitlines()
    assert len(lines) == 1 and re.match(r"error: twice/0 is (being trained by another command|still running)", lines[0])
    s = statistic(project, "twice", 0)
    assert s["status"] == "finished" and len(s["sessions"]) == 2
    assert Path(project / "__statistic__" / "exper-list" / "finished.txt").read_text() == "twice/0\n"
