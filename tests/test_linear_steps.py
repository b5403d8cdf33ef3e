"""What a linear schedule step costs: load patterns, re-assembly, preconditioner reuse, and
the linear solver's tolerance (docs/numerics.md, "Linear steps").

The elastic problem solves once per load pattern (a direction of the materials' eigenstrain
vector) and operator, and combines the patterns for every step; each step must equal a
fresh solve of that step. The small cells here (coarse recurved unit cells with a free face
and, in 2D, generalized plane strain; a two-layer strip) keep the tests fast.
"""

import tomllib

import numpy as np
import pytest
import ufl
from dolfinx import fem
from mpi4py import MPI
from test_inelastic import STIFF_PLASTIC_COPPER

from solver.case import load_case_text
from solver.geometry.mesh import build_mesh
from solver.materials.constitutive import as_table
from solver.physics.thermoelastic import ThermoElasticProblem
from solver.stages.process import ProcessStage, make_problem
from solver.sweep.plan import case_toml

from conftest import CASES, layers_case

# The combination of load patterns and a fresh solve differ by the Krylov solver's error
# (rtol 1e-10 on the preconditioned residual; measured up to 3e-10 here)
SAME_SOLUTION = 1e-8

CTE_TABLE = """
[materials.polyimide]
thermal_expansion = { temperatures = ["20 degC", "400 degC"], values = ["40e-6 1/K", "60e-6 1/K"] }
thermal_expansion_kind = "secant"
thermal_expansion_reference = "20 degC"
"""

# E of the polyimide changes between 200 and 300 degC only (constant outside the table)
MODULUS_TABLE = """
[materials.polyimide]
youngs_modulus = { temperatures = ["200 degC", "300 degC"], values = ["2.5 GPa", "2.0 GPa"] }
"""


def recurved_cell(dim: int, solver: dict | None = None):
    """The shipped recurved cell, coarse: (2D) ~2,700 P2 DOFs, (3D) ~12,000."""
    document = tomllib.loads((CASES / f"recurved-{dim}d.toml").read_text())
    document["geometry"].update(mesh_size="3 um" if dim == 3 else "2 um",
                                interface_mesh_size="0.6 um" if dim == 3 else "0.3 um")
    document["solver"] = {"temperature_increment": "25 K", **(solver or {})}
    return load_case_text(case_toml(document), file=f"recurved-{dim}d.toml")


def strip(extra: str = "", increment: str = "25 K"):
    return layers_case([("copper", "8 um"), ("polyimide", "8 um")], length="40 um",
                       mesh_size="4 um", plane="generalized",
                       extra=f'temperature_increment = "{increment}"\n{extra}')


def assert_same_state(problem, reference, state, reference_state):
    scale = np.abs(reference.u.x.array).max()
    assert scale > 0.0
    np.testing.assert_allclose(problem.u.x.array, reference.u.x.array, rtol=0,
                               atol=SAME_SOLUTION * scale)
    for name in ("out_of_plane_strain", "face_displacement"):
        assert getattr(state, name) == pytest.approx(getattr(reference_state, name),
                                                     rel=SAME_SOLUTION, abs=1e-20)


def test_a_cool_down_in_many_steps_is_one_load_pattern():
    """Constant CTEs, no process eigenstrain: every step's eigenstrain vector is a multiple
    of the first, so 15 steps take one load pattern (and one unit solution per global
    unknown: the free face, the out-of-plane strain); the end state is the one-step one."""
    case = recurved_cell(2)
    emesh = build_mesh(case)
    stage = ProcessStage(case, emesh)
    assert len(stage.steps) == 16
    stage.advance(range(1, len(stage.steps)))
    problem = stage.problem
    assert (problem.pattern_solves, problem.linear_solves, problem.assemblies) == (1, 3, 1)
    one_step = ThermoElasticProblem(emesh, case)
    state = one_step.solve(case.schedule.end_temperature - case.schedule.start)
    assert_same_state(problem, one_step, stage.state, state)
    assert abs(state.face_displacement) > 0.0 and abs(state.out_of_plane_strain) > 0.0


@pytest.mark.parametrize("load", ["cte table", "process eigenstrain"])
def test_eigenstrains_of_changing_direction_take_one_pattern_per_material(load):
    """A secant CTE table in the polyimide, or a process eigenstrain growing unlike the
    thermal strains: the eigenstrain vector turns from step to step, and the two materials'
    two patterns span every step. Each step equals a fresh solve of it."""
    case = strip(CTE_TABLE if load == "cte table" else "", increment="75 K")
    emesh = build_mesh(case)
    problem = ThermoElasticProblem(emesh, case)
    start = case.schedule.start
    temperatures = start - 75.0 * np.arange(1, 6)
    for step, temperature in enumerate(temperatures):
        eigenstrain = {"polyimide": -2e-4 * step**2} if load == "process eigenstrain" else {}
        state, _ = problem.advance(temperature, 60.0, eigenstrain)
        fresh = ThermoElasticProblem(emesh, case)
        fresh_state, _ = fresh.advance(temperature, 60.0, eigenstrain)
        assert_same_state(problem, fresh, state, fresh_state)
    assert problem.pattern_solves == 2  # the directions did turn, and no more than 2
    assert problem.assemblies == 1


def test_a_modulus_table_reassembles_only_where_the_modulus_changes():
    """E of the polyimide tabulated between 200 and 300 degC, cooled from 400 to 25 degC in
    25 K steps: the operator is assembled again at the steps where E differs from the step
    before (275, 250, 225, 200 degC), the preconditioner kept while it converges fast; every
    step equals a fresh solve at its temperature."""
    case = strip(MODULUS_TABLE)
    emesh = build_mesh(case)
    stage = ProcessStage(case, emesh)
    polyimide = as_table(case.materials["polyimide"].youngs_modulus)
    moduli = [float(polyimide(step.temperature)) for step in stage.steps]
    changes = sum(a != b for a, b in zip(moduli, moduli[1:], strict=False))
    assert changes == 4

    def compare(index, step, state, iterations):
        fresh = ThermoElasticProblem(emesh, case)
        assert_same_state(stage.problem, fresh, state,
                          fresh.solve(step.temperature - case.schedule.start))

    stage.advance(range(1, len(stage.steps)), [compare])
    problem = stage.problem
    assert problem.assemblies == 1 + changes
    setups = problem.preconditioner
    assert setups.reuses >= 1
    assert setups.fresh_setups + setups.reuses - setups.retries == 1 + changes
    # a pattern per operator (the CTEs are constant): the start's and the four new ones
    assert problem.pattern_solves == 1 + changes


def stress_numbers(problem) -> np.ndarray:
    """The largest magnitude and the L2 norm of the 3x3 stress (the same on every rank)."""
    msh = problem.emesh.mesh
    sigma = problem.stress_tensor_3d()
    space = fem.functionspace(msh, ("DG", 1, (3, 3)))
    stress = fem.Function(space)
    problem.stress_into(stress)
    owned = space.dofmap.index_map.size_local * space.dofmap.index_map_bs
    largest = msh.comm.allreduce(np.abs(stress.x.array[:owned]).max(initial=0.0), op=MPI.MAX)
    norm = np.sqrt(msh.comm.allreduce(fem.assemble_scalar(fem.form(
        ufl.inner(sigma, sigma) * ufl.dx))))
    return np.array([largest, norm])


@pytest.mark.parametrize("dim", [2, 3])
def test_the_default_tolerance_gives_the_tight_one_to_1e6(dim):
    """The default [solver] rtol (1e-10) against 1e-12 on a unit cell with a free face (2D:
    also the out-of-plane strain): the global unknowns and the stresses' largest value and
    norm within 1e-6 (measured: 2e-8 or less)."""
    results = []
    for solver in ({}, {"rtol": 1e-12}):
        case = recurved_cell(dim, solver)
        emesh = build_mesh(case)
        problem = ThermoElasticProblem(emesh, case)
        state = problem.solve(case.schedule.end_temperature - case.schedule.start)
        results.append(np.array([state.face_displacement, state.out_of_plane_strain,
                                 *stress_numbers(problem)]))
    default, tight = results
    np.testing.assert_allclose(default, tight, rtol=1e-6)


def test_newton_keeps_the_preconditioner_and_converges_alike():
    """Plastic copper on polyimide: the Newton steps reuse the multigrid preconditioner
    between iterations and steps (rebuilding it when the iterations grow), and end where a
    fresh preconditioner in every iteration ends, within Newton's tolerance."""
    plastic = STIFF_PLASTIC_COPPER.replace("10 GPa", "40 MPa")
    case = layers_case([("copper", "8 um"), ("polyimide", "8 um")], length="40 um",
                       mesh_size="4 um", plane="generalized",
                       extra=f'temperature_increment = "75 K"\n{plastic}')
    emesh = build_mesh(case)
    runs = []
    # growth 0: every solve that iterates is "slow", the next tangent's setup fresh (only
    # an elastic step, whose unit solutions' guesses are exact, keeps it)
    for growth in (1.5, 0.0):
        problem = make_problem(emesh, case)
        problem.linearization.preconditioner.growth = growth
        iterations = sum(problem.advance(case.schedule.start - 75.0 * k, 60.0, {})[1]
                         for k in range(1, 6))
        runs.append((problem, iterations))
    (reusing, iterations), (fresh, fresh_iterations) = runs
    assert iterations == fresh_iterations > 5  # the copper yielded: more than one per step
    reused, renewed = reusing.linearization.preconditioner, fresh.linearization.preconditioner
    assert reused.fresh_setups + reused.reuses - reused.retries == iterations
    assert reused.reuses > reused.fresh_setups
    assert renewed.fresh_setups > reused.fresh_setups
    scale = np.abs(fresh.u.x.array).max()
    np.testing.assert_allclose(reusing.u.x.array, fresh.u.x.array, rtol=0, atol=1e-7 * scale)


@pytest.mark.mpi
def test_load_patterns_give_the_same_run_on_one_and_two_ranks():
    """The 15-step cool-down of the coarse 2D cell on all ranks and on rank 0 alone: one
    load pattern each, the global unknowns and the stresses within 1e-6."""
    results = []
    for comm in (MPI.COMM_WORLD, MPI.COMM_SELF):
        if comm is MPI.COMM_SELF and MPI.COMM_WORLD.rank != 0:
            break
        case = recurved_cell(2)
        stage = ProcessStage(case, build_mesh(case, comm))
        state = stage.advance(range(1, len(stage.steps)))
        assert stage.problem.pattern_solves == 1
        results.append(np.array([state.face_displacement, state.out_of_plane_strain,
                                 *stress_numbers(stage.problem)]))
    if MPI.COMM_WORLD.rank == 0:
        np.testing.assert_allclose(results[0], results[1], rtol=1e-6)
