"""J2 plasticity of the pull-off's bulk (solver/materials/plasticity.py in
solver/physics/cohesive.py) against the uniaxial closed form, the energy balance, and
plastic_bulk = false against the elastic bulk."""

import csv
import json

import numpy as np
import pytest
from dolfinx import fem
from test_pulloff import reduced_case_text

from solver.case import load_case_text
from solver.geometry.mesh import build_mesh
from solver.physics.cohesive import CohesiveLaw, CohesiveProblem
from solver.stages.pipeline import run_pulloff

E, NU, FLOW_STRESS, HARDENING = 100e9, 0.3, 200e6, 10e9
PENALTY = 1e18  # Pa/m


def _bar():
    """A 3D bar of two 1 um layers of one hardening material (1 x 1 um section), bonded by an
    interface too strong to damage."""
    materials = "".join(f"""
[materials.{name}]
youngs_modulus = {E}
poisson_ratio = {NU}
thermal_expansion = 0
swelling_flow_stress = {FLOW_STRESS}
swelling_hardening_modulus = {HARDENING}
""" for name in ("lower", "upper"))
    case = load_case_text(f"""
[case]
name = "bar"
dim = 3
[geometry]
kind = "layers"
length = "1 um"
width = "1 um"
layers = [{{ material = "lower", thickness = "1 um" }},
          {{ material = "upper", thickness = "1 um" }}]
mesh_size = "0.5 um"
{materials}
[schedule]
start = "25 degC"
steps = [{{ hold = "1 s" }}]
""")
    return case, build_mesh(case)


def test_bar_in_uniaxial_tension_follows_the_linear_hardening_closed_form():
    """Both bodies of the cohesive problem (the interface intact) as one bar: rollers on
    x = 0, y = 0 and the bottom, the top pulled by d, the other sides free, so the stress is
    uniaxial and uniform. With the interface's compliance 1/K in series,
    d = h (sigma / E + p) + sigma / K, p = (sigma - sigma_f) / H past yield: the force over
    the section is sigma_f + H p on the plateau, and its slope against the bar's strain
    E_t = E H / (E + H). The fields are uniform, P1 is exact: the force within 1e-8 (measured
    1.9e-9, Newton's tolerance), every cell's equivalent plastic strain p within 2e-7
    (measured 3.7e-8; exactly 0 while elastic), the slope within 1e-8 (measured 2.5e-9)."""
    case, emesh = _bar()
    strong = 1e12
    law = CohesiveLaw(strong, strong, 1e6, 1e6, 2.0, PENALTY)
    problem = CohesiveProblem(emesh, case.materials, law, degree=1, plastic=True)
    assert problem.plastic and problem.flowing_materials == ["lower", "upper"]
    for body in ("foil", "layer"):
        problem.fix(body, 0, problem.facets("left"))
        problem.fix(body, 1, problem.facets("front"))
    problem.fix("foil", 2, problem.facets("bottom"))
    top = problem.fix("layer", 2, problem.facets("top"))
    pull = fem.Function(problem.W)
    pull.x.array[fem.locate_dofs_topological(problem.W.sub(5), 2, problem.facets("top"))] = 1
    height, area = 2e-6, 1e-12
    yield_opening = FLOW_STRESS * (height / E + 1 / PENALTY)

    def closed_form(d):
        """sigma for the top displacement d (elastic, then hardening)."""
        if d <= yield_opening:
            return d / (height / E + 1 / PENALTY)
        # d = h (sigma / E + (sigma - sigma_f) / H) + sigma / K
        return (d + height * FLOW_STRESS / HARDENING) / (height / E + height / HARDENING
                                                         + 1 / PENALTY)

    def set_top(value):
        top.value = value

    displacements = yield_opening * np.array([0.5, 1.0, 2.0, 5.0, 10.0, 20.0])
    previous, stresses = 0.0, []
    for d in displacements:
        problem.advance(set_top, previous, d)
        previous = d
        stresses.append(problem.reaction(pull) / area)
        expected = closed_form(d)
        assert stresses[-1] == pytest.approx(expected, rel=1e-8), d
        p = max(0.0, (expected - FLOW_STRESS) / HARDENING)
        cells = problem.cell_plastic_strain()
        assert cells.max() == pytest.approx(p, rel=2e-7, abs=1e-12)
        assert cells.min() == pytest.approx(p, rel=2e-7, abs=1e-12)
    # the hardening slope against the bar's strain (the interface's share taken out)
    strains = (displacements - np.array(stresses) / PENALTY) / height
    slope = np.diff(stresses[-3:]) / np.diff(strains[-3:])
    assert slope == pytest.approx(E * HARDENING / (E + HARDENING), rel=1e-8)
    relative = np.abs(np.array(stresses) / [closed_form(d) for d in displacements] - 1).max()
    print(f"uniaxial bar: largest error {relative:.2e}, slope {slope[-1]:.6e} against "
          f"{E * HARDENING / (E + HARDENING):.6e}")


# the mix given polyimide's flow stress and hardening (the library's mix has none)
POLYIMIDE_MIX = ('\n[materials.mix]\nswelling_flow_stress = "69 MPa"\n'
                 'swelling_hardening_modulus = "235 MPa"\n')


def _run(tmp_path, kind, name, pulloff="", tables=""):
    """The reduced shipped cell with extra [pulloff] keys and extra tables."""
    text = reduced_case_text(kind, **{"steps = 20": "steps = 20\n" + pulloff}) + tables
    summary = run_pulloff(load_case_text(text), tmp_path / name)
    rows = list(csv.DictReader((tmp_path / name / "pulloff.csv").open()))
    return summary["pulloff"], {key: np.array([float(row[key]) for row in rows])
                                for key in rows[0]}


def test_energy_balances_with_a_plastic_bulk(tmp_path):
    """The recurved cell without the residual stress, its mix given polyimide's flow stress
    and hardening (the copper foil flows too): at every step the external work is the
    elastic energy + the recoverable cohesive energy + the cohesive and plastic dissipation,
    within the elastic test's 0.5 % of the total work (measured 2.9e-4); the plastic work is
    a large part of the dissipation (measured 55 %)."""
    result, terms = _run(tmp_path, "recurved", "recurved", "residual_stress = false\n",
                         POLYIMIDE_MIX)
    assert result["plastic_bulk"] and result["plastic_dissipation"] > 0
    work = terms["external_work_J_per_m"]
    stored = terms["elastic_energy_J_per_m"] + terms["cohesive_free_energy_J_per_m"] \
        + terms["dissipated_energy_J_per_m"]
    imbalance = np.abs(work - stored).max() / work.max()
    assert imbalance <= 5e-3
    assert result["plastic_dissipation"] > 0.1 * result["dissipated_energy"]
    print(f"plastic energy balance: {imbalance:.2e} of the work; plastic "
          f"{result['plastic_dissipation']:.3e} of {result['dissipated_energy']:.3e} J/m "
          f"dissipated, work {work[-1]:.3e} J/m")


def test_without_plastic_bulk_the_results_are_the_elastic_ones(tmp_path):
    """plastic_bulk = false, and a case whose materials have no flow stress, give the elastic
    bulk: the same forms as before plasticity existed, so the numbers are those of the
    elastic run (the shipped results of docs/pulloff.md, reduced mesh) bit for bit:
    plastic_bulk off and on with no flowing material give identical pulloff.csv."""
    off, off_terms = _run(tmp_path, "plain", "off", "plastic_bulk = false\n")
    # copper without a flow stress: nothing flows, though plastic_bulk is on
    inert, inert_terms = _run(tmp_path, "plain", "inert",
                              tables="[materials.copper]\nswelling_flow_stress = \"1e30 Pa\"\n")
    assert not off["plastic_bulk"] and off["plastic_dissipation"] == 0.0
    assert off["layer_failure"] is None
    # the pre-plasticity numbers of the reduced plain cell
    assert off["strength"] == pytest.approx(90.7e6, rel=0.01)
    assert off["fully_debonded"]
    assert inert["plastic_bulk"] and inert["plastic_dissipation"] == 0.0
    assert inert["strength"] == off["strength"]
    assert inert["work_of_separation"] == off["work_of_separation"]
    # the whole pull-off curve and its energies, bit for bit
    assert inert_terms.keys() == off_terms.keys()
    for key, values in off_terms.items():
        np.testing.assert_array_equal(inert_terms[key], values, err_msg=key)
    assert (tmp_path / "inert" / "pulloff.csv").read_bytes() == (
        tmp_path / "off" / "pulloff.csv").read_bytes()


def test_layer_failure_is_the_binder_reaching_its_elongation_at_break(tmp_path):
    """The recurved cell with polyimide as the mix (flow stress, hardening and elongation at
    break 0.72 from the library) and a small elongation at break: the layer fails where the
    largest cell-averaged equivalent plastic strain of the binder reaches it; after that
    the strain only grows."""
    result, terms = _run(tmp_path, "recurved", "recurved", "residual_stress = false\n",
                         POLYIMIDE_MIX + "elongation_at_break = 0.05\n")
    failure = result["layer_failure"]
    assert failure is not None and failure["material"] == "mix"
    assert failure["elongation_at_break"] == 0.05 and failure["mesh_size"] == 2e-6
    strain = terms["binder_plastic_strain"]
    first = int(np.flatnonzero(strain >= 0.05)[0])
    assert terms["displacement_m"][first] == failure["displacement"]
    assert terms["force_N_per_m"][first] == pytest.approx(failure["force"])
    assert np.all(np.diff(strain) >= -1e-12)
    assert result["max_binder_plastic_strain"] == pytest.approx(strain[-1])
    summary = json.loads((tmp_path / "recurved" / "summary.json").read_text())
    assert summary["pulloff"]["layer_failure"]["displacement"] == failure["displacement"]
