"""sweep: many configurations and seeds as tagged commits, run as a queue here or as a SLURM job array.

Usage: sweep <prefix> NAME=VALUES [NAME=VALUES ...] [-n K] [-f] [--jobs N] [--slurm [--sbatch OPTIONS]]
       sweep --status <prefix> | sweep --stop <prefix>

Every combination of the values is one commit whose parent is HEAD and whose only change is those
assignments in code/config.py, each tagged <prefix>-<name><value>-... (or <prefix>-<k>). Each
variant runs K times, recorded exactly as `run` records a run; with -f the seeds are code/seed,
code/seed + 1, ..., the same for every variant. The plan, the queue's log and each task's output
live in __statistic__/sweep/<prefix>/, and the runs form the list <prefix> (`table <prefix> -g`).
Running the same command again resumes the sweep. Internal forms: `sweep --queue <prefix>` is the
detached queue, `sweep --task <prefix> <i>` trains or continues the sweep's run i (a SLURM array task).
"""
import argparse
import ast
import itertools
import shutil
import sys

from utils.atomic import write_json
from utils.cli import UsageError, _negative_number, parser, project_root, shorten
from utils.launch import commands as c
from utils.launch import git as g
from utils.launch.sweep_commits import (
    assignments,
    config_source,
    describe_values,
    make_commit,
    make_tag,
    rewrite,
    same_variant,
    tag_names,
)
from utils.launch.sweep_plan import (
    PLAN_VERSION,
    axes_of,
    count_runs,
    describe_axes,
    log_path,
    plan_path,
    read_plan,
    say_counts,
    sweep_dir,
    task_state,
)
from utils.launch.sweep_queue import add_known_runs, queue_main, queue_running, read_queue, spawn_queue, task_main
from utils.launch.sweep_slurm import SBATCH_FILE, check_submission, slurm_tasks, submit
from utils.launch.sweep_status import status_main, stop_main
from utils.runs import check_tag
from utils.statistic.lists import DEFAULT, FINISHED, check_name, list_path, shown
from utils.statistic.run_record import now
from utils.statistic.run_record import plain as is_plain


# --- the arguments
def build_parser():
    p = parser("sweep", "Make one tagged commit per combination of config values (off HEAD, your tree untouched) "
                        "and train each K times, as a queue here (detached) or as a SLURM job array.")
    p.add_argument("prefix", metavar="<prefix>", help="starts every tag of the sweep; also the name of its list")
    p.add_argument("assignments", nargs="*", metavar="NAME=VALUES",
                   help="an assignment of code/config.py and a Python list of values, as in lr='[0.01, 0.1]'")
    p.add_argument("-n", "--runs", type=int, metavar="K", help="runs of each variant (default 1)")
    p.add_argument("-f", "--fix-seed", action="store_true",
                   help="the K seeds are code/seed, code/seed + 1, ..., the same for every variant (else fresh seeds)")
    p.add_argument("--jobs", type=int, metavar="N",
                   help="runs at a time: here, each on its own GPU when GPUs are visible, else on a share of the "
                        "cores (default 1); with --slurm, at most N array tasks at once (default: no limit)")
    p.add_argument("--slurm", action="store_true", help="submit the runs as one SLURM job array (sbatch)")
    p.add_argument("--sbatch", metavar="OPTIONS", action="append", default=[],
                   help=f"more sbatch options, as in --sbatch '--time=2:00:00 --gres=gpu:1' (after {SBATCH_FILE}'s)")
    p.add_argument("--status", action="store_true", help="show the sweep's progress: a row per run")
    p.add_argument("--stop", action="store_true", help="stop the sweep: each running run stops with a checkpoint")
    p.add_argument("--queue", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--task", action="store_true", help=argparse.SUPPRESS)
    return p


def _split_sbatch(argv):
    """Take out `--sbatch OPTIONS`: its value starts with '-', which argparse would read as an option."""
    rest, options, i = [], [], 0
    while i < len(argv):
        word = argv[i]
        if word == "--sbatch":
            if i + 1 == len(argv):
                raise UsageError("--sbatch needs the options, as in --sbatch '--time=2:00:00' (see `sweep -h`)")
            options.append(argv[i + 1])
            i += 2
            continue
        if word.startswith("--sbatch="):
            options.append(word[len("--sbatch="):])
        else:
            rest.append(word)
        i += 1
    return rest, options


def parse(argv):
    p = build_parser()
    rest, options = _split_sbatch(list(argv))
    for word in rest:  # as utils.cli.Parser.parse_args, which parse_intermixed_args does not go through
        if word == "--":
            break
        if word.startswith("-") and word != "-" and not _negative_number(word) and not p._known(word.split("=", 1)[0]):
            raise UsageError(f"unknown option {shorten(word)!r} (see `sweep -h`)")
    a = p.parse_intermixed_args(rest)
    a.sbatch = options
    return a


def check_prefix(prefix):
    try:
        check_tag(prefix)
        check_name(prefix)
    except UsageError as e:
        why = str(e).partition(": ")[2]
        raise UsageError(f"the prefix {shorten(prefix)!r} cannot start tag names: {why}") from None
    if prefix in (FINISHED, DEFAULT):
        raise UsageError(f"the prefix names the sweep's list, and {prefix!r} is a list the template keeps "
                         "itself; choose another prefix")
    return prefix


def parse_axes(words):
    """[(name, [value, ...])] from NAME=VALUES words, VALUES a non-empty Python list literal."""
    axes = []
    for word in words:
        name, equals, text = word.partition("=")
        name = name.strip()
        if not equals or not name.isidentifier():
            raise UsageError(f"{shorten(word)!r} is not NAME=VALUES, as in lr='[0.01, 0.1]'")
        if name in (n for n, _ in axes):
            raise UsageError(f"{name} is given twice; give each name once, with all its values in one list")
        try:
            values = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            values = None
        if not isinstance(values, list) or not values:
            raise UsageError(f"{name}={shorten(text)!r}: VALUES must be a non-empty Python list literal, "
                             f"as in {name}='[0.01, 0.1]' (quoted for the shell)")
        if not all(is_plain(v) for v in values):
            raise UsageError(f"{name}={shorten(text)!r}: each value must be plain data (numbers, text, True, False, "
                             "None, and tuples, lists and dicts of them), as config.py records it")
        texts = [repr(v) for v in values]
        twice = next((t for i, t in enumerate(texts) if t in texts[:i]), None)
        if twice is not None:
            raise UsageError(f"{name} lists {shorten(twice)} twice; give each value once")
        axes.append((name, values))
    return axes


def _differences(plan, axes, runs, fixed):
    asked = [{"name": n, "values": [repr(v) for v in values]} for n, values in axes]
    said = []
    if plan["axes"] != asked:
        said.append(f"{describe_axes(axes_of(plan))} there, {describe_axes(axes)} here")
    if plan["runs_per_variant"] != runs:
        said.append(f"-n {plan['runs_per_variant']} there, -n {runs} here")
    if plan["fixed_seed"] != fixed:
        said.append(f"{'-f' if plan['fixed_seed'] else 'fresh seeds'} there, {'-f' if fixed else 'fresh seeds'} here")
    return said


# --- sweep <prefix> NAME=VALUES ...: check everything, make the commits and tags, plan, run
def create(root, prefix, axes, runs, fixed, slurm, jobs, options):
    """Check every variant as `run` would, then make its commit and tag; return the plan (written)."""
    head = g.head(root)
    c.require_clean(root)
    if list_path(root, prefix).exists():
        raise UsageError(f"a list named {prefix!r} exists already ({shown(root, list_path(root, prefix))}); a sweep's "
                         "runs form the list of its prefix: choose another prefix")
    source = config_source(root, head)
    nodes = assignments(source)
    for name, _ in axes:
        if name not in nodes:
            raise UsageError(f"code/config.py has no assignment {name!r} (a `{name} = ...` line at the top level); "
                             f"its assignments: {shorten(', '.join(nodes), 400)}")
    names = [name for name, _ in axes]
    variants = list(itertools.product(*(values for _, values in axes)))
    sources = [rewrite(source, nodes, dict(zip(names, values, strict=True))) for values in variants]
    tags = tag_names(root, prefix, names, variants)
    commits = []
    for tag, new in zip(tags, sources, strict=True):
        c.checked_tag(root, tag)
        marked = g.tag_commit(root, tag)
        if marked and not same_variant(root, marked, head, new):
            raise UsageError(f"tag {tag!r} already marks another commit ({marked[:10]}); choose another prefix")
        commits.append(marked)
    seeds = None
    if fixed:
        base_seed = c.read_seed(g.show(root, head, "code/seed"), "code/seed")
        seeds = [(base_seed + k) % 2**63 for k in range(runs)]
    with c.commit_code(root, head) as code_dir:
        sys.dont_write_bytecode = True  # each variant's config.py is read fresh, never from a cached .pyc
        for values, new in zip(variants, sources, strict=True):
            (code_dir / "config.py").write_bytes(new)
            shutil.rmtree(code_dir / "__pycache__", ignore_errors=True)
            try:
                config = c.load_config(code_dir)
            except UsageError as e:
                raise UsageError(f"with {describe_values(names, values)}: {e}") from None
            for name, value in zip(names, values, strict=True):
                got = getattr(config, name, None)
                if repr(got) != repr(value):
                    raise UsageError(f"with {name}={value!r}, code/config.py ends with {name} = {shorten(repr(got))}: "
                                     f"something after line {nodes[name].lineno} sets it again")
    if slurm:
        check_submission(root, prefix, head, range(len(variants) * runs), jobs, options)
    made = []
    try:
        for k, (tag, values, new) in enumerate(zip(tags, variants, sources, strict=True)):
            if commits[k] is None:
                message = f"sweep {prefix}: {describe_values(names, values)}"
                commits[k] = make_commit(root, head, new, message)
                if make_tag(root, tag, commits[k], f"exper sweep {prefix}: {describe_values(names, values)}"):
                    made.append(tag)
        plan = {
            "version": PLAN_VERSION, "prefix": prefix, "base": head, "created": now(),
            "axes": [{"name": n, "values": [repr(v) for v in values]} for n, values in axes],
            "runs_per_variant": runs, "fixed_seed": fixed, "seeds": seeds,
            "variants": [{"tag": t, "commit": cm, "values": {n: repr(v) for n, v in zip(names, values, strict=True)}}
                         for t, cm, values in zip(tags, commits, variants, strict=True)],
            # seed k of every variant before seed k + 1 of any: the first runs already compare the variants
            "runs": [{"variant": v, "k": k, "tag": tags[v], "seed": seeds[k] if fixed else c.fresh_seed(), "id": None}
                     for k in range(runs) for v in range(len(variants))],
            "slurm": [],
        }
        sweep_dir(root, prefix).mkdir(parents=True, exist_ok=True)
        write_json(plan_path(root, prefix), plan)
    except BaseException:
        for tag in made:
            g.git(root, "tag", "-d", tag, check=False)
        raise
    return plan


def resume(root, plan, axes, runs, fixed):
    prefix = plan["prefix"]
    if axes:
        differences = _differences(plan, axes, runs, fixed)
        if differences:
            raise UsageError(f"sweep {prefix!r} exists with other settings ({'; '.join(differences)}); repeat its "
                             "own command to resume it (`sweep --status " + prefix + "` shows it), or choose "
                             "another prefix")
    head = g.head(root)
    for variant in plan["variants"]:
        marked = g.tag_commit(root, variant["tag"])
        if marked != variant["commit"]:
            said = f"now marks {marked[:10]}" if marked else "is gone"
            raise UsageError(f"tag {variant['tag']!r} of sweep {prefix} {said}, not the sweep's commit "
                             f"{variant['commit'][:10]}; restore it (git tag -f -a {variant['tag']} "
                             f"{variant['commit'][:10]}) to resume the sweep")
    if head != plan["base"]:
        c.say(f"note: sweep {prefix} was made off {plan['base'][:10]} (HEAD is now {head[:10]}); it resumes as made",
              err=True)
    return head


def sweep_main(root, a):
    prefix = check_prefix(a.prefix)
    runs = 1 if a.runs is None else a.runs
    if runs < 1:
        raise UsageError(f"-n must be 1 or more (runs of each variant), not {runs}")
    if a.jobs is not None and a.jobs < 1:
        raise UsageError(f"--jobs must be 1 or more (runs at a time), not {a.jobs}")
    axes = parse_axes(a.assignments)
    if a.sbatch and not a.slurm:
        raise UsageError("--sbatch goes with --slurm")
    if a.slurm and not shutil.which("sbatch"):
        raise UsageError("--slurm needs SLURM's sbatch, which is not on PATH here (run the sweep on the "
                         "cluster's login node, or without --slurm)")
    head = g.head(root)
    plan = read_plan(root, prefix)
    if plan is None:
        if not axes:
            raise UsageError(f"no sweep {prefix!r} yet: give its NAME=VALUES, as in `sweep {prefix} lr='[0.01, 0.1]'`")
        plan = create(root, prefix, axes, runs, a.fix_seed, a.slurm, a.jobs, a.sbatch)
        _say_made(root, plan)
    else:
        if not axes and (a.runs is not None or a.fix_seed):
            raise UsageError(f"-n and -f go with NAME=VALUES; `sweep {prefix}` alone resumes the sweep as made")
        head = resume(root, plan, axes, runs, a.fix_seed)
        add_known_runs(root, plan)
    if a.slurm:
        return submit(root, prefix, plan, head, a.jobs, a.sbatch)
    return start_local(root, plan, a.jobs or read_queue(root, prefix).get("jobs") or 1)  # else as it last ran


def _say_made(root, plan):
    per, variants = plan["runs_per_variant"], len(plan["variants"])
    c.say(f"sweep {plan['prefix']}: {variants} commits off {plan['base'][:10]}, tagged:")
    for variant in plan["variants"]:
        values = " ".join(f"{n}={v}" for n, v in variant["values"].items())
        c.say(f"  {variant['tag']}  {variant['commit'][:10]}  {values}")
    seeds = f"seeds {', '.join(map(str, plan['seeds']))}" if plan["fixed_seed"] else "a fresh seed each"
    c.say(f"{per} run{'s' * (per != 1)} of each ({seeds}): {len(plan['runs'])} runs")


def start_local(root, plan, jobs):
    prefix = plan["prefix"]
    active = slurm_tasks(plan)
    if active:
        raise UsageError(f"sweep {prefix} has {len(active)} tasks queued or running in SLURM; "
                         f"`sweep --stop {prefix}` first, or resubmit with --slurm")
    if queue_running(root, prefix):
        queue = read_queue(root, prefix)
        c.say(f"sweep {prefix} is running already (queue pid {queue.get('pid')}); `sweep --status {prefix}` "
              "shows it")
        return 0
    left = [i for i in range(len(plan["runs"])) if task_state(root, plan, i) in ("new", "con", "busy")]
    if not left:
        c.say(f"sweep {prefix}: nothing left to run ({say_counts(count_runs(root, plan))}); `table {prefix} -g` "
              "compares the runs")
        return 0
    pid = spawn_queue(root, prefix, jobs)
    c.say(f"sweep {prefix}: {len(left)} of {len(plan['runs'])} runs to go, {jobs} at a time, in the background "
          f"(queue pid {pid}, log {shown(root, log_path(root, prefix))}); `sweep --status {prefix}` shows "
          f"progress, `sweep --stop {prefix}` stops it, `table {prefix} -g` compares the runs")
    return 0


def main(argv):
    a = parse(argv)
    modes = [m for m in ("status", "stop", "queue", "task") if getattr(a, m)]
    if len(modes) > 1:
        raise UsageError(f"--{modes[0]} and --{modes[1]} do not go together")
    root = project_root()
    if modes:
        extra = a.assignments[1:] if modes[0] == "task" else a.assignments
        if extra or a.runs is not None or a.fix_seed or a.slurm or a.sbatch or (a.jobs and modes[0] != "queue"):
            raise UsageError(f"sweep --{modes[0]} takes the prefix alone (see `sweep -h`)")
        check_prefix(a.prefix)
        if modes[0] == "status":
            return status_main(root, a.prefix)
        if modes[0] == "stop":
            return stop_main(root, a.prefix)
        if modes[0] == "queue":
            return queue_main(root, a.prefix, a.jobs or 1)
        if not a.assignments:
            raise UsageError("sweep --task needs <prefix> <index>")
        return task_main(root, a.prefix, a.assignments[0])
    return sweep_main(root, a)
