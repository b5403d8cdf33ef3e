"""The swelling stage: lithiation along case.swelling from the process stage's final state
(its stress enters as an initial stress; the SwellingProblem is solver/physics/swelling.py),
run by solver/stages/pipeline.py after the process stage of `sinter run`."""

import logging

import numpy as np
from dolfinx import fem

from solver.io import log, output
from solver.numerics.fields import tag_field
from solver.physics.swelling import SwellingProblem
from solver.post.interface import PEAK_QUANTITIES, track_peaks

logger = logging.getLogger(__name__)


def run_swelling_stage(case, emesh, sintered_stress: fem.Function, probe, workdir,
                       first_step: int, progress: bool = True) -> dict:
    """Lithiate along case.swelling from the sintered state (its stress `sintered_stress`,
    a 3x3 DG field); write swelling.csv and swelling.xdmf into workdir; return the summary's
    part "swelling". SOC increments are numbered first_step + 1, first_step + 2, ... (after
    the process steps)."""
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
    cell_stress = output.CellStress(emesh.mesh)
    # nominal stress (force per reference area) for the interface tractions
    nominal = fem.Function(fem.functionspace(emesh.mesh,
                                             ("DG", case.solver.degree - 1, (3, 3))))
    every = case.output.every
    fields = output.FieldOutput(workdir, "swelling", "swelling-", emesh, case.solver.degree,
                                _field_sources(problem, emesh), case.output, "swelling",
                                times=len(targets) // every + bool(len(targets) % every)
                                if every else 1)
    try:
        with log.TimeProgress(len(targets), enabled=progress) as bar:
            for number, (soc, cycle, path_step) in enumerate(targets, start=first_step + 1):
                cuts_before = problem.step_cuts
                iterations = problem.advance(soc)
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
    finally:
        fields.close()
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
        output.write_table(
            workdir / "swelling.csv",
            ["step", "soc", "cycle", "path_step", "newton_iterations", "step_cuts",
             "max_von_mises", *(f"volume_ratio:{n}" for n in names),
             *(f"prescribed_volume_ratio:{n}" for n in names),
             *(f"{key}:{name}" for name in tractions for key in PEAK_QUANTITIES),
             "max_equivalent_plastic_strain", "material_soc"],
            rows)
    return {"swelling": part}


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
