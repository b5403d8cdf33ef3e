"""Second-order geometry (solver.geometry_degree = 2): curved element edges on the outlines."""

import json

import pytest
import ufl
from dolfinx import fem
from mpi4py import MPI
from test_collector import plain_interface_length_um
from test_parallel import RECURVED_PHYSICS, summaries_on_one_and_two_ranks

from meshes import PlainProfile
from solver import cli
from solver.case import load_case_text
from solver.errors import CaseError
from solver.geometry.mesh import build_mesh

from conftest import former_recurved_case

PLAIN_CASE = """
[case]
name = "plain"
[geometry]
kind = "plain"
pitch = "8 um"
base_width = "4 um"
top_width = "2 um"
height = "3 um"
fillet_radius = "0.4 um"
foil_thickness = "5 um"
mix_thickness = "10 um"
mesh_size = "1 um"
interface_mesh_size = "0.2 um"
[schedule]
start = "400 degC"
steps = [ { to = "25 degC", rate = "5 K/min" } ]
"""


def integrate(expression) -> float:
    return MPI.COMM_WORLD.allreduce(fem.assemble_scalar(fem.form(expression)), op=MPI.SUM)


@pytest.mark.parametrize(("degree", "tolerance"), [(1, 2e-3), (2, 1e-5)])
def test_curved_edges_follow_the_fillets(degree, tolerance):
    """The plain cell's outline is exact lines and arcs: its length in closed form. Chords on
    the 0.4 um fillets at 0.2 um elements are 1.2e-3 short; quadratic edges 5e-6."""
    case = load_case_text(PLAIN_CASE + f"[solver]\ngeometry_degree = {degree}\n")
    emesh = build_mesh(case)
    tag = emesh.geometry.facet_groups["interface_copper_mix"]
    dS = ufl.Measure("dS", domain=emesh.mesh, subdomain_data=emesh.facet_tags)
    length = integrate(1.0 * dS(tag)) / 1e-6
    exact = plain_interface_length_um(PlainProfile(4.0, 2.0, 3.0, 0.4), 8.0)
    assert length == pytest.approx(exact, rel=tolerance)
    if degree == 2:
        assert 1e-6 < abs(length / exact - 1)  # not exact: quadratics through the arcs
        assert emesh.geometry.metrics["element_scaled_jacobian_min"] > 0.1  # measured 0.13
    # The trapezoid's area either way (the foot and top fillets' chords cancel in P1).
    dx = ufl.Measure("dx", domain=emesh.mesh, subdomain_data=emesh.cell_tags)
    assert integrate(1.0 * dx(1)) / 1e-12 == pytest.approx(8 * 5 + 9.0, rel=1e-5)


def test_recurved_run_with_curved_elements_agrees_with_straight_ones(tmp_path):
    """The recurved cell cooled in one step: interface risk and tractions with quadratic
    geometry within 2% of the straight-sided mesh's (measured 0.5%), and the outputs written
    (the displacement in fields.xdmf at the geometry's degree)."""
    summaries = []
    for degree in (1, 2):
        case_file = former_recurved_case(tmp_path / f"degree{degree}",
                                         f"geometry_degree = {degree}\n")
        out = tmp_path / f"out{degree}"
        assert cli.main(["run", str(case_file), "--out", str(out), "-q", "--no-progress"]) == 0
        summaries.append(json.loads((out / "summary.json").read_text()))
    straight, curved = (s["interfaces"]["interface_copper_mix"] for s in summaries)
    for key in ("max_risk", "max_normal_traction_averaged", "max_shear_traction_averaged"):
        assert curved[key] == pytest.approx(straight[key], rel=0.02), key
    assert summaries[1]["geometry"]["geometry_degree"] == 2
    assert summaries[1]["geometry"]["element_scaled_jacobian_min"] > 0.2


def test_geometry_degree_must_not_exceed_the_displacement_degree():
    with pytest.raises(CaseError, match=r"solver\.geometry_degree: must not exceed degree"):
        load_case_text(PLAIN_CASE + "[solver]\ngeometry_degree = 2\ndegree = 1\n")


def test_curved_elements_give_the_same_summary_on_one_and_two_ranks(tmp_path):
    case_file = former_recurved_case(tmp_path, "geometry_degree = 2\n")
    serial, _ = summaries_on_one_and_two_ranks(case_file, tmp_path, RECURVED_PHYSICS)
    assert serial["geometry"]["geometry_degree"] == 2
