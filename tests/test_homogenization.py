"""Homogenized mix: Mori-Tanaka against its limits, the Hashin-Shtrikman bounds, Eshelby's dilute
solution and Levin's CTE relation; the [mix] table of a case."""

import numpy as np
import pytest

from solver.case import load_case_text
from solver.errors import CaseError
from solver.materials.homogenization import (
    Effective,
    Phase,
    hashin_shtrikman_bounds,
    levin_thermal_expansion,
    mix_properties,
    mori_tanaka,
)
from solver.materials.library import library

MATERIALS = library()


def phase(name: str, fraction: float) -> Phase:
    material = MATERIALS[name]
    return Phase.from_youngs(fraction, material.youngs_modulus, material.poisson_ratio,
                             material.thermal_expansion)


def test_moduli_convert_both_ways():
    polyimide = phase("polyimide", 1.0)
    effective = Effective(polyimide.bulk_modulus, polyimide.shear_modulus)
    assert effective.youngs_modulus == pytest.approx(2.5e9)
    assert effective.poisson_ratio == pytest.approx(0.34)


@pytest.mark.parametrize("fraction", [0.0, 1.0])
def test_pure_phases_are_themselves(fraction):
    binder, particles = phase("polyimide", 1 - fraction), phase("silicon", fraction)
    effective, expansion = mori_tanaka(binder, [particles])
    pure = particles if fraction == 1.0 else binder
    assert effective.bulk_modulus == pytest.approx(pure.bulk_modulus, rel=1e-12)
    assert effective.shear_modulus == pytest.approx(pure.shear_modulus, rel=1e-12)
    assert expansion == pytest.approx(pure.thermal_expansion, rel=1e-12)
    for bound in hashin_shtrikman_bounds([binder, particles]):
        assert bound.bulk_modulus == pytest.approx(pure.bulk_modulus, rel=1e-12)
        assert bound.shear_modulus == pytest.approx(pure.shear_modulus, rel=1e-12)


def test_no_particles_gives_the_binder():
    properties = mix_properties(MATERIALS["polyimide"], MATERIALS["silicon"], 1e-15)
    assert properties["youngs_modulus"] == pytest.approx(2.5e9, rel=1e-12)
    assert properties["poisson_ratio"] == pytest.approx(0.34, rel=1e-12)
    assert properties["thermal_expansion"] == pytest.approx(40e-6, rel=1e-12)


@pytest.mark.parametrize("fraction", [0.1, 0.4, 0.7])
def test_stiff_spheres_in_a_soft_binder_sit_on_the_lower_bound(fraction):
    binder, particles = phase("polyimide", 1 - fraction), phase("silicon", fraction)
    effective, _ = mori_tanaka(binder, [particles])
    lower, upper = hashin_shtrikman_bounds([binder, particles])
    assert effective.bulk_modulus == pytest.approx(lower.bulk_modulus, rel=1e-12)
    assert effective.shear_modulus == pytest.approx(lower.shear_modulus, rel=1e-12)
    assert lower.bulk_modulus < upper.bulk_modulus and lower.shear_modulus < upper.shear_modulus


def test_mori_tanaka_lies_within_the_bounds_for_any_mix():
    generator = np.random.default_rng(0)
    for _ in range(200):
        active, conductive, pores = generator.dirichlet([2, 1, 1, 3])[:3]
        phases = [phase("polyimide", 1 - active - conductive - pores), phase("silicon", active),
                  phase("copper", conductive), Phase.pores(pores)]
        effective, _ = mori_tanaka(phases[0], phases[1:])
        lower, upper = hashin_shtrikman_bounds(phases)
        for name in ("bulk_modulus", "shear_modulus", "youngs_modulus"):
            value = getattr(effective, name)
            assert getattr(lower, name) <= value * (1 + 1e-12)
            assert value <= getattr(upper, name) * (1 + 1e-12)
        # With pores the lower bound is that of a solid with holes in it: zero.
        assert lower.youngs_modulus == 0.0


@pytest.mark.parametrize("inclusion", ["silicon", "copper", "pores"])
def test_dilute_limit_is_eshelbys_sphere(inclusion):
    fraction = 1e-7
    matrix = phase("polyimide", 1 - fraction)
    sphere = Phase.pores(fraction) if inclusion == "pores" else phase(inclusion, fraction)
    effective, _ = mori_tanaka(matrix, [sphere])
    bulk, shear = matrix.bulk_modulus, matrix.shear_modulus
    # One isolated sphere in an infinite matrix (Eshelby 1957): the first-order change.
    zeta = shear * (9 * bulk + 8 * shear) / (6 * (bulk + 2 * shear))
    bulk_slope = (sphere.bulk_modulus - bulk) * (bulk + 4 / 3 * shear) / (
        sphere.bulk_modulus + 4 / 3 * shear)
    shear_slope = (sphere.shear_modulus - shear) * (shear + zeta) / (sphere.shear_modulus + zeta)
    assert (effective.bulk_modulus - bulk) / fraction == pytest.approx(bulk_slope, rel=1e-5)
    assert (effective.shear_modulus - shear) / fraction == pytest.approx(shear_slope, rel=1e-5)


@pytest.mark.parametrize("fraction", [0.2, 0.5])
def test_two_phase_expansion_is_levins(fraction):
    binder, particles = phase("polyimide", 1 - fraction), phase("silicon", fraction)
    effective, expansion = mori_tanaka(binder, [particles])
    assert expansion == pytest.approx(
        levin_thermal_expansion(effective.bulk_modulus, binder, particles), rel=1e-12)
    assert particles.thermal_expansion < expansion < binder.thermal_expansion


def test_a_porous_binder_expands_as_the_binder():
    properties = mix_properties(MATERIALS["polyimide"], MATERIALS["silicon"], 1e-15,
                                porosity=0.3)
    assert properties["thermal_expansion"] == pytest.approx(40e-6, rel=1e-9)
    assert properties["youngs_modulus"] < 0.6 * 2.5e9


CASE = """
[case]
name = "mix-test"
[geometry]
kind = "flat"
pitch = "6 um"
foil_thickness = "5 um"
mix_thickness = "10 um"
mesh_size = "1 um"
[schedule]
start = "400 degC"
steps = [ { to = "25 degC", rate = "5 K/min" } ]
"""


def test_mix_table_replaces_the_mix_material():
    case = load_case_text(CASE + """
[materials.polyimide]
youngs_modulus = "3 GPa"
[mix]
active_fraction = 0.4
conductive = "copper"
conductive_fraction = 0.05
porosity = 0.1
""")
    expected = mix_properties(case.materials["polyimide"], MATERIALS["silicon"], 0.4,
                              MATERIALS["copper"], 0.05, 0.1)
    assert case.materials["polyimide"].youngs_modulus == 3e9  # the override flows in
    assert case.mix_properties == expected
    mix = case.materials["mix"]
    assert mix.youngs_modulus == expected["youngs_modulus"]
    assert mix.poisson_ratio == expected["poisson_ratio"]
    assert mix.thermal_expansion == expected["thermal_expansion"]
    assert mix.density == MATERIALS["mix"].density
    assert "mori-tanaka" in mix.source
    assert load_case_text(CASE).mix_properties is None


@pytest.mark.parametrize(("table", "key"), [
    ("active_fraction = 0.6\nporosity = 0.5", "mix.active_fraction"),
    ("active_fraction = 0.4\nconductive = \"copper\"", "mix.conductive_fraction"),
    ("active_fraction = 0.4\nactive = \"unobtainium\"", "mix.active"),
    ("active_fraction = 1.5", "mix.active_fraction"),
    ("active_fraction = 0.4\nscheme = \"voigt\"", "mix.scheme"),
])
def test_bad_mix_tables_name_their_key(table, key):
    with pytest.raises(CaseError) as raised:
        load_case_text(CASE + "[mix]\n" + table)
    assert raised.value.key == key
    assert "\n" not in str(raised.value)


def test_mix_moduli_are_not_given_twice():
    with pytest.raises(CaseError) as raised:
        load_case_text(CASE + '[materials.mix]\nyoungs_modulus = "9 GPa"\n'
                       "[mix]\nactive_fraction = 0.4\n")
    assert raised.value.key == "materials.mix.youngs_modulus"
