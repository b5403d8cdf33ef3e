"""Shared helpers: build and solve cases in-process, on whatever ranks pytest runs on."""

import csv
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

import gmsh
import numpy as np
import pytest
from dolfinx import fem
from mpi4py import MPI

from meshes.built import MICROMETRE
from solver.case import load_case, load_case_text
from solver.geometry.mesh import build_mesh
from solver.numerics.fields import interpolate_expression
from solver.physics.thermoelastic import ThermoElasticProblem
from solver.post import probes
from solver.stages.pipeline import run_case, run_pulloff
from solver.sweep.plan import case_toml

REPO = Path(__file__).resolve().parents[1]
CASES = REPO / "cases"
SHIPPED = sorted(path.name for path in CASES.glob("*.toml") if not path.name.startswith("sweep-"))


@dataclass
class Solved:
    case: object
    emesh: object
    problem: ThermoElasticProblem
    state: object

    def stress(self, degree=None) -> fem.Function:
        """The 3x3 stress in a DG space that holds it exactly (degree - 1)."""
        degree = self.case.solver.degree - 1 if degree is None else degree
        space = fem.functionspace(self.emesh.mesh, ("DG", degree, (3, 3)))
        return interpolate_expression(fem.Function(space), self.problem.stress_tensor_3d())


def solve_final(case, comm=MPI.COMM_WORLD) -> Solved:
    """Build the mesh (over comm) and solve for the schedule's final temperature."""
    emesh = build_mesh(case, comm)
    problem = ThermoElasticProblem(emesh, case)
    state = problem.solve(case.schedule.end_temperature - case.schedule.start)
    return Solved(case, emesh, problem, state)


def fitted_mid_layer_stress(solved: Solved, x: float, component=(0, 0), samples=9):
    """sigma_xx at mid-height of each layer, from a line fitted through the layer.

    The stress varies linearly through a bending layer (and is piecewise polynomial in the
    elements), so a straight line through samples across the layer is compared, not the
    value of the nearest cell.
    """
    geometry = solved.case.geometry
    stress = solved.stress()
    dim = solved.case.case.dim
    bottom, results = 0.0, []
    for layer in geometry.layers:
        top = bottom + layer.thickness
        heights = np.linspace(bottom, top, samples + 2)[1:-1]
        if dim == 2:
            points = np.column_stack([np.full(samples, x), heights])
        else:
            points = np.column_stack([np.full(samples, x),
                                      np.full(samples, geometry.width / 2 + 0.123e-6),
                                      heights])
        values = probes.probe(stress, points)[:, 3 * component[0] + component[1]]
        slope, intercept = np.polyfit(heights, values, 1)
        results.append(slope * (bottom + top) / 2 + intercept)
        bottom = top
    return np.array(results)


def layers_case(layers, *, length="400 um", mesh_size="2 um", plane="strain", degree=2,
                start="400 degC", end="25 degC", dim=2, width=None, extra=""):
    """A `layers` case from (material, thickness) pairs."""
    rows = ",\n".join(f'  {{ material = "{m}", thickness = "{t}" }}' for m, t in layers)
    plane_line = f'plane = "{plane}"' if dim == 2 else ""
    width_line = f'width = "{width}"' if width else ""
    return load_case_text(f"""
[case]
name = "layers-test"
dim = {dim}
{plane_line}
[geometry]
kind = "layers"
length = "{length}"
{width_line}
layers = [
{rows}
]
mesh_size = "{mesh_size}"
[schedule]
start = "{start}"
steps = [ {{ to = "{end}", rate = "5 K/min" }} ]
[solver]
degree = {degree}
{extra}
""", file="test-layers.toml")


@pytest.fixture
def shipped_bilayer():
    return load_case(CASES / "bilayer-cu-pi.toml")


@pytest.fixture
def gmsh_model():
    """A fresh Gmsh model for a builder test, finalized afterwards."""
    gmsh.initialize()
    gmsh.option.setNumber("General.Terminal", 0)
    gmsh.model.add("test")
    try:
        yield
    finally:
        gmsh.finalize()


def in_metres(sizes_um: dict[str, float], **changes_um: float) -> dict[str, float]:
    """Builder parameters given in micrometres, in the metres the builders take."""
    return {name: value * MICROMETRE for name, value in {**sizes_um, **changes_um}.items()}


def one_step_case(tmp_path, name: str, solver_lines: str = "") -> Path:
    """A copy of the shipped elastic case `name` (without a [solver] table) cooled in one step:
    the same end state as in 10 K steps, in a fraction of the time."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    case_file = tmp_path / f"{name}.toml"
    case_file.write_text((CASES / f"{name}.toml").read_text()
                         + f'\n[solver]\ntemperature_increment = "375 K"\n{solver_lines}')
    return case_file


def former_recurved_case(tmp_path, solver_lines: str = "") -> Path:
    """one_step_case of recurved-2d on the interface mesh it shipped with before issue 14
    (interface_mesh_size 0.12 um, 9,710 DOFs): a quarter of the DOFs, and the mesh on which
    Gmsh's high-order optimization still curves the mix's cusp at the foot fillet well (at
    0.04 um the curved mesh gives a risk index of 242 against 0.815 straight; at 0.03 um Gmsh
    aborts)."""
    case_file = one_step_case(tmp_path, "recurved-2d", solver_lines)
    text = case_file.read_text()
    shipped = 'interface_mesh_size = "0.04 um"'
    assert shipped in text
    case_file.write_text(text.replace(shipped, 'interface_mesh_size = "0.12 um"'))
    return case_file


def recurved_undercut_by_hand(profile) -> float:
    """The undercut of a RecurvedProfile (the head's width below its widest section, less the
    projection there) from its pieces' areas: the foot fillets (a square less a quarter
    disc), the straight neck, and the smoothstep widening, whose half-width averages to the
    mean of the neck's and the head's."""
    neck, head, radius = profile.neck_width / 2, profile.head_width / 2, profile.fillet_radius
    widest, neck_top = profile.widest_height, profile.neck_height
    taken = ((neck + radius) * radius - math.pi * radius**2 / 4 + neck * (neck_top - radius)
             + (neck + head) / 2 * (widest - neck_top))
    return 2 * (head * widest - taken)


def _built_curve_points(curve: int, count: int = 20001) -> np.ndarray:
    """Points along a built OpenCASCADE curve, in its direction (a negative tag: reversed)."""
    low, high = gmsh.model.getParametrizationBounds(1, abs(curve))
    parameters = np.linspace(low[0], high[0], count)
    points = np.reshape(gmsh.model.getValue(1, abs(curve), parameters), (-1, 3))
    return points[::-1] if curve < 0 else points


def built_area(physical_tag: int) -> float:
    """Area of a 2D physical group from the built OpenCASCADE boundary curves (Green's
    theorem on densely evaluated curves), independent of the mesh and of the builder's
    helpers. (gmsh.model.occ.getMass is not used: on the thin bands between splines of the
    film builders it is off by up to 2 %.)"""
    area = 0.0
    for surface in gmsh.model.getEntitiesForPhysicalGroup(2, physical_tag):
        signed = 0.0
        for _, curve in gmsh.model.getBoundary([(2, surface)], oriented=True, combined=False):
            x, y = _built_curve_points(curve)[:, :2].T
            signed += 0.5 * float(np.sum(x[:-1] * y[1:] - x[1:] * y[:-1]))
        area += abs(signed)
    return area


def built_length(physical_tag: int) -> float:
    """Length of a 1D physical group from the built OpenCASCADE curves."""
    return sum(float(np.linalg.norm(np.diff(_built_curve_points(curve), axis=0), axis=1).sum())
               for curve in gmsh.model.getEntitiesForPhysicalGroup(1, physical_tag))


def quick_case(path):
    """A shipped case with its schedule in as few steps as its materials allow: ramps in
    one step (`solver.temperature_increment` = 1000 K, larger than any ramp), one step per
    hold; a 3D pull-off on a coarse mesh and shortened."""
    document = tomllib.loads(Path(path).read_text())
    document.setdefault("solver", {}).update(temperature_increment="1000 K", hold_steps=1)
    if "pulloff" in document and document["case"].get("dim") == 3:
        # the 3D pull-off takes far longer than the suite's budget as shipped: its quick form
        # is the same cell on a coarse mesh (2,063 tetrahedra), through its first two steps
        document["geometry"].update(mesh_size="2 um", interface_mesh_size="0.5 um")
        document["pulloff"].update(end_displacement="0.1 um", steps=2)
    return load_case_text(case_toml(document), file=path)


def energy_imbalance(out) -> float:
    """The largest difference over the steps of pulloff.csv in `out` between the external
    work and the elastic energy + the recoverable cohesive energy + the dissipation, over
    the total work."""
    rows = list(csv.DictReader((Path(out) / "pulloff.csv").open()))
    unit = "J_per_m" if "external_work_J_per_m" in rows[0] else "J"  # per unit depth in 2D

    def energy(row, name):
        return float(row[f"{name}_{unit}"])

    work = np.array([energy(row, "external_work") for row in rows])
    stored = np.array([energy(row, "elastic_energy") + energy(row, "cohesive_free_energy")
                       + energy(row, "dissipated_energy") for row in rows])
    return float(np.abs(work - stored).max() / work.max())


def toolchain() -> dict:
    """The versions that make the numbers of a run: Gmsh makes the meshes (another version,
    other meshes), DOLFINx the discretization."""
    import dolfinx

    return {"dolfinx": dolfinx.__version__, "gmsh": gmsh.__version__}


def run_quick(name: str, out, comm) -> dict:
    """Run the shipped case `name` quick (process, swelling or pull-off); its summary."""
    case = quick_case(CASES / name)
    if case.pulloff is not None:
        return run_pulloff(case, str(out), comm=comm)
    return run_case(case, str(out), comm=comm, progress=False)


# Summary keys whose values may depend on the ranks, the machine or the solver's path to the
# same solution, not on the solution: times, the run's description, the counts of Newton
# iterations and of cut steps (a convergence test or a line search's comparison can flip with
# the roundoff, and a new solver may take other iterations to the same tolerance), and what
# the run wrote (`outputs`: files, fields and output times of [output]; test_outputs checks it).
SKIPPED_KEYS = frozenset({
    "wall_time", "process_time", "ranks", "host", "case_file", "sinterfem_version",
    "dolfinx_version", "newton_iterations", "krylov_iterations", "step_cuts", "rejected_steps",
    "outputs",
})


def reference_numbers(summary: dict, prefix: str = "") -> dict:
    """Every number of a summary that must not depend on the ranks or the machine, by dotted
    key (list items by index): ints, floats, booleans and None (a quantity that is absent, such
    as a delamination that did not happen); strings (names, paths, versions) and the keys in
    SKIPPED_KEYS are left out."""
    numbers = {}
    items = summary.items() if isinstance(summary, dict) else enumerate(summary)
    for key, value in items:
        if key in SKIPPED_KEYS:
            continue
        dotted = f"{prefix}{key}"
        if isinstance(value, dict | list | tuple):
            numbers.update(reference_numbers(value, f"{dotted}."))
        elif value is None or isinstance(value, bool | int | float):
            numbers[dotted] = value
    return numbers


# Recorded and recomputed summary numbers agree to RELATIVE, or to the absolute floor of
# ABSOLUTE_FLOOR for the numbers that are zero up to roundoff (by their last key: the recorded
# values are then ~1e-15, and their relative differences meaningless). Every other number,
# exact zeros included, is compared to RELATIVE alone: the recorded values go down to ~1e-18
# (volumes in m^3), so no absolute floor fits them all.
RELATIVE = 1e-6
ABSOLUTE_FLOOR = {
    # the force after full debonding over the peak force: 0 up to the roundoff of the
    # reaction (pulloff-flat-2d: -2.4e-15 on 1 rank, 2.7e-14 on 2; pulloff-plain-2d: -1.9e-14,
    # -1.2e-14)
    "load_after_debond": 1e-9,
}


def agrees(key: str, recorded, now) -> bool:
    """Whether the number `now` of the dotted key agrees with the `recorded` one: booleans
    and None exactly, numbers to RELATIVE (or ABSOLUTE_FLOOR) and finite."""
    if isinstance(recorded, bool) or recorded is None or isinstance(now, bool) or now is None:
        return recorded is now
    floor = ABSOLUTE_FLOOR.get(key.rsplit(".", 1)[-1], 0.0)
    return math.isfinite(now) and abs(now - recorded) <= max(RELATIVE * abs(recorded), floor)


def relative_difference(a, b) -> float:
    """|a - b| relative to the larger of |a|, |b|; 0 or inf for booleans and None."""
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return 0.0 if a is b or (type(a) is type(b) and a == b) else math.inf
    if a == b:
        return 0.0
    return abs(a - b) / max(abs(a), abs(b))
