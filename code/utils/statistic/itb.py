"""TensorBoard for chosen runs, in the background.

Usage: itb [<tag>[/<id>] ...] [--host HOST]  |  itb --list  |  itb --stop [URL|all]

A bare tag means all its runs, no run named means every run. The server outlives the command
and is bound to 127.0.0.1 unless --host says otherwise; starting the same selection again
reuses it (adding any new runs of its tags). Each server has a folder __statistic__/itb/<name>/:

    server.json   pid, host, port, url, selection, runs, logdir, log, started
    log           TensorBoard's own output (never the user's terminal)
    runs/<tag>/<id> -> __result__/<tag>/<id>/tensorboard   (so TensorBoard names each run <tag>/<id>)
    tmp/          the server's TMPDIR: TensorBoard's info file and data-server files stay in the project

Only reads __result__: no git, no torch, not even tensorboard in this process.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import datetime
from importlib.util import find_spec
from pathlib import Path

from utils.atomic import locked, remove_own_file, write_json
from utils.cli import UsageError, parser, project_root, warn
from utils.procs import command_line, stat_fields
from utils.runs import RESULT, iter_runs, parse_selector, result_dir, select, statistic_dir

IMAGES_KEPT = 100_000  # per image tag and run
START_TIMEOUT_S = 60  # TensorBoard needs a few seconds on a busy 2-core machine
STOP_TIMEOUT_S = 10
_WILDCARD = ("0.0.0.0", "::")


def build_parser():
    p = parser("itb", "Start TensorBoard in the background for the runs named (all runs if none) and print its URL.")
    p.add_argument("runs", nargs="*", metavar="<tag>[/<id>]", help="a bare tag means all its runs")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--list", action="store_true", help="show the servers running, their URL and runs")
    p.add_argument("--stop", nargs="?", const="all", metavar="URL|all", help="stop one server (its URL or port) or all")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    root = project_root()
    if args.list or args.stop is not None:
        if args.runs or args.host is not None or (args.list and args.stop is not None):
            raise UsageError("--list and --stop take no runs, no --host and not each other")
        return list_servers(root) if args.list else stop_servers(root, args.stop)
    host = "127.0.0.1" if args.host is None else args.host.strip()
    if not host:
        raise UsageError("--host needs an address, e.g. 127.0.0.1")
    if find_spec("tensorboard") is None:
        raise UsageError(f"tensorboard is not installed for {sys.executable}; pip install -r code/requirements.txt")
    selection, runs = choose(root, args.runs)
    itb_dir(root).mkdir(parents=True, exist_ok=True)
    with _lock(root):  # two `itb` at once start one server
        for folder, info in servers(root):
            if info.get("selection") == selection and info.get("host") == host:
                problem = health(folder, info)
                if problem is None:
                    info["runs"] = link_runs(root, folder / "runs", runs)
                    write_json(folder / "server.json", info)
                    print(info["url"])
                    print(f"TensorBoard for {describe(info['runs'])} was already running (pid {info['pid']})",
                          file=sys.stderr)
                    return 0
                warn(f"{info.get('url') or folder.name}: {problem}; starting a new one")
                stop(folder, info)
        info = start(root, selection, runs, host)
    print(info["url"])
    log = Path(info["log"]).relative_to(root)
    print(f"TensorBoard for {describe(info['runs'])}: pid {info['pid']}, log {log}; `itb --stop` ends it",
          file=sys.stderr)
    if host not in ("127.0.0.1", "localhost", "::1"):
        warn(f"TensorBoard listens on {host}: anyone who reaches this machine there sees these runs (it has no login)")
    return 0


def itb_dir(root):
    return statistic_dir(root) / "itb"


def choose(root, selectors):
    """(selection, runs): the selectors in one canonical form ([] = all runs) and the runs they name now."""
    if selectors:
        runs = select(root, selectors)  # refuses unknown runs before anything is written
    else:
        runs = [(tag, id_) for tag, id_, _ in iter_runs(root)]
        if not runs:
            raise UsageError(f"no runs in {result_dir(root)} yet; `run <tag>` makes one")
    parsed = [parse_selector(s) for s in selectors]
    bare = {tag for tag, id_ in parsed if id_ is None}
    selection = sorted({tag if id_ is None else f"{tag}/{id_}" for tag, id_ in parsed
                        if id_ is None or tag not in bare})
    return selection, [f"{tag}/{id_}" for tag, id_ in runs]


def describe(runs):
    shown = ", ".join(runs[:6]) + (f" and {len(runs) - 6} more" if len(runs) > 6 else "")
    return f"{len(runs)} run{'s' * (len(runs) != 1)} ({shown})"


def _real_folder(path):
    """path as a folder of our own: a link planted in its place is removed (never followed), then made."""
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        remove_own_file(path)
    path.mkdir(exist_ok=True)
    return path


def link_runs(root, farm, runs):
    """Make farm/<tag>/<id> point at each run's tensorboard folder (relative links); drop others.

    Only links are removed, and only inside folders that are the server's own: a link planted
    where a folder should be is itself removed, so nothing outside the project is touched."""
    _real_folder(farm.parent)
    _real_folder(farm)
    for name in runs:
        tag, id_ = name.split("/")
        link = _real_folder(farm / tag) / id_
        target = os.path.relpath(root / RESULT / tag / id_ / "tensorboard", link.parent)
        if os.path.lexists(link) and (not link.is_symlink() or os.readlink(link) != target):
            if link.is_dir() and not link.is_symlink():
                shutil.rmtree(link)
            else:
                remove_own_file(link)
        if not os.path.lexists(link):
            os.symlink(target, link)
        if not link.exists():
            warn(f"{name} has no tensorboard/ folder yet: it shows once the run writes one")
    for tag_dir in list(farm.iterdir()):
        if tag_dir.is_symlink() or not tag_dir.is_dir():
            remove_own_file(tag_dir)
            continue
        for link in list(tag_dir.iterdir()):
            if f"{tag_dir.name}/{link.name}" not in runs and link.is_symlink():
                link.unlink()
        if not any(tag_dir.iterdir()):
            tag_dir.rmdir()
    return runs


def start(root, selection, runs, host):
    folder = itb_dir(root) / f"{datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}"
    folder.mkdir()
    farm, tmp, log = folder / "runs", folder / "tmp", folder / "log"
    tmp.mkdir()
    link_runs(root, farm, runs)
    # every image a run wrote (TensorBoard keeps 10 per tag unless told; its "0 means all" shows none in
    # some releases, so a count no run reaches)
    command = [sys.executable, "-m", "tensorboard.main", "--logdir", str(farm), "--host", host, "--port", "0",
               "--samples_per_plugin", f"images={IMAGES_KEPT}",
               "--window_title", f"{root.name}: {' '.join(selection) or 'all runs'}"]
    with open(log, "ab") as out:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   cwd=folder, env=dict(os.environ, TMPDIR=str(tmp)), start_new_session=True)
    info = {"pid": process.pid, "host": host, "port": None, "url": None, "selection": selection, "runs": runs,
            "logdir": str(farm), "log": str(log), "started": datetime.now().astimezone().isoformat(timespec="seconds")}
    write_json(folder / "server.json", info)
    try:
        info["port"] = wait_for_port(process, tmp, log)
    except BaseException:
        stop(folder, info)
        raise
    info["url"] = url(host, info["port"])
    write_json(folder / "server.json", info)
    process.returncode = 0  # detached on purpose: no "still running" warning when this command exits
    return info


def wait_for_port(process, tmp, log):
    """The port TensorBoard bound: it writes its info file (JSON) once it listens."""
    info_file = tmp / ".tensorboard-info" / f"pid-{process.pid}.info"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        code = process.poll()
        if code is not None:
            raise UsageError(f"TensorBoard stopped at start (exit code {code}): {tail(log)}")
        try:
            return int(json.loads(info_file.read_text())["port"])
        except (OSError, ValueError, KeyError, TypeError):  # not written yet, or half written
            time.sleep(0.1)
    raise UsageError(f"TensorBoard did not start within {START_TIMEOUT_S} s: {tail(log)}")


def tail(log, lines=1):
    try:
        text = [line for line in Path(log).read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty log)"


def url(host, port):
    if host in _WILDCARD:
        host = socket.gethostname()
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def servers(root):
    """[(folder, info)] for each server folder, oldest first; info is {} where server.json is unreadable.

    Call under the lock: a folder whose start is under way holds no server.json for a moment.
    """
    base = itb_dir(root)
    found = []
    for folder in sorted(base.iterdir()) if base.is_dir() else []:
        if folder.is_dir():
            try:
                info = json.loads((folder / "server.json").read_text())
            except (OSError, ValueError):
                info = {}
            found.append((folder, info if isinstance(info, dict) else {}))
    return found


def _process(pid):
    """(state, command line) of a process, or None when it is gone."""
    if not os.path.isdir("/proc/self"):  # macOS: ask ps
        done = subprocess.run(["ps", "-o", "stat=,command=", "-p", str(pid)], capture_output=True, text=True)
        state, _, command = done.stdout.strip().partition(" ")
        return (state[:1], command.strip()) if done.returncode == 0 and state else None
    fields, command = stat_fields(pid), command_line(pid)
    return (fields[0], command) if fields and command is not None else None


def ours(info):
    """True while the recorded pid is still that TensorBoard (not a zombie, not a recycled pid)."""
    pid = info.get("pid")
    found = isinstance(pid, int) and pid > 0 and _process(pid)
    return bool(found) and found[0] != "Z" and "tensorboard" in found[1] and str(info.get("logdir")) in found[1]


def health(folder, info):
    """None when the server serves its runs, else what is wrong with it."""
    if not info:
        return "its server.json is missing or unreadable"
    if not ours(info):
        return f"its process {info.get('pid')} is gone"
    farm = Path(info.get("logdir") or folder / "runs")
    if not farm.is_dir():
        return f"its logdir {farm} is gone"
    links = [link for tag_dir in farm.iterdir() if tag_dir.is_dir() for link in tag_dir.iterdir()]
    if not any(Path(os.path.realpath(link)).parent.is_dir() for link in links):  # a run yet to log is no problem
        return f"its runs are gone from {RESULT}"
    if not isinstance(info.get("port"), int):
        return "it never finished starting"
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(info.get("host"), info.get("host"))
    try:
        socket.create_connection((host, info["port"]), timeout=2).close()
    except OSError:
        return f"nothing answers on port {info['port']}"
    return None


def stop(folder, info):
    """End the server's process group (TensorBoard and its data server), then remove its folder."""
    if ours(info):
        pid = info["pid"]
        try:
            os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_TIMEOUT_S
            while ours(info) and time.monotonic() < deadline:
                time.sleep(0.05)
            os.killpg(pid, signal.SIGKILL)  # whatever of the group is left
        except ProcessLookupError:
            pass
    shutil.rmtree(folder, ignore_errors=True)


def list_servers(root):
    alive = []
    with _lock(root):
        for folder, info in servers(root):
            problem = health(folder, info)
            if problem is None:
                alive.append(info)
            else:
                label = folder.name
                if info.get("url"):
                    label = f"{info['url']} ({' '.join(info['selection']) or 'all runs'})"
                warn(f"{label}: {problem}; cleaned up (its last log line: {tail(folder / 'log')})")
                stop(folder, info)
    if not alive:
        print("no itb servers running")
    for info in alive:
        since = info.get("started", "")[:16].replace("T", " ")
        selection = " ".join(info["selection"]) or "all runs"
        print(f"{info['url']}  {selection}  ({describe(info['runs'])}, pid {info['pid']}, since {since})")
    return 0


def _matches(target, info):
    """Does `itb --stop` TARGET (a URL, host:port or port) name this server?"""
    text = target.strip().rstrip("/")
    text = text.split("://", 1)[-1].split("/", 1)[0]
    host, _, port = text.rpartition(":")
    if not port.isdigit() or port != str(info.get("port")):
        return False
    server_url_host = (info.get("url") or "").split("://", 1)[-1].rsplit(":", 1)[0]
    return host in ("", info.get("host"), server_url_host) or (host == "localhost" and info.get("host") == "127.0.0.1")


def stop_servers(root, target):
    with _lock(root):
        found = servers(root)
        chosen = found if target == "all" else [(f, i) for f, i in found if _matches(target, i)]
        if target != "all" and not chosen:
            raise UsageError(f"no itb server at {target}; `itb --list` shows them")
        if not chosen:
            print("no itb servers running")
        for folder, info in chosen:
            stop(folder, info)
            print(f"stopped {info.get('url') or folder.name}")
    return 0


@contextmanager
def _lock(root):
    """Serialise the commands that start, list and stop servers (no folder: nothing to guard)."""
    if not itb_dir(root).is_dir():
        yield
        return
    with locked(itb_dir(root) / "servers"):
        yield
