"""Thin-film electrodes (seed 002): the flat Cu / Si-alloy / carbon / Li stack against the
multilayer closed form, and films deposited conformally over a collector."""

import json
import math

import numpy as np
import pytest
from test_layers import check_against_closed_form
from test_meshes import mesh_measure, physical_names
from test_parallel import process_physics, summaries_on_one_and_two_ranks

from meshes import (
    GeometryError,
    RecurvedProfile,
    build_flat_2d,
    build_plain_2d,
    build_recurved_2d,
)
from meshes.films import (
    Film,
    ProjectionOutline,
    band_area,
    check_films_fit,
    projection_outline,
    surface_length,
)
from solver import cli
from solver.case import load_case, load_case_text
from solver.errors import CaseError

from conftest import (
    CASES,
    built_area,
    built_length,
    in_metres,
    one_step_case,
    recurved_undercut_by_hand,
)

MICROMETRE = 1e-6

# The stack is resolved with P2 elements through every layer: the closed form is met to
# 1.7e-8 (curvature) and 1.2e-10 (mid-layer stresses; 1e-9 is the solver's round-off).
STACK_CURVATURE, STACK_STRESS = 1e-7, 1e-9


def test_thinfilm_stack_matches_the_multilayer_closed_form():
    case = load_case(CASES / "thinfilm-stack.toml")
    assert [layer.material for layer in case.geometry.layers] == [
        "copper", "silicon_alloy_film", "carbon_film", "lithium"]
    # Lithium melts at 180.5 degC: the schedule must stay below it.
    assert case.schedule.start < 180.5 + 273.15
    check_against_closed_form(case, STACK_CURVATURE, STACK_STRESS)


def test_thinfilm_stack_case_runs(tmp_path):
    out = tmp_path / "thinfilm-stack"
    assert cli.main(["run", str(CASES / "thinfilm-stack.toml"), "--out", str(out), "-q",
                     "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["interfaces"]) == {"interface_0_1", "interface_1_2", "interface_2_3"}
    assert summary["interfaces"]["interface_2_3"]["materials"] == ["carbon_film", "lithium"]
    assert all(interface["max_risk"] > 0 for interface in summary["interfaces"].values())
    assert summary["bending"]["curvature"] < 0  # the stiff Si-alloy film contracts less than the Cu
    # no binder in a thin-film stack: its decomposition does not apply
    verdicts = {row["condition"].split(" (")[0]: row["verdict"]
                for row in summary["process_window"]}
    assert verdicts == {"binder mass loss": "n/a", "crystallized fraction of the alloy": "pass",
                        "atmosphere": "pass",
                        "maximum temperature below the crystallization temperature": "pass"}


# --- Conformal films over a collector --------------------------------------------------------

RECURVED_UM = {"pitch": 6.0, "foil_thickness": 12.0, "neck_width": 1.4, "head_width": 2.6,
               "height": 3.0, "neck_height": 1.2, "fillet_radius": 0.3, "mix_thickness": 20.0,
               "mesh_size": 1.0, "interface_mesh_size": 0.12}
PROFILE = RecurvedProfile(neck_width=1.4, head_width=2.6, height=3.0, neck_height=1.2,
                          fillet_radius=0.3)
FILMS = [("silicon_alloy_film", 0.12 * MICROMETRE), ("carbon_film", 0.03 * MICROMETRE)]
# The meshed areas against the areas of the built OpenCASCADE surfaces (conftest.built_area):
# linear triangles on the curves, measured 5e-8 (copper) to 7.7e-5 (the 0.03 um film).
AREA_TOLERANCE = 3e-4
# A film's built area against its thickness times the built length of the surface it lies on
# (the splines through offset points are not exact offsets): measured 1.2e-6.
FILM_TOLERANCE = 5e-6


def test_band_area_is_that_of_an_annulus_sector():
    # A quarter circle of radius 2 turning counter-clockwise: its right side is the outside.
    angles = np.linspace(-np.pi / 2, 0.0, 4001)
    points = 2.0 * np.column_stack([np.cos(angles), np.sin(angles)])
    arc = ProjectionOutline(points, points / 2.0)
    assert arc.length() == pytest.approx(np.pi, rel=1e-6)
    assert arc.turning() == pytest.approx(np.pi / 2, rel=1e-9)
    sector = np.pi / 4 * ((2.0 + 0.5) ** 2 - (2.0 + 0.2) ** 2)
    assert band_area(arc.length(), arc.turning(), 0.2, 0.5) == pytest.approx(sector, rel=1e-6)


def test_flat_cell_with_films_areas_groups_and_interfaces(gmsh_model):
    built = build_flat_2d(**in_metres({"pitch": 6.0, "foil_thickness": 5.0, "mix_thickness": 10.0,
                                       "mesh_size": 1.0, "interface_mesh_size": 0.2}),
                          films=FILMS)
    assert built.cell_groups == {"copper": 1, "mix": 2, "silicon_alloy_film": 3,
                                 "carbon_film": 4}
    assert physical_names(2) == built.cell_groups
    assert physical_names(1) == built.facet_groups
    assert built.interfaces == {
        "interface_copper_silicon_alloy_film": (5, 1, 3),
        "interface_silicon_alloy_film_carbon_film": (6, 3, 4),
        "interface_carbon_film_mix": (7, 4, 2),
    }
    exact = {"copper": 30.0, "silicon_alloy_film": 6 * 0.12, "carbon_film": 6 * 0.03,
             "mix": 6 * (10 - 0.15)}
    for name, area in exact.items():
        assert mesh_measure(2, built.cell_groups[name]) == pytest.approx(area, rel=1e-9), name
    for name in built.interfaces:
        assert mesh_measure(1, built.facet_groups[name]) == pytest.approx(6.0, rel=1e-9)
    assert built.metrics["film_area_carbon_film"] == pytest.approx(6 * 0.03 * MICROMETRE**2)
    assert built.metrics["undercut_area_after_films"] == 0
    assert built.metrics["recurved_after_films"] is False


def test_recurved_cell_with_films_areas_are_exact(gmsh_model):
    built = build_recurved_2d(**in_metres(RECURVED_UM), films=FILMS)
    assert built.cell_groups == {"copper": 1, "mix": 2, "silicon_alloy_film": 3,
                                 "carbon_film": 4}
    assert list(built.interfaces) == ["interface_copper_silicon_alloy_film",
                                      "interface_silicon_alloy_film_carbon_film",
                                      "interface_carbon_film_mix"]
    # Over the cell the surface turns by zero (level at both ends): a film's area is its
    # thickness times the surface length, at any depth.
    outline = projection_outline(3.0, PROFILE)
    assert outline.turning() == pytest.approx(0.0, abs=1e-9)
    # The references are the built geometry's, measured on its curves, and closed forms.
    length = built_length(built.facet_groups["interface_copper_silicon_alloy_film"])
    assert built.metrics["interface_length"] == pytest.approx(length * MICROMETRE,
                                                              rel=1e-7)  # measured 1.3e-8
    built_areas = {name: built_area(tag) for name, tag in built.cell_groups.items()}
    # the surfaces tile the cell
    assert sum(built_areas.values()) == pytest.approx(6 * (12 + 20), rel=1e-12)
    # the copper: the foil and the profile's closed-form area (measured 1.9e-9: the spline)
    assert built_areas["copper"] == pytest.approx(6 * 12 + PROFILE.area(), rel=1e-8)
    for name, thickness in (("silicon_alloy_film", 0.12), ("carbon_film", 0.03)):
        assert built_areas[name] == pytest.approx(thickness * length, rel=FILM_TOLERANCE), name
        assert built.metrics[f"film_area_{name}"] == pytest.approx(
            built_areas[name] * MICROMETRE**2, rel=FILM_TOLERANCE)  # measured 1.5e-6
    for name, area in built_areas.items():
        measured = mesh_measure(2, built.cell_groups[name])
        assert measured == pytest.approx(area, rel=AREA_TOLERANCE), name
    # The films line the undercut: less of it is left for the mix, but some is.
    assert built.metrics["recurved_after_films"] is True
    assert 0 < built.metrics["undercut_area_after_films"] < built.metrics["undercut_area"]
    # Every interface is a closed chain from the left side to the right one.
    for name in built.interfaces:
        assert mesh_measure(1, built.facet_groups[name]) > 6.0


def test_plain_cell_with_films_areas_are_exact(gmsh_model):
    sizes = {"pitch": 8.0, "base_width": 4.0, "top_width": 2.0, "height": 3.0,
             "fillet_radius": 0.4, "foil_thickness": 5.0, "mix_thickness": 10.0,
             "mesh_size": 1.0, "interface_mesh_size": 0.2}
    built = build_plain_2d(**in_metres(sizes), films=FILMS)
    # The surface by hand: the sides rise at atan(3) (1 um in over 3 um up); each fillet
    # (radius 0.4) turns by that angle and cuts t = r tan(turn / 2) off the straight edges
    # it joins. Level foil, two foot arcs, two sides, two top arcs, the flat top.
    turn, radius = math.atan(3.0), 0.4
    cut = radius * math.tan(turn / 2)
    length = (8.0 - (4.0 + 2 * cut) + 2 * (2 * radius * turn + math.hypot(3.0, 1.0) - 2 * cut)
              + (2.0 - 2 * cut))
    built_length_ = built_length(built.facet_groups["interface_copper_silicon_alloy_film"])
    assert built_length_ == pytest.approx(length, rel=1e-9)  # measured 2.7e-11
    built_areas = {name: built_area(tag) for name, tag in built.cell_groups.items()}
    # Copper: the foil and the trapezoid (the foot fillets add what the top ones take).
    exact = {"copper": 8 * 5 + (4.0 + 2.0) / 2 * 3.0, "silicon_alloy_film": 0.12 * length,
             "carbon_film": 0.03 * length, "mix": 8 * 10 - 9.0 - 0.15 * length}
    for name, area in exact.items():
        # measured: copper 2e-15, films 4.6e-7, the mix 1e-9
        assert built_areas[name] == pytest.approx(area, rel=FILM_TOLERANCE), name
        assert mesh_measure(2, built.cell_groups[name]) == pytest.approx(
            built_areas[name], rel=AREA_TOLERANCE), name
    assert built_areas["copper"] == pytest.approx(exact["copper"], rel=1e-12)
    assert built.metrics["recurved_after_films"] is False


def test_films_just_thinner_than_the_tightest_bend_fit():
    # 0.2 um against the 0.225 um bend where the neck widens: the film surface bends sharply
    # there but neither folds nor crosses (the sampled outline's chords must not say it does).
    outline = projection_outline(3.0, PROFILE)
    check_films_fit([Film("carbon_film", 0.2)], [outline], 6.0, 20.0, "shape")
    with pytest.raises(GeometryError, match="concave bend"):
        check_films_fit([Film("carbon_film", 0.24)], [outline], 6.0, 20.0, "shape")


def test_undercut_left_by_films_shrinks_with_their_thickness(gmsh_model):
    from meshes.collector import _film_surface

    outline = projection_outline(3.0, PROFILE)
    length = surface_length([outline], 6.0)
    undercut = [_film_surface(depth, [outline], 6.0, PROFILE.area() + depth * length)[0]
                for depth in (0.0, 0.05, 0.1, 0.15)]
    # At zero thickness it is the foil's own undercut, by hand (measured 1.1e-4: the envelope
    # is sampled on a grid).
    assert undercut[0] == pytest.approx(recurved_undercut_by_hand(PROFILE), rel=5e-4)
    assert all(later < earlier for earlier, later in zip(undercut, undercut[1:], strict=False))


@pytest.mark.parametrize(("changes_um", "films", "named"), [
    # Thicker than the 0.22 um bend where the neck starts to widen: the surface folds.
    ({}, [("silicon_alloy_film", 0.3)], ["films", "silicon_alloy_film 0.3 um", "concave bend",
                                         "neck_height"]),
    # Heads 0.2 um apart: films over 0.1 um on both meet between them.
    ({"pitch": 2.7, "head_width": 2.5}, [("carbon_film", 0.15)],
     ["films", "cross itself", "pitch"]),
    ({"mix_thickness": 3.2}, [("silicon_alloy_film", 0.1), ("carbon_film", 0.1)],
     ["films", "mix_thickness (3.2 um)"]),
    ({}, [("mix", 0.1)], ["films[0].material", "'mix'"]),
    ({}, [("carbon_film", 0.1), ("carbon_film", 0.05)], ["films[1].material"]),
    ({}, [("carbon_film", 0.0)], ["films[0].thickness"]),
])
def test_films_that_do_not_fit_are_one_line_errors(changes_um, films, named):
    # Checked before any gmsh call: no gmsh session is needed.
    with pytest.raises(GeometryError) as raised:
        build_recurved_2d(**in_metres(RECURVED_UM, **changes_um),
                          films=[(material, t * MICROMETRE) for material, t in films])
    message = str(raised.value)
    assert "\n" not in message and message.startswith("geometry: ")
    for name in named:
        assert name in message, message


def test_films_are_2d_only():
    case = load_case(CASES / "thinfilm-on-recurved.toml")
    assert [film.material for film in case.geometry.films] == ["silicon_alloy_film",
                                                                "carbon_film"]
    with pytest.raises(CaseError, match=r"geometry\.films\[1\]\.material: unknown material"):
        load_case_text(case.text.replace('"carbon_film",', '"graphene",'))


def test_thinfilm_on_recurved_same_summary_on_one_and_two_ranks(tmp_path):
    interfaces = ["interface_copper_silicon_alloy_film",
                  "interface_silicon_alloy_film_carbon_film", "interface_carbon_film_mix"]
    serial, _ = summaries_on_one_and_two_ranks(one_step_case(tmp_path, "thinfilm-on-recurved"),
                                               tmp_path, process_physics(*interfaces))
    assert serial["schedule"]["time_steps"] == 1
    assert list(serial["interfaces"]) == interfaces
    assert all(interface["max_risk"] > 0 for interface in serial["interfaces"].values())
    assert serial["geometry"]["recurved_after_films"] is True
