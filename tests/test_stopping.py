"""Runs that stop early (solver/stopping.py): interrupted by SIGINT/SIGTERM at random
moments and resumed, and solves that diverge. Each leaves an incomplete result
(incomplete.json, no summary.json) and exit status 4; a resumed run ends where an
uninterrupted one does, to 1e-10.

The interrupted runs are real `sinter` processes; each is signalled at a random moment
(seeded) after it began stepping the stage under test, then resumed with --resume, three
times, and the last resume runs to the end.
"""

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from solver.cli import INCOMPLETE, main
from solver.io.checkpoint import checkpoint_path
from solver.stopping import INCOMPLETE_FILE

from conftest import CASES, REPO

# The sintering schedule (plastic Cu annealing, viscoelastic mix), coarse: about 2 s of
# stepping. The resumed run sets up the Krylov solver's multigrid afresh where the
# uninterrupted one reused an earlier one (solver/numerics/preconditioner.py): the two
# agree to the Krylov and Newton tolerances, measured 6e-10 with the defaults (1e-11,
# 1e-9); with 1e-14 and 1e-11 here, to 2e-13, so that 1e-10 tests the resume, not them.
SCHEDULE = (CASES / "sinter-schedule-2d.toml").read_text() \
    .replace('mesh_size = "1.5 um"', 'mesh_size = "2.5 um"') \
    .replace('interface_mesh_size = "0.25 um"', 'interface_mesh_size = "0.5 um"') \
    .replace('temperature_increment = "25 K"', 'temperature_increment = "75 K"') \
    .replace("hold_steps = 10", "hold_steps = 4\nrtol = 1e-14\nnewton_rtol = 1e-11")
# Si particles in polyimide on Cu, lithiated with plastic flow (finite strain) after an
# elastic cool-down; the swelling stage's linear solver is LU.
SWELLING = (CASES / "swelling-particles-2d.toml").read_text() \
    .replace('particle_mesh_size = "0.25 um"', 'particle_mesh_size = "0.5 um"') \
    .replace('mesh_size = "1 um"', 'mesh_size = "2 um"') \
    .replace("{ soc = 0.5, increments = 20 }, { soc = 0.2, increments = 6 }",
             "{ soc = 0.4, increments = 5 }, { soc = 0.2, increments = 2 }")
PULLOFF = (CASES / "pulloff-recurved-2d.toml").read_text() \
    .replace('mesh_size = "1.0 um"', 'mesh_size = "2 um"') \
    .replace('interface_mesh_size = "0.2 um"', 'interface_mesh_size = "0.4 um"') \
    .replace('end_displacement = "2 um"', 'end_displacement = "1.2 um"') \
    .replace("steps = 40", "steps = 24")  # into the debonding: a few seconds, 24 stop points
# the debug line of a step of each stage: a kill waits for the first one
STEP_LINES = {"process": "K: max von Mises", "swelling": "V/V0", "pulloff": "pull-off d [m]"}
RELATIVE = 1e-10
KILLS = 3
NOT_COMPARED = ("wall_time", "process_time", "timestamp", "started")


def _write(directory: Path, text: str, name="case.toml") -> Path:
    path = directory / name
    path.write_text(text)
    return path


def _sinter(*args, ranks: int = 1) -> list[str]:
    command = [sys.executable, "-m", "solver.cli", *map(str, args)]
    return ["mpirun", "-n", str(ranks), *command] if ranks > 1 else command


def _run_and_signal(command, marker: str, delay: float, signum: int, cwd: Path):
    """Run `command`; `delay` s after its first stderr line holding `marker`, send
    `signum` to it (if it still runs). Returns (exit status, stderr)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    lines, stepping = [], threading.Event()

    def read():
        for line in process.stderr:
            lines.append(line)
            if marker in line:
                stepping.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    while not stepping.wait(0.1):
        if process.poll() is not None:
            break
    if process.poll() is None:
        time.sleep(delay)
        try:
            process.send_signal(signum)
        except ProcessLookupError:
            pass
    status = process.wait(timeout=300)
    reader.join(timeout=10)
    return status, "".join(lines)


def _interrupted_then_resumed(tmp_path, command, stage: str, seed: int, window: float,
                              kills: int = KILLS):
    """`command` (a `sinter run|pulloff CASE --out out -v` list) signalled `kills` times at
    random moments in `stage` (SIGINT or SIGTERM, `window` s at most after its first
    step), each time resumed; the last resume runs to the end. Returns the kills that
    stopped a run."""
    rng = random.Random(seed)
    out = tmp_path / "out"
    stopped = 0
    for attempt in range(kills + 1):
        resume = ["--resume"] if attempt else []
        if attempt == kills:
            status = subprocess.run(command + resume, cwd=tmp_path, capture_output=True,
                                    text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
            assert status.returncode == 0, status.stderr[-3000:]
            break
        signum = rng.choice([signal.SIGINT, signal.SIGTERM])
        status, stderr = _run_and_signal(command + resume, STEP_LINES[stage],
                                         rng.uniform(0.0, window), signum, tmp_path)
        if status == 0 or (out / "summary.json").exists():
            break  # it ended before the signal (or the signal came as the process exited)
        assert status == INCOMPLETE, stderr[-3000:]
        stopped += 1
        line = [x for x in stderr.splitlines() if x.startswith("sinter: stopped: ")]
        # `sinter --np N` passes the signal on to the ranks as SIGUSR1 (solver/launch.py)
        asked = "SIGUSR1 (a stop request)" if "--np" in command else signum.name
        assert len(line) == 1 and f"interrupted by {asked}" in line[0], stderr[-2000:]
        assert f"incomplete results in {out.name}" in line[0] and "--resume" in line[0]
        record = json.loads((out / INCOMPLETE_FILE).read_text())
        assert record["stage"] == stage and record["resume"][-1] == "--resume"
        assert not (out / "summary.json").exists()
        assert checkpoint_path(out).exists()
    assert (out / "summary.json").exists() and not (out / INCOMPLETE_FILE).exists()
    assert not checkpoint_path(out).exists()  # the complete result replaced it
    return stopped


def _numbers(data, prefix=""):
    """{key path: value} of every leaf of a summary."""
    if isinstance(data, dict):
        return {k: v for key, value in data.items()
                for k, v in _numbers(value, f"{prefix}.{key}" if prefix else key).items()}
    if isinstance(data, list):
        return {k: v for i, value in enumerate(data)
                for k, v in _numbers(value, f"{prefix}[{i}]").items()}
    return {prefix: data}


def _largest_difference(whole: Path, resumed: Path, csvs=()) -> float:
    """The largest relative difference of the summaries' numbers (every other leaf equal)
    and of the tables `csvs` (column by column, relative to the column's largest)."""
    a = _numbers(json.loads((whole / "summary.json").read_text()))
    b = _numbers(json.loads((resumed / "summary.json").read_text()))
    assert a.keys() == b.keys()
    worst = 0.0
    for key, value in a.items():
        if any(word in key for word in NOT_COMPARED):
            continue
        if isinstance(value, float) and not isinstance(value, bool):
            scale = abs(value) or 1.0
            worst = max(worst, abs(b[key] - value) / scale)
        else:
            assert b[key] == value, key
    for name in csvs:
        x = np.genfromtxt(whole / name, delimiter=",", skip_header=1)
        y = np.genfromtxt(resumed / name, delimiter=",", skip_header=1)
        assert x.shape == y.shape, name
        numbers = ~np.all(np.isnan(x), axis=0)  # not the columns of names
        x, y = x[:, numbers], y[:, numbers]
        scale = np.nanmax(np.abs(x), axis=0)
        scale[~(scale > 0)] = 1.0
        worst = max(worst, float(np.nanmax(np.abs(x - y) / scale)))
    return worst


def _state_difference(whole: Path, resumed: Path) -> float:
    """The largest difference of the process stage's final states (state.npz: the
    displacement and every material point's variables, matched by their original cell
    index), relative to each array's largest value."""
    a, b = np.load(whole / "state.npz"), np.load(resumed / "state.npz")
    worst = 0.0
    for key in a.files:
        if key == "progress" or key.endswith("cells") or key.endswith("keys"):
            continue
        index = "u_cells" if key.startswith("u_") else f"{key.split('/')[0]}/keys"
        x = a[key][np.argsort(a[index], kind="stable")]
        y = b[key][np.argsort(b[index], kind="stable")]
        scale = np.abs(x).max() or 1.0
        worst = max(worst, float(np.abs(x - y).max() / scale))
    return worst


def _final_fields_difference(whole: Path, resumed: Path, file: str) -> float:
    """The largest difference of every function at the last output time of `file` (an
    XDMF's HDF5 file, written on one rank: the same node order), relative to its largest."""
    h5py = pytest.importorskip("h5py")
    worst = 0.0
    with h5py.File(whole / file) as a, h5py.File(resumed / file) as b:
        for name in a["Function"]:
            # the times are the names, "." written "_"
            last = max(a["Function"][name], key=lambda time: float(time.replace("_", ".")))
            x, y = a["Function"][name][last][()], b["Function"][name][last][()]
            worst = max(worst, float(np.abs(x - y).max() / (np.abs(x).max() or 1.0)))
    return worst


def _whole_and_interrupted(tmp_path, text: str, command: str, stage: str, seed: int,
                           window: float, kills: int = KILLS, ranks: int = 1):
    """The case `text` run by `sinter COMMAND` whole (in this process, on one rank) and
    interrupted `kills` times in `stage` and resumed (on `ranks`, through --np): the two
    result directories."""
    case = _write(tmp_path, text)
    assert main([command, str(case), "--out", str(tmp_path / "whole"), "-q"]) == 0
    on_ranks = ["--np", str(ranks)] if ranks > 1 else []
    stops = _interrupted_then_resumed(
        tmp_path, _sinter("-v", command, case, "--out", "out", *on_ranks), stage, seed,
        window, kills)
    assert stops >= 1
    return tmp_path / "whole", tmp_path / "out"


def test_interrupted_schedule_resumes_to_the_uninterrupted_result(tmp_path):
    """sinter run of the plastic/viscoelastic schedule, stopped 3 times in the process
    stage and resumed: the summary, history.csv, the final state and the final fields
    equal the uninterrupted run's to 1e-10."""
    whole, out = _whole_and_interrupted(tmp_path, SCHEDULE, "run", "process", 1, 1.5)
    assert _largest_difference(whole, out, ["history.csv"]) < RELATIVE
    assert _state_difference(whole, out) < RELATIVE
    assert _final_fields_difference(whole, out, "fields.h5") < RELATIVE
    # the fields written before each stop are kept, each XDMF naming its own HDF5 file
    kept = sorted(out.glob("fields.until-step-*.xdmf"))
    assert kept
    for xdmf in kept:
        h5 = xdmf.with_suffix(".h5").name
        assert (out / h5).exists() and f"{h5}:/Function/u/" in xdmf.read_text()
        assert "fields.h5:" not in xdmf.read_text()


def test_interrupted_swelling_resumes_to_the_uninterrupted_result(tmp_path):
    """sinter run with [swelling] (plastic flow at finite strain), stopped 3 times in the
    swelling stage and resumed: the process stage's files carried over, the summary,
    swelling.csv and the final swelling fields equal to 1e-10."""
    whole, out = _whole_and_interrupted(tmp_path, SWELLING, "run", "swelling", 2, 2.0)
    assert _largest_difference(whole, out, ["history.csv", "swelling.csv"]) < RELATIVE
    assert _final_fields_difference(whole, out, "swelling.h5") < RELATIVE
    assert (out / "fields.xdmf").exists() and (out / "state.npz").exists()


@pytest.mark.slow
def test_interrupted_pulloff_resumes_to_the_uninterrupted_result(tmp_path):
    """sinter pulloff stopped 3 times in the pull-off and resumed: the summary, the
    force-displacement curve and the interface's damage and tractions at every step equal
    to 1e-10."""
    whole, out = _whole_and_interrupted(tmp_path, PULLOFF, "pulloff", "pulloff", 3, 3.0)
    assert _largest_difference(whole, out, ["pulloff.csv", "interface_damage.csv"]) \
        < RELATIVE


@pytest.mark.slow
def test_interrupted_on_two_ranks_resumes_to_the_uninterrupted_result(tmp_path):
    """`sinter run --np 2` (SIGINT/SIGTERM to the front process: it asks the ranks to stop,
    solver/launch.py) stopped twice and resumed, then compared with the uninterrupted run
    on one rank: the summary, history.csv and the final state to 1e-10."""
    whole, out = _whole_and_interrupted(tmp_path, SCHEDULE, "run", "process", 4, 1.5,
                                        kills=2, ranks=2)
    assert json.loads((out / "summary.json").read_text())["ranks"] == 2
    summary = json.loads((whole / "summary.json").read_text())
    summary["ranks"] = 2  # the one number that differs on purpose
    (whole / "summary.json").write_text(json.dumps(summary))
    assert _largest_difference(whole, out, ["history.csv"]) < RELATIVE
    assert _state_difference(whole, out) < RELATIVE


def test_signal_to_one_rank_stops_every_rank_at_the_same_step(tmp_path):
    """SIGTERM to rank 1 alone of `mpirun -n 2` (as a batch system signals its tasks, here
    only one): the stop is agreed over the ranks at the next step boundary; the incomplete
    result resumes, on one rank, to the uninterrupted result."""
    case = _write(tmp_path, SCHEDULE)
    assert main(["run", str(case), "--out", str(tmp_path / "whole"), "-q"]) == 0
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(_sinter("-v", "run", case, "--out", "out", ranks=2),
                               cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    lines = []
    for line in process.stderr:
        lines.append(line)
        if STEP_LINES["process"] in line:
            break
    ranks = _ranks_of(process.pid, str(case).encode())
    assert len(ranks) == 2, "".join(lines)[-3000:]
    os.kill(max(ranks), signal.SIGTERM)
    lines += process.stderr.readlines()
    assert process.wait(timeout=120) == INCOMPLETE, "".join(lines)[-3000:]
    assert json.loads((tmp_path / "out" / INCOMPLETE_FILE).read_text())["stage"] == "process"
    assert main(["run", str(case), "--out", str(tmp_path / "out"), "-q", "--resume"]) == 0
    assert _largest_difference(tmp_path / "whole", tmp_path / "out", ["history.csv"]) \
        < RELATIVE


def _ranks_of(front: int, case: bytes) -> list[int]:
    """The ranks of the `sinter --np` run of `case` started by the process `front`: every
    process but the front one whose command line runs solver.cli on that case file (found
    in all of /proc, not below the front process: Open MPI's daemon may be the ranks'
    parent, and it need not stay below the launcher)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == front:
            continue
        try:
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        launcher = Path(command.split(b"\0")[0].decode(errors="replace")).name
        if (b"solver.cli" in command and case in command
                and launcher not in ("mpirun", "mpiexec", "prterun", "orterun")):
            found.append(int(entry.name))
    return found


# --- diverging solves ---------------------------------------------------------------------

# Newton may take two iterations and halve a step once: the copper's first yield on the
# ramp needs more, in every step length tried.
DIVERGING_SCHEDULE = SCHEDULE.replace("newton_rtol = 1e-11",
                                      "newton_rtol = 1e-11\nmax_newton_iterations = 2\n"
                                      "max_step_cuts = 1")


@pytest.mark.parametrize("ranks", [1, 2])
def test_diverging_schedule_leaves_the_last_converged_state(tmp_path, ranks):
    """A schedule whose Newton fails in every cut of a step: exit status 4, one line with
    the reason, the step and the load, and the incomplete result holds the steps up to the
    last converged one (history.csv, state.npz, the fields there), the same on 1 and 2
    ranks; it cannot be resumed."""
    case = _write(tmp_path, DIVERGING_SCHEDULE)
    result = subprocess.run(_sinter("run", case, "--out", "out", "-q", ranks=ranks),
                            cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == INCOMPLETE, result.stderr[-3000:]
    lines = [x for x in result.stderr.splitlines() if x.startswith("sinter: stopped: ")]
    assert len(lines) == 1, result.stderr
    assert "the solve diverged: Newton did not converge in 2 iterations" in lines[0]
    out = tmp_path / "out"
    record = json.loads((out / INCOMPLETE_FILE).read_text())
    assert record["complete"] is False and record["resume"] is None
    assert (record["stage"], record["step"]) == ("process", 2)
    assert record["load"]["temperature"] == pytest.approx(448.15)
    assert f"process stage, step 2, t = {record['load']['time']:.6g} s, T = 175.0 degC" \
        in lines[0]
    assert not (out / "summary.json").exists()
    history = np.genfromtxt(out / "history.csv", delimiter=",", skip_header=1)
    assert len(history) == 3  # steps 0, 1, 2
    state = np.load(out / "state.npz")
    assert json.loads(str(state["progress"]))["step"] == 2
    assert (out / "fields.xdmf").exists()


def test_diverging_swelling_and_pulloff_leave_incomplete_results(tmp_path):
    """The swelling stage (SOC increments of 0.08 that two Newton iterations and one cut
    cannot solve) and the pull-off (a step that six Newton iterations and no cut cannot)
    end as incomplete results: exit 4, their tables up to the last converged step."""
    limits = "max_newton_iterations = 2\nmax_step_cuts = 1\n"
    swelling = SWELLING.replace("[solver]\n", "[solver]\n" + limits)
    case = _write(tmp_path, swelling, "swelling.toml")
    assert main(["run", str(case), "--out", str(tmp_path / "swelling"), "-q"]) == INCOMPLETE
    record = json.loads((tmp_path / "swelling" / INCOMPLETE_FILE).read_text())
    assert record["stage"] == "swelling" and "diverged" in record["reason"]
    assert (tmp_path / "swelling" / "history.csv").exists()  # the process stage's files
    rows = [[float(x) for x in line.split(",")[:2]] for line in
            (tmp_path / "swelling" / "swelling.csv").read_text().splitlines()[1:]]
    # the increments are numbered after the schedule's one elastic step
    last = (rows[-1][0], rows[-1][1]) if len(rows) else (1, 0.0)
    assert (record["step"], record["load"]["soc"]) == (last[0], pytest.approx(last[1]))

    # the pull in whole steps of 0.05 um (no cuts): the state at d = 0 and the first step
    # converge in 6 Newton iterations, the second step does not
    pulloff = PULLOFF + "\n[solver]\nmax_newton_iterations = 6\nmax_step_cuts = 0\n"
    case = _write(tmp_path, pulloff, "pulloff.toml")
    assert main(["pulloff", str(case), "--out", str(tmp_path / "pulloff"), "-q"]) == INCOMPLETE
    record = json.loads((tmp_path / "pulloff" / INCOMPLETE_FILE).read_text())
    assert record["stage"] == "pulloff" and "diverged" in record["reason"]
    rows = np.genfromtxt(tmp_path / "pulloff" / "pulloff.csv", delimiter=",", skip_header=1,
                         ndmin=2)
    assert len(rows) >= 2 and record["step"] == len(rows) - 1
    assert record["load"]["displacement"] == pytest.approx(rows[-1][0])


# --- readers and reruns of an incomplete result ------------------------------------------

def test_incomplete_result_is_said_incomplete_and_replaced(tmp_path, capsys):
    """view and report refuse an incomplete result naming it so (and how to resume); a
    later run without --resume replaces it with a complete one."""
    case = _write(tmp_path, DIVERGING_SCHEDULE)
    out = tmp_path / "out"
    assert main(["run", str(case), "--out", str(out), "-q"]) == INCOMPLETE
    capsys.readouterr()
    for command in ("view", "report"):
        assert main([command, str(out)]) == 2
        error = capsys.readouterr().err
        assert "an incomplete result (the solve diverged" in error, error
        assert "cannot be resumed" in error
    _write(tmp_path, SCHEDULE)
    assert main(["run", str(case), "--out", str(out), "-q"]) == 0
    assert (out / "summary.json").exists() and not (out / INCOMPLETE_FILE).exists()


def test_interrupted_sweep_resumes_on_rerun(tmp_path, capsys):
    """Ctrl-C (SIGINT to its process group) during the second case of a sweep on one warm
    worker: the case stops at a step boundary and is reported incomplete; the rerun leaves
    the first case alone and resumes the second, to its uninterrupted result to 1e-10."""
    _write(tmp_path, SCHEDULE, "base.toml")
    sweep = _write(tmp_path, '[sweep]\nbase = "base.toml"\n[parameters]\n'
                             '"solver.hold_steps" = [3, 4]\n', "sweep.toml")
    out = tmp_path / "sweep"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(_sinter("sweep", sweep, "--out", out, "--jobs", "1", "-q"),
                               cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    runs = out / "runs"
    deadline = time.monotonic() + 300
    # (pathlib's * matches a hidden temporary directory too: its summary.json is the last
    # file before it is renamed)
    while not (done := [p for p in runs.glob("*/summary.json")
                        if not p.parent.name.startswith(".")]) or not any(
            STEP_LINES["process"] in log.read_text()
            for log in runs.glob(".*.partial-*/run.log")):
        assert time.monotonic() < deadline and process.poll() is None, process.stderr.read()
        time.sleep(0.05)
    time.sleep(random.Random(5).uniform(0.0, 1.0))
    os.killpg(process.pid, signal.SIGINT)
    process.wait(timeout=300)
    (first,) = [path.parent for path in done]
    second = next(path for path in runs.iterdir()
                  if path.is_dir() and not path.name.startswith(".") and path != first)
    assert (second / INCOMPLETE_FILE).exists() and not (second / "summary.json").exists()
    capsys.readouterr()
    assert main(["sweep", "status", str(out)]) == 0
    report = capsys.readouterr().out
    assert f"{second.name}: incomplete: interrupted by SIGINT" in report
    assert "1 ok, 0 failed, 1 incomplete, 0 pending" in report
    mtime = (first / "summary.json").stat().st_mtime
    assert main(["sweep", str(sweep), "--out", str(out), "-q"]) == 0
    assert (first / "summary.json").stat().st_mtime == mtime
    assert (second / "summary.json").exists() and not checkpoint_path(second).exists()
    assert main(["run", str(out / "cases" / f"{second.name}.toml"), "--out",
                 str(tmp_path / "whole"), "-q"]) == 0
    assert _largest_difference(tmp_path / "whole", second, ["history.csv"]) < RELATIVE
