"""Running the cases of a sweep: one attempt of a case, the local pool and the Slurm array.

Both backends run a case the same way (`attempt`): `sinter run` in a fresh process, under
`mpirun -n RANKS` when RANKS > 1, and record the outcome in status/NAME.json. This process
never imports MPI itself: a process with MPI initialised must not launch mpirun.

`python3 -m solver.sweep.backends task DIR NAME` is one Slurm array task.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import UTC, datetime
from pathlib import Path

from solver.errors import OutputError, UserError, write_reason
from solver.io.checkpoint import checkpoint_path
from solver.io.provenance import git_commit, package_version, sinterfem_version
from solver.stopping import INCOMPLETE_FILE
from solver.sweep.plan import Sweep, SweepCase, case_file_hash, read_plan

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]


# --- Provenance ---------------------------------------------------------------------------


def provenance(ranks: int) -> dict:
    """Where and with what a case is run. Versions come from package metadata: importing
    solver.stages or dolfinx here would initialise MPI in this process."""
    return {
        "sinterfem_version": sinterfem_version(),
        "git_commit": git_commit(),
        "dolfinx_version": package_version("fenics-dolfinx", ""),
        "host": platform.node(),
        "ranks": ranks,
    }


# --- One attempt --------------------------------------------------------------------------


def run_dir(out: Path, case: SweepCase) -> Path:
    return Path(out) / "runs" / case.name


def status_file(out: Path, case: SweepCase) -> Path:
    return Path(out) / "status" / f"{case.name}.json"


def is_complete(out: Path, case: SweepCase) -> bool:
    """A complete result (summary.json is written last) of exactly this case's content."""
    result = run_dir(out, case)
    return (result / "summary.json").exists() and case_file_hash(result / "case.toml") == case.hash


def _incomplete_record(out: Path, case: SweepCase) -> dict | None:
    """The incomplete.json of the case's result of exactly this content (it stopped
    early: solver/stopping.py), or None: there is none such."""
    result = run_dir(out, case)
    if (result / "summary.json").exists() or not (result / INCOMPLETE_FILE).exists() \
            or case_file_hash(result / "case.toml") != case.hash:
        return None
    try:
        record = json.loads((result / INCOMPLETE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def incomplete_reason(out: Path, case: SweepCase) -> str | None:
    """Why the case's result is incomplete, or None: it is not."""
    record = _incomplete_record(out, case)
    if record is None:
        return None
    return f"{record.get('reason')} ({record.get('stage')} stage, step {record.get('step')})"


def resumable(out: Path, case: SweepCase) -> bool:
    """An incomplete result of this case that can resume, with its checkpoint."""
    record = _incomplete_record(out, case)
    return record is not None and record.get("resume") is not None \
        and checkpoint_path(run_dir(out, case)).exists()


def read_status(out: Path, case: SweepCase) -> dict | None:
    """The record of the last attempt at this case's current content, if any."""
    try:
        record = json.loads(status_file(out, case).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return record if record.get("case_hash") == case.hash else None


def _write_status(out: Path, case: SweepCase, record: dict):
    path = status_file(out, case)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json.partial")
    try:
        partial.write_text(json.dumps(record, indent=1) + "\n")
        partial.replace(path)
    except OSError as error:  # a full disk: the earlier record stays as it was
        partial.unlink(missing_ok=True)
        raise OutputError(path, write_reason(error)) from error


def record_invalid(out: Path, case: SweepCase, ranks: int):
    """An invalid combination of parameters is a failed case that is never run."""
    _write_status(out, case, {"name": case.name, "case_hash": case.hash, "status": "failed",
                              "error": case.error, "wall_time": 0.0, "backend": "none",
                              "finished": _now(), **provenance(ranks)})


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _one_line_error(stderr: str, returncode: int) -> str:
    """The CLI's own one-line error if there is one, else the last line (of a traceback)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("sinter: error: "):
            return line.removeprefix("sinter: error: ")
        if line.startswith("sinter: stopped: "):
            return line.removeprefix("sinter: ")
    return lines[-1] if lines else f"exit status {returncode}"


def case_command(out: Path, case: SweepCase, ranks: int) -> list[str]:
    command = [sys.executable, "-m", "solver.cli", "run", str(Path(out) / "cases" /
               f"{case.name}.toml"), "--out", str(run_dir(out, case)), "-q", "--no-progress"]
    if resumable(out, case):  # an interrupted attempt: continue it
        command.append("--resume")
    if ranks > 1:
        mpirun = shutil.which("mpirun") or shutil.which("mpiexec")
        if mpirun is None:
            raise UserError(f"{ranks} ranks per case need mpirun on the PATH")
        command = [mpirun, "-n", str(ranks), *command]
    return command


def start_attempt(out: Path, case: SweepCase):
    """Remove a partial result left by an interrupted attempt (ResultsDirectory's
    temporary)."""
    for leftover in (Path(out) / "runs").glob(f".{case.name}.partial-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def finish_attempt(out: Path, case: SweepCase, ranks: int, backend: str, wall_time: float,
                   error: str | None, stderr: str) -> dict:
    """Record the outcome of an attempt in status/NAME.json (and, when it failed, its whole
    stderr in status/NAME.stderr, for what the one line in results.csv leaves out)."""
    ok = error is None and is_complete(out, case)
    stopped = None if ok else incomplete_reason(out, case)
    if not ok:
        log = status_file(out, case).with_suffix(".stderr")
        log.parent.mkdir(parents=True, exist_ok=True)
        try:
            log.write_text(stderr)
        except OSError as error:
            log.unlink(missing_ok=True)
            raise OutputError(log, write_reason(error)) from error
        error = stopped or error or "no complete result"
    status = "ok" if ok else "incomplete" if stopped else "failed"
    record = {"name": case.name, "case_hash": case.hash, "status": status,
              "error": None if ok else error, "wall_time": wall_time, "backend": backend,
              "finished": _now(), **provenance(ranks)}
    if "SLURM_JOB_ID" in os.environ:
        record["slurm_job"] = (f"{os.environ.get('SLURM_ARRAY_JOB_ID', os.environ['SLURM_JOB_ID'])}"
                               f"_{os.environ.get('SLURM_ARRAY_TASK_ID', '')}")
    _write_status(out, case, record)
    return record


def attempt(out: Path, case: SweepCase, ranks: int, backend: str) -> dict:
    """Run one case in a fresh process and record the outcome; never raises for the case."""
    out = Path(out).absolute()  # the process runs in out: its paths must not be relative
    start_attempt(out, case)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    started = time.perf_counter()
    process = subprocess.run(case_command(out, case, ranks), capture_output=True, text=True,
                             env=env, cwd=out)
    wall_time = time.perf_counter() - started
    error = (None if process.returncode == 0
             else _one_line_error(process.stderr, process.returncode))
    return finish_attempt(out, case, ranks, backend, wall_time, error, process.stderr)


def pending(out: Path, sweep: Sweep) -> list[SweepCase]:
    """Valid cases without a complete result of their current content."""
    return [case for case in sweep.cases if case.error is None and not is_complete(out, case)]


# --- Local backend ------------------------------------------------------------------------


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def workers(jobs: int | None, ranks: int) -> int:
    """Concurrent cases: as asked, but never more ranks in all than the machine's cores."""
    fit = max(1, cores() // ranks)
    if jobs is not None and jobs > fit:
        logger.warning("--jobs %d with %d rank(s) each is more than %d cores; running %d at "
                       "a time", jobs, ranks, cores(), fit)
    return min(jobs or fit, fit)


def _progress_enabled(enabled: bool) -> bool:
    # Only on a terminal, and once when someone starts the sweep itself under mpirun.
    rank = os.environ.get("OMPI_COMM_WORLD_RANK") or os.environ.get("PMI_RANK") or "0"
    return enabled and rank == "0" and sys.stderr.isatty()


def run_local(out: Path, sweep: Sweep, todo: list[SweepCase], jobs: int | None,
              progress: bool, fresh: bool = False) -> list[dict]:
    """Run `todo` on `jobs` workers at a time, with a progress bar over cases.

    Cases on one rank run on warm workers (solver/sweep/workers.py) that import the
    toolchain once; fresh, or cases on several ranks (mpirun), run a fresh process each."""
    records = []
    if not todo:
        return records
    count = workers(jobs, sweep.ranks)
    warm = sweep.ranks == 1 and not fresh
    logger.info("running %d case(s), %d at a time on %d rank(s) each (%s)", len(todo), count,
                sweep.ranks, "warm workers" if warm else "a fresh process per case")
    bar = None
    if _progress_enabled(progress):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                       TextColumn("cases"), TimeElapsedColumn(), transient=True)
        bar.start()
        task = bar.add_task("sweep", total=len(todo))
    try:
        for record in (_warm_records(out, todo, count) if warm
                       else _fresh_records(out, todo, count, sweep.ranks)):
            records.append(record)
            if record["status"] in ("failed", "incomplete"):
                logger.warning("%s %s: %s", record["name"], record["status"], record["error"])
            if bar is not None:
                failed = sum(r["status"] == "failed" for r in records)
                bar.update(task, advance=1, description=f"sweep ({failed} failed)")
    finally:
        if bar is not None:
            bar.stop()
    return records


def _warm_records(out: Path, todo: list[SweepCase], count: int):
    from solver.sweep.workers import run_warm

    yield from run_warm(out, todo, count)


def _fresh_records(out: Path, todo: list[SweepCase], count: int, ranks: int):
    with ThreadPoolExecutor(count) as pool:
        futures = [pool.submit(attempt, out, case, ranks, "local") for case in todo]
        for future in as_completed(futures):
            yield future.result()


# --- Slurm backend ------------------------------------------------------------------------

# sbatch options by [slurm] key of the sweep file (and command-line flag)
_SBATCH_OPTIONS = {"partition": "--partition", "time": "--time",
                   "cpus_per_task": "--cpus-per-task"}


def task_command(resources: dict) -> str:
    """How an array task starts its Python: `[slurm] launcher` (a bundle's sinter-env,
    `apptainer exec IMAGE`), else the bundle launcher this process runs under
    ($SINTERFEM_LAUNCHER, set by sinter-bundle/bin/sinter-env), each with the python3 it
    provides; with neither, this interpreter, or the python3 that `[slurm] setup` provides."""
    launcher = resources.get("launcher")
    if launcher is None and os.environ.get("SINTERFEM_LAUNCHER"):
        launcher = shlex.quote(os.environ["SINTERFEM_LAUNCHER"])
    if launcher is not None:
        return f"{launcher} python3"
    return "python3" if resources.get("setup") else shlex.quote(sys.executable)


def slurm_script(out: Path, sweep: Sweep, todo: list[SweepCase], resources: dict) -> str:
    """An sbatch array script: task i runs the i-th case of `todo` on sweep.ranks ranks of
    one node (one mpirun, in one bundle namespace), after the `[slurm] setup` lines."""
    out = Path(out).resolve()
    throttle = f"%{resources['max_parallel']}" if resources.get("max_parallel") else ""
    directives = [f"--job-name=sweep-{Path(sweep.file).stem}",
                  f"--array=0-{len(todo) - 1}{throttle}",
                  "--nodes=1",
                  f"--ntasks={sweep.ranks}",
                  f"--output={out / 'slurm' / 'logs' / '%A_%a.out'}",
                  f"--chdir={out}"]
    directives += [f"{option}={resources[key]}" for key, option in _SBATCH_OPTIONS.items()
                   if resources.get(key) is not None]
    directives += list(resources.get("options", []))
    setup = list(resources.get("setup", []))
    names = "\n".join(f"  {case.name}" for case in todo)
    return "\n".join([
        "#!/bin/bash",
        *(f"#SBATCH {directive}" for directive in directives),
        "# One array task per case: the task runs",
        f"#   {'mpirun -n ' + str(sweep.ranks) + ' ' if sweep.ranks > 1 else ''}"
        "python3 -m solver.cli run cases/NAME.toml --out runs/NAME",
        "# and records the outcome in status/NAME.json.",
        "set -e",
        # module and conda scripts read unset variables: -u only after them
        *(["# [slurm] setup", *setup] if setup else []),
        "set -u",
        f"cases=(\n{names}\n)",
        'name=${cases[$SLURM_ARRAY_TASK_ID]}',
        f"export PYTHONPATH={shlex.quote(str(REPO))}${{PYTHONPATH:+:$PYTHONPATH}}",
        f"exec {task_command(resources)} -m solver.sweep.backends task "
        f"{shlex.quote(str(out))} \"$name\"",
        "",
    ])


def write_slurm_script(out: Path, sweep: Sweep, todo: list[SweepCase], resources: dict) -> Path:
    """slurm/sweep-N.sbatch, N counting this sweep's submitted jobs."""
    slurm = Path(out) / "slurm"
    (slurm / "logs").mkdir(parents=True, exist_ok=True)
    script = slurm / f"sweep-{len(slurm_jobs(out))}.sbatch"
    script.write_text(slurm_script(out, sweep, todo, resources))
    return script


def submit_slurm(out: Path, sweep: Sweep, todo: list[SweepCase], resources: dict,
                 wait: bool) -> str:
    """Write the array script for `todo`, submit it; with wait, return when it has left the
    queue (polled with squeue: sbatch --wait polls at up to 10 s intervals)."""
    if shutil.which("sbatch") is None:
        raise UserError("the slurm backend needs sbatch on the PATH (or --no-submit, then "
                        "the cluster's own sbatch)")
    jobs = slurm_jobs(out)
    script = write_slurm_script(out, sweep, todo, resources)
    process = subprocess.run(["sbatch", "--parsable", str(script)], capture_output=True,
                             text=True)
    job_id = process.stdout.strip().split(";")[0]  # --parsable: "ID" or "ID;CLUSTER"
    if process.returncode != 0 or not job_id:
        # the bundle's Slurm client is Debian's, without the cluster's configuration
        hint = ("; inside the bundle, write the script with --no-submit and submit it with "
                "the cluster's own sbatch (docs/hpc.md)" if os.environ.get("SINTERFEM_LAUNCHER")
                else "")
        reason = process.stderr.strip().splitlines()[-1:] or [f"exit status {process.returncode}"]
        raise UserError(f"sbatch {script}: {reason[0]}{hint}")
    jobs.append({"job_id": job_id, "script": script.name, "cases": len(todo),
                 "submitted": _now()})
    (Path(out) / "slurm" / "jobs.json").write_text(json.dumps(jobs, indent=1) + "\n")
    logger.info("submitted job %s (%s): %d case(s)", job_id, script, len(todo))
    interval = 0.25
    while wait and _in_queue(job_id):
        time.sleep(interval)
        interval = min(2 * interval, 10.0)
    return job_id


def _in_queue(job_id: str) -> bool:
    process = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%i"], capture_output=True,
                             text=True)
    # squeue fails for a job id the controller has already forgotten: not queued either
    return process.returncode == 0 and bool(process.stdout.strip())


def slurm_jobs(out: Path) -> list[dict]:
    jobs_file = Path(out) / "slurm" / "jobs.json"
    return json.loads(jobs_file.read_text()) if jobs_file.exists() else []


def queued_tasks(out: Path) -> dict[str, int]:
    """Array tasks of this sweep's jobs still in the queue, counted by state."""
    ids = [job["job_id"] for job in slurm_jobs(out)]
    if not ids or shutil.which("squeue") is None:
        return {}
    process = subprocess.run(["squeue", "-h", "-r", "-j", ",".join(ids), "-o", "%T"],
                             capture_output=True, text=True)
    states: dict[str, int] = {}
    for state in process.stdout.split():
        states[state] = states.get(state, 0) + 1
    return states


def _task(argv: list[str]) -> int:
    """One Slurm array task: `task DIR NAME`. Exits 1 when the case fails, so Slurm shows it."""
    if len(argv) != 3 or argv[0] != "task":
        print("usage: python3 -m solver.sweep.backends task DIR NAME", file=sys.stderr)
        return 2
    out, name = Path(argv[1]), argv[2]
    sweep = read_plan(out)
    (case,) = [case for case in sweep.cases if case.name == name]
    record = attempt(out, case, sweep.ranks, "slurm")
    print(f"{name}: {record['status']}" + (f": {record['error']}" if record["error"] else ""))
    return 0 if record["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(_task(sys.argv[1:]))
