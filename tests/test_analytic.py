"""The closed forms themselves: the general multilayer solution reduces to Timoshenko's."""

import numpy as np
import pytest

from solver.post.closed_forms import (
    generalized_plane_strain_layers,
    plane_strain_layers,
    timoshenko_curvature,
)


@pytest.mark.parametrize("h1, h2, e1, e2", [(18e-6, 20e-6, 120e9, 2.5e9),
                                            (5e-6, 50e-6, 75e9, 120e9), (1.0, 1.0, 1.0, 1.0)])
def test_multilayer_reduces_to_timoshenko(h1, h2, e1, e2):
    beam = plane_strain_layers([h1, h2], [e1, e2], [0.0, 0.0], [1e-6, 3e-6], -100.0)
    expected = timoshenko_curvature(h1, h2, e1, e2, (3e-6 - 1e-6) * -100.0)
    assert beam.curvature == pytest.approx(expected, rel=1e-12)


def test_multilayer_is_free_of_net_force_and_moment():
    beam = plane_strain_layers([10e-6, 4e-6, 7e-6], [120e9, 2.5e9, 75e9], [0.34, 0.34, 0.22],
                               [17e-6, 40e-6, 2.6e-6], -375.0)
    # two-point Gauss per layer integrates the (linear) stress times 1 and y exactly
    lo, hi = beam.interfaces[:-1], beam.interfaces[1:]
    gauss = np.array([-1, 1]) / np.sqrt(3)
    y = ((lo + hi)[:, None] + (hi - lo)[:, None] * gauss) / 2
    weights = np.repeat((hi - lo)[:, None] / 2, 2, axis=1)
    stress = beam.stress(y.ravel()).reshape(y.shape)
    scale = np.abs(stress).max() * beam.interfaces[-1]
    assert abs((weights * stress).sum()) < 1e-12 * scale
    assert abs((weights * stress * y).sum()) < 1e-12 * scale * beam.interfaces[-1]


def test_generalized_plane_strain_frees_a_homogeneous_strip():
    strip = generalized_plane_strain_layers([10e-6], [100e9], [0.3], [10e-6], -100.0)
    assert strip.out_of_plane_strain == pytest.approx(-1e-3, rel=1e-12)
    assert abs(strip.beam.stress([5e-6])[0]) < 1e-3


def test_generalized_plane_strain_layers_satisfy_hookes_law_and_balance():
    """Three layers of different Poisson ratios (where the out-of-plane coupling does not
    vanish), checked from the 3D isotropic Hooke's law: with eps_xx = c - w'' y (from the
    returned beam) and eps_zz = e0, eps_yy is what makes sigma_yy = 0 in each layer; the
    resulting sigma_xx must be the beam's stress, and sigma_xx must carry no net force or
    moment, sigma_zz no net force."""
    thicknesses, moduli = [10e-6, 6e-6, 6e-6], [120e9, 75e9, 10e9]
    poisson, expansions, delta_t = [0.34, 0.22, 0.45], [17e-6, 2.6e-6, 40e-6], -375.0
    strip = generalized_plane_strain_layers(thicknesses, moduli, poisson, expansions, delta_t)
    beam, e0 = strip.beam, strip.out_of_plane_strain
    lo, hi = beam.interfaces[:-1], beam.interfaces[1:]
    gauss = np.array([-1, 1]) / np.sqrt(3)
    forces, moment, out_of_plane, scale = 0.0, 0.0, 0.0, 0.0
    for layer, (E, nu, alpha) in enumerate(zip(moduli, poisson, expansions, strict=True)):
        lame, shear = E * nu / ((1 + nu) * (1 - 2 * nu)), E / (2 * (1 + nu))
        stiffness = lame * np.ones((3, 3)) + 2 * shear * np.eye(3)  # normal components
        for y in ((lo[layer] + hi[layer]) + (hi[layer] - lo[layer]) * gauss) / 2:
            known = np.array([beam.strain_at_bottom - beam.curvature * y, 0.0, e0])
            # sigma_yy = 0 fixes eps_yy (row 1 of the stiffness)
            known[1] = (stiffness[1, 1] * alpha * delta_t
                        - stiffness[1, 0] * (known[0] - alpha * delta_t)
                        - stiffness[1, 2] * (known[2] - alpha * delta_t)) / stiffness[1, 1]
            stress = stiffness @ (known - alpha * delta_t)
            assert abs(stress[1]) < 1e-6 * abs(stress).max()
            assert stress[0] == pytest.approx(beam.stress([y])[0], rel=1e-10)
            weight = (hi[layer] - lo[layer]) / 2
            forces += weight * stress[0]
            moment += weight * stress[0] * y
            out_of_plane += weight * stress[2]
            scale = max(scale, abs(stress).max())
    total = beam.interfaces[-1]
    assert abs(forces) < 1e-12 * scale * total
    assert abs(moment) < 1e-12 * scale * total**2
    assert abs(out_of_plane) < 1e-12 * scale * total
    # the coupling is not negligible here: plane strain (e0 = 0) bends the strip 16 % more
    plane = plane_strain_layers(thicknesses, moduli, poisson, expansions, delta_t)
    assert abs(plane.curvature / beam.curvature - 1) > 0.1
