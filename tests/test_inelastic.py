"""The inelastic solver (quadrature-point materials, Newton): elastic and viscoelastic
limits against closed forms, and a full sintering schedule on 1 and 2 ranks."""

import json
import subprocess
import sys

import numpy as np
import pytest
from dolfinx import fem
from test_constitutive import TABULATED_POLYIMIDE
from test_layers import TOLERANCE, curvature

from solver.case import load_case, load_case_text
from solver.geometry.mesh import build_mesh
from solver.materials.behaviour import material_model
from solver.materials.constitutive import as_table
from solver.physics.inelastic import InelasticProblem
from solver.physics.thermoelastic import ThermoElasticProblem
from solver.post.closed_forms import plane_strain_layers
from solver.stages.process import make_problem

from conftest import CASES, REPO, layers_case

SCHEDULE_CASE = CASES / "sinter-schedule-2d.toml"


def solve_inelastic(case, steps):
    """March through (temperature, dt) steps with the case's material behaviours."""
    emesh = build_mesh(case)
    problem = make_problem(emesh, case)
    assert isinstance(problem, InelasticProblem)
    for temperature, dt in steps:
        problem.advance(temperature, dt, {})
    return emesh, problem


@pytest.mark.parametrize("name", ["bilayer-cu-pi.toml", "recurved-2d.toml"])
def test_elastic_materials_give_the_linear_solution(name):
    case = load_case(CASES / name)
    emesh = build_mesh(case)
    linear = ThermoElasticProblem(emesh, case)
    linear.solve(case.schedule.end_temperature - case.schedule.start)
    models = {n: material_model(case.materials[n]) for n in emesh.geometry.cell_materials.values()}
    problem = InelasticProblem(
        emesh, case, models,
        lambda n, t: case.materials[n].thermal_expansion * (t - case.schedule.start),
        case.schedule.start)
    result = problem.step(case.schedule.end_temperature, 60.0)
    assert result.newton_iterations == 1  # linear: one Newton step
    difference = np.abs(problem.u.x.array - linear.u.x.array).max()
    assert difference < 1e-8 * np.abs(linear.u.x.array).max()


VISCOELASTIC_BILAYER = """
[materials.polyimide]
behaviour = "viscoelastic"
[materials.polyimide.viscoelasticity]
prony = [ { weight = 0.6, time = "100 s" } ]
shift = "none"
"""


def test_viscoelastic_layer_relaxes_from_the_instantaneous_to_the_long_term_solution():
    """A sudden cooling, then a hold of 100 relaxation times: the curvature starts as the
    elastic one with the glassy modulus E0 and ends as the one with E_inf = 0.4 E0
    (correspondence principle: the long-time limit of a step load)."""
    case = layers_case([("copper", "8 um"), ("polyimide", "8 um")], length="160 um",
                       mesh_size="2 um", extra=VISCOELASTIC_BILAYER)
    emesh = build_mesh(case)
    problem = make_problem(emesh, case)
    cold = case.schedule.end_temperature
    delta_t = cold - case.schedule.start
    cu, pi = case.materials["copper"], case.materials["polyimide"]

    def expected(polyimide_modulus):
        return plane_strain_layers([8e-6, 8e-6], [cu.youngs_modulus, polyimide_modulus],
                                   [cu.poisson_ratio, pi.poisson_ratio],
                                   [cu.thermal_expansion, pi.thermal_expansion],
                                   delta_t).curvature

    problem.advance(cold, 1e-6, {})  # sudden: no time to relax

    class Solved:  # what test_layers.curvature reads
        pass

    solved = Solved()
    solved.emesh, solved.problem, solved.case = emesh, problem, case
    assert curvature(solved) == pytest.approx(expected(pi.youngs_modulus), rel=TOLERANCE)
    growth = 1.5 ** np.arange(30)
    for dt in growth / growth.sum() * 100 * 100.0:
        problem.advance(cold, dt, {})
    assert curvature(solved) == pytest.approx(expected(0.4 * pi.youngs_modulus),
                                              rel=TOLERANCE)


def _summary_numbers(path):
    summary = json.loads(path.read_text())
    return summary, {
        "max_von_mises": summary["final"]["max_von_mises"],
        "out_of_plane_strain": summary["final"]["out_of_plane_strain"],
        "face_displacement": summary["final"]["face_displacement"],
        **{f"{name}.{key}": value for name, data in summary["interfaces"].items()
           for key, value in data.items() if isinstance(value, float)},
    }


def test_full_schedule_is_the_same_on_one_and_two_ranks(tmp_path):
    """Ramp, hold, cool on the recurved cell with plastic, annealing Cu and a viscoelastic
    mix: every summary number equal on 1 and 2 ranks (1e-6)."""
    results = []
    for ranks in (1, 2):
        out = tmp_path / f"np{ranks}"
        command = [sys.executable, "-m", "solver.cli", "run", str(SCHEDULE_CASE),
                   "--out", str(out), "-q", "--no-progress"]
        if ranks > 1:
            command = ["mpirun", "-n", str(ranks), *command]
        result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stderr
        results.append(_summary_numbers(out / "summary.json"))
    (serial_summary, serial), (_, parallel) = results
    assert serial_summary["schedule"]["newton_iterations"] > serial_summary["schedule"][
        "time_steps"]  # the materials were nonlinear
    for key, value in serial.items():
        assert parallel[key] == pytest.approx(value, rel=1e-6), key


FLAT_CELL = """
[case]
name = "flat-cell"
dim = 2
plane = "strain"
[geometry]
kind = "flat"
pitch = "4 um"
foil_thickness = "{foil} um"
mix_thickness = "{layer} um"
mesh_size = "2 um"
interface_mesh_size = "2 um"
mix_material = "polyimide"
[schedule]
start = "25 degC"
steps = [ {{ to = "400 degC", rate = "5 K/min" }} ]
[solver]
degree = 1
time_error_tolerance = {tolerance}
{materials}
"""

STIFF_PLASTIC_COPPER = """
[materials.copper]
behaviour = "plastic"
[materials.copper.plasticity]
temperatures = ["25 degC"]
yield_stress = ["10 GPa"]
annealed_yield_stress = ["10 GPa"]
"""


def flat_cell(materials, foil=4.0, layer=4.0, tolerance=0.0):
    return load_case_text(FLAT_CELL.format(foil=foil, layer=layer, tolerance=tolerance,
                                           materials=materials), file="flat-cell.toml")


def layer_stress_xx(problem, emesh, material):
    """sigma_xx averaged over the cells of a material (uniform in a flat cell)."""
    stress = fem.Function(fem.functionspace(emesh.mesh, ("DG", 0, (3, 3))))
    problem.stress_into(stress)
    tags = emesh.cell_tags
    tag = {name: tag for tag, name in emesh.geometry.cell_materials.items()}[material]
    cells = tags.indices[tags.values == tag]
    return stress.x.array.reshape(-1, 3, 3)[cells, 0, 0]


@pytest.mark.parametrize("inelastic", [False, True])
def test_constrained_layer_with_temperature_dependent_properties(inelastic):
    """A polyimide layer with tabulated E, nu and secant CTE on a copper foil (flat cell,
    plane strain: one uniform in-plane strain, zero net force): at every temperature the
    total stress sigma = C(T) : (eps - eps_th(T)) of the closed form,
    sigma = E/(1 - nu^2) (eps_xx - (1 + nu) eps_th), eps_xx from the force balance, with
    E, nu interpolated in the tables and eps_th from the secant's reference. Linear
    (ThermoElasticProblem) and Newton (InelasticProblem, copper plastic but far below its
    yield) alike, within 1e-6."""
    case = flat_cell(TABULATED_POLYIMIDE + (STIFF_PLASTIC_COPPER if inelastic else ""))
    emesh = build_mesh(case)
    problem = make_problem(emesh, case)
    assert isinstance(problem, InelasticProblem) == inelastic
    cu, pi = case.materials["copper"], case.materials["polyimide"]
    start = case.schedule.start
    for celsius in (150.0, 300.0, 400.0):
        temperature = 273.15 + celsius
        problem.advance(temperature, 60.0, {})
        moduli, eigenstrains = [], []
        for material in (cu, pi):
            nu = float(as_table(material.poisson_ratio)(temperature))
            moduli.append(float(as_table(material.youngs_modulus)(temperature)) / (1 - nu**2))
            eigenstrains.append((1 + nu) * float(material.thermal_strain(temperature, start)))
        strain = np.dot(moduli, eigenstrains) / np.sum(moduli)  # equal thicknesses
        expected = moduli[1] * (strain - eigenstrains[1])
        computed = layer_stress_xx(problem, emesh, "polyimide")
        np.testing.assert_allclose(computed, expected, rtol=1e-6)
    assert abs(expected) > 1e6  # a real mismatch stress, Pa


RELAXING_POLYIMIDE = """
[materials.polyimide]
behaviour = "viscoelastic"
[materials.polyimide.viscoelasticity]
prony = [ { weight = 0.8, time = "30 min" } ]
shift = "none"
"""

HOLD = 10 * 3600.0  # s
PROBES = 5  # the hold is checked every 2 h


def relaxation_error(tolerance, uniform_steps=None):
    """A 10 h hold after a sudden heating by 100 K of a polyimide layer (one Prony term,
    g = 0.8, tau = 30 min) on a copper foil 10 times thinner (flat cell). The foil is a
    spring in series with the layer (stiffness K = M_foil t_foil / t_layer, M = E/(1 - nu^2)),
    so the layer's stress relaxes as a Maxwell element behind a spring:
    sigma(t) = sigma_inf + (sigma_0 - sigma_inf) exp(-t / tau_eff),
    sigma_0,inf = M_0,inf K d / (K + M_0,inf), tau_eff = tau (1 + M_0/K) / (1 + M_inf/K),
    d the free mismatch (1 + nu) alpha dT of foil minus layer. The strain of the layer
    changes as it relaxes, so the recursive update is not exact here.

    Returns (largest error at the probes relative to sigma_0 - sigma_inf, steps solved:
    the rejected sub-steps count too)."""
    case = flat_cell(RELAXING_POLYIMIDE, foil=4.0, layer=40.0, tolerance=tolerance)
    emesh = build_mesh(case)
    problem = make_problem(emesh, case)
    hot = case.schedule.start + 100.0
    problem.advance(hot, 1e-6, {})  # sudden: the glassy response
    problem.step_sizes.clear()
    cu, pi = case.materials["copper"], case.materials["polyimide"]
    foil_modulus = cu.youngs_modulus / (1 - cu.poisson_ratio**2)
    glassy = pi.youngs_modulus / (1 - pi.poisson_ratio**2)
    relaxed = 0.2 * glassy
    spring = foil_modulus * 4.0 / 40.0
    mismatch = 100.0 * ((1 + cu.poisson_ratio) * cu.thermal_expansion
                        - (1 + pi.poisson_ratio) * pi.thermal_expansion)
    initial = glassy * spring * mismatch / (spring + glassy)
    final = relaxed * spring * mismatch / (spring + relaxed)
    time_constant = 1800.0 * (1 + glassy / spring) / (1 + relaxed / spring)
    errors = []
    for probe in range(1, PROBES + 1):
        if uniform_steps is None:
            problem.advance(hot, HOLD / PROBES, {})
        else:
            for _ in range(uniform_steps // PROBES):
                problem.advance(hot, HOLD / uniform_steps, {})
        exact = final + (initial - final) * np.exp(-probe * HOLD / PROBES / time_constant)
        computed = layer_stress_xx(problem, emesh, "polyimide")
        errors.append(np.abs(computed - exact).max() / abs(initial - final))
    return max(errors), len(problem.step_sizes) + problem.rejected_steps


def test_hold_relaxation_converges_at_second_order_in_uniform_steps():
    steps = np.array([10, 20, 40, 80])
    errors = np.array([relaxation_error(0.0, n)[0] for n in steps])
    rate = -np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert rate == pytest.approx(2.0, abs=0.15)
    assert errors[-1] < 1e-4


def test_adaptive_steps_meet_the_tolerance_with_fewer_steps_than_uniform_ones():
    """The error-driven sub-steps (third-order local error estimate): the error falls as
    tolerance^(2/3) (local error ~ h^3 = tolerance, global ~ h^2), and for the error of
    each tolerance the uniform steps' second-order fit needs at least 1.5 times the
    steps."""
    tolerances = np.array([1e-3, 1e-4, 1e-5, 1e-6])
    adaptive = np.array([relaxation_error(tolerance) for tolerance in tolerances])
    rate = np.polyfit(np.log(tolerances), np.log(adaptive[:, 0]), 1)[0]
    assert rate == pytest.approx(2 / 3, abs=0.15)
    uniform_error, uniform_steps = relaxation_error(0.0, 40)
    for error, steps in adaptive[1:]:  # 1e-3 is coarser than any useful run
        uniform_needed = uniform_steps * (uniform_error / error) ** 0.5
        assert steps * 1.5 < uniform_needed, (error, steps, uniform_needed)
