"""The swelling stage: lithiation along case.swelling from the process stage's final state
(its stress enters as an initial stress; the SwellingProblem is solver/physics/swelling.py),
run by solver/stages/pipeline.py after the process stage of `sinter run`."""

import logging

import numpy as np
from dolfinx import fem

from solver import stopping
from solver.errors import SolverError
from solver.io import checkpoint, log, output
from solver.numerics.fields import tag_field
from solver.physics.swelling import SwellingProblem
from solver.post.interface import PEAK_QUANTITIES, track_peaks
from solver.stages.process import hash_of

logger = logging.getLogger(__name__)


def run_swelling_stage(case, emesh, sintered_stress: fem.Function, probe, workdir,
                       first_step: int, progress: bool = True, saved=None,
                       carried: dict | None = None, resume: bool = False) -> dict:
    """Lithiate along case.swelling from the sintered state (its stress `sintered_stress`,
    a 3x3 DG field); write swelling.csv and swelling.xdmf into workdir; return the summary's
    part "swelling". SOC increments are numbered first_step + 1, first_step + 2, ... (after
    the process steps).

    A stop (SIGINT/SIGTERM) at an increment's end writes a checkpoint at `saved`: this
    stage's state, the sintered stress and `carried` (what the pipeline needs to resume
    here without the process stage, JSON); with resume, the stage continues from it (and
    `sintered_stress` is set from it). A stop, or a solve that step cuts cannot cure,
    writes swelling.csv and the fields up to the last converged increment and raises
    RunStopped."""
    comm = emesh.mesh.comm
    problem = SwellingProblem(emesh, case, sintered_stress)
    logger.info("swelling (%s strain) of %s: %d displacement DOFs", case.swelling.formulation,
                ", ".join(problem.swelling_materials), problem.dofs)
    if problem.flowing_materials:
        logger.info("plastic flow in %s", ", ".join(problem.flowing_materials))
    if problem.diffusion is not None:
        logger.info("lithium diffusion (%s coupling), D = %.3g m^2/s",
                    case.swelling.diffusion.coupling, case.swelling.diffusion.diffusivity)
    targets = case.swelling.soc_targets()
    names = problem.swelling_materials
    rows, peak, tractions, interface_peaks = [], {"value": -np.inf}, {}, {}
    state_fields = _state_fields(problem, sintered_stress)
    if resume:
        resumed = checkpoint.read_fields(saved, emesh.mesh, state_fields)
        rows, peak, interface_peaks = (resumed["rows"], resumed["peak"],
                                       resumed["interface_peaks"])
        problem.set_state(resumed["state"])
    cell_stress = output.CellStress(emesh.mesh)
    # nominal stress (force per reference area) for the interface tractions
    nominal = fem.Function(fem.functionspace(emesh.mesh,
                                             ("DG", case.solver.degree - 1, (3, 3))))
    every = case.output.every
    fields = output.FieldOutput(workdir, "swelling", "swelling-", emesh, case.solver.degree,
                                _field_sources(problem, emesh), case.output, "swelling",
                                times=len(targets) // every + bool(len(targets) % every)
                                if every else 1)
    stopped = None
    try:
        with log.TimeProgress(len(targets), enabled=progress) as bar:
            for number, (soc, cycle, path_step) in enumerate(targets, start=first_step + 1):
                if number - first_step <= len(rows):
                    continue  # done before the checkpoint it resumes from
                cuts_before = problem.step_cuts
                try:
                    iterations = problem.advance(soc)
                except SolverError as error:  # on every rank: the norms are global
                    stopped = stopping.RunStopped(
                        f"the solve diverged: {error}", "swelling", number - 1,
                        {"soc": float(problem.soc.value)}, resumable=False)
                    break
                cell_stress.update(problem)
                increment = number - first_step  # 1, 2, ... within the stage
                if increment == len(targets) or (every and increment % every == 0):
                    fields.write(float(number))
                von_mises = cell_stress.max_von_mises()
                ratios = problem.volume_ratios()
                nominal = problem.stress_into(nominal, problem.first_piola, "nominal")
                tractions = probe.tractions(nominal, case.interface, emesh.mesh.geometry.dim)
                interface_values = []
                for name, t in tractions.items():
                    values = t.summary() if t is not None else {}
                    interface_values += [values.get(key, "") for key in PEAK_QUANTITIES]
                    track_peaks(interface_peaks.setdefault(name, {}), values, soc=soc,
                                step=number)
                if von_mises >= peak["value"]:
                    peak = {"value": von_mises, "soc": soc, "step": number}
                rows.append([number, soc, cycle, path_step, iterations,
                             problem.step_cuts - cuts_before, von_mises,
                             *(ratios[n] for n in names),
                             *(problem.prescribed_volume_ratio(n) for n in names),
                             *interface_values, problem.max_equivalent_plastic_strain(),
                             problem.material_soc()])
                bar.update(len(rows), f"swelling SOC {soc:.3f}")
                logger.debug("SOC %.4g: max von Mises %.4g Pa, V/V0 %s", soc, von_mises, ratios)
                if increment < len(targets) and (signum := stopping.requested(comm)):
                    checkpoint.write_fields(saved, emesh.mesh, state_fields, {
                        "stage": "swelling", "step": number, "case_hash": hash_of(case),
                        "rows": rows, "peak": peak, "interface_peaks": interface_peaks,
                        "state": problem.get_state(), "carried": carried})
                    stopped = stopping.RunStopped(stopping.signal_reason(signum), "swelling",
                                                  number, {"soc": soc}, resumable=True)
                    break
        if stopped is not None and rows and rows[-1][0] not in fields.times:
            fields.write(float(rows[-1][0]))  # the last converged state
    finally:
        fields.close()
    if stopped is not None:
        if comm.rank == 0:
            _write_table(workdir, names, tractions or interface_peaks, rows)
        raise stopped
    state = problem.state()
    if problem.step_cuts:
        logger.info("swelling: %d SOC increment cut(s)", problem.step_cuts)
    part = {
        "formulation": case.swelling.formulation,
        "materials": names,
        "increments": len(targets),
        "first_step": first_step + 1,
        "step_cuts": problem.step_cuts,
        "newton_iterations": problem.newton_iterations,
        "final": {"soc": state.soc, "material_soc": rows[-1][-1],
                  "max_von_mises": rows[-1][6],
                  "volume_ratio": dict(zip(names, rows[-1][7:7 + len(names)], strict=True)),
                  "prescribed_volume_ratio": {n: problem.prescribed_volume_ratio(n)
                                              for n in names},
                  "out_of_plane_strain": state.out_of_plane_strain,
                  "face_displacement": state.face_displacement},
        "peak_max_von_mises": peak,
        "plastic_flow": {"materials": problem.flowing_materials,
                         "max_equivalent_plastic_strain": rows[-1][-2]},
        "interfaces": {},
        "outputs": fields.summary(),
    }
    if comm.rank == 0:
        for name, t in tractions.items():
            part["interfaces"][name] = {**t.summary(),
                                        "peak_over_swelling": interface_peaks.get(name, {})}
        _write_table(workdir, names, tractions, rows)
    return {"swelling": part}


def _write_table(workdir, names, interfaces, rows):
    """swelling.csv: a row per SOC increment (the interfaces' columns in their order)."""
    output.write_table(
        workdir / "swelling.csv",
        ["step", "soc", "cycle", "path_step", "newton_iterations", "step_cuts",
         "max_von_mises", *(f"volume_ratio:{n}" for n in names),
         *(f"prescribed_volume_ratio:{n}" for n in names),
         *(f"{key}:{name}" for name in interfaces for key in PEAK_QUANTITIES),
         "max_equivalent_plastic_strain", "material_soc"],
        rows)


def _state_fields(problem: SwellingProblem, sintered_stress: fem.Function) -> dict:
    """The functions of the stage's state that a checkpoint keeps."""
    fields = {"sintered_stress": sintered_stress, "u": problem.u}
    if problem.flowing_materials:
        fields.update(plastic_state=problem.plastic_state,
                      equivalent_plastic_strain=problem.equivalent_plastic_strain)
    if problem.diffusion is not None:
        diffusion = problem.diffusion
        fields.update(soc=diffusion.soc, previous_soc=diffusion.previous,
                      hydrostatic_stress=diffusion.hydrostatic_stress)
    return fields


def _field_sources(problem: SwellingProblem, emesh) -> dict:
    """The swelling stage's fields, {[output] name: fill(target)} (solver/io/output.py
    FieldOutput): displacement, Cauchy stress, material, and where they exist the equivalent
    plastic strain and the SOC field."""
    material = tag_field(emesh.mesh, emesh.cell_tags)
    sources = {"displacement": lambda target: target.interpolate(problem.u),
               "stress": problem.stress_into,
               "material": lambda target: target.interpolate(material)}
    if problem.flowing_materials:
        sources["equivalent_plastic_strain"] = lambda target: problem.stress_into(
            target, problem.equivalent_plastic_strain, "plastic strain")
    if problem.diffusion is not None:
        sources["soc"] = lambda target: target.interpolate(problem.diffusion.soc)
    return sources
