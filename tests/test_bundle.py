"""The unprivileged bundle (bin/bundle, bin/bundle-env, docs/hpc.md): the toolchain root this
test runs in is packed with bin/bundle, unpacked by an ordinary user that the test creates,
and entered by that user without privileges (a user namespace): a case runs through it, and
the loopback Slurm cluster runs a sweep array whose tasks start through it.

The root is packed once per module, uncompressed (tar straight into the user's tar -x: about
4 GB in a minute here); the compressed archive of `make bundle` is the same tar stream
through zstd (measured in docs/hpc.md)."""

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from slurm_cluster import SlurmCluster, available, describe
from test_sweep import TINY_BILAYER

from solver.sweep.results import flatten

from conftest import REPO

SBIN = "/usr/sbin:/sbin"  # useradd and userdel: not on the toolchain's PATH
USERADD, USERDEL = shutil.which("useradd", path=SBIN), shutil.which("userdel", path=SBIN)

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0 or USERADD is None or USERDEL is None,
                       reason="creating the unprivileged test user needs root and useradd"),
    pytest.mark.skipif("SINTERFEM_REPO" not in os.environ,
                       reason="the bundle packs the Debian toolchain root (bin/sinter-env), and "
                              "this run uses the host's DOLFINx"),
]

# Two thicknesses: two array tasks that run.
TWO_CASE_SWEEP = """
[sweep]
base = "tiny.toml"
[parameters]
"geometry.layers[1].thickness" = ["4 um", "8 um"]
[slurm]
time = "00:05:00"
"""


class User:
    """An ordinary user made for this module: commands run as it with setpriv, no capabilities."""

    def __init__(self):
        self.name = f"sinter{os.getpid()}"
        subprocess.run([USERADD, "--no-create-home", "--user-group", "--shell", "/bin/bash",
                        self.name], check=True, capture_output=True)
        self.uid = int(subprocess.run(["id", "-u", self.name], capture_output=True, text=True,
                                      check=True).stdout)
        self.gid = int(subprocess.run(["id", "-g", self.name], capture_output=True, text=True,
                                      check=True).stdout)
        # A tmpfs, in the private mount namespace of bin/sinter-env (which the Slurm cluster's
        # namespace copies): deleting the 4 GB bundle from this machine's disk (mounted with
        # discard) takes minutes, unmounting the tmpfs none.
        self.home = Path(tempfile.mkdtemp(prefix="sinter-bundle-test-"))
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size=6g,mode=755,uid={self.uid},"
                        f"gid={self.gid}", "tmpfs", self.home], check=True)

    def command(self, command, **env) -> list[str]:
        variables = {"PATH": "/usr/bin:/bin", "HOME": self.home, "TMPDIR": self.home,
                     "USER": self.name, **env}
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups",
                "--inh-caps=-all", "env", "-i", *(f"{k}={v}" for k, v in variables.items()),
                *map(str, command)]

    def run(self, command, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(command), capture_output=True, text=True,
                              cwd=kwargs.pop("cwd", self.home), **kwargs)

    def remove(self):
        subprocess.run(["umount", "--lazy", self.home], capture_output=True)
        self.home.rmdir()
        subprocess.run([USERDEL, self.name], capture_output=True)


@pytest.fixture(scope="module")
def user():
    user = User()
    yield user
    user.remove()


@pytest.fixture(scope="module")
def bundle(user) -> Path:
    """The unpacked bundle's launcher, sinter-bundle/bin/sinter-env in the user's directory."""
    probe = user.run(["unshare", "--user", "--map-root-user", "true"])
    if probe.returncode != 0:
        pytest.skip("unprivileged user namespaces are disabled on this machine "
                    f"(unshare --user as an ordinary user: {probe.stderr.strip()})")
    started = time.perf_counter()
    pack = subprocess.Popen([REPO / "bin" / "bundle", "--root", "/", "--compress", "none",
                             "--out", "-"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    unpack = user.run(["tar", "-x", "-C", user.home], stdin=pack.stdout)
    pack.stdout.close()
    assert pack.wait() == 0, pack.stderr.read().decode()
    assert unpack.returncode == 0, unpack.stderr
    launcher = user.home / "sinter-bundle" / "bin" / "sinter-env"
    size = subprocess.run(["du", "-sh", user.home / "sinter-bundle"], capture_output=True,
                          text=True).stdout.split()[0]
    print(f"bundle packed and unpacked in {time.perf_counter() - started:.0f} s: {size}")
    return launcher


def test_a_case_runs_through_the_unpacked_bundle(user, bundle):
    # no privileges: root inside is the user's own uid outside
    uid_map = user.run([bundle, "cat", "/proc/self/uid_map"])
    assert uid_map.returncode == 0, uid_map.stderr
    assert uid_map.stdout.split() == ["0", str(user.uid), "1"]
    # sinterfem is the bundle's copy, not this checkout
    where = user.run([bundle, "python3", "-c", "import solver; print(solver.__file__)"])
    assert where.stdout.strip() == "/opt/sinterfem/solver/__init__.py", where.stderr

    (user.home / "tiny.toml").write_text(TINY_BILAYER)
    result = user.run([bundle, "python3", "-m", "solver.cli", "run", "tiny.toml", "--out",
                       "run", "-q", "--no-progress"])
    assert result.returncode == 0, result.stderr
    summary = user.home / "run" / "summary.json"
    assert summary.stat().st_uid == user.uid

    # the same numbers as this toolchain's own run of the case
    reference = subprocess.run(["python3", "-m", "solver.cli", "run", user.home / "tiny.toml",
                                "--out", user.home / "reference", "-q", "--no-progress"],
                               capture_output=True, text=True, cwd=REPO)
    assert reference.returncode == 0, reference.stderr
    ours = flatten(json.loads(summary.read_text()))
    theirs = flatten(json.loads((user.home / "reference" / "summary.json").read_text()))
    numbers = [key for key, value in theirs.items() if key.startswith(("final.", "interfaces."))
               and isinstance(value, float)]
    assert len(numbers) > 5
    assert [ours[key] for key in numbers] == pytest.approx([theirs[key] for key in numbers],
                                                           rel=1e-10)


@pytest.fixture
def slurm_cluster():
    # not in tmp_path (pytest-of-root is 0700): the user's sbatch reads slurm.conf
    workdir = Path(tempfile.mkdtemp(prefix="sinter-slurm-cluster-"))
    workdir.chmod(0o755)
    cluster = SlurmCluster(workdir).start()
    yield cluster
    cluster.stop()
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.mark.skipif(not available(), reason="needs slurmctld, slurmd, munged and root")
def test_a_slurm_array_runs_through_the_bundle(user, bundle, slurm_cluster):
    work = user.home / "sweep-work"
    user.run(["mkdir", work])
    (work / "tiny.toml").write_text(TINY_BILAYER)
    (work / "sweep.toml").write_text(TWO_CASE_SWEEP)
    out = work / "out"

    # the dry run prints the script and writes nothing
    dry = user.run([bundle, "python3", "-m", "solver.cli", "sweep", "sweep.toml", "--out", out,
                    "--backend", "slurm", "--dry-run"], cwd=work)
    assert dry.returncode == 0, dry.stderr
    assert f"exec {bundle} python3 -m solver.sweep.backends task {out}" in dry.stdout
    assert not out.exists()

    # the bundle's own sbatch does not know the cluster: the one-line error says what to do
    refused = user.run([bundle, "python3", "-m", "solver.cli", "sweep", "sweep.toml", "--out",
                        out, "--backend", "slurm", "-q"], cwd=work)
    assert refused.returncode == 2 and "--no-submit" in refused.stderr, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1

    # the sweep writes its script through the bundle; the cluster's own sbatch submits it
    written = user.run([bundle, "python3", "-m", "solver.cli", "sweep", "sweep.toml", "--out",
                        out, "--backend", "slurm", "--no-submit", "-q"], cwd=work)
    assert written.returncode == 0, written.stderr
    script = out / "slurm" / "sweep-0.sbatch"
    assert f"sbatch {script}" in written.stdout
    submitted = slurm_cluster.run(user.command(["sbatch", "--parsable", script],
                                               SLURM_CONF=slurm_cluster.conf), cwd=work)
    assert submitted.returncode == 0, submitted.stderr + describe(slurm_cluster)
    slurm_cluster.wait_for_queue_empty()

    collected = user.run([bundle, "python3", "-m", "solver.cli", "sweep", "collect", out])
    logs = " | ".join(log.read_text()[-1000:] for log in (out / "slurm" / "logs").glob("*"))
    assert "2 case(s): 2 ok, 0 failed" in collected.stdout, collected.stderr + logs
    job = submitted.stdout.strip().split(";")[0]
    for status in (out / "status").glob("*.json"):
        record = json.loads(status.read_text())
        assert record["backend"] == "slurm" and record["slurm_job"].startswith(f"{job}_")
        assert status.stat().st_uid == user.uid
