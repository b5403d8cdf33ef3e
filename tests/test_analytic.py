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
