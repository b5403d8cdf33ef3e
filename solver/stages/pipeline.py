"""The stages a case asks for, in order, and the files they make.

    case -> mesh -> process stage -> its final state -> swelling stage ([swelling])
                                                     -> pull-off stage (sinter pulloff)
         -> summary (the parts the stages return) -> files

`sinter run` (run_case): the process stage writing every time step (solver/stages/process.py
run_process), then the swelling stage from its final stress where the case has a
[swelling] table (solver/stages/swelling.py). `sinter pulloff` (run_pulloff): the process
stage for its final stress alone, then the pull-off test (solver/stages/pulloff.py). Each
stage writes its own files and returns its part of summary.json; the summary is assembled
here (solver/io/summary.py), and the results appear at `out` only when complete, or, when
a stage stops early (a diverged solve, SIGINT/SIGTERM: solver/stopping.py), marked
incomplete (incomplete.json, no summary.json); --resume continues from the checkpoint a
stop wrote beside `out`.
"""

import contextlib
import json
import logging
import shutil
import time
from pathlib import Path

import dolfinx
from dolfinx import fem
from mpi4py import MPI

from solver import stopping
from solver.case.resolved import resolved_toml
from solver.errors import SolverError, UserError
from solver.geometry.mesh import build_mesh
from solver.geometry.registry import geometry_kind
from solver.io import checkpoint, log, output, provenance, summary, units
from solver.post import convergence as discretization
from solver.post import verdict
from solver.post.interface import InterfaceProbe
from solver.stages import pulloff
from solver.stages.process import ProcessStage, hash_of, run_process
from solver.stages.swelling import run_swelling_stage

logger = logging.getLogger(__name__)


def run_case(case, out, comm=MPI.COMM_WORLD, progress: bool = True,
             checkpoint_every: int = 0, resume: bool = False, command=None,
             convergence: int = 0) -> dict:
    """Solve a case along its schedule (and its swelling) and write the results to out.

    checkpoint_every: write a checkpoint beside `out` every so many time steps (0: never);
    resume: continue from that checkpoint (a run that crashed, or stopped: in the process
    or the swelling stage). The final state is always written to out/state.npz, the start
    of a later stage. command: the arguments of the `sinter` command for run.log's header
    (default: this process's). A run that stops early (solver/stopping.py) leaves an
    incomplete result at out and raises RunStopped. convergence: solve the schedule again
    on that many meshes, the fine element size halved for each, and report the headline
    numbers' discretization error (summary `convergence`, solver/post/convergence.py);
    their fields are not written.
    """
    started = time.perf_counter()
    saved = checkpoint.checkpoint_path(out)
    resumed = _resumed(out, saved, case, comm, ("process", "swelling")) if resume else None
    # refused before the case's own solve: a kind without a size to refine, too many elements
    refined_cases = [discretization.refined_case(case, 2 ** level)
                     for level in range(1, convergence + 1)]
    with _results(out, comm, case, command, "run") as workdir:
        emesh = build_mesh(case, comm)
        if resumed is not None:
            _carry_over(out, workdir, comm, resumed)
        if resumed is not None and resumed["stage"] == "swelling":
            # the process stage ended before the stop: its files are carried over, its
            # summary and the sintered stress are in the checkpoint
            carried = resumed["carried"]
            stress = fem.Function(fem.functionspace(emesh.mesh, ("DG", case.solver.degree - 1,
                                                                 (3, 3))))
            probe = InterfaceProbe(emesh)
        else:
            process = run_process(case, emesh, workdir, progress, saved, checkpoint_every,
                                  resumed is not None)
            carried = {"process": process.summary, "bending": process.stage.bending_summary(),
                       "dofs": process.stage.problem.dofs,
                       "first_step": len(process.stage.steps) - 1}
            stress, probe = process.stress, process.probe
        process_part = carried["process"]
        parts = [summary.header(case, emesh, carried["dofs"], comm), summary.mesh_tags(emesh),
                 process_part]
        if case.swelling is not None:  # lithiation, from the sintered state (its final stress)
            swelling = run_swelling_stage(
                case, emesh, stress, probe, workdir, first_step=carried["first_step"],
                progress=progress, saved=saved, carried=carried,
                resume=resumed is not None and resumed["stage"] == "swelling")
            parts.append(swelling)
            # the interfaces must hold through the lithiation too (gathered on rank 0)
            rows = comm.bcast(verdict.delamination_rows(swelling["swelling"]["interfaces"],
                                                        "lithiation")
                              if comm.rank == 0 else None)
            process_part["delamination"] += rows
            process_part["verdict"] = verdict.verdict(process_part["process_window"],
                                                      process_part["delamination"])
        parts.append(carried["bending"])
        if refined_cases:
            parts.append(_convergence(case, refined_cases, parts,
                                      time.perf_counter() - started, comm, progress))
        result = _finish(workdir, case, parts, started, comm)
    if comm.rank == 0 and saved.exists():
        saved.unlink()  # the run is complete: its results replace the checkpoint
    logger.info("results in %s (%.1f s)", out, result["wall_time"])
    return result


def _resumed(out, saved, case, comm, stages) -> dict:
    """The progress of the checkpoint to resume from (of one of `stages`), or a
    UserError."""
    found = checkpoint.progress(saved, comm)
    if found is None:
        raise UserError(f"{out}: no checkpoint to resume from ({saved} does not exist)")
    found.setdefault("stage", "process")  # checkpoints of the schedule before the stages had
    if found["stage"] not in stages:
        raise UserError(f"{saved}: a checkpoint of the {found['stage']} stage of another "
                        "command (sinter run: process, swelling; sinter pulloff: "
                        "pulloff-process, pulloff)")
    if found["case_hash"] != hash_of(case):
        raise UserError(f"{saved}: the checkpoint belongs to another version of the case")
    return found


def _carry_over(out, workdir, comm, resumed: dict):
    """From the incomplete result at `out` that `resumed` (a checkpoint's progress)
    continues, into workdir: where the swelling stage resumes, the process stage's files
    (all but run.log, incomplete.json and the swelling stage's own); and the field files
    the resumed stage wrote before it stopped, as STEM.until-step-N.xdmf (+ .h5) and
    PREFIXdisplacement.until-step-N.bp ..., N its last step (those of earlier resumes as
    they are): the resumed stage writes its fields from the resume on."""
    out = Path(out).absolute()
    swelling = resumed["stage"] == "swelling"
    missing = comm.bcast(not (out / "state.npz").exists() if comm.rank == 0 else None)
    if swelling and missing:
        raise UserError(f"{out}: the incomplete result the checkpoint belongs to is gone "
                        "(its process stage's files): run the case again without --resume")
    if comm.rank == 0 and (out / stopping.INCOMPLETE_FILE).exists():
        kept = ".until-step-"
        for path in out.iterdir():
            if kept in path.name or (swelling and not path.name.startswith("swelling")
                                     and path.name not in ("run.log",
                                                           stopping.INCOMPLETE_FILE)):
                _copy(path, workdir / path.name)
        stem, prefix = ("swelling", "swelling-") if swelling else ("fields", "")
        tag = f"{kept}{resumed['step']}"
        if (out / f"{stem}.xdmf").exists():  # its data items name the .h5 file
            (workdir / f"{stem}{tag}.xdmf").write_text(
                (out / f"{stem}.xdmf").read_text().replace(f"{stem}.h5:", f"{stem}{tag}.h5:"))
            _copy(out / f"{stem}.h5", workdir / f"{stem}{tag}.h5")
        for name in ("displacement", "stress"):
            if (out / f"{prefix}{name}.bp").exists():
                _copy(out / f"{prefix}{name}.bp", workdir / f"{prefix}{name}{tag}.bp")
    comm.barrier()


def _copy(source: Path, target: Path):
    """A file, or a directory (a VTX file: ADIOS2 writes a directory)."""
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        shutil.copy2(source, target)


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


def run_pulloff(case, out, comm=None, command=None, resume: bool = False) -> dict:
    """Run the process stage and the pull-off test of a case; write the results to out
    (command: as run_case's; resume: continue from the checkpoint beside out, written
    where an earlier run stopped). A run that stops early leaves an incomplete result at
    out and raises RunStopped."""
    comm = comm or MPI.COMM_WORLD
    started = time.perf_counter()
    pulloff.check_case(case)
    saved = checkpoint.checkpoint_path(out)
    resumed = _resumed(out, saved, case, comm, ("pulloff-process", "pulloff")) \
        if resume else None
    with _results(out, comm, case, command, "pulloff") as workdir:
        emesh = build_mesh(case, comm)
        if resumed is not None and resumed["stage"] == "pulloff":
            initial_stress, process_time = None, resumed["process_time"]
        else:
            process_started = time.perf_counter()
            # 3x3: the in-plane part loads the bodies, all of it enters the yield condition
            initial_stress = (_pulloff_process(case, emesh, saved, resumed)
                              if case.pulloff.residual_stress else None)
            process_time = time.perf_counter() - process_started \
                + (resumed["process_time"] if resumed is not None else 0.0)
        part, dofs = pulloff.run_pulloff_stage(
            case, emesh, initial_stress, process_time, workdir, saved,
            resume=resumed is not None and resumed["stage"] == "pulloff")
        result = _finish(workdir, case, [summary.header(case, emesh, dofs, comm, host=False),
                                         part], started, comm)
    if comm.rank == 0 and saved.exists():
        saved.unlink()
    logger.info("pull-off results in %s (%.1f s)", out, result["wall_time"])
    return result


def _pulloff_process(case, emesh, saved, resumed) -> fem.Function:
    """The process stage of the pull-off: its final stress (DG 3x3). A stop at a step
    boundary writes a checkpoint ("pulloff-process") at `saved`; `resumed`: the progress of
    one to continue from (or None)."""
    stage = ProcessStage(case, emesh, furnace=False)
    case_hash = hash_of(case)
    started = time.perf_counter() - (resumed["process_time"] if resumed is not None else 0.0)
    if resumed is not None:
        checkpoint.read(saved, stage.problem)
        stage.step, stage.newton_iterations = resumed["step"], resumed["newton_iterations"]
    last = len(stage.steps) - 1
    comm = emesh.mesh.comm

    def stop_if_asked(index, step, state, iterations):
        if index < last and (signum := stopping.requested(comm)):
            checkpoint.write(saved, stage.problem, {
                "stage": "pulloff-process", "step": index, "time": step.time,
                "case_hash": case_hash, "newton_iterations": stage.newton_iterations,
                "process_time": time.perf_counter() - started})
            raise stopping.RunStopped(stopping.signal_reason(signum), "process", index,
                                      stage.load(), resumable=True)

    try:
        return stage.final_stress([stop_if_asked])
    except SolverError as error:  # on every rank: the solve's norms are global
        raise stopping.RunStopped(f"the solve diverged: {error}", "process", stage.step,
                                  stage.load(), resumable=False) from error


@contextlib.contextmanager
def _results(out, comm, case, command=None, kind="run"):
    """The results directory (it appears at `out` when complete), with run.log (rank 0)
    while the stages run: its header (the command, versions, ranks, host, time), then the
    case's warnings. SIGINT and SIGTERM stop the stages at a step boundary
    (solver/stopping.py); a stage that stops early leaves an incomplete result: its files so
    far, case.toml, resolved.toml and incomplete.json (with the `sinter KIND ... --resume`
    command that continues it), and no summary.json."""
    with stopping.on_signals(), output.ResultsDirectory(out, comm) as workdir:
        logfile = None
        if comm.rank == 0:
            header = provenance.run_header(comm.size, dolfinx.__version__, command)
            output.write_text(workdir / "run.log", "".join(f"# {line}\n" for line in header))
            logfile = log.attach_logfile(workdir / "run.log")
        try:
            if comm.rank == 0:
                for message in case.warnings():
                    logger.warning("warning: %s: %s", case.source, message)
            yield workdir
        except stopping.RunStopped as stopped:
            if comm.rank == 0:
                logger.debug("stopped: %s in the %s stage at step %d (%s)", stopped.reason,
                             stopped.stage, stopped.step, stopped.load_text())
                output.write_text(workdir / "case.toml", case.text)
                output.write_text(workdir / "resolved.toml", resolved_toml(case))
                record = stopping.incomplete_record(
                    stopped, ["sinter", kind, str(case.source), "--out", str(out), "--resume"])
                output.write_text(workdir / stopping.INCOMPLETE_FILE,
                                  json.dumps(record, indent=2) + "\n")
            if logfile is not None:
                log.detach_logfile(logfile, failed=True)  # the stop is the news
            raise
        except BaseException:
            if logfile is not None:
                log.detach_logfile(logfile, failed=True)
            raise
        if logfile is not None:
            log.detach_logfile(logfile)


def _finish(workdir, case, parts, started, comm) -> dict:
    """The summary of the parts, the case's warnings, the wall time and the unit of every
    number; case.toml, resolved.toml (every value the run used, loadable as a case) and
    summary.json (written last: its presence marks a complete result)."""
    result = summary.assemble({"warnings": case.warnings()}, *parts,
                              {"wall_time": time.perf_counter() - started})
    result["units"] = units.summary_units(units.numbers(result), case.case.dim)
    if comm.rank == 0:
        output.write_text(workdir / "case.toml", case.text)
        output.write_text(workdir / "resolved.toml", resolved_toml(case))
        output.write_summary(workdir / "summary.json", result)
    return result
