"""Thermo-elastic verification against the multilayer strip (Timoshenko 1925, Hsueh 2002).

Plane strain: moduli E/(1-nu^2), eigenstrains (1+nu) alpha dT. Tolerance 2% for the
curvature and for the mid-height stress of every layer at mid-length.
"""

import numpy as np
import pytest

from solver.post.closed_forms import (
    generalized_plane_strain_layers,
    plane_strain_layers,
    timoshenko_curvature,
)

from conftest import fitted_mid_layer_stress, layers_case, solve_final

TOLERANCE = 0.02


def analytic(case):
    layers = case.geometry.layers
    materials = [case.materials[layer.material] for layer in layers]
    args = ([layer.thickness for layer in layers], [m.youngs_modulus for m in materials],
            [m.poisson_ratio for m in materials], [m.thermal_expansion for m in materials],
            case.schedule.end_temperature - case.schedule.start)
    if case.case.plane == "generalized":
        return generalized_plane_strain_layers(*args)
    return plane_strain_layers(*args)


def curvature(solved):
    from solver.post.probes import bending_curvature

    g = solved.emesh.geometry
    tags = solved.emesh.facet_tags
    bottom = tags.indices[tags.values == g.facet_groups["bottom"]]
    return bending_curvature(solved.problem.u, bottom, solved.case.geometry.length)["curvature"]


def check_against_closed_form(case, tolerance=TOLERANCE):
    solved = solve_final(case)
    expected = analytic(case)
    beam = getattr(expected, "beam", expected)
    measured_curvature = curvature(solved)
    assert measured_curvature == pytest.approx(beam.curvature, rel=tolerance)
    mid_heights = (beam.interfaces[:-1] + beam.interfaces[1:]) / 2
    x = case.geometry.length / 2 + 0.37 * case.geometry.mesh_size
    measured = fitted_mid_layer_stress(solved, x)
    np.testing.assert_allclose(measured, beam.stress(mid_heights), rtol=tolerance)
    return solved, expected


def test_shipped_bilayer_matches_timoshenko(shipped_bilayer):
    solved, beam = check_against_closed_form(shipped_bilayer)
    case = shipped_bilayer
    cu, pi = case.materials["copper"], case.materials["polyimide"]
    delta_t = case.schedule.end_temperature - case.schedule.start
    timoshenko = timoshenko_curvature(
        18e-6, 20e-6, cu.youngs_modulus / (1 - cu.poisson_ratio**2),
        pi.youngs_modulus / (1 - pi.poisson_ratio**2),
        ((1 + pi.poisson_ratio) * pi.thermal_expansion
         - (1 + cu.poisson_ratio) * cu.thermal_expansion) * delta_t)
    assert curvature(solved) == pytest.approx(timoshenko, rel=TOLERANCE)


@pytest.mark.parametrize("layers", [
    [("copper", "12 um"), ("polyimide", "8 um"), ("amorphous_silicon", "6 um")],
    [("copper", "10 um"), ("mix", "15 um"), ("polyimide", "4 um"), ("silicon", "3 um")],
    [("amorphous_silicon", "4 um"), ("copper", "20 um")],
])
def test_multilayer_stacks_match_closed_form(layers):
    check_against_closed_form(layers_case(layers, length="300 um", mesh_size="1.5 um"))


def test_generalized_plane_strain_matches_closed_form():
    # Different Poisson ratios couple the out-of-plane strain into the in-plane stress.
    case = layers_case([("copper", "12 um"), ("amorphous_silicon", "6 um")], length="240 um",
                       mesh_size="1.5 um", plane="generalized")
    solved, expected = check_against_closed_form(case)
    assert solved.state.out_of_plane_strain == pytest.approx(expected.out_of_plane_strain,
                                                             rel=TOLERANCE)


def test_homogeneous_strip_expands_freely_in_generalized_plane_strain():
    case = layers_case([("copper", "10 um")], length="100 um", mesh_size="2.5 um",
                       plane="generalized")
    solved = solve_final(case)
    delta_t = case.schedule.end_temperature - case.schedule.start
    free = case.materials["copper"].thermal_expansion * delta_t
    assert solved.state.out_of_plane_strain == pytest.approx(free, rel=1e-6)
    stress = solved.stress().x.array
    assert np.abs(stress).max() < 1e-6 * case.materials["copper"].youngs_modulus * abs(free)


def test_mesh_refinement_reduces_the_error():
    """Linear elements (they lock in bending, so the error is visible) on finer meshes."""
    sizes = np.array([4.0, 2.0, 1.0])
    errors = []
    for size in sizes:
        case = layers_case([("copper", "8 um"), ("polyimide", "8 um")], length="160 um",
                           mesh_size=f"{size} um", degree=1)
        beam = analytic(case)
        errors.append(abs(curvature(solve_final(case)) / beam.curvature - 1))
    rate = np.polyfit(np.log(sizes), np.log(errors), 1)[0]
    assert errors[-1] < errors[0] / 3, errors
    assert rate > 1.0, (rate, errors)


def test_3d_plate_matches_biaxial_closed_form():
    """A square bilayer plate: far from its edges it bends like an infinite plate, with
    biaxial moduli E/(1-nu) and eigenstrains alpha dT, equally in x and y."""
    from solver.post.closed_forms import multilayer_beam
    from solver.post.probes import bending_curvature

    case = layers_case([("copper", "6 um"), ("polyimide", "6 um")], length="120 um",
                       width="120 um", mesh_size="4 um", dim=3)
    solved = solve_final(case)
    tags = solved.emesh.facet_tags
    bottom = tags.indices[tags.values == solved.emesh.geometry.facet_groups["bottom"]]
    measured = bending_curvature(solved.problem.u, bottom, 120e-6, 120e-6)
    delta_t = case.schedule.end_temperature - case.schedule.start
    materials = [case.materials["copper"], case.materials["polyimide"]]
    plate = multilayer_beam([6e-6, 6e-6],
                            [m.youngs_modulus / (1 - m.poisson_ratio) for m in materials],
                            [m.thermal_expansion * delta_t for m in materials])
    assert measured["curvature_x"] == pytest.approx(plate.curvature, rel=TOLERANCE)
    assert measured["curvature_y"] == pytest.approx(plate.curvature, rel=TOLERANCE)
