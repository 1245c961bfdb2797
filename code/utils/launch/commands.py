"""run, con and rerun: check everything, tag, take an id, then start code/main.py.

Usage: run <tag> [-f] | con <tag>[/<id>] [-f] | rerun <tag>[/<id>] [-f]

Every check (tag name, clean tree, tag marking HEAD, config importing, the seed file) comes
before anything is created, so a refused command leaves no tag, no folder, no list line.
The run itself is a child process (or torchrun, for several devices); its identity travels in
EXPER_* variables. No torch is imported here: the child pays for it once.
"""
import fcntl
import importlib.util
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

from utils.atomic import pid_alive
from utils.cli import UsageError, parser, project_root, shorten
from utils.launch import git as g
from utils.procs import command_line, descendants
from utils.runs import allocate_id, check_tag, parse_selector, read_statistic, run_dir, run_ids, status
from utils.statistic import run_record


# --- checks shared by the three commands
def _load_module(path, name):
    spec = importlib.util.spec_from_file_location(f"_exper_{name}_{os.getpid()}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_config(code_dir):
    """Import config.py from code_dir and check the keys the template reads; a clear error when it cannot."""
    path = Path(code_dir) / "config.py"
    if not path.exists():
        raise UsageError(f"{path} is missing")
    sys.path.insert(0, str(code_dir))  # a config may import a module beside it
    try:
        config = _load_module(path, "config")
    except BaseException as e:  # noqa: BLE001  (any failure of user code is reported, not raised)
        where = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == str(path)]
        line = f" (line {where[-1].lineno})" if where else ""
        raise UsageError(f"code/config.py does not import{line}: {type(e).__name__}: {e}; fix it and commit") from None
    finally:
        sys.path.remove(str(code_dir))
    settings = Path(code_dir) / "utils" / "train" / "settings.py"  # the commit's own rules for its config
    if not settings.exists():
        raise UsageError("the commit's code has no utils/train/settings.py: it was made with an older template, "
                         "whose runs this one cannot start")
    problems = run_record.config_problems(config) + _load_module(settings, "settings").check(config)
    if problems:
        raise UsageError("code/config.py: " + "; ".join(problems))
    return config


def read_seed(text, where):
    """The seed in a seed file's text (None: no such file)."""
    if text is None:
        raise UsageError(f"{where} is missing: it holds the seed of -f, one whole number; add it and commit")
    try:
        seed = int(text.strip())
    except ValueError:
        raise UsageError(f"{where} must hold one whole number (the seed of -f), not {text.strip()[:40]!r}") from None
    if not 0 <= seed < 2**63:  # what torch.manual_seed and the record's JSON readers all take
        raise UsageError(f"{where} must hold a whole number from 0 to 2**63 - 1, not {seed}")
    return seed


def fresh_seed():
    return secrets.randbelow(2**31)


def require_clean(root):
    changes = g.dirty(root)
    if changes:
        shown = ", ".join(shorten(path, 60) for path in changes[:5]) + (f" and {len(changes) - 5} more"
                                                                         if len(changes) > 5 else "")
        raise UsageError(f"the work tree has changes that would run without being recorded ({shown}); "
                         "commit them (or add them to .gitignore) first")


def checked_tag(root, tag):
    check_tag(tag)
    if not g.valid_tag_name(root, tag):
        raise UsageError(f"{shorten(tag)!r} is not a valid git tag name")
    if g.branch_exists(root, tag):
        raise UsageError(f"{tag!r} is the name of a branch: a tag of that name would make `git checkout {tag}` "
                         "ambiguous; choose another tag")
    return tag


def create_tag(root, tag, commit):
    """Tag the commit; True when this call made the tag. `run`s of one new tag started at once all
    try: the first creates the tag, and the others are fine once it exists and marks the same commit."""
    deadline = time.monotonic() + 10
    while True:
        out = g.git(root, "tag", "-a", "-m", f"exper run {tag}", tag, commit, check=False)
        if not out.returncode:
            return True
        marked = g.tag_commit(root, tag)
        if marked == commit:
            return False
        if marked:
            raise UsageError(f"tag {tag!r} was just made on another commit ({marked[:10]}); choose a new tag")
        if time.monotonic() > deadline:
            raise UsageError(f"could not create tag {tag!r}: {out.stderr.strip() or 'git tag failed'}")
        time.sleep(0.05)  # the other `git tag` holds the ref's lock: wait for it to finish


def processes(config):
    """How many training processes: one per visible GPU when several, else config.cpu_processes."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        gpus = len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    else:
        try:
            gpus = len(os.listdir("/proc/driver/nvidia/gpus"))
        except OSError:
            gpus = 0
    return gpus if gpus > 1 else config.cpu_processes


def torchrun_options():
    """torchrun's node and rendezvous options for a run on several machines, from $EXPER_TORCHRUN.

    An environment variable, not arguments of `run`: the options differ from machine to machine
    (--node-rank), so they belong to the shell or the batch script, not to the command recorded
    in statistic.json that `rerun` repeats. Empty: one machine, a standalone rendezvous.
    """
    return shlex.split(os.environ.get("EXPER_TORCHRUN", ""))


def _option(options, name):
    """The value of torchrun's --name (or --name_with_underscores), given as --name=V or --name V."""
    spellings = {f"--{name}", f"--{name.replace('-', '_')}"}
    for i, option in enumerate(options):
        key, equals, value = option.partition("=")
        if key in spellings:
            return value if equals else (options[i + 1] if i + 1 < len(options) else "")
    return None


def node_rank():
    """This machine's index in a run on several machines: 0 checks, tags and records the run."""
    options = torchrun_options()
    nnodes, rank = _option(options, "nnodes"), _option(options, "node-rank")
    if nnodes not in (None, "1") and rank is None:
        # with a dynamic rendezvous any machine may get rank 0, and the run's record with it
        raise UsageError("EXPER_TORCHRUN: a run on several machines needs --node-rank=<this machine's index> "
                         "(0 on the machine that records the run) and that machine's --master-addr and --master-port")
    if rank is not None and not rank.isdigit():
        raise UsageError(f"EXPER_TORCHRUN: --node-rank must be a whole number, not {rank!r}")
    return int(rank or 0)


def temporary_folder(prefix):
    """A new folder in the system's temporary folder, named with this process's pid, so that the next
    command can remove what a killed one left behind (clear_leftovers)."""
    clear_leftovers()
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-"))


def clear_leftovers():
    """Remove the temporary folders of launchers that were killed before they could: their pid is gone
    and no process runs from them (a training outlives a killed launcher, and goes on using its code)."""
    base = Path(tempfile.gettempdir())
    stale = []
    for folder in base.glob("exper-code-*"):
        pid = folder.name[len("exper-code-"):].partition("-")[0]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)) and not folder.is_symlink():
            stale.append(folder)
    if stale and os.path.isdir("/proc"):  # without /proc, no telling whether a training still runs from them
        used = [line for line in (command_line(entry) for entry in os.listdir("/proc") if entry.isdigit()) if line]
        for folder in stale:
            if not any(str(folder) in line for line in used):
                shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def commit_code(root, commit):
    """The code/ folder of a commit, copied out of git into a temporary folder (removed afterwards).

    Every run, con and rerun trains this copy, never the work tree: what trains is what the tag
    holds, however the tree changes once the checks are done (edit, commit, start the next run)."""
    folder = temporary_folder("exper-code-")
    try:
        g.export(root, commit, "code", folder)
        yield folder / "code"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --- starting the child
def _forward(started, torchrun, ranks, processes_here, stopped):
    """Pass SIGINT/SIGTERM on to the training processes: torchrun's workers themselves, since
    torchrun would answer with a traceback of its own and a 30 s deadline to kill them. Until
    every process here has installed its handlers (it leaves ready<rank> in the ranks folder),
    a signal would end it with a KeyboardInterrupt traceback halfway through importing torch:
    then the processes are killed outright, and the run, which trained nothing, is not kept."""
    def handler(signum, frame):
        ready = len(list(Path(ranks).glob("ready*"))) >= processes_here
        if not ready:
            stopped.append(signum)
        if not started:  # not started yet: launch() sees `stopped` and starts nothing
            return
        child = started[0]
        targets = (descendants(child.pid) if torchrun else []) or [child.pid]
        for pid in ([child.pid, *targets] if not ready else targets):
            try:
                os.kill(pid, signum if ready else signal.SIGKILL)
            except ProcessLookupError:
                pass

    return handler


def say(text, err=False):
    """Print for the user; a terminal that is gone (closed, a full /dev/full, `| head`) costs only the message."""
    stream = sys.stderr if err else sys.stdout
    try:
        print(text, file=stream, flush=True)
    except (OSError, ValueError):
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())  # so that the interpreter's last flush at exit is quiet too
            os.close(devnull)
        except (OSError, ValueError):
            pass


def launch(root, code_dir, config, env):
    """Start main.py (under torchrun for several processes or machines), wait, and return the run's
    exit code: rank 0's (130 after Ctrl-C), not torchrun's 1 for any worker that did not exit 0."""
    n = processes(config)
    main = str(Path(code_dir) / "main.py")
    options = torchrun_options()
    folder = env.get("EXPER_RUN_DIR")  # none on a machine that joins another's run
    nnodes = _option(options, "nnodes") or "1"
    resumed = _record(folder) if env.get("EXPER_RESUME") == "1" else None  # read once, before anything runs
    if resumed is not None and nnodes.isdigit():
        _check_world_size(resumed, n * int(nnodes))
    # a resumed launch that begins no session (a refused con) leaves the record alone
    sessions = len(resumed.get("sessions") or []) if resumed is not None else 0
    ranks = Path(code_dir).parent / "ranks"  # each rank leaves its outcome here (utils/train/distributed.py)
    ranks.mkdir(exist_ok=True)
    env = {**os.environ, "EXPER_ROOT": str(root), "EXPER_RANKS_DIR": str(ranks), **env}
    torchrun = n > 1 or bool(options)
    if torchrun:
        # a share of the cores per process; left alone, torchrun sets 1 thread each (and says so in a banner)
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // n)))
        argv = [sys.executable, "-m", "torch.distributed.run", *(options or ["--standalone"]),
                f"--nproc-per-node={n}", main]
    else:
        argv = [sys.executable, main]
    stopped, started = [], []  # the signal that stopped the run before it was ready; the child
    previous = {s: signal.signal(s, _forward(started, torchrun, ranks, n, stopped))
                for s in (signal.SIGINT, signal.SIGTERM)}
    previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a closed terminal: the run carries on
    try:
        code, outcomes = -signal.SIGKILL, []
        if not stopped:
            # the training processes get a session of their own: a terminal's Ctrl-C reaches this process
            # alone, which passes it on to each of them once, and a closed terminal's SIGHUP reaches none
            started.append(subprocess.Popen(argv, env=env, cwd=root, start_new_session=True))
            if stopped:  # Ctrl-C as it started
                started[0].kill()
            code = started[0].wait()
            outcomes = _outcomes(ranks)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        shutil.rmtree(ranks, ignore_errors=True)
    if stopped:
        return 128 + stopped[0]
    if folder:
        after_child(folder, code, outcomes, n, sessions)
    rank0 = next((o for o in outcomes if o.get("rank") == 0 and isinstance(o.get("exit"), int)), None)
    if rank0 is not None:
        return rank0["exit"] or (1 if any(o.get("error") for o in outcomes) else 0)
    failed = next((o["exit"] or 1 for o in outcomes if o.get("error")), None)
    if failed:  # a machine joining another's run: its own ranks say how they ended
        return failed
    return code if code >= 0 else 128 - code


def began(folder, sessions_before=0):
    """Whether the run's training began in this launch (it recorded a session)."""
    record = _record(folder)
    return record is not None and len(record.get("sessions") or []) > sessions_before


def discard(root, tag, id_, made_tag):
    """Remove a run that trained nothing, and its tag if this command made it and no other run has it."""
    from utils.runs import result_dir

    folder = run_dir(root, tag, id_)
    if folder.is_dir() and not folder.is_symlink():
        shutil.rmtree(folder, ignore_errors=True)
    tag_dir = result_dir(root) / tag
    others = [n for n in os.listdir(tag_dir) if n.isdigit()] if tag_dir.is_dir() else []
    if made_tag and not others:
        g.git(root, "tag", "-d", tag, check=False)
    for empty in (tag_dir, result_dir(root)):
        try:
            empty.rmdir()
        except OSError:
            pass


def _record(folder):
    """The run's statistic.json, or None where none can be read (main.py checks the checkpoint itself)."""
    try:
        return read_statistic(folder) if folder else None
    except Exception:  # noqa: BLE001  (after_child reads it again and gives up the same way)
        return None


def _check_world_size(record, world_size):
    """con with another number of processes would split the data differently: not exact."""
    before = (record.get("host") or {}).get("world_size") or 1
    if before != world_size:
        raise UsageError(f"the run trained with {before} process(es) and con would start {world_size}; "
                         "an exact resume needs the same number (CUDA_VISIBLE_DEVICES, cpu_processes in "
                         "code/config.py, --nnodes in EXPER_TORCHRUN)")


def _outcomes(folder):
    """What each rank of this machine said as it ended (utils/distributed.py report())."""
    found = []
    for path in sorted(Path(folder).glob("rank*.json")):
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            pass
    return found


def after_child(folder, code, outcomes=(), processes_here=1, sessions_before=0):
    """Put the end of the run in its record when the training processes could not say it.

    A rank other than 0 failing: rank 0 then only sees its peer vanish (or torchrun's SIGTERM),
    so the cause is the earliest error any rank reported. A rank of this machine that reported
    nothing was killed without a word (out of memory, kill -9): the terminal and the log say so,
    and how to resume. A launch that began no session (a run that stopped while building, a con
    that main.py refused) leaves the record as it was: the refusal is on the terminal.
    """
    record = _record(folder)
    if record is None or record.get("status") not in ("running", "crashed"):  # finished, interrupted: said
        return
    if len(record.get("sessions") or []) <= sessions_before:
        return
    errors = sorted((o for o in outcomes if o.get("error")), key=lambda o: o.get("time") or 0)
    silent = sorted(set(range(processes_here)) - {o.get("rank") for o in outcomes}) if outcomes else []
    name = f"{record.get('tag')}/{record.get('id')}"
    if errors:
        first = errors[0]
        error = first["error"]
        if processes_here > 1 or first.get("rank"):
            error = f"rank {first.get('rank')} ({first.get('hostname')}): {error}"
        if silent:  # the others only lost their peer: their last line is enough
            error = (f"rank {silent[0]} ended without a word (killed: out of memory? kill -9?); "
                     f"then rank {first.get('rank')}: {first['error'].splitlines()[-1]}")
        if first.get("rank") and first.get("traceback"):  # rank 0 logs its own
            _log(folder, f"----- rank {first['rank']} on {first.get('hostname')} failed -----\n{first['traceback']}")
    elif record["status"] == "running" and code != 0:
        how = (f"was killed by {signal.Signals(-code).name} (out of memory? kill -9?)" if code < 0
               else f"exited with code {code}")
        error = record.get("error") or f"the training process {how}"
        from utils.train.checkpoint import candidates

        after = (f"`con {name}` resumes from its last checkpoint" if candidates(Path(folder) / "checkpoint")
                 else f"it left no checkpoint: `rerun {record.get('tag')}` starts it afresh")
        _log(folder, f"----- session ended: {error} -----\n")
        say(f"error: {name}: {error}; {after}", err=True)
    else:
        return
    if record["status"] == "crashed" and record.get("error") == error:
        return
    if record["sessions"] and record["sessions"][-1].get("ended") is None:
        run_record.end_session(record, "crashed", error)
    else:
        record.update(status="crashed", error=error)
    run_record.write(folder, record)


def _log(folder, text):
    from utils.atomic import open_append

    try:
        with open_append(Path(folder) / "log") as log:
            log.write(text)
    except OSError as e:
        say(f"warning: could not add to {Path(folder) / 'log'}: {e.strerror or e}", err=True)


def new_run(root, tag, commit, seed, fixed, command, config):
    """Take an id, write the run's first record, and return its folder and environment."""
    id_ = allocate_id(root, tag)
    folder = run_dir(root, tag, id_)
    record = run_record.new_record(tag, id_, commit, g.subject(root, commit), seed, fixed, command,
                                   run_record.hyperparameters(config))
    record["branch"] = g.branch(root) if g.head(root) == commit else None
    record["detached"] = record["branch"] is None  # a detached HEAD, or rerun's copy of another commit
    record["host"] = run_record.host_info()
    record["started"] = run_record.now()  # listings show when it started, before its session begins
    try:
        run_record.write(folder, record)
    except BaseException:
        discard(root, tag, id_, made_tag=False)
        raise
    return folder, run_env(folder, record)


def train_new(root, tag, commit, seed, fixed, command, code_dir, config, made_tag, started=None):
    """Take an id, record the run, train it; a run that stopped before its training began (a value
    the research's check refused, Ctrl-C while torch imports, a crash while building) leaves
    nothing: no folder, and no tag when this command made it and no other run has it.
    started(id_), when given, is called once the run has its id and record, before it trains."""
    try:
        folder, env = new_run(root, tag, commit, seed, fixed, command, config)
    except BaseException:
        discard(root, tag, None, made_tag)
        raise
    name = f"{tag}/{env['EXPER_ID']}"
    claim = _claim(folder, name)  # noqa: F841  (a con of this run is refused while this process lives)
    seed_note = f" (seed {seed})" if command.startswith("rerun") else ""
    say(f"{command.split()[0]} {name}{seed_note}: {folder}")
    try:
        if started is not None:
            started(int(env["EXPER_ID"]))
        code = launch(root, code_dir, config, env)
    except BaseException:
        if not began(folder):
            discard(root, tag, int(env["EXPER_ID"]), made_tag)
        raise
    if not began(folder):
        discard(root, tag, int(env["EXPER_ID"]), made_tag)
        if code in (128 + signal.SIGINT, 128 + signal.SIGTERM):
            say(f"{name} was stopped before its training began: nothing was kept", err=True)
    return code


def train_tag(root, tag, seed, fixed, command, started=None):
    """Train a new run of an existing tag with this seed, whatever HEAD is (rerun's path, without its
    note and verdict), and return its exit code; started(id_) as in train_new. For commands that
    start runs from Python (sweep); run, con and rerun keep their own paths."""
    g.head(root)
    commit = g.tag_commit(root, tag)
    if commit is None:
        raise UsageError(f"there is no git tag {tag!r}")
    with commit_code(root, commit) as code_dir:
        config = load_config(code_dir)
        return train_new(root, tag, commit, seed, fixed, command, code_dir, config, False, started)


def run_env(folder, record, resume=False):
    return {"EXPER_RUN_DIR": str(folder), "EXPER_TAG": record["tag"], "EXPER_ID": str(record["id"]),
            "EXPER_SEED": str(record["seed"]), "EXPER_FIXED_SEED": "1" if record["fixed_seed"] else "0",
            "EXPER_COMMIT": record["commit"] or "", "EXPER_SUBJECT": record["subject"] or "",
            "EXPER_COMMAND": record["command"], "EXPER_RESUME": "1" if resume else "0"}


def join_run(root):
    """A machine other than node 0 of a run on several machines: node 0 checks, tags, takes the id
    and records; this one joins torchrun's rendezvous with its own clean checkout (main.py refuses
    another commit or config than rank 0's) and creates nothing, whichever of run, con, rerun."""
    require_clean(root)
    commit = g.head(root)
    with commit_code(root, commit) as code_dir:
        config = load_config(code_dir)
        say(f"node {node_rank()}: joining the run that node 0 records")
        return launch(root, code_dir, config, {"EXPER_COMMIT": commit})


# --- the commands
def _parser(name, what, selector, seed_help="seed from code/seed (else a fresh seed)"):
    p = parser(name, what)
    p.add_argument("tag", metavar="<tag>[/<id>]" if selector else "<tag>")
    p.add_argument("-f", "--fix-seed", action="store_true", help=seed_help)
    return p


def run_main(argv):
    a = _parser("run", "Tag HEAD, take the next id, train, and record everything in __result__/<tag>/<id>/.",
                False).parse_args(argv)
    root = project_root()
    if node_rank() > 0:  # another machine of a run that node 0 records
        return join_run(root)
    commit = g.head(root)
    tag = checked_tag(root, a.tag)
    require_clean(root)
    marked = g.tag_commit(root, tag)
    if marked and marked != commit:
        raise UsageError(f"tag {tag!r} marks another commit ({marked[:10]}); choose a new tag, "
                         f"or `rerun {tag}` to run that commit's code again")
    with commit_code(root, commit) as code_dir:
        config = load_config(code_dir)
        seed = read_seed(g.show(root, commit, "code/seed"), "code/seed") if a.fix_seed else fresh_seed()
        made_tag = create_tag(root, tag, commit) if not marked else False
        if g.branch(root) is None:
            say(f"note: HEAD is detached at {commit[:10]}; the run is recorded by its tag and commit "
                "(statistic.json: \"detached\": true)", err=True)
        return train_new(root, tag, commit, seed, a.fix_seed, shlex.join(["run", *argv]), code_dir, config, made_tag)


def _choose_unfinished(root, tag, id_, dead=False):
    ids = run_ids(root, tag)
    if not ids:
        raise UsageError(f"no runs of tag {tag!r}; `expls` lists the tags")
    if id_ is not None and id_ not in ids:
        raise UsageError(f"no run {tag}/{id_}; `expels {tag}` lists its ids")
    candidates = [id_] if id_ is not None else sorted(ids, reverse=True)
    for i in candidates:
        record = read_statistic(run_dir(root, tag, i))
        state = status(record)
        if state == "finished":
            if id_ is not None:
                raise UsageError(f"{tag}/{i} is finished: nothing to continue (`rerun {tag}/{i}` runs it again)")
            continue
        host = (record.get("host") or {}).get("hostname")
        if state == "running" and host and host != socket.gethostname():
            if not dead:
                raise UsageError(f"{tag}/{i} is recorded as running on {host} (pid {record.get('pid')}), which this "
                                 f"machine cannot see; if {host} is gone, `con {tag}/{i} --dead` continues it")
        elif state == "running":
            raise UsageError(f"{tag}/{i} is still running (pid {record.get('pid')}); stop it first")
        return i, record
    raise UsageError(f"every run of {tag!r} is finished: nothing to continue")


def _claim(folder, name):
    """Lock the run's folder for as long as this process lives (the lock is not inherited, and the
    kernel drops it when we end): two `con`s of one run at once would both train and write it."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise UsageError(f"{name} is being trained by another command right now; let that one finish") from None
    return fd


def continue_main(argv):
    p = _parser("con", "Resume an unfinished run from its last checkpoint, with the tag's code and the run's own seed.",
                True, seed_help="accepted and ignored: a resumed run keeps its own seed and random state")
    p.add_argument("--dead", action="store_true",
                   help="continue a run recorded as running on another machine, which you know is gone "
                        "(still refused while it runs on this machine or another con holds it)")
    a = p.parse_args(argv)
    root = project_root()
    if node_rank() > 0:  # another machine of a run that node 0 records
        return join_run(root)
    tag, id_ = parse_selector(a.tag)
    id_, record = _choose_unfinished(root, tag, id_, a.dead)
    claim = _claim(run_dir(root, tag, id_), f"{tag}/{id_}")  # noqa: F841  (held while this process lives)
    id_, record = _choose_unfinished(root, tag, id_, a.dead)  # again: another con may have finished it meanwhile
    folder = run_dir(root, tag, id_)
    from utils.train.checkpoint import candidates  # no torch: only lists files

    if not candidates(folder / "checkpoint"):  # main.py loads the newest that loads, epoch_last.pth's first
        raise UsageError(f"{tag}/{id_} has no checkpoint to continue from; `rerun {tag}` starts it afresh")
    g.head(root)
    marked = g.tag_commit(root, tag)
    if marked is None:
        raise UsageError(f"there is no git tag {tag!r}: con runs the tag's code")
    if marked != record.get("commit"):
        raise UsageError(f"tag {tag!r} now marks {marked[:10]}, but {tag}/{id_} ran {str(record.get('commit'))[:10]}; "
                         "con would mix two versions of the code")
    with commit_code(root, marked) as code_dir:
        config = load_config(code_dir)
        changed = run_record.config_changes(record.get("hyperparameters") or {}, run_record.hyperparameters(config))
        if changed:
            raise UsageError(f"the tag's config differs from the one {tag}/{id_} ran with ({', '.join(changed[:5])}); "
                             "con would not be exact")
        say(f"con {tag}/{id_}: {folder}")
        return launch(root, code_dir, config, run_env(folder, record, resume=True))


def rerun_main(argv):
    a = _parser("rerun", "Run the tag's code again under a new id; then say whether it reproduced the earlier runs.",
                True).parse_args(argv)
    root = project_root()
    if node_rank() > 0:  # another machine of a run that node 0 records
        return join_run(root)
    tag, id_ = parse_selector(a.tag)
    g.head(root)
    commit = g.tag_commit(root, tag)
    if commit is None:
        raise UsageError(f"there is no git tag {tag!r}; `run {tag}` creates it")
    if id_ is not None:
        if id_ not in run_ids(root, tag):
            raise UsageError(f"no run {tag}/{id_}; `expels {tag}` lists its ids")
        earlier = read_statistic(run_dir(root, tag, id_))
        seed, fixed = earlier["seed"], earlier["fixed_seed"]
    elif a.fix_seed:
        seed, fixed = read_seed(g.show(root, commit, "code/seed"), f"code/seed at {tag}"), True
    else:
        seed, fixed = fresh_seed(), False
    if id_ is None and not a.fix_seed:
        say(f"note: a fresh seed makes a new sample of {tag}: it reproduces nothing (`rerun {tag}/<id>` "
            f"repeats a run's seed, `rerun {tag} -f` the seed of code/seed)", err=True)
    with commit_code(root, commit) as code_dir:
        config = load_config(code_dir)
        before = set(run_ids(root, tag))
        code = train_new(root, tag, commit, seed, fixed, shlex.join(["rerun", *argv]), code_dir, config, False)
    new = sorted(set(run_ids(root, tag)) - before)
    if code == 0 and new and (id_ is not None or a.fix_seed):
        from utils.launch.verdict import verdict

        say(verdict(root, tag, new[-1]))
    return code
