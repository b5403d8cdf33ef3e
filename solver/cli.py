"""The `sinter` command line. `main(argv)` returns the exit status, so tests can call it."""

import argparse
import functools
import logging
import os
import shutil
import sys
import traceback
from pathlib import Path

logger = logging.getLogger(__name__)


@functools.cache
def _parser():
    # -q/-v are accepted before and after the subcommand; SUPPRESS keeps either from
    # overwriting the other with its default.
    verbosity = argparse.ArgumentParser(add_help=False)
    verbosity.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                           help="warnings and errors only")
    verbosity.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                           help="debug messages")
    parser = argparse.ArgumentParser(
        prog="sinter", parents=[verbosity],
        description="Sintering and swelling of silicon anodes on copper foil.")
    commands = parser.add_subparsers(dest="command", required=True)

    check = commands.add_parser("check", parents=[verbosity],
                                help="validate a case file without solving")
    check.add_argument("case", type=Path)

    mesh = commands.add_parser("mesh", parents=[verbosity],
                               help="mesh a case's geometry without solving")
    mesh.add_argument("case", type=Path)
    mesh.add_argument("--out", type=Path, required=True,
                      help="directory for mesh.msh (Gmsh, micrometres) and mesh.xdmf (metres)")

    run = commands.add_parser("run", parents=[verbosity],
                              help="solve a case and write its results")
    run.add_argument("case", type=Path)
    run.add_argument("--out", type=Path, help="results directory (default results/NAME)")
    run.add_argument("--np", type=int, default=1, metavar="N",
                     help="run on N MPI ranks (the same as mpirun -n N sinter run ...)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--checkpoint-every", type=int, default=0, metavar="N",
                     help="write a checkpoint every N time steps (beside --out)")
    run.add_argument("--restart", action="store_true",
                     help="continue a crashed run from its checkpoint")

    pulloff = commands.add_parser(
        "pulloff", parents=[verbosity],
        help="virtual pull-off test: the schedule, then the layer pulled off the foil")
    pulloff.add_argument("case", type=Path)
    pulloff.add_argument("--out", type=Path, help="results directory (default "
                         "results/NAME-pulloff)")
    pulloff.add_argument("--np", type=int, default=1, metavar="N",
                         help="run on N MPI ranks (the same as mpirun -n N sinter pulloff ...)")

    view = commands.add_parser("view", parents=[verbosity],
                               help="draw a result with ParaView into RUN_DIR/views/")
    view.add_argument("run_dir", type=Path, metavar="RUN_DIR")

    report = commands.add_parser("report", parents=[verbosity],
                                 help="write RUN_DIR/report.html, one self-contained page")
    report.add_argument("run_dir", type=Path, metavar="RUN_DIR")

    from solver.sweep.cli import add_parser as add_sweep_parser

    add_sweep_parser(commands, [verbosity])
    return parser


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    args.quiet = getattr(args, "quiet", False)
    args.verbose = getattr(args, "verbose", False)
    if args.command == "sweep":
        # before MPI is initialised here: a sweep launches mpirun for its cases
        from solver.sweep.cli import main as sweep_main

        return sweep_main(args)
    if args.command in ("run", "pulloff") and args.np > 1 \
            and "OMPI_COMM_WORLD_SIZE" not in os.environ and "PMI_SIZE" not in os.environ:
        return _relaunch_under_mpirun(argv, args.np)

    from solver import launch

    if "OMPI_COMM_WORLD_SIZE" in os.environ or "PMI_SIZE" in os.environ:
        launch.die_with_parent()  # a rank whose launcher has gone has nobody to report to
    from mpi4py import MPI

    from solver.errors import UserError, one_line
    from solver.io.log import setup_logging

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
        if args.command == "pulloff":
            return _pulloff(args)
        return _run(args)
    except UserError as error:
        if not launch.failed_together(error):
            launch.abort_alone(comm, f"sinter: error: on rank {comm.rank} alone: "
                               f"{one_line(str(error))}", 2)
        _error(str(error))
        return 2
    except BaseException:
        if comm.size == 1:
            raise
        launch.abort_alone(comm, f"sinter: rank {comm.rank} of {comm.size} failed, ending "
                           f"the run:\n{traceback.format_exc()}", 1)


def _error(message: str):
    from mpi4py import MPI

    from solver.errors import one_line

    if MPI.COMM_WORLD.rank == 0:
        print(f"sinter: error: {one_line(message)}", file=sys.stderr)


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
    from solver.case import load_case

    case = load_case(args.case)
    from mpi4py import MPI

    if MPI.COMM_WORLD.rank == 0:
        g = case.geometry
        print(f"{args.case}: ok: case '{case.case.name}', {case.case.dim}D {g.kind}, "
              f"materials {', '.join(case.materials_used())}, "
              f"{len(case.schedule.steps)} schedule step(s)")
    return 0


def _mesh(args) -> int:
    """Write the case's mesh as Gmsh wrote it and as DOLFINx distributes it, with the tags."""
    from dolfinx.io import XDMFFile
    from mpi4py import MPI

    from solver.case import load_case
    from solver.geometry.mesh import build_mesh

    case = load_case(args.case)
    comm = MPI.COMM_WORLD
    if comm.rank == 0:
        args.out.mkdir(parents=True, exist_ok=True)
    comm.barrier()
    emesh = build_mesh(case, comm, msh_file=args.out / "mesh.msh")
    msh = emesh.mesh
    # The same names as in a run's fields.xdmf.
    emesh.cell_tags.name = "materials"
    emesh.facet_tags.name = "boundaries"
    with XDMFFile(comm, str(args.out / "mesh.xdmf"), "w") as xdmf:
        xdmf.write_mesh(msh)
        xdmf.write_meshtags(emesh.cell_tags, msh.geometry)
        xdmf.write_meshtags(emesh.facet_tags, msh.geometry)
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


def _run(args) -> int:
    from solver.case import load_case
    from solver.stages.pipeline import run_case

    case = load_case(args.case)
    out = args.out or Path("results") / case.case.name
    summary = run_case(case, out, progress=not (args.no_progress or args.quiet),
                       checkpoint_every=args.checkpoint_every, restart=args.restart)
    from mpi4py import MPI

    if MPI.COMM_WORLD.rank == 0 and not args.quiet:
        print_summary(summary, out)
    return 0


def _pulloff(args) -> int:
    from mpi4py import MPI

    from solver.case import load_case
    from solver.stages.pipeline import run_pulloff

    case = load_case(args.case)
    out = args.out or Path("results") / f"{case.case.name}-pulloff"
    summary = run_pulloff(case, out)
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

    table = Table(title=f"{summary['case']}: {out}")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    final = summary["final"]
    table.add_row("final temperature", f"{final['temperature'] - 273.15:.1f} degC")
    table.add_row("max von Mises stress", f"{final['max_von_mises'] / 1e6:.2f} MPa")
    for key, value in summary.get("bending", {}).items():
        table.add_row(key.replace("_", " "), f"{value:.4g} 1/m")
    for name, data in summary["interfaces"].items():
        table.add_section()
        table.add_row(f"[bold]{name}[/bold]", "/".join(data["materials"]))
        table.add_row("max normal traction",
                      f"{data['max_normal_traction'] / 1e6:.2f} MPa "
                      f"({data['max_normal_traction_averaged'] / 1e6:.2f} averaged)")
        table.add_row("max shear traction",
                      f"{data['max_shear_traction'] / 1e6:.2f} MPa "
                      f"({data['max_shear_traction_averaged'] / 1e6:.2f} averaged)")
        table.add_row("max risk index", f"{data['max_risk']:.3g}")
        table.add_row("share of interface at risk >= 1", f"{100 * data['critical_fraction']:.1f} %")
    if summary.get("process_window"):
        table.add_section()
        for row in summary["process_window"]:
            value = row["value"] if isinstance(row["value"], str) else f"{row['value']:.3g}"
            limit = row["limit"] if isinstance(row["limit"], str) else f"{row['limit']:.3g}"
            verdict = "pass" if row["pass"] else "[bold red]FAIL[/bold red]"
            table.add_row(row["condition"].split(" (")[0], f"{value} (limit {limit}) {verdict}")
    table.add_section()
    table.add_row("DOFs / ranks", f"{summary['dofs']} / {summary['ranks']}")
    table.add_row("wall time", f"{summary['wall_time']:.1f} s")
    Console().print(table)


if __name__ == "__main__":
    sys.exit(main())
