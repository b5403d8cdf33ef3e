"""`sinter sweep`: expand and run a sweep, and its status, collect and plot actions.

This runs without MPI in the process (it launches mpirun for cases on several ranks), so it
sets up its own logging rather than solver.io.log's rank-aware one.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from solver.errors import DISK_ERRORS, OutputError, UserError, error_lines, write_reason

logger = logging.getLogger(__name__)

ACTIONS = ("status", "collect", "plot")


def add_parser(commands, parents):
    """The `sweep` subcommand's arguments."""
    sweep = commands.add_parser(
        "sweep", parents=parents, help="run a parameter sweep, or report on one",
        description="sinter sweep SWEEP.toml [--out DIR] runs a sweep; "
                    "sinter sweep status|collect|plot DIR reports on one (see docs/sweeps.md)")
    sweep.add_argument("target", help="a sweep file, or status | collect | plot")
    sweep.add_argument("directory", nargs="?", type=Path,
                       help="the sweep directory (status, collect, plot)")
    sweep.add_argument("--out", type=Path, help="sweep directory (default results/SWEEP)")
    sweep.add_argument("--dry-run", action="store_true",
                       help="list the cases (and, with --backend slurm, print the sbatch "
                            "script), run and write nothing")
    sweep.add_argument("--backend", choices=("local", "slurm"), default="local")
    sweep.add_argument("--jobs", type=int, metavar="N",
                       help="local: cases at a time (default: cores / ranks)")
    sweep.add_argument("--fresh-processes", action="store_true",
                       help="local: run every case in a fresh process, as on Slurm (default: "
                            "warm workers that import the toolchain once, for 1-rank cases)")
    sweep.add_argument("--ranks", type=int, metavar="N",
                       help="MPI ranks per case (default [sweep] ranks, or 1)")
    sweep.add_argument("--wait", action="store_true", help="slurm: return when the job ends")
    sweep.add_argument("--no-submit", action="store_true",
                       help="slurm: write the sweep directory and its sbatch script, submit "
                            "nothing (then `sbatch SCRIPT` with the cluster's own sbatch)")
    sweep.add_argument("--partition", help="slurm partition")
    sweep.add_argument("--time", help="slurm time limit per case, e.g. 00:30:00")
    sweep.add_argument("--cpus-per-task", type=int, metavar="N", help="slurm cpus per task")
    sweep.add_argument("--metric", action="append",
                       help="plot: a results.csv column to map (repeatable)")
    sweep.add_argument("--strict", action="store_true",
                       help="run, collect: exit with status 3 when a case that ran fails a "
                            "condition of its verdict (delamination predicted, a process-"
                            "window condition)")


def main(args) -> int:
    _setup_logging(-1 if args.quiet else 1 if args.verbose else 0)
    try:
        if args.target in ACTIONS:
            if args.directory is None:
                raise UserError(f"sinter sweep {args.target} needs the sweep directory")
            return {"status": _status, "collect": _collect, "plot": _plot}[args.target](args)
        if args.directory is not None:
            raise UserError(f"unexpected argument {args.directory}; use --out DIR")
        return _run(args)
    except UserError as error:
        print(error_lines(error), file=sys.stderr)
        return getattr(error, "status", 2)  # OutputError: 1, the sweep failed
    except OSError as error:  # a write of the sweep's own files that failed for the disk
        if error.errno not in DISK_ERRORS:
            raise
        print(error_lines(OutputError(error.filename or args.out or args.directory,
                                      write_reason(error))), file=sys.stderr)
        return 1


def _setup_logging(verbosity: int):
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.setLevel({-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG))
    root = logging.getLogger("solver")
    root.handlers = [handler]
    root.setLevel(logging.DEBUG)


def _run(args) -> int:
    from solver.sweep.backends import is_complete, pending, record_invalid
    from solver.sweep.plan import load_sweep, write_sweep

    sweep_file = Path(args.target)
    out = args.out or Path("results") / sweep_file.stem
    sweep = load_sweep(sweep_file, out)
    if args.ranks is not None:
        if args.ranks < 1:
            raise UserError(f"--ranks must be positive, got {args.ranks}")
        sweep.ranks = args.ranks
    if args.no_submit and args.backend != "slurm":
        raise UserError("--no-submit writes a Slurm script: it needs --backend slurm")
    if args.dry_run:
        for case in sweep.cases:
            state = ("invalid: " + case.error if case.error
                     else "done" if is_complete(out, case) else "to run")
            values = ", ".join(f"{key} = {value}" for key, value in case.values.items())
            role = f"  (reference: {case.reference})" if case.reference else ""
            print(f"{case.name}  {values}{role}  [{state}]")
        print(f"{len(sweep.cases)} case(s), {sweep.method}, {sweep.ranks} rank(s) each")
        todo = pending(out, sweep)
        if args.backend == "slurm" and todo:
            from solver.sweep.backends import slurm_script

            print(f"\n# the sbatch script (slurm/sweep-N.sbatch in {out}):")
            print(slurm_script(out, sweep, todo, _resources(args, sweep)), end="")
        return 0
    write_sweep(sweep, sweep_file, out)
    for case in sweep.cases:
        if case.error is not None:
            record_invalid(out, case, sweep.ranks)
            logger.warning("%s is not a valid case: %s", case.name, case.error)
    todo = pending(out, sweep)
    valid = sum(case.error is None for case in sweep.cases)
    if valid > len(todo):
        logger.info("%d case(s) already have a complete result: skipped", valid - len(todo))
    if args.backend == "slurm":
        return _submit(args, out, sweep, todo)
    from solver.sweep.backends import run_local

    run_local(out, sweep, todo, args.jobs, progress=not (args.no_progress or args.quiet),
              fresh=args.fresh_processes)
    return _report(out, args.strict)


def _resources(args, sweep) -> dict:
    """[slurm] of the sweep file, the command-line flags of the same name overriding it."""
    flags = {"partition": args.partition, "time": args.time,
             "cpus_per_task": args.cpus_per_task}
    return {**sweep.slurm, **{key: value for key, value in flags.items() if value}}


def _submit(args, out, sweep, todo) -> int:
    from solver.sweep.backends import submit_slurm, write_slurm_script

    if not todo:
        logger.info("nothing to submit")
        return _report(out)
    resources = _resources(args, sweep)
    if args.no_submit:
        script = write_slurm_script(out, sweep, todo, resources)
        print(f"wrote {script}: {len(todo)} case(s); submit it with `sbatch {script}`, then "
              f"`sinter sweep status {out}` and `sinter sweep collect {out}` report on it")
        return 0
    job_id = submit_slurm(out, sweep, todo, resources, wait=args.wait)
    if args.wait:
        return _report(out, args.strict)
    print(f"submitted job {job_id}: {len(todo)} case(s); "
          f"`sinter sweep status {out}` and `sinter sweep collect {out}` report on it")
    return 0


def _report(out: Path, strict: bool = False) -> int:
    """Collect the results and say how many cases ran; with `strict`, exit status 3
    (solver.cli.VERDICT_FAILED) when the verdict of a case that ran fails."""
    from solver.cli import VERDICT_FAILED
    from solver.sweep.results import collect

    table = collect(out)
    counts = table["status"].value_counts()
    verdicts = table["verdict.pass"] if "verdict.pass" in table.columns else [None] * len(table)
    # False, not None (a case that did not run) nor NaN (a result from before the verdict)
    failing = [name for name, status, passed in zip(table["name"], table["status"], verdicts,
                                                    strict=True)
               if status == "ok" and passed == False]  # noqa: E712
    print(f"{out}: {len(table)} case(s): {counts.get('ok', 0)} ok, {counts.get('failed', 0)} "
          f"failed, "
          + (f"{counts['incomplete']} incomplete (a rerun resumes them), "
             if counts.get("incomplete", 0) else "")
          + f"{counts.get('pending', 0)} pending; {len(failing)} fail their verdict "
          f"(results.csv verdict.pass); {out / 'results.csv'}")
    if strict and len(failing):
        print(f"sinter: failed: the verdict of {', '.join(failing)} (--strict: exit status "
              f"{VERDICT_FAILED})", file=sys.stderr)
        return VERDICT_FAILED
    return 0


def _status(args) -> int:
    from solver.sweep.backends import queued_tasks
    from solver.sweep.plan import read_plan
    from solver.sweep.results import case_row

    out = args.directory
    sweep = read_plan(out)
    counts = {"ok": 0, "failed": 0, "incomplete": 0, "pending": 0}
    for case in sweep.cases:
        head, _, _ = case_row(out, sweep, case)
        counts[head["status"]] += 1
        if head["status"] in ("failed", "incomplete"):
            print(f"{case.name}: {head['status']}: {head['error']}")
    print(f"{out}: {len(sweep.cases)} case(s): " + ", ".join(
        f"{n} {s}" for s, n in counts.items() if n or s != "incomplete"))
    queued = queued_tasks(out)
    if queued:
        print("slurm: " + ", ".join(f"{n} {state.lower()}" for state, n in queued.items()))
    return 0


def _collect(args) -> int:
    return _report(args.directory, args.strict)


def _plot(args) -> int:
    from solver.sweep.plan import read_plan
    from solver.sweep.plots import plot
    from solver.sweep.results import collect

    sweep = read_plan(args.directory)
    table = collect(args.directory)
    files = plot(table, sweep.parameters, sweep.method, args.directory / "plots", args.metric)
    for path in files:
        print(path)
    return 0 if files else 1
