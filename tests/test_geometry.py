"""Gmsh builders: named groups, areas, interface lengths, shape parameters, clear errors."""

import numpy as np
import pytest
import ufl
from dolfinx import fem, mesh

from meshes import GeometryError, RecurvedProfile, build_recurved_2d
from solver.case import load_case
from solver.geometry.mesh import build_mesh

from conftest import CASES, layers_case


def measure(emesh, integrand_measure):
    return emesh.mesh.comm.allreduce(fem.assemble_scalar(fem.form(1.0 * integrand_measure)))


def cells_of(emesh, name):
    return ufl.Measure("dx", domain=emesh.mesh, subdomain_data=emesh.cell_tags)(
        emesh.geometry.cell_groups[name])


def facets_of(emesh, name):
    return ufl.Measure("ds" if not name.startswith("interface") else "dS",
                       domain=emesh.mesh, subdomain_data=emesh.facet_tags)(
        emesh.geometry.facet_groups[name])


def test_layers_have_their_areas_groups_and_a_mid_line():
    case = layers_case([("copper", "12 um"), ("polyimide", "8 um"), ("mix", "6 um")],
                       length="120 um", mesh_size="3 um")
    emesh = build_mesh(case)
    g = emesh.geometry
    assert list(g.cell_groups) == ["layer0_copper", "layer1_polyimide", "layer2_mix"]
    assert {"bottom", "top", "left", "right", "interface_0_1", "interface_1_2"} <= set(
        g.facet_groups)
    for name, thickness in zip(g.cell_groups, (12e-6, 8e-6, 6e-6), strict=True):
        assert measure(emesh, cells_of(emesh, name)) == pytest.approx(120e-6 * thickness)
    assert measure(emesh, facets_of(emesh, "interface_0_1")) == pytest.approx(120e-6)
    assert measure(emesh, facets_of(emesh, "top")) == pytest.approx(120e-6)
    on_mid_line = mesh.locate_entities(emesh.mesh, 0,
                                       lambda x: np.isclose(x[0], 60e-6, atol=1e-12))
    assert emesh.mesh.comm.allreduce(len(on_mid_line)) >= 26 / 3


def test_recurved_cell_is_what_was_asked_for():
    case = load_case(CASES / "recurved-2d.toml")
    emesh = build_mesh(case)
    g, c = emesh.geometry, case.geometry
    assert g.metrics["recurved"] is True
    assert g.metrics["neck_width_measured"] == pytest.approx(c.neck_width, rel=0.02)
    assert g.metrics["head_width_measured"] == pytest.approx(c.head_width, rel=0.02)
    profile = RecurvedProfile(neck_width=c.neck_width, head_width=c.head_width,
                              height=c.height, neck_height=c.neck_height,
                              fillet_radius=c.fillet_radius)
    copper = c.pitch * c.foil_thickness + profile.area()
    assert measure(emesh, cells_of(emesh, "copper")) == pytest.approx(copper, rel=0.01)
    assert measure(emesh, cells_of(emesh, "mix")) == pytest.approx(
        c.pitch * c.mix_thickness - profile.area(), rel=0.01)
    # the meshed interface is the smooth outline: no loops, no spurs
    meshed_interface = measure(emesh, facets_of(emesh, "interface_copper_mix"))
    assert meshed_interface == pytest.approx(g.metrics["interface_length"], rel=0.01)
    assert g.metrics["undercut_area"] > 0


@pytest.mark.parametrize("changes, parameter", [
    ({"head_width": 1.0e-6}, "head_width"),
    ({"pitch": 2.0e-6}, "pitch"),
    ({"height": 25e-6}, "mix_thickness"),
])
def test_impossible_recurved_cells_are_one_line_errors(changes, parameter):
    params = dict(pitch=6e-6, foil_thickness=10e-6, neck_width=1.4e-6, head_width=2.6e-6,
                  height=3e-6, neck_height=1.2e-6, fillet_radius=0.3e-6, mix_thickness=20e-6,
                  mesh_size=1e-6)
    params.update(changes)
    with pytest.raises(GeometryError) as raised:
        build_recurved_2d(**params)
    message = str(raised.value)
    assert "\n" not in message and parameter in message
