"""A real one-node SLURM cluster on this machine, for the tests of `sweep --slurm`: Debian's slurm-wlm
and munge (.ci/run installs them), started as root with files, ports and a munge key of their own.

Usage (a test module): slurm_env = pytest.fixture(scope="module")(slurm.cluster_fixture)
then a test's commands get slurm_env ({"SLURM_CONF": ...}) as their environment.

Nothing under /etc is touched: slurmctld and slurmd read the slurm.conf written here (-f, and
SLURM_CONF for sbatch, squeue, scancel and sinfo), munged listens on a socket of its own (slurm.conf's
AuthInfo), and everything they write stays in one temporary folder. What was started is stopped at
the end, by its pid. Skipped, saying why, when not root or when a program is missing.
"""
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

PROGRAMS = ("slurmctld", "slurmd", "munged", "sbatch", "squeue", "scancel", "sinfo")
SBIN = ("/usr/sbin", "/sbin")  # where Debian puts the daemons, which a user's PATH may lack


def _program(name):
    return shutil.which(name) or next((str(Path(d, name)) for d in SBIN if Path(d, name).exists()), None)


def why_not():
    """Why this machine cannot run the cluster (None: it can)."""
    if os.geteuid() != 0:
        return "the one-node SLURM cluster needs root (its daemons run jobs as their user)"
    missing = [p for p in PROGRAMS if not _program(p)]
    if missing:
        return f"SLURM is not installed ({', '.join(missing)} missing): apt-get install slurm-wlm munge"
    try:
        pwd.getpwnam("munge")
    except KeyError:
        return "there is no munge user: apt-get install munge"
    return None


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _memory_mb():
    with open("/proc/meminfo") as f:
        total_kb = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
    return max(1000, total_kb // 1024 // 2)


def config(folder, host, cpus, memory_mb):
    return f"""ClusterName=exper-tests
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={folder}/munge/socket
SlurmUser=root
SlurmdUser=root
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/slurmctld.log
SlurmdLogFile={folder}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
KillWait=10
InactiveLimit=0
MinJobAge=600
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName=tests Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def _pid(path):
    try:
        return int(Path(path).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _running(pid):
    """Whether the process runs: a daemon's zombie, which this machine's init may be slow to reap, does not."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


def _stop(pid, timeout=15):
    if pid is None:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    end = time.monotonic() + timeout
    while time.monotonic() < end and _running(pid):
        time.sleep(0.1)
    if not _running(pid):
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@contextmanager
def cluster():
    """Start munged, slurmctld and slurmd; yield the environment the clients need; stop them."""
    reason = why_not()
    if reason:
        pytest.skip(reason)
    folder = Path(tempfile.mkdtemp(prefix="exper-slurm-"))
    folder.chmod(0o711)  # munged wants its socket's folders searchable by all
    munge = pwd.getpwnam("munge")
    (folder / "munge").mkdir(mode=0o711)
    os.chown(folder / "munge", munge.pw_uid, munge.pw_gid)
    key = folder / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    os.chown(key, munge.pw_uid, munge.pw_gid)
    for name in ("state", "spool"):
        (folder / name).mkdir()
    host = socket.gethostname().split(".")[0]
    conf = folder / "slurm.conf"
    conf.write_text(config(folder, host, os.cpu_count() or 1, _memory_mb()))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    started = []
    try:
        subprocess.run([_program("munged"), f"--socket={folder}/munge/socket", f"--key-file={key}",
                        f"--pid-file={folder}/munge/munged.pid", f"--log-file={folder}/munge/munged.log",
                        f"--seed-file={folder}/munge/seed"], user=munge.pw_uid, group=munge.pw_gid,
                       extra_groups=[], check=True, capture_output=True, env=env)
        started.append(folder / "munge" / "munged.pid")
        for daemon, options in (("slurmctld", ["-i"]), ("slurmd", [])):
            subprocess.run([_program(daemon), "-f", str(conf), *options], check=True, capture_output=True, env=env)
            started.append(folder / f"{daemon}.pid")
        end = time.monotonic() + 60
        while True:
            out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, env=env)
            if out.stdout.strip() == "idle":
                break
            if time.monotonic() > end:
                logs = "".join((folder / f"{d}.log").read_text()[-2000:] for d in ("slurmctld", "slurmd")
                               if (folder / f"{d}.log").exists())
                raise AssertionError(f"the test cluster's node never became idle: {out.stdout}{out.stderr}\n{logs}")
            time.sleep(0.2)
        yield {"SLURM_CONF": str(conf)}
    finally:
        subprocess.run(["scancel", "--user=root"], capture_output=True, env=env)
        end = time.monotonic() + 20  # the cancelled jobs' processes end before their daemons do
        while started and time.monotonic() < end:
            out = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, env=env)
            if out.returncode or not out.stdout.strip():
                break
            time.sleep(0.2)
        for pid_file in reversed(started):
            _stop(_pid(pid_file))
        shutil.rmtree(folder, ignore_errors=True)


def cluster_fixture():
    with cluster() as env:
        yield env
