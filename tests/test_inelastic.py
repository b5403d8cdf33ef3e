"""The inelastic solver (quadrature-point materials, Newton): elastic and viscoelastic
limits against closed forms, and a full sintering schedule on 1 and 2 ranks."""

import json
import subprocess
import sys

import numpy as np
import pytest
from test_layers import TOLERANCE, curvature

from solver.analytic import plane_strain_layers
from solver.behaviour import material_model
from solver.case import load_case
from solver.inelastic import InelasticProblem
from solver.mesh import build_mesh
from solver.run import make_problem
from solver.thermoelastic import ThermoElasticProblem

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
