"""`itb` against a real TensorBoard. Usage: python3 -m pytest code/tests/test_itb.py -q

A temporary project (a copy of code/, no git) holds runs whose event files EventWriter wrote;
`itb` starts TensorBoard on them and the tests read TensorBoard's own HTTP data API on
127.0.0.1: run names, scalar values, the HParams union, the resumed run's single curve.
Every server a test starts is stopped by the fixtures' finaliser.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import torch

from conftest import CODE, alive, eventually, get
from utils.train.tb import EventWriter

CHROMIUM = "/usr/bin/chromium"
UI_STATUSES = ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]  # what TensorBoard's UI asks

SMALL_LR = {"lr": 0.01, "batch_size": 64, "optim.momentum": 0.9, "model": "mlp"}
WIDE = {"lr": 0.1, "batch_size": 128, "width": 512, "nesterov": True}
OTHER = {"lr": 0.5}


def write_run(project, tag, id_, hparams, sessions, images=0):
    """A finished run: statistic.json (schema 1) and one event file per session.

    sessions: [(purge_step, steps, offset, end status)]; train/loss = offset + step, and a
    finished session ends with test/acc = 0.9 - offset / 100. images: that many 4x4 "samples"
    images, one a step, in the first session.
    """
    folder = project / "__result__" / tag / str(id_)
    folder.mkdir(parents=True)
    for purge_step, steps, offset, status in sessions:
        with EventWriter(folder / "tensorboard", purge_step=purge_step) as w:
            w.hparams(hparams, metric_tags=("val/acc", "test/acc"))
            for step in steps:
                w.scalars(step, {"train/loss": offset + step, "val/acc": step / 100})
            for step in range(images if purge_step is None else 0):
                w.image("samples", step, torch.full((3, 4, 4), step / images))
            if status == "finished":
                w.scalars(steps[-1], {"test/acc": 0.9 - offset / 100})
            w.hparams_end(status)
    stat = {
        "schema": 1, "tag": tag, "id": id_, "status": "finished", "commit": "0" * 40, "subject": "test run",
        "seed": 1, "fixed_seed": True, "command": f"run {tag} -f", "pid": 1,
        "started": "2026-11-22T05:00:00+00:00", "ended": "2026-11-22T05:01:00+00:00", "duration_s": 60.0,
        "sessions": [{"started": "2026-11-22T05:00:00+00:00", "ended": "2026-11-22T05:01:00+00:00",
                      "from_epoch": 0, "from_step": 0}],
        "host": {"hostname": "", "user": "", "os": "", "python": "", "torch": "", "cuda": None, "gpus": [],
                 "cpu": "", "memory_gb": 0, "visible_devices": None, "world_size": 1},
        "hyperparameters": hparams, "metrics": {"epoch": 1}, "weights_sha256": "0" * 64, "error": None,
    }
    (folder / "statistic.json").write_text(json.dumps(stat))


def make_project(path):
    path.mkdir()
    shutil.copytree(CODE, path / "code", ignore=shutil.ignore_patterns("__pycache__"))
    return path


def itb(project, *args):
    env = dict(os.environ, EXPER_ROOT=str(project))
    return subprocess.run([sys.executable, str(project / "code" / "utils" / "exper.py"), "itb", *args],
                          capture_output=True, text=True, env=env, timeout=120)


def in_shell(project, cwd, command):
    """`command` in bash after sourcing the project's source.sh, from `cwd` (no EXPER_ROOT given)."""
    env = {k: v for k, v in os.environ.items() if k != "EXPER_ROOT"}
    script = f'cd "{cwd}" && . "{project}/code/source.sh" && {command}'
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=120)


def server_infos(project):
    return [json.loads(p.read_text()) for p in sorted((project / "__statistic__" / "itb").glob("*/server.json"))]


def stop_everything(project):
    itb(project, "--stop", "all")
    for info in server_infos(project) if (project / "__statistic__").exists() else []:
        if alive(info["pid"]):  # --stop failed: end what this test started, by its pid
            os.killpg(info["pid"], signal.SIGKILL)


def scalars(url, run, tag):
    return get(url, f"/data/plugin/scalars/scalars?run={urllib.request.quote(run)}&tag={urllib.request.quote(tag)}")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = make_project(tmp_path_factory.mktemp("itb") / "project")
    write_run(root, "small-lr", 0, SMALL_LR, [(None, range(10), 0.0, "finished")], images=15)
    # interrupted at step 7 (last checkpoint at 5), then continued: the second file purges from step 5
    write_run(root, "wide", 0, WIDE, [(None, range(8), 10.0, "interrupted"), (5, range(5, 10), 20.0, "finished")])
    write_run(root, "other", 0, OTHER, [(None, range(3), 0.0, "finished")])
    yield root
    stop_everything(root)


@pytest.fixture(scope="module")
def server(project):
    done = itb(project, "small-lr", "wide/0")
    assert done.returncode == 0, done.stderr
    url = done.stdout.strip()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", url), done.stdout
    assert eventually(lambda: len(scalars(url, "wide/0", "train/loss")) == 10 and get(url, "/data/runs"))
    return {"url": url, "done": done, "info": server_infos(project)[0]}


def test_every_image_is_shown_not_tensorboards_ten(server):
    """15 images of one tag: TensorBoard keeps 10 per tag unless told otherwise."""
    url = server["url"]
    entries = eventually(lambda: get(url, "/data/plugin/images/images?run=small-lr%2F0&tag=samples"))
    assert sorted(e["step"] for e in entries) == list(range(15))
    first = urllib.request.urlopen(url.rstrip("/") + "/data/plugin/images/" + entries[0]["query"].join(
        ["individualImage?", ""]), timeout=10).read()
    assert first.startswith(b"\x89PNG")


def test_a_link_planted_among_the_servers_runs_is_removed_not_followed(server, project, tmp_path):
    """A link in runs/ to a folder outside the project: reusing the server drops the link, and the
    outside folder keeps every file (it used to be emptied)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep me\n")
    (outside / "0").mkdir()
    farm = Path(server["info"]["logdir"])
    os.symlink(outside, farm / "planted")
    done = itb(project, "small-lr", "wide/0")
    assert done.returncode == 0, done.stderr
    assert not os.path.lexists(farm / "planted")
    assert (outside / "precious.txt").read_text() == "keep me\n" and (outside / "0").is_dir()


def test_runs_are_named_tag_slash_id(server):
    assert sorted(get(server["url"], "/data/runs")) == ["small-lr/0", "wide/0"]  # other/0 was not selected


def test_scalars_have_the_written_values(server):
    points = scalars(server["url"], "small-lr/0", "train/loss")
    assert [(step, value) for _, step, value in points] == [(s, float(s)) for s in range(10)]
    assert [round(v, 6) for _, _, v in scalars(server["url"], "small-lr/0", "val/acc")] == [s / 100 for s in range(10)]


def test_continued_run_is_one_curve(server):
    points = [(step, value) for _, step, value in scalars(server["url"], "wide/0", "train/loss")]
    assert [s for s, _ in points] == list(range(10))  # no step twice, none backwards
    assert points == [(s, 10.0 + s) for s in range(5)] + [(s, 20.0 + s) for s in range(5, 10)]


def test_hparams_show_the_union_of_keys_and_final_metrics(server):
    experiment = get(server["url"], "/data/plugin/hparams/experiment", {"experimentName": ""})
    assert {h["name"] for h in experiment["hparamInfos"]} == set(SMALL_LR) | set(WIDE)
    assert {"val/acc", "test/acc", "train/loss"} <= {m["name"]["tag"] for m in experiment["metricInfos"]}
    request = {"experimentName": "", "allowedStatuses": UI_STATUSES, "startIndex": 0, "sliceSize": 100,
               "colParams": [{"hparam": h["name"], "includeInResult": True} for h in experiment["hparamInfos"]]
               + [{"metric": m["name"], "includeInResult": True} for m in experiment["metricInfos"]]}
    groups = {g["name"]: g for g in get(server["url"], "/data/plugin/hparams/session_groups", request)["sessionGroups"]}
    assert set(groups) == {"small-lr/0", "wide/0"}  # the once-interrupted run is listed too
    assert groups["small-lr/0"]["hparams"] == SMALL_LR and groups["wide/0"]["hparams"] == WIDE
    test_acc = {name: [m["value"] for m in g["metricValues"] if m["name"]["tag"] == "test/acc"]
                for name, g in groups.items()}
    assert test_acc == {"small-lr/0": [pytest.approx(0.9)], "wide/0": [pytest.approx(0.7)]}
    assert [s["status"] for g in groups.values() for s in g["sessions"]] == ["STATUS_SUCCESS"] * 2


def test_output_goes_to_the_log_and_bookkeeping_stays_in_the_project(server, project):
    done, info = server["done"], server["info"]
    assert done.stdout == server["url"] + "\n" and "TensorFlow" not in done.stderr
    log = Path(info["log"])
    assert f"TensorBoard 2.21.0 at {server['url']}" in log.read_text()
    assert log.parent.parent == project / "__statistic__" / "itb"
    assert info["selection"] == ["small-lr", "wide/0"] and info["runs"] == ["small-lr/0", "wide/0"]
    assert info["url"] == server["url"] and alive(info["pid"])
    assert sorted(p.name for p in project.iterdir()) == ["__result__", "__statistic__", "code"]


def _listening(pid_group):
    """{(address, port)} of the TCP sockets listening in a process group, from /proc."""
    inodes = set()
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and int((proc / "stat").read_text().rsplit(")", 1)[1].split()[2]) == pid_group:
                links = [os.readlink(fd) for fd in (proc / "fd").iterdir()]
                inodes |= {link[8:-1] for link in links if link.startswith("socket:")}
        except OSError:
            continue
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                address, port = fields[1].split(":")
                raw = bytes.fromhex(address)
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))  # /proc prints host-order words
                found.add((socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw), int(port, 16)))
    return found


def test_bound_to_loopback_only(server):
    port = int(server["url"].rsplit(":", 1)[1].strip("/"))
    sockets = _listening(server["info"]["pid"])  # TensorBoard and its data server
    assert ("127.0.0.1", port) in sockets
    assert all(address in ("127.0.0.1", "::1") for address, _ in sockets), sockets


def test_unknown_run_is_an_error_and_starts_nothing(server, project, tmp_path):
    before = server_infos(project)
    for args in (["small-lr/5"], ["nope"], ["small-lr", "bad tag"]):
        done = itb(project, *args)
        assert done.returncode == 1 and done.stderr.startswith("error: ") and done.stdout == ""
    assert server_infos(project) == before
    empty = make_project(tmp_path / "empty")
    done = itb(empty)
    assert done.returncode == 1 and "no runs" in done.stderr
    assert sorted(p.name for p in empty.iterdir()) == ["code"]


def test_same_selection_reuses_the_server_and_adds_new_runs(server, project):
    write_run(project, "small-lr", 1, SMALL_LR, [(None, range(2), 0.0, "finished")])
    done = itb(project, "wide/0", "small-lr", "small-lr/0")  # the same selection, written differently
    assert done.returncode == 0 and done.stdout.strip() == server["url"] and "already running" in done.stderr
    assert len(server_infos(project)) == 1
    assert eventually(lambda: sorted(get(server["url"], "/data/runs")) == ["small-lr/0", "small-lr/1", "wide/0"])


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} missing (CI: apt-get install -y chromium)")
def test_browser_renders_both_runs(server, tmp_path):
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=20000", "--dump-dom", server["url"]]
    env = dict(os.environ, HOME=str(tmp_path))  # chromium writes nothing outside tmp_path
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    cells = set(re.findall(r'class="cell[^"]*"[^>]*>\s*([^<\s]+)\s*</div>', done.stdout))
    assert {"small-lr/0", "wide/0"} <= cells, (len(done.stdout), done.stderr[-2000:])


def test_shell_itb_and_list_cleans_a_server_whose_logdir_vanished(project):
    done = in_shell(project, project / "__result__" / "other", "itb other")  # source.sh finds the project upwards
    assert done.returncode == 0, done.stderr
    url = done.stdout.strip()
    assert eventually(lambda: get(url, "/data/runs") == ["other/0"])
    info = next(i for i in server_infos(project) if i["url"] == url)
    shutil.rmtree(info["logdir"])
    done = in_shell(project, project, "itb --list")
    assert done.returncode == 0 and f"{url} (other): its logdir" in done.stderr and "cleaned up" in done.stderr
    assert url not in done.stdout
    assert eventually(lambda: not alive(info["pid"]), timeout=15)
    assert not Path(info["log"]).parent.exists()


def test_all_runs_by_default_and_list_cleans_a_dead_server(project):
    done = itb(project)
    assert done.returncode == 0, done.stderr
    url = done.stdout.strip()
    assert eventually(lambda: sorted(get(url, "/data/runs")) == ["other/0", "small-lr/0", "small-lr/1", "wide/0"])
    listed = itb(project, "--list").stdout
    assert f"{url}  all runs  (4 runs" in listed
    info = next(i for i in server_infos(project) if i["url"] == url)
    os.killpg(info["pid"], signal.SIGKILL)
    assert eventually(lambda: not alive(info["pid"]), timeout=15)
    done = itb(project, "--list")
    assert f"{url} (all runs): its process {info['pid']} is gone" in done.stderr
    assert url not in done.stdout and not Path(info["log"]).parent.exists()


def test_stop_ends_the_server(server, project):
    assert itb(project, "--stop", "http://127.0.0.1:1/").returncode == 1
    done = itb(project, "--stop", server["url"])
    assert done.returncode == 0 and done.stdout == f"stopped {server['url']}\n"
    assert eventually(lambda: not alive(server["info"]["pid"]), timeout=15)
    port = int(server["url"].rsplit(":", 1)[1].strip("/"))
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert itb(project, "--list").stdout == "no itb servers running\n"
    assert server_infos(project) == []
