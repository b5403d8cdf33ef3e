"""The virtual pull-off test: after the schedule, the layer is pulled off the foil.

1. Process stage: the case's schedule with the usual problem (solver/stages/process.py
   ProcessStage.final_stress, run by solver/stages/pipeline.py), giving the residual stress
   at the end of the schedule. It is projected to a cell-wise (DG) field and enters both
   bodies of the cohesive problem as an initial stress; in step 0 the cohesive springs take
   up the interface tractions.
2. Pull-off (solver/physics/cohesive.py, plane strain in 2D): the layer's top moves up by d
   (displacement control), the left and right faces of both bodies are symmetry rollers
   (u_x = 0), the foil's bottom has u_y = 0. d grows in `steps` equal steps to
   `end_displacement`, each taken in sub-steps of adapted size (CohesiveProblem.advance:
   a node loses at most `max_strength_loss` of its strength in one, and the peak force is
   resolved); a sub-step that fails that test or does not converge is retried smaller
   (reported as `step_cuts`). In 3D (the recurved
   and flat cells: the smallest symmetric cell of the array) the top moves along z and the
   four side faces are symmetry rollers; widths become areas (projected_area,
   interface_area).

Force: the reaction on the top, per unit depth (N/m); pull-off strength: the peak force over
the projected width of the cell (Pa). Work of separation: the external work per projected
area up to the end displacement. Energy release rate: the cohesive dissipation per unit
debonded interface length. load_after_debond: the force at the first step where every
interface node is fully damaged (D = 1), or at the end displacement if that never happens
(contact under a recurved head keeps some nodes from ever opening), over the peak force.

The bulk flows (J2, linear hardening, solver/materials/plasticity.py) where a material has a
swelling_flow_stress, unless plastic_bulk = false; the plastic work is part of the dissipated
energy. layer_failure: the first step where the binder's (the non-foil material at the
interface) largest cell-averaged equivalent plastic strain reaches its elongation_at_break
(mesh-dependent: reported with the mesh sizes).

load = "swelling" (SOC at delamination onset): the top is not pulled (traction free); the
SOC path of [swelling] (formulation "small") is applied instead as the eigenstrain
beta SOC / 3 I of the swelling materials (in the elastic strain, with the residual stress as
an initial stress); the SOC path is stepped like the
displacement (the same Newton, step cuts and damage update). Reported: the first SOC at which
an interface node has D > 0 (soc_at_damage_onset) and at which one is fully damaged
(soc_at_delamination), null if never. There is no external work: the energy balance is the
eigenstrain's work (trapezoidal in the SOC) against the change of the bodies' energy, the
cohesive energy and the dissipation since SOC 0 (energy_balance_error, a fraction of the work).
"""

import logging
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from solver.case.tables import Table
from solver.case.units import SIQuantity
from solver.errors import GeometryError

logger = logging.getLogger(__name__)

FULLY_DAMAGED = 1.0 - 1e-9


class PulloffSection(Table):
    """[pulloff]: the virtual pull-off test (sinter pulloff)."""

    end_displacement: Annotated[float, SIQuantity("length", positive=True)] = Field(
        "2 um", validate_default=True,
        description="upward displacement of the layer's top at the end of the test")
    steps: int = Field(40, ge=1, description="equal displacement steps to end_displacement "
                       "(each cut where needed)")
    rate: Annotated[float, SIQuantity("speed", positive=True)] = Field(
        "1 um/s", validate_default=True,
        description="pulling speed: the pseudo-time of a step for the interface viscosity")
    max_strength_loss: float = Field(
        0.3, gt=0, le=1, description="largest share of its strength that an interface node "
        "may lose in one step (the softening of the cohesive law, not its damage); a step "
        "that loses more is cut, and the next one sized from it (docs/pulloff.md)")
    residual_stress: bool = Field(
        True, description="start from the residual stress of the schedule (false: stress-free)")
    plastic_bulk: bool = Field(
        True, description="small-strain J2 plasticity with linear hardening in both bodies, "
        "for the materials with a swelling_flow_stress (and swelling_hardening_modulus); the "
        "others, and every material with false, stay linear elastic (docs/pulloff.md)")
    load: Literal["pull", "swelling"] = Field(
        "pull", description="pull: the top is pulled up to end_displacement; swelling: the "
        "top is free and the SOC path of [swelling] (formulation small) is applied as the "
        "swelling eigenstrain (docs/pulloff.md)")


def check_case(case):
    """Refuse, before anything runs, a case the pull-off test cannot run."""
    from solver.errors import CaseError
    from solver.geometry.registry import KINDS, geometry_kind

    if case.pulloff is None:
        raise CaseError(case.source, "pulloff", "required by sinter pulloff: add a [pulloff] "
                        "table (its keys: docs/case-keys.md)")
    if case.case.dim not in geometry_kind(case).pulloff_dims:
        cells = ", ".join(f"{kind.name} ({' and '.join(f'{d}D' for d in kind.pulloff_dims)})"
                          for kind in KINDS if kind.pulloff_dims)
        raise CaseError(case.source, "geometry.kind", "the pull-off test runs on the "
                        f"geometry kinds {cells}, got {case.case.dim}D '{case.geometry.kind}'")
    if case.pulloff.load == "swelling":
        if case.swelling is None:
            raise CaseError(case.source, "pulloff.load", "'swelling' needs a [swelling] table "
                            "with the SOC path (docs/swelling.md)")
        if case.swelling.formulation != "small":
            raise CaseError(case.source, "swelling.formulation", "the swelling-driven "
                            "pull-off (pulloff.load = 'swelling') needs formulation = 'small' "
                            "(a linear elastic bulk with the eigenstrain beta SOC / 3)")


# the faces x = const (and in 3D y = const) of a collector cell, by dimension: each a symmetry
# plane of the periodic array, held on its normal component
SIDE_FACES = {2: (("left", 0), ("right", 0)),
              3: (("left", 0), ("right", 0), ("front", 1), ("back", 1))}
# the summary's names of the cell's projected size and of the interface's size, and the
# force-per-size column: per unit depth in 2D, in 3D the quarter cell's
SIZE_KEYS = {2: ("projected_width", "interface_length", "force_per_width"),
             3: ("projected_area", "interface_area", "force_per_area")}


def _room_value(value, temperature):
    """A material property at a temperature (tables are callable)."""
    return float(value(temperature)) if callable(value) else float(value)


class _RoomMaterial:
    """The constants the cohesive problem uses, at the end temperature of the schedule."""

    def __init__(self, material, temperature):
        self.youngs_modulus = _room_value(material.youngs_modulus, temperature)
        self.poisson_ratio = _room_value(material.poisson_ratio, temperature)
        self.swelling_flow_stress = material.swelling_flow_stress
        self.swelling_hardening_modulus = material.swelling_hardening_modulus


def run_pulloff_stage(case, emesh, initial_stress, process_time: float, workdir: Path,
                      saved: Path | None = None, resume: bool = False) -> tuple[dict, int]:
    """The pull-off test from `initial_stress` (the process stage's final stress, DG 3x3, or
    None: stress-free), which took `process_time` seconds; writes pulloff.csv,
    interface_damage.csv (and pulloff.png) into workdir. Returns the summary's part
    "pulloff" and the displacement DOFs of the cohesive problem.

    A stop (SIGINT/SIGTERM) at the end of a load step writes a checkpoint at `saved` (the
    cohesive problem's state, the residual stress and the records so far); with resume the
    test continues from it (and the residual stress comes from it). A stop, or a solve that
    step cuts cannot cure, writes the tables up to the last converged step and raises
    RunStopped."""
    from dolfinx import fem

    from solver import stopping
    from solver.errors import SolverError
    from solver.io import checkpoint, output
    from solver.physics.cohesive import CohesiveLaw, CohesiveProblem

    settings = case.pulloff
    comm = emesh.mesh.comm
    if resume and settings.residual_stress:  # set from the checkpoint below
        initial_stress = fem.Function(fem.functionspace(
            emesh.mesh, ("DG", case.solver.degree - 1, (3, 3))))
    end_temperature = case.schedule.end_temperature
    materials = {name: _RoomMaterial(m, end_temperature) for name, m in case.materials.items()
                 if name in emesh.geometry.cell_materials.values()}
    law = CohesiveLaw.from_interface(case.interface)
    foil_material = case.geometry.foil_material
    interface_name = next((name for name, (_, lower, _) in emesh.geometry.interfaces.items()
                           if emesh.geometry.cell_materials[lower] == foil_material), None)
    if interface_name is None:
        raise GeometryError(f"geometry: the foil ('{foil_material}') touches no other "
                            "material: the pull-off needs an interface on the foil")
    swelling = settings.load == "swelling"
    eigenstrain = _swelling_eigenstrain(emesh, case) if swelling else None
    problem = CohesiveProblem(emesh, materials, law, degree=case.solver.degree,
                              interface_name=interface_name, initial_stress=initial_stress,
                              eigenstrain=eigenstrain, plastic=settings.plastic_bulk,
                              solver=case.solver)
    failure = _LayerFailure(case, emesh, problem, interface_name)
    gdim = problem.gdim
    vertical = gdim - 1
    # the cell's side faces are symmetry planes of the periodic array (2D: left, right; 3D
    # also front, back): rollers on both bodies
    for name, component in SIDE_FACES[gdim]:
        for body in ("foil", "layer"):
            problem.fix(body, component, problem.facets(name))
    problem.fix("foil", vertical, problem.facets("bottom"))
    # the pulled top; under swelling it stays traction free (the pattern gives its reaction)
    top = None if swelling else problem.fix("layer", vertical, problem.facets("top"))
    pull = fem.Function(problem.W)  # the unit pattern of the pulled dofs: its work is F
    top_dofs = fem.locate_dofs_topological(problem.W.sub(gdim + vertical), gdim - 1,
                                           problem.facets("top"))
    pull.x.array[top_dofs] = 1.0
    # the projected width (2D, per unit depth) or area (3D) of the cell
    width = float(np.prod([comm.allreduce(float(x.max()), op=_max())
                           - comm.allreduce(float(x.min()), op=_min())
                           for x in emesh.mesh.geometry.x[:, :vertical].T]))
    interface_length = problem.interface_measure

    def set_load(value):
        if swelling:
            problem.load_factor.value = value
        else:
            top.value = value

    if swelling:
        load_steps = np.array([0.0] + [soc for soc, _, _ in case.swelling.soc_targets()])
    else:
        load_steps = np.linspace(0.0, settings.end_displacement, settings.steps + 1)
    rows, interface_rows = [], []
    record = {"dissipated": 0.0, "cohesive_dissipated": 0.0, "work": 0.0, "force": 0.0,
              "displacement": 0.0, "step": 0, "eigenstrain_work": 0.0, "eigenstrain_rate": 0.0}

    def converged(displacement, before, report):
        """Book-keeping after every converged (sub-)step."""
        force = problem.reaction(pull)
        record["cohesive_dissipated"] += problem.interface_sum(problem.dissipation(before))
        record["dissipated"] = record["cohesive_dissipated"] + problem.plastic_work
        if swelling:  # the eigenstrain's work, trapezoidal in the SOC like the external work
            rate = problem.eigenstrain_work_rate()
            record["eigenstrain_work"] += 0.5 * (rate + record["eigenstrain_rate"]) * (
                displacement - record["displacement"])
            record["eigenstrain_rate"] = rate
        record["work"] += 0.5 * (force + record["force"]) * (displacement
                                                             - record["displacement"])
        record.update(force=force, displacement=displacement)
        debonded = problem.interface_sum((problem.damage >= FULLY_DAMAGED).astype(float))
        rows.append([displacement, force, force / width, debonded / interface_length,
                     record["dissipated"], record["work"], problem.elastic_energy(),
                     problem.interface_sum(problem.nodal_free_energy()),
                     report.newton_iterations,
                     problem.comm.allreduce(float(np.max(problem.damage, initial=0.0)),
                                            op=_max())])
        if swelling:
            rows[-1] += [record["eigenstrain_work"], problem.stored_energy()]
        else:
            rows[-1] += [problem.plastic_work, failure.update(displacement, force)]
        interface_rows.extend(_interface_rows(problem, record["step"], displacement))
        record["step"] += 1
        logger.debug("pull-off %s = %.4g: top force %.4g %s, debonded %.1f %%",
                     "SOC" if swelling else "d [m]", displacement, force,
                     "N/m" if gdim == 2 else "N", 100 * debonded / interface_length)

    iterations = 0
    state = _CheckpointState(problem, initial_stress)
    done = 0  # the load steps solved (before the checkpoint resumed from)
    if resume:
        resumed = checkpoint.read_fields(saved, emesh.mesh, state.fields())
        state.restored(resumed["problem"])
        rows, interface_rows, record = (resumed["rows"], resumed["interface_rows"],
                                        resumed["record"])
        iterations, done = resumed["iterations"], resumed["done"]
        failure.largest = resumed["failure"]["largest"]
        failure.at = resumed["failure"]["at"]
        set_load(load_steps[done - 1])
    stopped = None
    for index, value in enumerate(load_steps):
        if index < done:
            continue
        start = load_steps[index - 1] if index else 0.0
        # SOC steps have no pseudo-time: the interface viscosity acts on the pull only
        dt = (value - start) / settings.rate if index and not swelling else None
        try:
            report = problem.advance(set_load, start, value, dt,
                                     max_strength_loss=settings.max_strength_loss,
                                     converged=converged,
                                     peak=None if swelling
                                     else lambda: problem.reaction(pull))
        except SolverError as error:  # on every rank: the norms are global
            stopped = stopping.RunStopped(
                # the step: the last converged record (a row of pulloff.csv)
                f"the solve diverged: {error}", "pulloff", max(record["step"] - 1, 0),
                {"soc" if swelling else "displacement": record["displacement"]},
                resumable=False)
            break
        iterations += report.newton_iterations
        if index < len(load_steps) - 1 and (signum := stopping.requested(comm)):
            checkpoint.write_fields(saved, emesh.mesh, state.fields(), {
                "stage": "pulloff", "step": index, "case_hash": _hash(case),
                "process_time": process_time, "rows": rows, "interface_rows": interface_rows,
                "record": record, "iterations": iterations, "done": index + 1,
                "failure": {"largest": failure.largest, "at": failure.at},
                "problem": state.scalars()})
            stopped = stopping.RunStopped(
                stopping.signal_reason(signum), "pulloff", record["step"] - 1,
                {"soc" if swelling else "displacement": float(value)}, resumable=True)
            break
    if stopped is not None:
        if comm.rank == 0:
            _write_partial(workdir, rows, interface_rows, swelling, gdim)
        raise stopped
    dissipated, external_work = record["cohesive_dissipated"], record["work"]
    if swelling:
        return _swelling_summary_and_write(case, problem, rows, interface_rows, workdir,
                                           iterations, process_time, width,
                                           interface_length, interface_name), problem.dofs
    table = np.array([row[:8] for row in rows])
    displacement, force, debonded_fraction = table[:, 0], table[:, 1], table[:, 3]
    peak = int(np.argmax(force))
    fully = np.flatnonzero(debonded_fraction >= 1.0 - 1e-12)
    after = int(fully[0]) if len(fully) else len(force) - 1
    debonded_length = debonded_fraction[-1] * interface_length
    size_key, interface_key, per_size_key = SIZE_KEYS[gdim]
    part = {
        "pulloff": {
            "strength": float(force[peak] / width),
            "peak_force": float(force[peak]),
            "peak_displacement": float(displacement[peak]),
            "work_of_separation": float(external_work / width),
            "load_after_debond": float(force[after] / force[peak]),
            "load_after_debond_displacement": float(displacement[after]),
            "fully_debonded": bool(len(fully)),
            "debonded_fraction": float(debonded_fraction[-1]),
            "dissipated_energy": float(dissipated + problem.plastic_work),
            "energy_release_rate": float(dissipated / debonded_length)
            if debonded_length > 0 else 0.0,
            "external_work": float(external_work),
            "plastic_bulk": problem.plastic,
            "plastic_dissipation": float(problem.plastic_work),
            "max_binder_plastic_strain": failure.largest,
            "layer_failure": failure.summary(width),
            size_key: float(width),
            interface_key: float(interface_length),
            "interface": interface_name,
            "end_displacement": settings.end_displacement,
            "steps": settings.steps,
            "step_cuts": problem.step_cuts,
            "newton_iterations": iterations,
            "linear_solver": "direct" if problem.direct else "iterative",
            "krylov_iterations": problem.krylov_iterations,
            "residual_stress": settings.residual_stress,
            "process_time": process_time,
        },
    }
    if comm.rank == 0:
        output.write_table(workdir / "pulloff.csv", [
            per_size_key if column == "force_per_width" else column
            for column in PULLOFF_COLUMNS], rows, gdim)
        output.write_table(workdir / "interface_damage.csv", interface_columns(gdim),
                           interface_rows, gdim)
        plot_force_displacement(workdir / "pulloff.png", displacement, table[:, 2],
                                debonded_fraction, case.case.name)
    return part, problem.dofs


def _hash(case) -> str:
    from solver.stages.process import hash_of

    return hash_of(case)


def _write_partial(workdir, rows, interface_rows, swelling: bool, gdim: int):
    """pulloff.csv and interface_damage.csv up to the last converged step of a test that
    stopped early (the raw records: the pull's columns, or under swelling the pull's first
    ten and the eigenstrain's work and the bodies' stored energy; rank 0)."""
    from solver.io import output

    columns = (PULLOFF_COLUMNS[:10] + ["eigenstrain_work", "elastic_energy"] if swelling
               else PULLOFF_COLUMNS)
    output.write_table(workdir / "pulloff.csv", columns, rows, gdim)
    output.write_table(workdir / "interface_damage.csv", interface_columns(gdim),
                       interface_rows, gdim)


class _CheckpointState:
    """What a checkpoint of the pull-off keeps of the cohesive problem: the displacements,
    the residual stress, the plastic state, the interface's damage and slip (per node, on
    the dof blocks of the mixed space), the sub-stepping's state (the next size, the last
    sub-step's change for the predictor, the force's course) and its counters."""

    def __init__(self, problem, initial_stress):
        self.problem, self.initial_stress = problem, initial_stress
        blocks = problem.W.dofmap.index_map
        self._nodal = np.zeros((blocks.size_local + blocks.num_ghosts, 1 + problem.gdim))

    def fields(self) -> dict:
        problem = self.problem
        fields = {"w": problem.w, "last_change": problem.last_change}
        if self.initial_stress is not None:
            fields["initial_stress"] = self.initial_stress
        if problem.plastic:
            fields.update({f"flow_{i}": f for i, f in enumerate(problem._flow_state)})
        self._nodal[problem.nodes.blocks, 0] = problem.damage
        self._nodal[problem.nodes.blocks, 1:] = problem.slip
        fields["interface"] = (problem.W.dofmap, self._nodal)
        return fields

    def restored(self, scalars: dict):
        """After read_fields: the nodal history from its blocks, and the scalars."""
        problem = self.problem
        problem.damage = self._nodal[problem.nodes.blocks, 0].copy()
        problem.slip = self._nodal[problem.nodes.blocks, 1:].copy()
        problem.set_stepping_state(scalars["stepping"])
        for name in COUNTERS:
            setattr(problem, name, scalars[name])

    def scalars(self) -> dict:
        return {"stepping": self.problem.stepping_state(),
                **{name: getattr(self.problem, name) for name in COUNTERS}}


COUNTERS = ("plastic_work", "step_cuts", "krylov_iterations")


PULLOFF_COLUMNS = ["displacement", "force", "force_per_width", "debonded_fraction",
                   "dissipated_energy", "external_work", "elastic_energy",
                   "cohesive_free_energy", "newton_iterations", "max_damage",
                   "plastic_dissipation", "binder_plastic_strain"]
# load = "swelling": the load parameter is the SOC, the top is free (its reaction ~ 0)
SWELLING_COLUMNS = ["soc", "top_reaction", "debonded_fraction", "dissipated_energy",
                    "max_damage", "newton_iterations", "eigenstrain_work", "elastic_energy",
                    "cohesive_free_energy", "energy_balance_error"]


class _LayerFailure:
    """The layer-failure criterion: the largest cell average of the equivalent plastic strain
    in the binder (the non-foil material at the interface) reaches its elongation_at_break.
    Pointwise near re-entrant corners, so mesh-dependent: reported with the mesh sizes."""

    def __init__(self, case, emesh, problem, interface_name):
        _, _, binder_tag = emesh.geometry.interfaces[interface_name]
        self.material = emesh.geometry.cell_materials[binder_tag]
        self.elongation = case.materials[self.material].elongation_at_break
        self.problem, self.case = problem, case
        self.mesh_size = emesh.mesh_size
        tags = emesh.cell_tags
        owned = emesh.mesh.topology.index_map(emesh.mesh.topology.dim).size_local
        binder = tags.indices[np.isin(tags.values, [
            tag for tag, name in emesh.geometry.cell_materials.items() if name == self.material])]
        self.cells = binder[binder < owned]
        self.largest = 0.0
        self.at = None  # (displacement, force) where the criterion is first met

    def update(self, displacement, force) -> float:
        """The binder's largest cell-averaged equivalent plastic strain now."""
        values = self.problem.cell_plastic_strain()[self.cells]
        self.largest = self.problem.comm.allreduce(float(np.max(values, initial=0.0)),
                                                   op=_max())
        if self.elongation is not None and self.at is None and self.largest >= self.elongation:
            self.at = (displacement, force)
        return self.largest

    def summary(self, width):
        if self.at is None:
            return None
        geometry = self.case.geometry
        return {"displacement": float(self.at[0]), "force": float(self.at[1]),
                SIZE_KEYS[self.problem.gdim][2]: float(self.at[1] / width),
                "material": self.material,
                "elongation_at_break": self.elongation,
                "mesh_size": self.mesh_size,
                "interface_mesh_size": getattr(geometry, "interface_mesh_size", None)}


def _swelling_eigenstrain(emesh, case):
    """The DG0 isotropic eigenstrain per unit SOC, beta / 3, of the swelling materials."""
    from solver.numerics.fields import cellwise_field

    used = list(emesh.geometry.cell_materials.values())
    swelling = case.swelling.swelling_materials(case.materials, used)
    return cellwise_field(emesh, {name: case.materials[name].swelling_coefficient / 3
                                  if name in swelling else 0.0 for name in used}, "eps_s")


def _swelling_summary_and_write(case, problem, rows, interface_rows, workdir, iterations,
                                process_time, width, interface_length, interface_name) -> dict:
    """The summary's part "pulloff" and pulloff.csv of the swelling-driven run (rows as in
    PULLOFF_COLUMNS,
    the displacement column holding the SOC, then the eigenstrain's work and the stored
    energy of the bodies)."""
    from solver.io import output

    table = np.array(rows, dtype=float)
    soc, debonded, max_damage = table[:, 0], table[:, 3], table[:, 9]
    # energy balance from the state at SOC 0 (in its step the springs took up the residual
    # stress's interface tractions from w = 0, not along a path): the eigenstrain's work =
    # the change of the bodies' energy + the cohesive energy + the dissipation; as a fraction
    # of the largest work
    work = table[:, 10]
    change = table[:, [11, 7, 4]] - table[0, [11, 7, 4]]
    largest = np.abs(work).max()
    imbalance = (work - change.sum(axis=1)) / largest if largest > 0 else np.zeros_like(work)

    def first_soc(mask):
        hits = np.flatnonzero(mask)
        return float(soc[hits[0]]) if len(hits) else None

    dissipated = float(table[-1, 4])
    cohesive = dissipated - problem.plastic_work  # the energy release rate's part
    debonded_length = debonded[-1] * interface_length
    part = {
        "pulloff": {
            "load": "swelling",
            "soc_at_damage_onset": first_soc(max_damage > 0),
            "soc_at_delamination": first_soc(max_damage >= FULLY_DAMAGED),
            "end_soc": float(soc[-1]),
            "max_damage": float(max_damage[-1]),
            "debonded_fraction": float(debonded[-1]),
            "dissipated_energy": dissipated,
            "energy_release_rate": cohesive / debonded_length if debonded_length > 0 else 0.0,
            "plastic_bulk": problem.plastic,
            "plastic_dissipation": float(problem.plastic_work),
            "max_top_reaction": float(np.abs(table[:, 1]).max()),
            "eigenstrain_work": float(work[-1]),
            "energy_balance_error": float(np.abs(imbalance).max()),
            SIZE_KEYS[problem.gdim][0]: float(width),
            SIZE_KEYS[problem.gdim][1]: float(interface_length),
            "interface": interface_name,
            "soc_steps": len(case.swelling.soc_targets()),
            "step_cuts": problem.step_cuts,
            "newton_iterations": iterations,
            "linear_solver": "direct" if problem.direct else "iterative",
            "krylov_iterations": problem.krylov_iterations,
            "residual_stress": case.pulloff.residual_stress,
            "process_time": process_time,
        },
    }
    if problem.comm.rank == 0:
        output.write_table(workdir / "pulloff.csv", SWELLING_COLUMNS,
                           [[row[0], row[1], row[3], row[4], row[9], row[8], row[10], row[11],
                             row[7], error] for row, error in zip(rows, imbalance, strict=True)],
                           problem.gdim)
        output.write_table(workdir / "interface_damage.csv",
                           ["record", "soc", *interface_columns(problem.gdim)[2:]],
                           interface_rows, problem.gdim)
    return part


def interface_columns(gdim: int) -> list[str]:
    """The columns of interface_damage.csv: in 2D the shear traction along the tangent
    (n_y, -n_x), in 3D its magnitude."""
    return ["record", "displacement", *"xyz"[:gdim], "damage", "normal_traction",
            "shear_traction"]


def _max():
    from mpi4py import MPI

    return MPI.MAX


def _min():
    from mpi4py import MPI

    return MPI.MIN


def _interface_rows(problem, step, displacement):
    """Damage and tractions at the interface nodes (gathered on rank 0, sorted by their
    coordinates); the columns of interface_columns."""
    nodes = problem.nodes
    gdim = problem.gdim
    delta = problem.jumps()
    traction = problem.tractions(delta, problem.damage)
    normal = nodes.normals
    normal_traction = np.einsum("ni,ni->n", traction, normal)
    if gdim == 2:
        tangent = np.column_stack([normal[:, 1], -normal[:, 0]])
        shear_traction = np.einsum("ni,ni->n", traction, tangent)
    else:
        shear_traction = np.linalg.norm(traction - normal_traction[:, None] * normal, axis=1)
    owned = nodes.owned
    local = np.column_stack([nodes.coordinates[owned, :gdim], problem.damage[owned],
                             normal_traction[owned], shear_traction[owned]])
    gathered = problem.comm.gather(local, root=0)
    if problem.comm.rank != 0:
        return []
    values = np.concatenate(gathered)
    values = values[np.lexsort(values[:, :gdim][:, ::-1].T)]
    return [[step, displacement, *row] for row in values]


def plot_force_displacement(path, displacement, force_per_width, debonded, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    axis.plot(displacement * 1e6, force_per_width / 1e6, "-o", markersize=2, label="force")
    axis.set_xlabel("pull-off displacement [um]")
    axis.set_ylabel("force / projected area [MPa]")
    other = axis.twinx()
    other.plot(displacement * 1e6, 100 * debonded, "--", color="tab:red", label="debonded")
    other.set_ylabel("debonded interface [%]", color="tab:red")
    axis.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
