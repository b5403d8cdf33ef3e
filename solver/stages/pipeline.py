"""The stages a case asks for, in order, and the files they make.

    case -> mesh -> process stage -> its final state -> swelling stage ([swelling])
                                                     -> pull-off stage (sinter pulloff)
         -> summary (the parts the stages return) -> files

`sinter run` (run_case): the process stage writing every time step (solver/stages/process.py
run_process), then the swelling stage from its final stress where the case has a
[swelling] table (solver/stages/swelling.py). `sinter pulloff` (run_pulloff): the process
stage for its final stress alone, then the pull-off test (solver/stages/pulloff.py). Each
stage writes its own files and returns its part of summary.json; the summary is assembled
here (solver/io/summary.py), and the results appear at `out` only when complete.
"""

import contextlib
import logging
import time

import dolfinx
from mpi4py import MPI

from solver.case.resolved import resolved_toml
from solver.errors import UserError
from solver.geometry.mesh import build_mesh
from solver.geometry.registry import geometry_kind
from solver.io import checkpoint, log, output, provenance, summary, units
from solver.post import convergence as discretization
from solver.post import verdict
from solver.stages import pulloff
from solver.stages.process import ProcessStage, run_process
from solver.stages.swelling import run_swelling_stage

logger = logging.getLogger(__name__)


def run_case(case, out, comm=MPI.COMM_WORLD, progress: bool = True,
             checkpoint_every: int = 0, restart: bool = False, command=None,
             convergence: int = 0) -> dict:
    """Solve a case along its schedule (and its swelling) and write the results to out.

    checkpoint_every: write a checkpoint beside `out` every so many time steps (0: never);
    restart: continue from that checkpoint (a run that crashed). The final state is always
    written to out/state.npz, the start of a later stage. command: the arguments of the
    `sinter` command for run.log's header (default: this process's). convergence: solve the
    schedule again on that many meshes, the fine element size halved for each, and report
    the headline numbers' discretization error (summary `convergence`,
    solver/post/convergence.py); their fields are not written.
    """
    started = time.perf_counter()
    saved = checkpoint.checkpoint_path(out)
    if restart and not comm.bcast(saved.exists() if comm.rank == 0 else None, root=0):
        raise UserError(f"{out}: no checkpoint to restart from ({saved} does not exist)")
    # refused before the case's own solve: a kind without a size to refine, too many elements
    refined_cases = [discretization.refined_case(case, 2 ** level)
                     for level in range(1, convergence + 1)]
    with _results(out, comm, case, command) as workdir:
        emesh = build_mesh(case, comm)
        process = run_process(case, emesh, workdir, progress, saved, checkpoint_every, restart)
        parts = [summary.header(case, emesh, process.stage.problem.dofs, comm),
                 summary.mesh_tags(emesh), process.summary]
        if case.swelling is not None:  # lithiation, from the sintered state (its final stress)
            swelling = run_swelling_stage(case, emesh, process.stress, process.probe, workdir,
                                          first_step=len(process.stage.steps) - 1,
                                          progress=progress)
            parts.append(swelling)
            # the interfaces must hold through the lithiation too (gathered on rank 0)
            rows = comm.bcast(verdict.delamination_rows(swelling["swelling"]["interfaces"],
                                                        "lithiation")
                              if comm.rank == 0 else None)
            process.summary["delamination"] += rows
            process.summary["verdict"] = verdict.verdict(process.summary["process_window"],
                                                         process.summary["delamination"])
        parts.append(process.stage.bending_summary())
        if refined_cases:
            parts.append(_convergence(case, refined_cases, parts,
                                      time.perf_counter() - started, comm, progress))
        result = _finish(workdir, case, parts, started, comm)
    if comm.rank == 0 and saved.exists():
        saved.unlink()  # the run is complete: its results replace the checkpoint
    logger.info("results in %s (%.1f s)", out, result["wall_time"])
    return result


def _convergence(case, refined_cases, parts, base_time, comm, progress) -> dict:
    """The summary's `convergence` (and its warnings): the schedule solved on each refined
    case, no files written; the headline numbers gathered on rank 0 and broadcast (parts:
    the summary's so far, base_time: the case's own solve in s)."""
    refined = []
    for refined_case in refined_cases:
        started = time.perf_counter()
        fine_mesh = geometry_kind(refined_case).fine_mesh
        logger.info("convergence: the schedule with %s = %.4g um", fine_mesh.key,
                    fine_mesh.size(refined_case.geometry) * 1e6)
        emesh = build_mesh(refined_case, comm)
        process = run_process(refined_case, emesh, None, progress)
        msh = emesh.mesh
        mesh_row = {"refinement": round(fine_mesh.size(case.geometry)
                                        / fine_mesh.size(refined_case.geometry)),
                    "fine_mesh_size": fine_mesh.size(refined_case.geometry),
                    "cells": msh.topology.index_map(msh.topology.dim).size_global,
                    "dofs": process.stage.problem.dofs,
                    "wall_time": time.perf_counter() - started}
        refined.append(({**process.summary, **process.stage.bending_summary()}, mesh_row))
    part = None
    if comm.rank == 0:  # the interfaces of the summaries are on rank 0
        base = summary.assemble(*parts)
        convergence = discretization.convergence_summary(case, base, base_time, refined)
        part = {"convergence": convergence,
                "warnings": discretization.accuracy_warnings(convergence)}
    return comm.bcast(part, root=0)


def run_pulloff(case, out, comm=None, command=None) -> dict:
    """Run the process stage and the pull-off test of a case; write the results to out
    (command: as run_case's)."""
    comm = comm or MPI.COMM_WORLD
    started = time.perf_counter()
    pulloff.check_case(case)
    with _results(out, comm, case, command) as workdir:
        emesh = build_mesh(case, comm)
        process_started = time.perf_counter()
        # 3x3: the in-plane part loads the bodies, all of it enters the yield condition
        initial_stress = (ProcessStage(case, emesh, furnace=False).final_stress()
                          if case.pulloff.residual_stress else None)
        process_time = time.perf_counter() - process_started
        part, dofs = pulloff.run_pulloff_stage(case, emesh, initial_stress, process_time,
                                               workdir)
        result = _finish(workdir, case, [summary.header(case, emesh, dofs, comm, host=False),
                                         part], started, comm)
    logger.info("pull-off results in %s (%.1f s)", out, result["wall_time"])
    return result


@contextlib.contextmanager
def _results(out, comm, case, command=None):
    """The results directory (it appears at `out` when complete), with run.log (rank 0)
    while the stages run: its header (the command, versions, ranks, host, time), then the
    case's warnings."""
    with output.ResultsDirectory(out, comm) as workdir:
        logfile = None
        if comm.rank == 0:
            header = provenance.run_header(comm.size, dolfinx.__version__, command)
            (workdir / "run.log").write_text("".join(f"# {line}\n" for line in header))
            logfile = log.attach_logfile(workdir / "run.log")
        try:
            if comm.rank == 0:
                for message in case.warnings():
                    logger.warning("warning: %s: %s", case.source, message)
            yield workdir
        finally:
            if logfile is not None:
                logging.getLogger("solver").removeHandler(logfile)
                logfile.close()


def _finish(workdir, case, parts, started, comm) -> dict:
    """The summary of the parts, the case's warnings, the wall time and the unit of every
    number; case.toml, resolved.toml (every value the run used, loadable as a case) and
    summary.json (written last: its presence marks a complete result)."""
    result = summary.assemble({"warnings": case.warnings()}, *parts,
                              {"wall_time": time.perf_counter() - started})
    result["units"] = units.summary_units(units.numbers(result), case.case.dim)
    if comm.rank == 0:
        (workdir / "case.toml").write_text(case.text)
        (workdir / "resolved.toml").write_text(resolved_toml(case))
        output.write_summary(workdir / "summary.json", result)
    return result
