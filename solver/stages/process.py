"""The time-stepping driver: case -> geometry -> mesh -> problem -> solve loop -> files."""

import hashlib
import logging
import platform
import time
from dataclasses import replace
from importlib import metadata
from pathlib import Path

import dolfinx
import numpy as np
from dolfinx import fem
from mpi4py import MPI

from solver.errors import UserError
from solver.geometry.mesh import build_mesh
from solver.geometry.registry import geometry_kind
from solver.io import checkpoint, log, output
from solver.materials.behaviour import material_model
from solver.physics import kinetics
from solver.physics.furnace import solve_furnace
from solver.physics.inelastic import InelasticProblem
from solver.physics.thermoelastic import ThermoElasticProblem
from solver.post import probes
from solver.post.interface import InterfaceProbe, track_peaks
from solver.stages.schedule import TimeStep, step_statistics, time_steps
from solver.stages.swelling import run_swelling_stage

logger = logging.getLogger(__name__)


def sinterfem_version() -> str:
    try:
        return metadata.version("sinterfem")
    except metadata.PackageNotFoundError:
        return "0.1.0+source"


def run_case(case, out, comm=MPI.COMM_WORLD, progress: bool = True,
             checkpoint_every: int = 0, restart: bool = False) -> dict:
    """Solve a case along its schedule and write its results to the directory out.

    checkpoint_every: write a checkpoint beside `out` every so many time steps (0: never);
    restart: continue from that checkpoint (a run that crashed). The final state is always
    written to out/state.npz, the start of a later stage.
    """
    started = time.perf_counter()
    saved = checkpoint.checkpoint_path(out)
    if restart and not comm.bcast(saved.exists() if comm.rank == 0 else None, root=0):
        raise UserError(f"{out}: no checkpoint to restart from ({saved} does not exist)")
    with output.ResultsDirectory(out, comm) as workdir:
        logfile = log.attach_logfile(workdir / "run.log") if comm.rank == 0 else None
        try:
            summary = _solve_and_write(case, workdir, comm, progress, saved,
                                       checkpoint_every, restart)
            summary["wall_time"] = time.perf_counter() - started
            if comm.rank == 0:
                output.write_summary(workdir / "summary.json", summary)
        finally:
            if logfile is not None:
                logging.getLogger("solver").removeHandler(logfile)
                logfile.close()
    if comm.rank == 0 and saved.exists():
        saved.unlink()  # the run is complete: its results replace the checkpoint
    logger.info("results in %s (%.1f s)", out, summary["wall_time"])
    return summary


def _solve_and_write(case, workdir: Path, comm, progress: bool, saved: Path,
                     checkpoint_every: int, restart: bool) -> dict:
    emesh = build_mesh(case, comm)
    problem = make_problem(emesh, case)
    inelastic = isinstance(problem, InelasticProblem)
    logger.info("%s problem: %d displacement DOFs (P%d)",
                "inelastic" if inelastic else "thermo-elastic", problem.dofs,
                case.solver.degree)
    probe = InterfaceProbe(emesh)
    msh = emesh.mesh
    stress = fem.Function(fem.functionspace(msh, ("DG", case.solver.degree - 1, (3, 3))))
    steps = time_steps(case.schedule, case.solver.temperature_increment,
                       case.solver.hold_steps if inelastic else 1)
    start_temperature = case.schedule.start
    furnace_history = None
    if case.furnace is not None:
        # the unit cell lives at one position of a roll or stack that lags the furnace
        end = steps[-1].time
        furnace_history = solve_furnace(
            case.furnace, lambda t: float(case.schedule.temperature_at([t])[0]),
            end + case.furnace.cool_down, case.furnace.time_step, comm,
            breakpoints=np.cumsum([segment.duration for segment in case.schedule.segments()]))
        if case.furnace.cool_down > 0:
            tail = [TimeStep(end + case.furnace.cool_down * k / COOL_DOWN_STEPS,
                             steps[-1].temperature, len(case.schedule.steps), "cool-down")
                    for k in range(1, COOL_DOWN_STEPS + 1)]
            steps = steps + tail
        steps = [replace(step, temperature=float(furnace_history.temperature_at(step.time)))
                 for step in steps]
    step_times = np.array([step.time for step in steps])
    step_temperatures = np.array([step.temperature for step in steps])
    process_strains = process_eigenstrains(case, step_times, step_temperatures)
    history, tractions, state, newton_iterations = [], {}, None, 0
    peak_history = {}  # interface -> quantity -> {value, time, temperature}
    case_hash = hashlib.sha256(case.text.encode()).hexdigest()
    first_step = 0
    if restart:
        resumed = checkpoint.read(saved, problem)
        if resumed["case_hash"] != case_hash:
            raise UserError(f"{saved}: the checkpoint belongs to another version of the case")
        history, peak_history = resumed["history"], resumed["peaks"]
        newton_iterations, first_step = resumed["newton_iterations"], resumed["step"] + 1
    writer = output.FieldWriter(workdir / "fields.xdmf", problem, emesh)
    try:  # the writers hold files open (ADIOS2 aborts if they outlive their directory)
        with log.TimeProgress(steps[-1].time, enabled=progress) as bar:
            previous_time = steps[first_step - 1].time if first_step else 0.0
            for index, step in enumerate(steps):
                if index < first_step:
                    continue
                state, iterations = problem.advance(
                    step.temperature, step.time - previous_time,
                    {name: strains[index] for name, strains in process_strains.items()})
                previous_time = step.time
                newton_iterations += iterations
                writer.write(step.time, step.temperature)
                problem.stress_into(stress)
                tractions = probe.tractions(stress, case.interface, msh.geometry.dim)
                step_peaks = {name: t.summary() for name, t in tractions.items() if t is not None}
                risks = [peaks.get("max_risk", 0.0) for peaks in step_peaks.values()]
                for name, peaks in step_peaks.items():
                    track_peaks(peak_history.setdefault(name, {}), peaks, time=step.time,
                                temperature=step.temperature)
                history.append([step.time, step.temperature, step.label,
                                state.out_of_plane_strain, state.face_displacement,
                                writer.max_von_mises(), iterations, *risks])
                bar.update(step.time, f"{step.label} {step.temperature - 273.15:6.1f} degC")
                logger.debug("t = %.6g s, T = %.2f K: max von Mises %.4g Pa", step.time,
                             step.temperature, history[-1][5])
                if checkpoint_every and index % checkpoint_every == 0 and index < len(steps) - 1:
                    checkpoint.write(saved, problem, {
                        "step": index, "time": step.time, "case_hash": case_hash,
                        "history": history, "peaks": peak_history,
                        "newton_iterations": newton_iterations})
    finally:
        writer.close()
    checkpoint.write(workdir / "state.npz", problem, {
        "step": len(steps) - 1, "time": steps[-1].time, "case_hash": case_hash,
        "history": [], "peaks": {}, "newton_iterations": newton_iterations})

    summary = {
        "case": case.case.name,
        "case_file": str(case.source),
        "sinterfem_version": sinterfem_version(),
        "dolfinx_version": dolfinx.__version__,
        "host": platform.node(),
        "ranks": comm.size,
        "dofs": problem.dofs,
        "cells": msh.topology.index_map(msh.topology.dim).size_global,
        "geometry": {"kind": case.geometry.kind, **emesh.geometry.metrics},
        "materials": {str(tag): name for tag, name in emesh.geometry.cell_materials.items()},
        "boundaries": {str(tag): name for name, tag in emesh.geometry.facet_groups.items()},
        "schedule": {"start_temperature": start_temperature,
                     "end_temperature": steps[-1].temperature,
                     "duration": steps[-1].time, "time_steps": len(steps) - 1,
                     "step_cuts": getattr(problem, "step_cuts", 0),
                     **step_statistics(getattr(problem, "step_sizes", None)
                                       or np.diff(step_times),
                                       getattr(problem, "rejected_steps", 0)),
                     "newton_iterations": newton_iterations,
                     "atmosphere": case.schedule.atmosphere},
        "final": {"temperature": steps[-1].temperature,
                  "delta_temperature": state.delta_temperature,
                  "out_of_plane_strain": state.out_of_plane_strain,
                  "face_displacement": state.face_displacement,
                  "max_von_mises": history[-1][5]},
        "interfaces": {},
        "furnace": furnace_history.summary() if furnace_history is not None else None,
        "process_window": kinetics.process_window(step_times, step_temperatures, case.kinetics,
                                                  case.schedule.atmosphere),
    }
    if case.swelling is not None:  # lithiation, from the sintered state (its final stress)
        summary.update(run_swelling_stage(case, emesh, stress, probe, workdir,
                                          first_step=len(steps) - 1, progress=progress))
    if geometry_kind(case).is_layer_stack:
        bottom = emesh.facet_tags.indices[
            emesh.facet_tags.values == emesh.geometry.facet_groups["bottom"]]
        summary["bending"] = probes.bending_curvature(
            problem.u, bottom, case.geometry.length, getattr(case.geometry, "width", None))
    if comm.rank == 0:
        for name, t in tractions.items():
            _, lower, upper = emesh.geometry.interfaces[name]
            summary["interfaces"][name] = {
                "materials": [emesh.geometry.cell_materials[lower],
                              emesh.geometry.cell_materials[upper]],
                "averaging_length": case.interface.averaging_length,
                **t.summary(),
                "peak_over_history": peak_history.get(name, {})}
        output.write_interface_csv(workdir / "interface.csv", tractions)
        output.write_table(
            workdir / "history.csv",
            ["time", "temperature", "step", "out_of_plane_strain", "face_displacement",
             "max_von_mises", "newton_iterations", *(f"max_risk:{name}" for name in tractions)],
            history)
        (workdir / "case.toml").write_text(case.text)
        if furnace_history is not None:
            furnace_history.write_csv(workdir / "furnace.csv")
        kinetics.write_kinetics(workdir, kinetics.kinetic_curves(step_times, step_temperatures,
                                                                 case.kinetics))
    return summary


COOL_DOWN_STEPS = 12  # time steps of the mechanics over the furnace's cool-down


def make_problem(emesh, case):
    """The linear thermo-elastic problem, or the inelastic one where a material is plastic
    or viscoelastic."""
    used = {name: case.materials[name] for name in emesh.geometry.cell_materials.values()}
    if all(material.behaviour == "elastic" for material in used.values()):
        return ThermoElasticProblem(emesh, case)
    start = case.schedule.start
    return InelasticProblem(
        emesh, case, {name: material_model(m) for name, m in used.items()},
        lambda name, temperature: float(used[name].thermal_strain(temperature, start)),
        start)


def process_eigenstrains(case, times, temperatures) -> dict[str, np.ndarray]:
    """Isotropic process eigenstrain history per material: binder curing shrinkage and
    densification of the mix (both zero at the stress-free start; off by default)."""
    by_material = {}
    for process, strain_history in (("curing", kinetics.curing_shrinkage_strain),
                                    ("densification", kinetics.densification_strain)):
        section = getattr(case.kinetics, process)
        strains = strain_history(times, temperatures, section)
        for name in section.materials:
            by_material[name] = by_material.get(name, 0.0) + strains
    return by_material
