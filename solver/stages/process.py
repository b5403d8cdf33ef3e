"""The process stage: the case's schedule on its mesh.

ProcessStage holds the problem (make_problem), the schedule's time steps (lagging the
furnace where the case has a [furnace]) and the process eigenstrains, and steps the problem
along them: ProcessStage.advance is the one schedule loop, and what a caller records at a
step it hooks in. run_process is the stage as `sinter run` runs it (fields, interface
tractions and their peaks, history, checkpoints, the final state in state.npz, its part of
the summary); the pull-off asks for the final stress alone (ProcessStage.final_stress).
Both are run by solver/stages/pipeline.py.
"""

import hashlib
import logging
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
from dolfinx import fem

from solver import stopping
from solver.errors import SolverError, UserError
from solver.geometry.registry import geometry_kind
from solver.io import checkpoint, log, output
from solver.materials.behaviour import material_model
from solver.numerics.fields import tag_field
from solver.physics import kinetics
from solver.physics.furnace import solve_furnace
from solver.physics.inelastic import InelasticProblem
from solver.physics.thermoelastic import ThermoElasticProblem
from solver.post import probes, verdict
from solver.post.interface import InterfaceProbe, track_peaks
from solver.stages.schedule import (
    TimeStep,
    arrival_times,
    step_statistics,
    time_steps,
    with_steps_at,
)

logger = logging.getLogger(__name__)

COOL_DOWN_STEPS = 12  # time steps of the mechanics over the furnace's cool-down
# the problem's counts of its (sub-)steps, which the summary reports and a checkpoint keeps
STEP_COUNTERS = ("step_cuts", "rejected_steps", "step_sizes")


class ProcessStage:
    """The schedule of a case on its mesh, and the one loop that steps the problem along it.

    furnace: follow the furnace's lag where the case has a [furnace] (the pull-off's process
    stage has never followed it, and does not). output: put time steps at [output]'s listed
    times and temperatures, and choose the steps whose fields are written (output_steps:
    those, every output.every-th, and the last).
    """

    def __init__(self, case, emesh, furnace: bool = True, output: bool = False):
        self.case, self.emesh = case, emesh
        self.problem = make_problem(emesh, case)
        self.inelastic = isinstance(self.problem, InelasticProblem)
        logger.info("%s problem: %d displacement DOFs (P%d)",
                    "inelastic" if self.inelastic else "thermo-elastic", self.problem.dofs,
                    case.solver.degree)
        steps = time_steps(case.schedule, case.solver.temperature_increment,
                           case.solver.hold_steps if self.inelastic else 1)
        self.furnace = None  # the furnace's temperature history, where followed
        if furnace and case.furnace is not None:
            steps, self.furnace = _follow_furnace(case, steps, emesh.mesh.comm)
        self.output_steps = set()
        if output:
            steps, self.output_steps = self._output_steps(steps)
        self.steps = steps
        self.times = np.array([step.time for step in steps])
        self.temperatures = np.array([step.temperature for step in steps])
        self.eigenstrains = process_eigenstrains(case, self.times, self.temperatures)
        self.step = 0  # the time step the problem is at: a new one is at the stress-free start
        self.state = None  # the problem's state after the last step solved
        self.newton_iterations = 0

    def _output_steps(self, steps):
        """The steps with [output]'s listed times and temperatures among them, and the
        indices of the steps whose fields are written."""
        settings = self.case.output
        if self.furnace is not None:
            path = (self.furnace.times, self.furnace.temperatures[self.furnace.follow])
            temperature_at = self.furnace.temperature_at
        else:
            segments = self.case.schedule.segments()
            path = (np.concatenate([[0.0], np.cumsum([s.duration for s in segments])]),
                    [self.case.schedule.start] + [s.end_temperature for s in segments])

            def temperature_at(time):
                return self.case.schedule.temperature_at([time])[0]
        times = list(settings.at_times)
        for temperature in settings.at_temperatures:
            arrivals = arrival_times(*path, temperature)
            if not arrivals:
                logger.warning("output.at_temperatures: the unit cell never reaches %.2f K "
                               "(it lags the furnace): no fields there", temperature)
            times += arrivals
        steps, at = with_steps_at(steps, times, temperature_at)
        last = len(steps) - 1
        every = set(range(0, last + 1, settings.every)) if settings.every else set()
        return steps, at | every | {last}

    def advance(self, indices, hooks=()):
        """Step the problem to the time steps `indices` in turn, each from the one before
        (the first from self.step); after each, every hook(index, step, state, iterations)."""
        previous = self.steps[self.step].time
        for index in indices:
            step = self.steps[index]
            self.state, iterations = self.problem.advance(
                step.temperature, step.time - previous,
                {name: strains[index] for name, strains in self.eigenstrains.items()})
            previous = step.time
            self.step = index
            self.newton_iterations += iterations
            for hook in hooks:
                hook(index, step, self.state, iterations)
        return self.state

    def load(self) -> dict:
        """The load at the step the problem is at, for an incomplete result."""
        step = self.steps[self.step]
        return {"time": step.time, "temperature": step.temperature}

    def final_stress(self, hooks=()) -> fem.Function:
        """The stress at the end of the schedule, as a DG (3x3) field, from the step the
        problem is at (hooks: as advance's)."""
        last = len(self.steps) - 1
        # elasticity has no history: the last step alone gives the same state
        self.advance(range(self.step + 1, last + 1) if self.inelastic else [last], hooks)
        return self.problem.stress_into(self.stress_field())

    def stress_field(self) -> fem.Function:
        """A cell-wise (DG, one degree below the displacement) 3x3 stress field."""
        return fem.Function(fem.functionspace(self.emesh.mesh,
                                              ("DG", self.case.solver.degree - 1, (3, 3))))

    def bending_summary(self) -> dict:
        """The summary's part "bending" (layer stacks only): the curvature of the bottom."""
        case, emesh = self.case, self.emesh
        if not geometry_kind(case).is_layer_stack:
            return {}
        bottom = emesh.facet_tags.indices[
            emesh.facet_tags.values == emesh.geometry.facet_groups["bottom"]]
        return {"bending": probes.bending_curvature(
            self.problem.u, bottom, case.geometry.length, getattr(case.geometry, "width", None))}


def _follow_furnace(case, steps, comm):
    """The unit cell lives at one position of a roll or stack that lags the furnace: the
    steps (and those of the cool-down) at the temperature there; and that history."""
    end = steps[-1].time
    history = solve_furnace(
        case.furnace, lambda t: float(case.schedule.temperature_at([t])[0]),
        end + case.furnace.cool_down, case.furnace.time_step, comm,
        breakpoints=np.cumsum([segment.duration for segment in case.schedule.segments()]),
        solver=case.solver)
    if case.furnace.cool_down > 0:
        steps = steps + [TimeStep(end + case.furnace.cool_down * k / COOL_DOWN_STEPS,
                                  steps[-1].temperature, len(case.schedule.steps), "cool-down")
                         for k in range(1, COOL_DOWN_STEPS + 1)]
    return [replace(step, temperature=float(history.temperature_at(step.time)))
            for step in steps], history


@dataclass
class ProcessResult:
    """What the process stage of `sinter run` hands on: the stage at its final state, the
    final stress (DG 3x3), the interface probe, and its part of the summary."""

    stage: ProcessStage
    stress: fem.Function
    probe: InterfaceProbe
    summary: dict


def run_process(case, emesh, workdir: Path | None, progress: bool = True,
                saved: Path | None = None, checkpoint_every: int = 0,
                resume: bool = False) -> ProcessResult:
    """The process stage of `sinter run`: the fields at the steps [output] chooses
    (fields.xdmf and/or the VTX files), history.csv at every step, the interface tractions
    (interface.csv) and their peaks over the history, furnace.csv and the kinetics; a
    checkpoint at `saved` every `checkpoint_every` steps (0: never), or, with resume,
    continuing from it; the final state in state.npz, the start of a later stage. workdir
    None: no files, the summary part alone (the refined meshes of --convergence).

    A stop (SIGINT/SIGTERM, solver/stopping.py) at a step boundary writes the checkpoint at
    `saved`; a solve that step cuts cannot cure ends the stage at the last converged step.
    Either way the files above are written up to that step and RunStopped is raised."""
    stage = ProcessStage(case, emesh, output=True)
    case_hash = hash_of(case)
    history, peaks, von_mises_peaks = [], {}, {}
    if resume:
        resumed = checkpoint.read(saved, stage.problem)
        if resumed["case_hash"] != case_hash:
            raise UserError(f"{saved}: the checkpoint belongs to another version of the case")
        history, peaks = resumed["history"], resumed["peaks"]
        von_mises_peaks = resumed.get("von_mises_peaks", {})  # not in older checkpoints
        stage.newton_iterations, stage.step = resumed["newton_iterations"], resumed["step"]
        for counter, value in resumed.get("counters", {}).items():
            setattr(stage.problem, counter, value)
    first_step, last = stage.step + 1 if resume else 0, len(stage.steps) - 1
    comm = emesh.mesh.comm

    def write_checkpoint(index, step, state, iterations):
        if index % checkpoint_every == 0 and index < last:
            checkpoint.write(saved, stage.problem, record.progress(case_hash))

    def stop_if_asked(index, step, state, iterations):
        if index < last and (signum := stopping.requested(comm)):
            if saved is not None:  # none for the refined meshes of --convergence
                checkpoint.write(saved, stage.problem, record.progress(case_hash))
            raise stopping.RunStopped(stopping.signal_reason(signum), "process", index,
                                      stage.load(), resumable=saved is not None)

    record = _Record(stage, workdir, history, peaks, von_mises_peaks)
    stopped = None
    try:  # the writers hold files open (ADIOS2 aborts if they outlive their directory)
        with log.TimeProgress(stage.steps[-1].time, enabled=progress) as bar:
            def show(index, step, state, iterations):
                bar.update(step.time, f"{step.label} {step.temperature - 273.15:6.1f} degC")

            try:
                stage.advance(range(first_step, last + 1),
                              [record, show, stop_if_asked]
                              + ([write_checkpoint] if checkpoint_every else []))
            except stopping.RunStopped as stop:
                stopped = stop
            except SolverError as error:  # on every rank: the solve's norms are global
                stopped = stopping.RunStopped(f"the solve diverged: {error}", "process",
                                              stage.step, stage.load(), resumable=False)
        if stopped is not None and record.history and stage.step >= first_step:
            record.write_last_fields()  # the last converged state, an output step or not
    finally:
        if record.fields is not None:
            record.fields.close()
    if workdir is not None:
        checkpoint.write(workdir / "state.npz", stage.problem,
                         {**record.progress(case_hash), "history": [], "peaks": {},
                          "von_mises_peaks": {}})
        if emesh.mesh.comm.rank == 0:
            record.write(workdir)
    if stopped is not None:
        raise stopped
    return ProcessResult(stage, record.stress, record.probe, _summary(stage, record))


def hash_of(case) -> str:
    """The case file's content hash: a checkpoint resumes only the case it was written by."""
    return hashlib.sha256(case.text.encode()).hexdigest()


class _Record:
    """The hook of `sinter run` at every time step: the fields at the output steps (into
    `workdir`; none where it is None), the interface tractions and their peaks, the largest
    von Mises stress of each material and its peak, a history row (the history and the
    peaks continued where a restart passes them in)."""

    def __init__(self, stage: ProcessStage, workdir: Path | None, history: list, peaks: dict,
                 von_mises_peaks: dict):
        self.stage = stage
        self.probe = InterfaceProbe(stage.emesh)
        self.stress = stage.stress_field()
        self.history, self.peaks, self.tractions = history, peaks, {}
        self.cell_stress = output.CellStress(stage.emesh.mesh)
        self.von_mises = verdict.VonMisesMaxima(self.stress, stage.emesh.cell_tags,
                                                stage.emesh.geometry.cell_materials)
        self.von_mises_final = {}  # per material: the largest von Mises stress now
        # per material: the largest over the schedule, and when
        self.von_mises_peaks = von_mises_peaks
        self.temperature = stage.case.schedule.start  # of the step being written
        case = stage.case
        self.fields = None if workdir is None else output.FieldOutput(
            workdir, "fields", "", stage.emesh, case.solver.degree,
            field_sources(stage.problem, stage.emesh, lambda: self.temperature), case.output,
            "process", times=sum(i >= stage.step for i in stage.output_steps))

    def __call__(self, index, step, state, iterations):
        case, problem = self.stage.case, self.stage.problem
        self.cell_stress.update(problem)
        if self.fields is not None and index in self.stage.output_steps:
            self.temperature = step.temperature
            self.fields.write(step.time)
        problem.stress_into(self.stress)
        self.von_mises_final = self.von_mises.evaluate()
        for name, found in self.von_mises_final.items():
            if found["max"] > self.von_mises_peaks.get(name, {"max": -1.0})["max"]:
                self.von_mises_peaks[name] = {**found, "time": step.time,
                                              "temperature": step.temperature}
        self.tractions = self.probe.tractions(self.stress, case.interface,
                                              self.stage.emesh.mesh.geometry.dim)
        step_peaks = {name: t.summary() for name, t in self.tractions.items() if t is not None}
        risks = [peaks.get("max_risk", 0.0) for peaks in step_peaks.values()]
        for name, peaks in step_peaks.items():
            track_peaks(self.peaks.setdefault(name, {}), peaks, time=step.time,
                        temperature=step.temperature)
        self.history.append([step.time, step.temperature, step.label,
                             state.out_of_plane_strain, state.face_displacement,
                             self.cell_stress.max_von_mises(), iterations, *risks])
        logger.debug("t = %.6g s, T = %.2f K: max von Mises %.4g Pa", step.time,
                     step.temperature, self.history[-1][5])

    def write_last_fields(self):
        """The fields at the step the problem is at, unless written there already."""
        step = self.stage.steps[self.stage.step]
        if not self.fields.times or self.fields.times[-1] != step.time:
            self.temperature = step.temperature
            self.fields.write(step.time)

    def progress(self, case_hash: str) -> dict:
        """The driver's progress at the problem's step, for a checkpoint."""
        stage = self.stage
        problem = stage.problem
        return {"stage": "process", "step": stage.step, "time": stage.steps[stage.step].time,
                "case_hash": case_hash, "history": self.history, "peaks": self.peaks,
                "von_mises_peaks": self.von_mises_peaks,
                "newton_iterations": stage.newton_iterations,
                # the summary's step statistics continue from these
                "counters": {name: getattr(problem, name) for name in STEP_COUNTERS
                             if hasattr(problem, name)}}

    def interfaces(self) -> dict:
        """Per interface: its materials, the tractions at the end and their peaks."""
        geometry = self.stage.emesh.geometry
        parts = {}
        for name, t in self.tractions.items():
            _, lower, upper = geometry.interfaces[name]
            parts[name] = {"materials": [geometry.cell_materials[lower],
                                         geometry.cell_materials[upper]],
                           "averaging_length": self.stage.case.interface.averaging_length,
                           **t.summary(),
                           "peak_over_history": self.peaks.get(name, {})}
        return parts

    def write(self, workdir: Path):
        """interface.csv, history.csv, furnace.csv and the kinetics (rank 0)."""
        stage = self.stage
        output.write_interface_csv(workdir / "interface.csv", self.tractions)
        output.write_table(
            workdir / "history.csv",
            ["time", "temperature", "step", "out_of_plane_strain", "face_displacement",
             "max_von_mises", "newton_iterations",
             *(f"max_risk:{name}" for name in self.tractions)],
            self.history)
        if stage.furnace is not None:
            stage.furnace.write_csv(workdir / "furnace.csv")
        kinetics.write_kinetics(workdir, kinetics.kinetic_curves(
            stage.times, stage.temperatures, stage.case.kinetics))


def _summary(stage: ProcessStage, record: _Record) -> dict:
    """The process stage's part of the summary: schedule, final, interfaces (on rank 0),
    furnace, process_window, delamination and the verdict (on every rank), the warnings of
    elastic materials beyond their flow stress (solver/post/verdict.py)."""
    case, problem, steps, state = stage.case, stage.problem, stage.steps, stage.state
    comm = stage.emesh.mesh.comm
    interfaces = record.interfaces() if comm.rank == 0 else {}
    window = kinetics.process_window(stage.times, stage.temperatures, case.kinetics,
                                     case.schedule.atmosphere,
                                     stage.emesh.geometry.cell_materials.values())
    # the interfaces are gathered on rank 0: every rank gets their conditions (and verdict)
    delamination = comm.bcast(verdict.delamination_rows(interfaces) if comm.rank == 0
                              else None)
    return {
        "schedule": {"start_temperature": case.schedule.start,
                     "end_temperature": steps[-1].temperature,
                     "duration": steps[-1].time, "time_steps": len(steps) - 1,
                     "step_cuts": getattr(problem, "step_cuts", 0),
                     **step_statistics(getattr(problem, "step_sizes", None)
                                       or np.diff(stage.times),
                                       getattr(problem, "rejected_steps", 0)),
                     "newton_iterations": stage.newton_iterations,
                     "atmosphere": case.schedule.atmosphere},
        "final": {"temperature": steps[-1].temperature,
                  "delta_temperature": state.delta_temperature,
                  "out_of_plane_strain": state.out_of_plane_strain,
                  "face_displacement": state.face_displacement,
                  "max_von_mises": record.history[-1][5],
                  "von_mises_by_material": record.von_mises_final},
        "interfaces": interfaces,
        "furnace": stage.furnace.summary() if stage.furnace is not None else None,
        "process_window": window,
        "delamination": delamination,
        "verdict": verdict.verdict(window, delamination),
        "warnings": verdict.flow_stress_warnings(case, record.von_mises_peaks),
        "outputs": record.fields.summary() if record.fields is not None else {},
    }


def field_sources(problem, emesh, temperature_now) -> dict:
    """The process stage's fields, {[output] name: fill(target)} (solver/io/output.py
    FieldOutput): displacement, stress, temperature (`temperature_now()`, uniform), material
    and the materials' internal variables."""
    material = tag_field(emesh.mesh, emesh.cell_tags)

    def temperature(target):
        target.x.array[:] = temperature_now()

    sources = {"displacement": lambda target: target.interpolate(problem.u),
               "stress": problem.stress_into, "temperature": temperature,
               "material": lambda target: target.interpolate(material)}
    for name in getattr(problem, "internal_variable_names", list)():
        sources[name] = partial(problem.internal_variable_into, name)
    return sources


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
