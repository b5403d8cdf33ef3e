"""Faults around a run: the launcher or a rank killed, an error on one rank only, two runs
aimed at the same directory, a run killed and its directory reused.

Each run here is started as a user would (a fresh `python3 -m solver.cli`) with a tag in
its environment that mpirun and the ranks inherit; that no process of the run survives is
checked by the tag, in /proc, not by the front process alone.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from conftest import REPO

# ~20 s on 2 ranks (32,000 DOFs, 190 steps): long enough to be killed in the middle.
SLOW_BILAYER = """
[case]
name = "slow-bilayer"
[geometry]
kind = "layers"
length = "200 um"
layers = [ { material = "copper", thickness = "8 um" },
           { material = "polyimide", thickness = "8 um" } ]
mesh_size = "1 um"
[schedule]
start = "400 degC"
steps = [ { to = "25 degC", rate = "5 K/min" } ]
[solver]
temperature_increment = "2 K"
"""
SMALL_BILAYER = SLOW_BILAYER.replace('"1 um"', '"4 um"').replace('"2 K"', '"75 K"')
# The runs that are killed 3 s after they began their results: SLOW_BILAYER took 7.5 s in
# all on 2 ranks on Debian unstable (an elastic cool-down is one solve for every step), so
# a kill could come after the end; four times its DOFs keep the kill in the middle.
KILLED_BILAYER = SLOW_BILAYER.replace('"1 um"', '"0.5 um"')
ENDS_WITHIN = 60.0  # s: a killed or failed run and all its processes are gone by then


class Run:
    """`sinter ARGS` started in the background, its processes found by their tag."""

    def __init__(self, *args, cwd=REPO):
        self.tag = uuid.uuid4().hex
        env = {**os.environ, "PYTHONPATH": str(REPO), "SINTERFEM_FAULT_TAG": self.tag}
        self.front = subprocess.Popen([sys.executable, "-m", "solver.cli", *map(str, args)],
                                      cwd=cwd, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True,
                                      start_new_session=True)

    def processes(self) -> dict[int, dict[str, str]]:
        """{pid: environment} of every live process with this run's tag."""
        found = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                environ = (entry / "environ").read_bytes().split(b"\0")
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            pairs = dict(item.decode(errors="replace").partition("=")[::2]
                         for item in environ if b"=" in item)
            if pairs.get("SINTERFEM_FAULT_TAG") == self.tag and state != "Z":
                found[int(entry.name)] = pairs
        return found

    def wait_for_ranks(self, ranks: int, timeout=120.0):
        """Until `ranks` ranks of the run are up and solving (its log says so)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            up = [p for p, env in self.processes().items() if "OMPI_COMM_WORLD_RANK" in env]
            if len(up) >= ranks:
                return
            assert self.front.poll() is None, self.front.communicate()
            time.sleep(0.2)
        pytest.fail(f"the run did not start {ranks} ranks within {timeout} s")

    def wait_for_results(self, parent: Path, name: str, timeout=120.0):
        """Until the run has begun its results (.NAME.partial-*: the case is read, the
        mesh is next)."""
        deadline = time.monotonic() + timeout
        while not list(parent.glob(f".{name}.partial-*")):
            assert time.monotonic() < deadline and self.front.poll() is None, \
                self.front.communicate()
            time.sleep(0.2)

    def rank_pid(self, rank: int) -> int:
        return next(pid for pid, env in self.processes().items()
                    if env.get("OMPI_COMM_WORLD_RANK") == str(rank))

    def ends(self) -> tuple[int, str, float]:
        """(front's exit status, its stderr, seconds until no process of the run is left);
        fails if any is left after ENDS_WITHIN."""
        started = time.monotonic()
        try:
            _, stderr = self.front.communicate(timeout=ENDS_WITHIN)
        except subprocess.TimeoutExpired:
            self.kill_all()
            pytest.fail(f"the front process still runs {ENDS_WITHIN} s later")
        while self.processes():
            if time.monotonic() - started > ENDS_WITHIN:
                left = self.processes()
                self.kill_all()
                pytest.fail(f"processes of the run left {ENDS_WITHIN} s later: {sorted(left)}")
            time.sleep(0.2)
        return self.front.returncode, stderr, time.monotonic() - started

    def kill_all(self):
        for pid in self.processes():
            os.kill(pid, signal.SIGKILL)


def _case(directory: Path, text: str) -> Path:
    case = directory / "case.toml"
    case.write_text(text)
    return case


def _nothing_complete(parent: Path, name: str):
    """No result at parent/name, nor anywhere else but in the run's hidden temporary
    directories (.NAME.partial-*: the next run to parent/name removes them)."""
    assert not (parent / name).exists()
    assert all(path.relative_to(parent).parts[0].startswith(f".{name}.partial-")
               for path in parent.glob("**/summary.json"))


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGKILL", "SIGHUP", "SIGTERM twice"])
def test_killed_launcher_takes_the_run_down(tmp_path, how):
    """`sinter run --np 2` killed 3 s after it began its results (meshing, then solving):
    mpirun and both ranks end with it, and no result appears (before: after SIGTERM and
    SIGKILL both ranks went on and wrote the result). A second SIGTERM (the first asks the
    ranks to stop at a step boundary, below) ends the run at once."""
    run = Run("run", _case(tmp_path, KILLED_BILAYER), "--out", tmp_path / "out", "--np", "2",
              "--no-progress")
    run.wait_for_ranks(2)
    run.wait_for_results(tmp_path, "out")
    time.sleep(3)
    for name in how.split()[0:1] * (2 if how.endswith("twice") else 1):
        os.kill(run.front.pid, getattr(signal, name))
        time.sleep(0.5)  # two of the same signal pending at once are delivered once
    status, stderr, _ = run.ends()
    assert status == {"SIGKILL": -9, "SIGHUP": 128 + 1, "SIGTERM twice": 128 + 15}[how], stderr
    assert "Traceback" not in stderr
    if how == "SIGTERM twice" and (tmp_path / "out" / "incomplete.json").exists():
        # the ranks had stopped at a step boundary before the second signal: incomplete
        (tmp_path / "out" / "incomplete.json").unlink()
        shutil.rmtree(tmp_path / "out")
    _nothing_complete(tmp_path, "out")


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT"])
def test_interrupted_launcher_stops_every_rank_at_a_step(tmp_path, how):
    """SIGTERM or SIGINT to `sinter run --np 2`: every rank stops at the same step boundary
    (solver/stopping.py), the run ends with exit status 4 and an incomplete result, and no
    process of it is left."""
    run = Run("run", _case(tmp_path, KILLED_BILAYER), "--out", tmp_path / "out", "--np", "2",
              "--no-progress")
    run.wait_for_ranks(2)
    run.wait_for_results(tmp_path, "out")
    time.sleep(3)
    os.kill(run.front.pid, getattr(signal, how))
    status, stderr, _ = run.ends()
    assert status == 4, stderr
    assert "Traceback" not in stderr and "sinter: stopped: interrupted by SIGUSR1" in stderr
    assert (tmp_path / "out" / "incomplete.json").exists()
    assert not list(tmp_path.glob("**/summary.json"))


@pytest.mark.slow
def test_killed_rank_takes_the_run_down(tmp_path):
    run = Run("run", _case(tmp_path, KILLED_BILAYER), "--out", tmp_path / "out", "--np", "2",
              "--no-progress")
    run.wait_for_ranks(2)
    run.wait_for_results(tmp_path, "out")
    time.sleep(3)
    os.kill(run.rank_pid(1), signal.SIGKILL)
    status, stderr, _ = run.ends()
    assert status != 0 and "rank 1" in stderr, stderr
    _nothing_complete(tmp_path, "out")


INJECT = """
import sys
from mpi4py import MPI
import solver.io.summary as summary
from solver.errors import UserError
from solver.cli import main
assemble = summary.assemble
def assemble_failing_on_rank_1(*parts):
    if MPI.COMM_WORLD.rank == 1:
        raise {error}("injected on rank 1")
    return assemble(*parts)
summary.assemble = assemble_failing_on_rank_1
sys.exit(main(["run", sys.argv[1], "--out", sys.argv[2], "--no-progress", "-q"]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("error, status", [("UserError", 2), ("RuntimeError", 1)])
def test_error_on_one_rank_aborts_the_run(tmp_path, error, status):
    """An exception on rank 1 alone, as rank 0 goes on to the results: the other rank
    waits in a collective, so the failing rank reports its error and aborts the job."""
    script = tmp_path / "inject.py"
    script.write_text(INJECT.format(error=error))
    started = time.monotonic()
    result = subprocess.run(
        ["mpirun", "-n", "2", sys.executable, str(script), _case(tmp_path, SMALL_BILAYER),
         tmp_path / "out"], cwd=REPO, capture_output=True, text=True, timeout=2 * ENDS_WITHIN,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    assert time.monotonic() - started < ENDS_WITHIN + 30  # + the start of 2 ranks
    assert result.returncode == status, result.stderr
    assert "injected on rank 1" in result.stderr
    _nothing_complete(tmp_path, "out")


@pytest.mark.slow
def test_second_run_to_the_same_directory_is_refused(tmp_path):
    case = _case(tmp_path, SLOW_BILAYER)
    first = Run("run", case, "--out", tmp_path / "out", "--no-progress", "-q")
    deadline = time.monotonic() + 120
    while not (tmp_path / ".out.lock").exists():  # the first run has begun writing
        assert time.monotonic() < deadline and first.front.poll() is None
        time.sleep(0.2)
    second = subprocess.run([sys.executable, "-m", "solver.cli", "run", case, "--out",
                             tmp_path / "out"], cwd=REPO, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert second.returncode == 2
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and "another run is writing" in lines[0] and \
        f"pid {first.front.pid} " in lines[0], second.stderr
    # the first run is not disturbed
    assert first.front.wait(timeout=600) == 0, first.front.communicate()
    assert (tmp_path / "out" / "summary.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case.toml", "out"]


@pytest.mark.slow
def test_run_killed_leaves_no_lock_that_blocks(tmp_path):
    """A run killed (SIGKILL: no clean-up) leaves its lock file and temporary directory;
    the next run to the same directory is not blocked and removes them."""
    case = _case(tmp_path, SLOW_BILAYER)
    killed = Run("run", case, "--out", tmp_path / "out", "--no-progress", "-q")
    killed.wait_for_results(tmp_path, "out")
    killed.front.kill()
    killed.ends()
    assert (tmp_path / ".out.lock").exists()
    small = _case(tmp_path, SMALL_BILAYER)
    again = subprocess.run([sys.executable, "-m", "solver.cli", "run", small, "--out",
                            tmp_path / "out", "--no-progress"], cwd=REPO, capture_output=True,
                           text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "ended without finishing" in again.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case.toml", "out"]


@pytest.mark.parametrize("name", ["../escaped", "/tmp/absolute", "a/b", ".hidden",
                                  "line\\nbreak", "x" * 101])
def test_case_name_cannot_leave_the_results_directory(tmp_path, name):
    """The case name makes the default --out (results/NAME) and a sweep's case and run
    names: one that would leave results/ (or hide in it) is an error of the case file."""
    work = tmp_path / "work"
    work.mkdir()
    case = _case(work, SMALL_BILAYER.replace('"slow-bilayer"', f'"{name}"'))
    result = subprocess.run([sys.executable, "-m", "solver.cli", "run", case], cwd=work,
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{case}: case.name: expected a name of letters" in lines[0]
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["case.toml", "work"]


IMPOSSIBLE = {
    # the films thicker than the radius of the foil's tightest concave bend: found by the
    # builder (Gmsh), on rank 0 only
    "films": ("thinfilm-on-recurved.toml", 'silicon_alloy_film", thickness = "0.12 um"',
              'silicon_alloy_film", thickness = "1.5 um"',
              "geometry: films (silicon_alloy_film 1.5 um"),
    # far below Gmsh's tolerance: before, Gmsh allocated until the memory ran out
    "mesh_size": ("recurved-2d.toml", 'mesh_size = "1.0 um"', 'mesh_size = "1e-9 um"',
                  "geometry.mesh_size: 1e-09 um gives at least 1e21 elements"),
}


@pytest.mark.slow
@pytest.mark.parametrize("ranks", [1, 2])
@pytest.mark.parametrize("impossible", sorted(IMPOSSIBLE))
def test_impossible_geometry_is_one_line_on_every_rank_count(tmp_path, impossible, ranks):
    source, old, new, message = IMPOSSIBLE[impossible]
    text = (REPO / "cases" / source).read_text()
    assert old in text
    case = _case(tmp_path, text.replace(old, new))
    result = subprocess.run([sys.executable, "-m", "solver.cli", "run", case, "--out",
                             tmp_path / "out", "--np", str(ranks)], cwd=REPO,
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("sinter: ")]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    if ranks == 1:  # nothing else but the case's warnings (placeholder material data)
        assert [line for line in result.stderr.strip().splitlines()
                if not line.startswith("warning: ")] == errors
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case.toml"]
