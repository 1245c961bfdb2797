"""How long the commands keep a researcher waiting. Usage: python3 code/bench/latency.py [--quick] [--rounds R]

`run`: from pressing Enter to the training loop's start (the line run.rounds() logs right before
the first step), in a fresh git project made from this template, through the real shell function;
minus what `python3 -c "import torch"` alone takes, which no launcher can save; beside them,
import torch then torch._dynamo (which PyTorch imports when the first optimizer is made) and a
bare PyTorch script's first step. All are timed in turn, round after round. The first run of
the project prepares the data and is not timed. Goal: at most 0.3 s beyond importing torch.

`expls`, `expels <tag>`, `record`, `title`, `table`: the full time of each, through the shell
function, on 1,000 synthetic runs (schema-1 statistic.json files as bench/table_scale.py makes
them: 160 tags of 5 seeds, and one tag of 200): `expels` of a small and of the big tag, `record`
adds every tag to a new list, `title` makes its title, `table` builds and prints the table.
They import no torch. Goal: each under 0.5 s.
"""
import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import CODE, median
from table_scale import SEEDS_PER_TAG, make_runs, statistic

MARKER = re.compile(r"run \S+: seed \d+")  # the last line before the training loop (utils/train/run.py)
# The least any PyTorch training waits for: import torch, make an optimizer, take one step (torch
# imports torch._dynamo the first time an optimizer is used: most of the difference to import alone)
BARE_FIRST_STEP = """import torch
model = torch.nn.Linear(64, 10)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
model(torch.randn(32, 64)).sum().backward()
optimizer.step()
"""


def shell(root, command, **popen):
    """A bash that has sourced the project's code/source.sh runs `command` in the project."""
    script = f'. "{root}/code/source.sh" && cd "{root}" && {command}'
    return subprocess.Popen(["bash", "-c", script], **popen)


def make_project(folder, **config):
    """A git project from this template (code/ and .gitignore), its config.py's values replaced."""
    root = Path(folder)
    shutil.copytree(CODE, root / "code", ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    shutil.copy(CODE.parent / ".gitignore", root / ".gitignore")
    path = root / "code" / "config.py"
    text = path.read_text()
    for name, value in config.items():
        text, n = re.subn(rf"^{name} = .*?(  #|$)", f"{name} = {value!r}\\1", text, count=1, flags=re.M)
        assert n == 1, f"config.py has no {name}"
    path.write_text(text)
    for argv in (["init", "-q", "-b", "main"], ["add", "-A"],
                 ["-c", "user.name=bench", "-c", "user.email=bench@example.com", "commit", "-q", "-m", "start"]):
        subprocess.run(["git", "-C", str(root), *argv], check=True, capture_output=True)
    return root


def time_run(root, tag):
    """(seconds to the launcher's `run <tag>/<id>:` line, seconds to the loop's start) of one `run`."""
    start = time.perf_counter()
    proc = shell(root, f"run {tag} -f", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    launched = ready = None
    for line in proc.stdout:
        if launched is None and line.startswith(f"run {tag}/"):
            launched = time.perf_counter() - start
        elif ready is None and MARKER.search(line):
            ready = time.perf_counter() - start
    error = proc.stderr.read()
    if proc.wait() or ready is None:
        sys.exit(f"run {tag} failed: {error.strip()[-2000:]}")
    return launched, ready


def time_command(root, command):
    start = time.perf_counter()
    proc = shell(root, command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    error = proc.communicate()[1]
    seconds = time.perf_counter() - start
    if proc.returncode:
        sys.exit(f"{command} failed: {error.strip()[-2000:]}")
    return seconds


def time_python(code):
    """Seconds until `code` has run in a fresh python3: to a line it prints then, as for `run`
    (a process's exit adds tenths of a second of interpreter teardown once torch is loaded)."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", f"{code}\nprint('ready', flush=True)"], stdout=subprocess.PIPE,
                            text=True)
    ready = None
    for line in proc.stdout:
        if ready is None and line == "ready\n":
            ready = time.perf_counter() - start
    if proc.wait() or ready is None:
        sys.exit(f"python3 -c {code!r} failed")
    return ready


def run_latency(rounds):
    with tempfile.TemporaryDirectory(prefix="exper-bench-") as folder:
        root = make_project(Path(folder) / "project", epochs=1, progress_bar=False)
        time_run(root, "warm")  # prepares __data__/digits.pt once, as a project's first run does
        launched, ready, torch_alone, dynamo, bare = [], [], [], [], []
        for r in range(rounds):
            launched_s, ready_s = time_run(root, f"lat{r}")
            launched.append(launched_s)
            ready.append(ready_s)
            torch_alone.append(time_python("import torch"))
            dynamo.append(time_python("import torch\nimport torch._dynamo"))
            bare.append(time_python(BARE_FIRST_STEP))
    beyond = median(r - t for r, t in zip(ready, torch_alone, strict=True))
    beyond_bare = median(r - t for r, t in zip(ready, bare, strict=True))
    print(f"run: {median(ready):.3f} s from Enter to the first step; of that, the launcher (checks, tag, id, "
          f"statistic.json, its own python start) {median(launched):.3f} s")
    print(f"  python3 -c 'import torch' alone {median(torch_alone):.3f} s: run takes {beyond:.3f} s more")
    # what the first torch.optim optimizer imports, in any PyTorch script: out of a launcher's reach
    extra = median(d - t for d, t in zip(dynamo, torch_alone, strict=True))
    print(f"  then importing torch._dynamo, as the first optimizer does: {extra:.3f} s more")
    print(f"  a bare PyTorch script to the end of its first step {median(bare):.3f} s: "
          f"run takes {beyond_bare:.3f} s more")
    return beyond, beyond_bare


def make_sweep(root, tag, n, rng):
    """One tag holding n runs (a seed sweep): what makes `expels` read the most."""
    for id_ in range(n):
        folder = root / "__result__" / tag / str(id_)
        folder.mkdir(parents=True)
        (folder / "statistic.json").write_text(json.dumps(statistic(tag, id_, rng), indent=2) + "\n")


def command_latency(rounds, n):
    sweep = n // 5
    with tempfile.TemporaryDirectory(prefix="exper-bench-") as folder:
        root = Path(folder)
        shutil.copytree(CODE, root / "code", ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
        rng = random.Random(0)
        tags = make_runs(root, n - sweep, rng) + ["sweep"]
        make_sweep(root, "sweep", sweep, rng)
        commands = {"expls": "expls", f"expels ({SEEDS_PER_TAG} runs)": "expels exp-00000",
                    f"expels ({sweep} runs)": "expels sweep", "record": "record {tags} -l {name}",
                    "title": "title {name}", "table": "table {name}"}
        times = {c: [] for c in commands}
        python_start = []
        for r in range(rounds):
            name = f"bench{r}"  # a new list each round: record adds every run, title is made afresh
            for what, command in commands.items():
                times[what].append(time_command(root, command.format(tags=" ".join(tags), name=name)))
            python_start.append(time_python("pass"))
    print(f"{n:,} runs ({len(tags)} tags, one of them with {sweep} runs); python3 starts in "
          f"{median(python_start):.3f} s, part of each:")
    for what in commands:
        print(f"  {what:<18} {median(times[what]):.3f} s")
    return max(median(t) for t in times.values())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.partition("\n\n")[2])
    p.add_argument("--quick", action="store_true", help="1 round, 100 runs (for CI)")
    p.add_argument("--rounds", type=int, help="rounds; medians are shown (default 7)")
    a = p.parse_args(argv)
    rounds = a.rounds or (1 if a.quick else 7)
    os.environ.pop("EXPER_ROOT", None)  # each command finds its project from the folder it runs in
    beyond, beyond_bare = run_latency(rounds)
    slowest = command_latency(rounds, 100 if a.quick else 1000)
    print(f"goals: run at most 0.3 s beyond importing torch: {'met' if beyond <= 0.3 else 'missed'} ({beyond:.3f} s; "
          f"{beyond_bare:.3f} s beyond a bare script's first step); each listing command under 0.5 s: "
          f"{'met' if slowest < 0.5 else 'missed'} (slowest {slowest:.3f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
