"""A real single-node Slurm cluster on loopback for tests (docs/sweeps.md).

munged, slurmctld and slurmd run in a process tree with its own UTS, PID and mount
namespaces (hostname `localhost`, a private tmpfs on /run for munge); commands are run
inside the same namespaces with nsenter. Killing the namespace's first process ends
everything in it, so nothing outlives the cluster even when a test fails.
"""

import os
import shutil
import socket
import subprocess
import textwrap
import time
from pathlib import Path

DAEMONS = ("/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/sbin/munged")


def available() -> bool:
    """Whether this system can run the cluster: the daemons, unshare and nsenter, as root."""
    return (all(Path(daemon).exists() for daemon in DAEMONS) and os.geteuid() == 0
            and shutil.which("unshare") is not None and shutil.which("nsenter") is not None)


def _free_port() -> int:
    # Ports are in the host's network namespace: another cluster may hold 6817/6818.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


SLURM_CONF = """\
ClusterName=sinterfem-test
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerParameters=batch_sched_delay=0
SlurmdParameters=config_overrides
MailProg=/bin/true
StateSaveLocation={dir}/state
SlurmdSpoolDir={dir}/spool
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd.pid
SlurmctldLogFile={dir}/slurmctld.log
SlurmdLogFile={dir}/slurmd.log
ReturnToService=2
NodeName=localhost NodeHostname=localhost NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""

# PID 1 of the namespace: munge with its key and socket on a private /run, then the daemons.
START = """\
set -e
hostname localhost
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /run/munge && chown munge:munge /run/munge && chmod 755 /run/munge
as_munge="setpriv --reuid=munge --regid=munge --init-groups"
$as_munge /usr/sbin/mungekey --create --keyfile=/run/munge/munge.key
$as_munge /usr/sbin/munged -F --origin=127.0.0.1 --key-file=/run/munge/munge.key \
    --log-file=/run/munge/munged.log --seed-file=/run/munge/munged.seed &
for i in $(seq 100); do [ -S /run/munge/munge.socket.2 ] && break; sleep 0.05; done
/usr/sbin/slurmctld -D -f "$SLURM_CONF" &
/usr/sbin/slurmd -D -N localhost -f "$SLURM_CONF" &
wait
"""


class SlurmCluster:
    """Start with start(), run client commands with run(), stop with stop()."""

    def __init__(self, workdir: Path, cpus: int = 2):
        self.dir = Path(workdir)
        self.conf = self.dir / "slurm.conf"
        self.cpus = cpus
        self._unshare = None
        self._init_pid = None

    def start(self, timeout: float = 30.0):
        for sub in ("state", "spool"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        self.conf.write_text(SLURM_CONF.format(dir=self.dir, cpus=self.cpus,
                                               ctld_port=_free_port(), slurmd_port=_free_port()))
        (self.dir / "cgroup.conf").write_text("CgroupPlugin=disabled\n")
        self._unshare = subprocess.Popen(
            ["unshare", "--uts", "--pid", "--fork", "--kill-child", "--mount-proc",
             "--propagation", "unchanged", "bash", "-c", START],
            env={**os.environ, "SLURM_CONF": str(self.conf)},
            stdout=open(self.dir / "daemons.out", "w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while self._init_pid is None:
            children = Path(f"/proc/{self._unshare.pid}/task/{self._unshare.pid}/children")
            pids = children.read_text().split() if children.exists() else []
            self._init_pid = int(pids[0]) if pids else None
            self._check_alive(deadline)
        state = ""
        while state != "idle":
            state = self.run(["sinfo", "-h", "-n", "localhost", "-o", "%T"]).stdout.strip()
            self._check_alive(deadline)
        return self

    def _check_alive(self, deadline: float):
        if self._unshare.poll() is not None or time.monotonic() > deadline:
            logs = {name: (self.dir / name).read_text()[-2000:] for name in
                    ("daemons.out", "slurmctld.log", "slurmd.log") if (self.dir / name).exists()}
            self.stop()
            raise RuntimeError(f"the test Slurm cluster did not come up: {logs}")
        time.sleep(0.1)

    def run(self, command, timeout: float = 300, cwd=None) -> subprocess.CompletedProcess:
        """Run a client command inside the cluster's namespaces (its hostname, its /run)."""
        return subprocess.run(
            ["nsenter", "-t", str(self._init_pid), "--uts", "--pid", "--mount", "--root",
             "env", "-C", str(cwd or os.getcwd()), f"SLURM_CONF={self.conf}", *command],
            capture_output=True, text=True, timeout=timeout)

    def wait_for_queue_empty(self, timeout: float = 120):
        deadline = time.monotonic() + timeout
        while self.run(["squeue", "-h"]).stdout.strip():
            if time.monotonic() > deadline:
                raise TimeoutError(f"jobs still queued after {timeout} s")
            time.sleep(0.3)

    def stop(self):
        if self._unshare is not None and self._unshare.poll() is None:
            # unshare ignores SIGTERM while it waits for its child, so SIGKILL; --kill-child
            # then ends the namespace's PID 1, and every daemon in the namespace with it.
            self._unshare.kill()
            self._unshare.wait()
        self._unshare = None


def describe(cluster: SlurmCluster) -> str:
    """The daemons' logs, for an assertion message."""
    return textwrap.shorten(" | ".join(
        (cluster.dir / name).read_text()[-1500:] for name in ("slurmctld.log", "slurmd.log")
        if (cluster.dir / name).exists()), 4000)
