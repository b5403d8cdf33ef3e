"""The `sinter` command line. `main(argv)` returns the exit status, so tests can call it."""

import argparse
import contextlib
import errno
import functools
import logging
import os
import shutil
import sys
import traceback
from pathlib import Path

logger = logging.getLogger(__name__)

# The exit status of `sinter run --strict` (and `sinter sweep --strict`) when the results
# fail a condition of their verdict: not 1 (a solver failure) nor 2 (a user error).
VERDICT_FAILED = 3
# The exit status of `sinter run` and `sinter pulloff` that stopped before the end (a solve
# that step cuts could not cure, or SIGINT/SIGTERM at a step boundary) and left an
# incomplete result (incomplete.json, no summary.json; solver/stopping.py).
INCOMPLETE = 4


@functools.cache
def _parser():
    # The options every command takes, before or after the subcommand; SUPPRESS keeps the
    # subcommand's default from overwriting a value given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="warnings and errors only")
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="debug messages")
    common.add_argument("--no-progress", action="store_true", default=argparse.SUPPRESS,
                        help="no progress bar (there is none anyway when stderr is not a "
                             "terminal)")
    parser = argparse.ArgumentParser(
        prog="sinter", parents=[common],
        description="Sintering and swelling of silicon anodes on copper foil.",
        epilog="Exit status: 0 done; 1 a failure (a bug, a lost rank) or a result that "
               "could not be written (a full disk); 2 a wrong case file or argument, or an "
               "--out that cannot take the result; 3 with --strict, a condition of the verdict "
               "failed (e.g. delamination); 4 stopped early (a diverged solve, SIGINT or "
               "SIGTERM): an incomplete result, --resume continues an interrupted one.")
    from solver.io.provenance import version_line

    parser.add_argument("--version", action="version", version=version_line())
    commands = parser.add_subparsers(dest="command", required=True)

    check = commands.add_parser("check", parents=[common],
                                help="validate a case file (or a sweep file and each of its "
                                     "cases) without solving")
    check.add_argument("case", type=Path, help="the case file, or a sweep file")
    check.add_argument("--show", action="store_true",
                       help="print every value the run will use, with units, defaults marked "
                            "and each material's source (the run's resolved.toml)")

    mesh = commands.add_parser("mesh", parents=[common],
                               help="mesh a case's geometry without solving")
    mesh.add_argument("case", type=Path, help="the case file (TOML)")
    mesh.add_argument("--out", type=Path, required=True,
                      help="directory for mesh.msh (Gmsh, micrometres) and mesh.xdmf (metres)")

    run = commands.add_parser("run", parents=[common],
                              help="solve a case and write its results")
    run.add_argument("case", type=Path, help="the case file (TOML)")
    run.add_argument("--out", type=Path, help="results directory (default results/NAME)")
    run.add_argument("--np", type=int, default=1, metavar="N",
                     help="run on N MPI ranks (the same as mpirun -n N sinter run ...)")
    run.add_argument("--checkpoint-every", type=int, default=0, metavar="N",
                     help="write a checkpoint every N time steps (beside --out)")
    run.add_argument("--resume", "--restart", dest="resume", action="store_true",
                     help="continue an interrupted (or crashed) run from its checkpoint "
                          "beside --out")
    run.add_argument("--strict", action="store_true",
                     help=f"exit with status {VERDICT_FAILED} when a condition of the verdict "
                          "fails (delamination predicted, a process-window condition)")
    run.add_argument("--convergence", action="store_true",
                     help="also solve the schedule with the fine element size (interface, "
                          "particle or layer mesh size) halved, and halved again, and report "
                          "each headline number's values, their ratio and the Richardson "
                          "limit with an error estimate (no fields written for them)")
    run.add_argument("--halvings", type=int, choices=(1, 2, 3),
                     help="with --convergence: how many refined meshes (default 2, the fewest "
                          "that observe the convergence rate; 1 gives the difference alone)")

    pulloff = commands.add_parser(
        "pulloff", parents=[common],
        help="virtual pull-off test: the schedule, then the layer pulled off the foil")
    pulloff.add_argument("case", type=Path, help="the case file (TOML)")
    pulloff.add_argument("--out", type=Path, help="results directory (default "
                         "results/NAME-pulloff)")
    pulloff.add_argument("--np", type=int, default=1, metavar="N",
                         help="run on N MPI ranks (the same as mpirun -n N sinter pulloff ...)")
    pulloff.add_argument("--resume", action="store_true",
                         help="continue an interrupted run from its checkpoint beside --out")

    view = commands.add_parser("view", parents=[common],
                               help="draw a result with ParaView into RUN_DIR/views/")
    view.add_argument("run_dir", type=Path, metavar="RUN_DIR",
                      help="a results directory of sinter run")

    report = commands.add_parser("report", parents=[common],
                                 help="write RUN_DIR/report.html, one self-contained page")
    report.add_argument("run_dir", type=Path, metavar="RUN_DIR",
                        help="a results directory written by sinter run")

    from solver.sweep.cli import add_parser as add_sweep_parser

    add_sweep_parser(commands, [common])
    return parser


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    args.quiet = getattr(args, "quiet", False)
    args.verbose = getattr(args, "verbose", False)
    args.no_progress = getattr(args, "no_progress", False)
    args.argv = argv
    if args.command == "sweep":
        # before MPI is initialised here: a sweep launches mpirun for its cases
        from solver.sweep.cli import main as sweep_main

        try:
            return sweep_main(args)
        except KeyboardInterrupt:  # Ctrl-C: the running cases stopped at a step boundary
            print("sinter: interrupted: the cases that were running are incomplete; run the "
                  "sweep again to resume them", file=sys.stderr)
            return 128 + 2
    if args.command in ("run", "pulloff") and args.np > 1 \
            and "OMPI_COMM_WORLD_SIZE" not in os.environ and "PMI_SIZE" not in os.environ:
        return _relaunch_under_mpirun(argv, args.np)

    from solver import launch

    if "OMPI_COMM_WORLD_SIZE" in os.environ or "PMI_SIZE" in os.environ:
        launch.die_with_parent()  # a rank whose launcher has gone has nobody to report to
    from mpi4py import MPI

    from solver.errors import UserError, one_line
    from solver.io.log import setup_logging
    from solver.stopping import RunStopped, on_signals

    comm = MPI.COMM_WORLD
    launch.prepare_for_failures(comm)
    setup_logging(-1 if args.quiet else 1 if args.verbose else 0)
    try:
        if args.command == "check":
            return _check(args)
        if args.command == "mesh":
            return _mesh(args)
        if args.command == "view":
            from solver.report.views import render_views

            render_views(args.run_dir)
            return 0
        if args.command == "report":
            from solver.report.report import write_report

            write_report(args.run_dir)
            return 0
        # SIGINT/SIGTERM stop the stages at a step boundary (solver/stopping.py); before
        # the stages and after their results are complete, one is recorded and ignored
        with on_signals():
            return _pulloff(args) if args.command == "pulloff" else _run(args)
    except RunStopped as stopped:  # on every rank at the same step
        if comm.rank == 0:
            print(_stopped_line(stopped, args), file=sys.stderr, flush=True)
        return INCOMPLETE
    except UserError as error:
        status = getattr(error, "status", 2)  # OutputError: 1, the run failed
        if not launch.failed_together(error):
            launch.abort_alone(comm, f"sinter: error: on rank {comm.rank} alone: "
                               f"{one_line(str(error))}", status)
        _error(error)
        _end_after_failed_hdf5_writes(status)
        return status
    except (KeyboardInterrupt, SystemExit) as ended:  # a second SIGINT or SIGTERM
        status = ended.code if isinstance(ended, SystemExit) else 128 + 2
        if not isinstance(status, int):
            raise
        message = "sinter: stopped at once by a second signal: no result"
        if comm.size > 1:
            launch.abort_alone(comm, f"{message} (rank {comm.rank} of {comm.size})", status)
        print(message, file=sys.stderr)
        return status
    except BaseException:
        if comm.size == 1:
            raise
        launch.abort_alone(comm, f"sinter: rank {comm.rank} of {comm.size} failed, ending "
                           f"the run:\n{traceback.format_exc()}", 1)


def _end_after_failed_hdf5_writes(status: int):
    """End the process now, without HDF5's termination, where an HDF5 write failed
    (solver/io/output.py hdf5_failures): the error is told, nothing is left to write."""
    output = sys.modules.get("solver.io.output")
    if output is None or not output.hdf5_failures:
        return
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _stopped_line(stopped, args) -> str:
    """The one line of a run that stopped early: why, where, and what to do."""
    from solver.errors import one_line

    out = args.resolved_out  # set before any stage runs
    resume = (f"; resume with: sinter {args.command} {args.case} --out {out} --resume"
              if stopped.resumable else "")
    return one_line(f"sinter: stopped: {stopped.reason}; {stopped.stage} stage, step "
                    f"{stopped.step}, {stopped.load_text()}; incomplete results in {out}"
                    f"{resume}")


def _error(error: Exception):
    from mpi4py import MPI

    from solver.errors import error_lines

    if MPI.COMM_WORLD.rank == 0:
        print(error_lines(error), file=sys.stderr)


def _relaunch_under_mpirun(argv, ranks: int) -> int:
    """--np N: start N ranks of this same command (before MPI is initialised here)."""
    mpirun = shutil.which("mpirun") or shutil.which("mpiexec")
    if mpirun is None:
        print("sinter: error: --np needs mpirun on the PATH", file=sys.stderr)
        return 2
    rest, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--np":
            skip = True
        elif not arg.startswith("--np="):
            rest.append(arg)
    from solver import launch

    return launch.run_mpirun([mpirun, "-n", str(ranks), sys.executable, "-m", "solver.cli",
                              *rest])


def _check(args) -> int:
    from mpi4py import MPI

    from solver.case import load_case

    if _is_sweep_file(args.case):
        return _check_sweep(args)
    case = load_case(args.case)
    if MPI.COMM_WORLD.rank == 0:
        for message in case.warnings():
            logger.warning("warning: %s: %s", args.case, message)
        if args.show:
            from solver.case.resolved import resolved_toml

            print(resolved_toml(case), end="")
            return 0
        g = case.geometry
        print(f"{args.case}: ok: case '{case.case.name}', {case.case.dim}D {g.kind}, "
              f"materials {', '.join(case.materials_used())}, "
              f"{len(case.schedule.steps)} schedule step(s)")
    return 0


def _is_sweep_file(path: Path) -> bool:
    """A sweep file has a [sweep] table and no [case] (an unreadable file is a case's)."""
    from solver.case.toml_input import TomlProblem, parse_toml

    try:  # the limits of a case file's parsing: hostile text is the case loader's error
        document = parse_toml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, TomlProblem):
        return False
    return "sweep" in document and "case" not in document


def _check_sweep(args) -> int:
    """Expand a sweep file as `sinter sweep` would (nothing is written) and validate each
    case; every invalid case's problems are errors naming its parameter values."""
    from solver.errors import UserError
    from solver.sweep.plan import load_sweep

    if args.show:
        raise UserError(f"{args.case}: --show takes a case file; run it on the sweep's base "
                        "case")
    out = Path("results") / args.case.stem
    sweep = load_sweep(args.case, out)
    problems = []
    for case in sweep.cases:
        if case.error is None:
            continue
        values = ", ".join(f"{key} = {value}" for key, value in case.values.items())
        prefix = f"{out / 'cases' / case.name}.toml: "
        problems += [f"{args.case}: case {case.name} ({values}): {line.removeprefix(prefix)}"
                     for line in case.error.splitlines()]
    if problems:
        raise UserError("\n".join(problems))
    print(f"{args.case}: ok: sweep of {len(sweep.cases)} case(s) ({sweep.method}) over "
          f"{', '.join(sweep.parameters)}, base {Path(sweep.base).name}"
          + (f", references {', '.join(Path(r).name for r in sweep.references)}"
             if sweep.references else ""))
    return 0


def _mesh(args) -> int:
    """Write the case's mesh as Gmsh wrote it and as DOLFINx distributes it, with the tags.
    A failed write (a full disk) removes both files and is an OutputError naming the
    file."""
    from dolfinx.io import XDMFFile
    from mpi4py import MPI

    from solver import launch
    from solver.case import load_case
    from solver.errors import UserError, write_reason
    from solver.geometry.mesh import build_mesh
    from solver.io import output

    case = load_case(args.case)
    comm = MPI.COMM_WORLD
    refusal = None
    if comm.rank == 0:
        try:
            refusal = (f"{args.out}: is a file, not a directory; choose another --out"
                       if args.out.exists() and not args.out.is_dir()
                       else output.directory_refusal(args.out, 4096, "a mesh"))
        except OSError as error:
            refusal = (f"{error.filename or args.out}: {write_reason(error)}: the mesh cannot "
                       f"be written there; choose another --out")
    refusal = comm.bcast(refusal, root=0)
    if refusal is not None:
        raise UserError(refusal)
    files = [args.out / name for name in ("mesh.msh", "mesh.xdmf", "mesh.h5")]
    try:
        emesh = build_mesh(case, comm, msh_file=files[0])
        # Gmsh does not report a write that failed: a file cut short by a full disk lacks
        # its last section's end, and the disk has no room left
        cut = comm.bcast(comm.rank == 0 and (output.free_bytes(args.out) < 4096
                                             or not _ends_a_section(files[0])))
        if cut:
            raise output.write_failure(files[0], OSError(errno.ENOSPC, "Gmsh's file cut short"))
        msh = emesh.mesh
        output.quiet_hdf5()
        # The same names as in a run's fields.xdmf.
        emesh.cell_tags.name = "materials"
        emesh.facet_tags.name = "boundaries"
        xdmf = None
        try:
            xdmf = XDMFFile(comm, str(files[1]), "w")
            xdmf.write_mesh(msh)
            xdmf.write_meshtags(emesh.cell_tags, msh.geometry)
            xdmf.write_meshtags(emesh.facet_tags, msh.geometry)
            xdmf.close()
        except RuntimeError as error:
            output.hdf5_failures.append(files[2])
            if xdmf is not None:  # closing is collective: not where this rank failed alone
                if launch.arrive_together():
                    with contextlib.suppress(RuntimeError):
                        xdmf.close()
                else:
                    output.abandon(xdmf)
            raise output.write_failure(files[2], error) from error
    except UserError:
        if comm.rank == 0:
            for file in files:
                file.unlink(missing_ok=True)
        raise
    if comm.rank == 0 and not args.quiet:
        metrics = emesh.geometry.metrics
        cells = msh.topology.index_map(msh.topology.dim).size_global
        quality = (f"min {metrics['element_quality_min']:.3f}, "
                   f"mean {metrics['element_quality_mean']:.3f}"
                   if "element_quality_min" in metrics
                   else f"not measured for kind '{case.geometry.kind}'")
        print(f"{args.out}: {cells} elements, quality (gmsh minSICN) {quality}; "
              f"mesh.msh, mesh.xdmf")
    return 0


def _ends_a_section(msh_file: Path) -> bool:
    """Whether a Gmsh file's last line ends a section ($EndElements, ...)."""
    with open(msh_file, "rb") as stream:
        stream.seek(max(0, stream.seek(0, os.SEEK_END) - 200))
        return stream.read().rstrip().rsplit(b"\n", 1)[-1].startswith(b"$End")


def _run(args) -> int:
    from solver.case import load_case
    from solver.errors import UserError
    from solver.stages.pipeline import run_case

    if args.halvings is not None and not args.convergence:
        raise UserError("--halvings: only with --convergence")

    case = load_case(args.case)
    out = args.resolved_out = args.out or Path("results") / case.case.name
    summary = run_case(case, out, progress=not (args.no_progress or args.quiet),
                       checkpoint_every=args.checkpoint_every, resume=args.resume,
                       command=args.argv,
                       convergence=(args.halvings or 2) if args.convergence else 0)
    from mpi4py import MPI

    if MPI.COMM_WORLD.rank == 0 and not args.quiet:
        print_summary(summary, out)
    if args.strict and not summary["verdict"]["pass"]:
        if MPI.COMM_WORLD.rank == 0:
            print(f"sinter: failed: {'; '.join(summary['verdict']['failed'])} (--strict: exit "
                  f"status {VERDICT_FAILED})", file=sys.stderr)
        return VERDICT_FAILED
    return 0


def _pulloff(args) -> int:
    from mpi4py import MPI

    from solver.case import load_case
    from solver.stages.pipeline import run_pulloff

    case = load_case(args.case)
    out = args.resolved_out = args.out or Path("results") / f"{case.case.name}-pulloff"
    summary = run_pulloff(case, out, command=args.argv, resume=args.resume)
    if MPI.COMM_WORLD.rank == 0 and not args.quiet:
        result = summary["pulloff"]
        if result.get("load") == "swelling":
            onset = result["soc_at_damage_onset"]
            print(f"{case.case.name}: {out}: damage onset at SOC "
                  f"{'none' if onset is None else f'{onset:.3g}'}, max damage "
                  f"{result['max_damage']:.3g}, debonded "
                  f"{100 * result['debonded_fraction']:.1f} % at SOC {result['end_soc']:.3g}, "
                  f"{summary['wall_time']:.1f} s")
        else:
            print(f"{case.case.name}: {out}: strength {result['strength'] / 1e6:.2f} MPa, work "
                  f"of separation {result['work_of_separation']:.4g} J/m^2, load after debond "
                  f"{result['load_after_debond']:.3g} of the peak, debonded "
                  f"{100 * result['debonded_fraction']:.1f} %, {summary['wall_time']:.1f} s")
    return 0


def print_summary(summary: dict, out):
    from rich.console import Console
    from rich.table import Table

    from solver.report.units import format_condition, format_location

    table = Table(title=f"{summary['case']}: {out}")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    final = summary["final"]
    table.add_row("final temperature", f"{final['temperature'] - 273.15:.1f} degC")
    for name, found in final.get("von_mises_by_material", {}).items():
        table.add_row(f"max von Mises stress, {name}",
                      f"{found['max'] / 1e6:.1f} MPa at {format_location(found['at'])}")
    table.add_row("max von Mises stress, largest cell average",
                  f"{final['max_von_mises'] / 1e6:.1f} MPa")
    for key, value in summary.get("bending", {}).items():
        table.add_row(key.replace("_", " "), f"{value:.4g} 1/m")
    for name, data in summary["interfaces"].items():
        table.add_section()
        table.add_row(f"[bold]{name}[/bold]", "/".join(data["materials"]))
        table.add_row("max normal traction",
                      f"{data['max_normal_traction'] / 1e6:.2f} MPa "
                      f"({data['max_normal_traction_averaged'] / 1e6:.2f} MPa averaged)")
        table.add_row("max shear traction",
                      f"{data['max_shear_traction'] / 1e6:.2f} MPa "
                      f"({data['max_shear_traction_averaged'] / 1e6:.2f} MPa averaged)")
        table.add_row("max risk index (1: strength reached)", f"{data['max_risk']:.3g}")
        table.add_row("share of interface at risk >= 1", f"{100 * data['critical_fraction']:.1f} %")
    conditions = [*summary.get("process_window", []), *summary.get("delamination", [])]
    if conditions:
        table.add_section()
        styles = {"pass": "pass", "fail": "[bold red]FAIL[/bold red]", "n/a": "[dim]n/a[/dim]"}
        for row in conditions:
            table.add_row(row["condition"].split(" (")[0],
                          f"{format_condition(row)} {styles[row['verdict']]}")
        result = summary["verdict"]
        table.add_row("[bold]verdict[/bold]",
                      "[bold green]pass[/bold green]" if result["pass"] else
                      f"[bold red]FAIL ({len(result['failed'])} of "
                      f"{len(conditions) - len(result['not_applicable'])})[/bold red]")
    table.add_section()
    table.add_row("DOFs / ranks", f"{summary['dofs']} / {summary['ranks']}")
    table.add_row("wall time", f"{summary['wall_time']:.1f} s")
    if summary.get("warnings"):
        table.add_row("[bold yellow]warnings[/bold yellow]",
                      f"{len(summary['warnings'])} (above, and in summary.json)")
    Console().print(table)
    if "convergence" in summary:  # a column per mesh: wider than a pipe's 80 characters
        Console(width=max(Console().width, 120)).print(
            convergence_table(summary["convergence"]))


def convergence_table(convergence: dict):
    """The headline numbers on each mesh of `sinter run --convergence`, their ratio, the
    Richardson limit with its error estimate and how far the case's own mesh is from it."""
    from rich.table import Table

    from solver.report.units import display_unit, format_convergence_limit, quantity_label

    table = Table(title=f"discretization error: {convergence['refined']} halved "
                        f"{len(convergence['meshes']) - 1} time(s)")
    table.add_column("quantity")
    for mesh in convergence["meshes"]:
        table.add_column(f"{mesh['fine_mesh_size'] * 1e6:.3g} um\n{mesh['dofs']} DOFs",
                         justify="right")
    for heading in ("ratio", "limit", "case's mesh\nfrom limit"):
        table.add_column(heading, justify="right")
    where_before = None
    for row in convergence["quantities"]:
        where, what = quantity_label(row["quantity"])
        if where != where_before:
            table.add_row(f"[bold]{where}[/bold]")
            where_before = where
        shown = display_unit(row["unit"])
        table.add_row(f"  {what}" + (f" [{shown}]" if shown else ""),
                      *format_convergence_limit(row))
    return table


if __name__ == "__main__":
    sys.exit(main())
