"""The discretization error of the headline numbers: `sinter run --convergence`
(solver/post/convergence.py).

Richardson's extrapolation is checked on manufactured sequences with a known limit and rate,
then on the recurved cell itself: the refined solves keep the shape (the same geometry, a
finer mesh where the kind decides its interface numbers), the risk index converges
monotonically and its limit lies beyond the finest value; on 1 and 2 ranks the same.
"""

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
from mpi4py import MPI

from solver.case import load_case
from solver.errors import UserError
from solver.geometry.mesh import build_mesh
from solver.post.convergence import refined_case, richardson
from solver.stages.pipeline import run_case

from conftest import CASES, former_recurved_case, one_step_case


@pytest.mark.parametrize("order", [0.6, 1.0, 2.0, 3.0])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_richardson_recovers_a_manufactured_limit_and_order(order, sign):
    """f(h) = L + C h^p on h = 1, 1/2, 1/4: the limit L and order p exactly (to roundoff),
    from below or above."""
    limit, constant = 0.84, sign * 0.053
    values = [limit - constant * h**order for h in (1.0, 0.5, 0.25)]
    result = richardson(values)
    assert result["status"] == "converging"
    assert result["ratio"] == pytest.approx(2.0**-order, rel=1e-12)
    assert result["order"] == pytest.approx(order, rel=1e-10)
    assert result["limit"] == pytest.approx(limit, rel=1e-12)
    assert result["error_estimate"] == pytest.approx(abs(constant) * 0.25**order, rel=1e-9)
    assert result["differences"] == pytest.approx([values[1] - values[0],
                                                   values[2] - values[1]], rel=1e-14)


def test_richardson_error_estimate_falls_with_the_next_term():
    """With a second error term, L + C h^p + D h^2p, the extrapolation is no longer exact;
    its error is of the second term's order, below the finest value's own error (measured
    0.49, 0.22, 0.12 of it), and falls as the meshes get finer (h0 = 1, 1/2, 1/4)."""
    limit, p = 0.84, 0.6

    def f(h):
        return limit - 0.05 * h**p + 0.01 * h ** (2 * p)

    errors = []
    for h0, share in ((1.0, 0.55), (0.5, 0.25), (0.25, 0.15)):
        result = richardson([f(h0), f(h0 / 2), f(h0 / 4)])
        assert abs(result["limit"] - limit) < share * abs(f(h0 / 4) - limit)
        errors.append(abs(result["limit"] - limit))
    assert errors[0] > errors[1] > errors[2]


@pytest.mark.parametrize(("values", "status"), [
    ([1.0, 1.1, 1.25], "not converging"),  # a traction at a sharp corner grows without bound
    ([1.0, 1.2, 0.9], "not converging"),  # alternating, growing
    ([1.0, 1.1], "one refinement"),
])
def test_richardson_gives_no_limit_where_the_sequence_does_not_converge(values, status):
    result = richardson(values)
    assert result["status"] == status
    assert result["limit"] is None and result["error_estimate"] is None


def test_richardson_converged_and_oscillating_sequences():
    """Differences of the solver's tolerance: the finest value is the limit. Alternating
    shrinking differences (the recurved cell's risk index on interface meshes 0.03, 0.015,
    0.0075 um: 0.81755, 0.82277, 0.82165): the limit of the geometric series lies between
    the last two values, the last difference bounds the error."""
    result = richardson([2.0, 2.0 + 1e-9, 2.0 - 1e-9])
    assert result["status"] == "converged"
    assert result["limit"] == 2.0 - 1e-9 and result["error_estimate"] == 0.0
    limit, q = 0.822, -0.25
    values = [limit - 0.01, limit - 0.01 * q, limit - 0.01 * q**2]
    result = richardson(values)
    assert result["status"] == "oscillating"
    assert result["ratio"] == pytest.approx(q, rel=1e-12)
    assert result["limit"] == pytest.approx(limit, rel=1e-12)
    assert min(values[1:]) < result["limit"] < max(values[1:])
    assert result["error_estimate"] == pytest.approx(abs(values[2] - values[1]), rel=1e-12)


def _geometry_metrics(case) -> dict:
    return build_mesh(case, MPI.COMM_SELF).geometry.metrics


def test_refined_cases_keep_the_shape_and_refine_the_fine_mesh():
    """The refined case of each kind: the collector cells halve the interface size (where
    films cap it, the films' size), the rough row keeps its nodules where they were (their
    gap is not the mesh size), layers halve mesh_size, particles particle_mesh_size, and a
    mesh file is refused."""
    recurved = load_case(CASES / "recurved-2d.toml")  # 0.04 um
    assert refined_case(recurved, 2).geometry.interface_mesh_size == pytest.approx(0.02e-6)
    films = load_case(CASES / "thinfilm-on-recurved.toml")  # 0.03 um, below the films' cap
    assert refined_case(films, 2).geometry.interface_mesh_size == pytest.approx(0.015e-6)
    # 0.12 um: the 0.03 um carbon film caps it at 0.06 um, halved to 0.03 um
    capped = replace(films, geometry=films.geometry.model_copy(
        update={"interface_mesh_size": 0.12e-6}))
    assert refined_case(capped, 2).geometry.interface_mesh_size == pytest.approx(0.03e-6)
    assert refined_case(load_case(CASES / "bilayer-cu-pi.toml"), 4).geometry.mesh_size \
        == pytest.approx(0.5e-6)
    assert refined_case(load_case(CASES / "particles-2d.toml"), 2) \
        .geometry.particle_mesh_size == pytest.approx(0.05e-6)
    with pytest.raises(UserError, match="kind 'mesh' has none"):
        refined_case(load_case(CASES / "user-mesh-2d.toml"), 2)
    rough = load_case(CASES / "rough-ra-2d.toml")
    finer = refined_case(rough, 2)
    assert finer.geometry.nodule_gap == rough.geometry.interface_mesh_size
    coarse, fine = _geometry_metrics(rough), _geometry_metrics(finer)
    for key in ("Ra", "nodule_height_max", "nodule_height_mean", "projection_area",
                "undercut_area"):
        assert fine[key] == pytest.approx(coarse[key], rel=1e-12), key


def test_refined_mesh_too_large_is_refused_before_solving(tmp_path):
    """A halving that would exceed the element limit is one line, and nothing is written."""
    case = load_case(one_step_case(tmp_path, "recurved-2d"))
    with pytest.raises(UserError, match="interface_mesh_size / 4"):
        # 20 um / 1e-11 m: 2e6 elements along the interface, 8e6 at a quarter of the size
        run_case(replace(case, geometry=case.geometry.model_copy(
            update={"interface_mesh_size": 1e-11})), tmp_path / "out", progress=False,
            convergence=2)
    assert not (tmp_path / "out").exists()


def _risk_row(summary: dict) -> dict:
    (row,) = [row for row in summary["convergence"]["quantities"]
              if row["quantity"] == "interfaces.interface_copper_mix.max_risk"]
    return row


def test_recurved_cell_converges_towards_its_limit(tmp_path):
    """The recurved cell (interface 0.12, 0.06, 0.03 um): the max risk index rises
    monotonically (measured 0.7870, 0.8055, 0.8176: ratio 0.66), the limit (0.841) lies
    beyond the finest value, and the case's own results and files are those of a run
    without --convergence (the refined meshes write no files). Finer still (0.015, 0.0075
    um: 0.8228, 0.8217) the sequence settles at 0.822: the estimate from the three coarse
    meshes is conservative (its error estimate 0.023, the finest value's error 0.0045)."""
    case = load_case(former_recurved_case(tmp_path))
    plain = run_case(case, tmp_path / "plain", progress=False)
    summary = run_case(case, tmp_path / "converged", progress=False, convergence=2)
    written = json.loads((tmp_path / "converged" / "summary.json").read_text())
    assert written["convergence"] == summary["convergence"]
    assert sorted(p.name for p in (tmp_path / "plain").iterdir()) \
        == sorted(p.name for p in (tmp_path / "converged").iterdir())
    assert summary["interfaces"] == plain["interfaces"]
    meshes = summary["convergence"]["meshes"]
    assert [mesh["refinement"] for mesh in meshes] == [1, 2, 4]
    assert [mesh["fine_mesh_size"] for mesh in meshes] == pytest.approx([0.12e-6, 0.06e-6,
                                                                         0.03e-6])
    assert meshes[0]["dofs"] < meshes[1]["dofs"] < meshes[2]["dofs"]
    row = _risk_row(summary)
    values = row["values"]
    assert values[0] == plain["interfaces"]["interface_copper_mix"]["max_risk"]
    assert values[0] < values[1] < values[2]
    assert row["status"] == "converging"
    assert 0.5 < row["ratio"] < 0.8
    assert row["limit"] > values[2]
    assert row["error_estimate"] == pytest.approx(row["limit"] - values[2])
    assert row["relative_error"] == pytest.approx((row["limit"] - values[0]) / row["limit"])
    assert 0.04 < row["relative_error"] < 0.09  # the 6 % below the limit
    assert values[2] < 0.822 < row["limit"]  # the limit of the finer meshes: conservative
    assert row["order"] == pytest.approx(math.log2(1 / row["ratio"]))
    # the shipped mesh is more than 2 % from the limit: the run says so
    assert any("max risk index" in w and "from its extrapolated limit" in w
               for w in summary["warnings"])
    units = summary["units"]
    assert units["convergence.quantities.*"] == "the row's unit"
    assert units["convergence.meshes.*.fine_mesh_size"] == "m"
    assert row["unit"] == "1"


@pytest.mark.mpi
def test_convergence_is_the_same_on_1_and_2_ranks(tmp_path_factory):
    """Every number of the convergence section (wall times aside) on all ranks equals that
    of the same run on rank 0 alone: the values to 1e-6 relative (as every summary number,
    tests/test_parallel.py), the differences, the limit and the error estimate to 1e-6 of
    the largest value (a small difference of two values is only that accurate: the raw shear
    traction's error estimate, 0.026 MPa of 47 MPa, differed by 2e-6 of itself), the ratio
    to what that gives it."""
    comm = MPI.COMM_WORLD
    base = Path(comm.bcast(str(tmp_path_factory.mktemp("convergence")) if comm.rank == 0
                           else None))
    case_file = comm.bcast(former_recurved_case(base / "case") if comm.rank == 0 else None)
    case = load_case(case_file)
    parallel = run_case(case, base / "parallel", progress=False, convergence=2)["convergence"]
    if comm.rank == 0:
        serial = run_case(case, base / "serial", comm=MPI.COMM_SELF, progress=False,
                          convergence=2)["convergence"]
        for mine, theirs in zip(serial["meshes"], parallel["meshes"], strict=True):
            assert {k: v for k, v in mine.items() if k != "wall_time"} \
                == {k: v for k, v in theirs.items() if k != "wall_time"}
        assert [r["quantity"] for r in serial["quantities"]] \
            == [r["quantity"] for r in parallel["quantities"]]
        for mine, theirs in zip(serial["quantities"], parallel["quantities"], strict=True):
            assert mine["status"] == theirs["status"], mine["quantity"]
            scale = 1e-6 * max(abs(value) for value in mine["values"])
            assert theirs["values"] == pytest.approx(mine["values"], rel=1e-6)
            for key in ("differences", "limit", "error_estimate"):
                assert theirs[key] == pytest.approx(mine[key], abs=scale), (mine["quantity"],
                                                                            key)
            if mine["ratio"] is not None:
                smallest = min(abs(d) for d in mine["differences"])
                assert theirs["ratio"] == pytest.approx(mine["ratio"],
                                                        abs=4 * scale / smallest)


def test_command_line_prints_the_table(tmp_path, capsys):
    """`sinter run --convergence --halvings 1`: one refined mesh, the difference alone (no
    limit), in the terminal's table and summary.json; --halvings without --convergence is
    a user error."""
    from solver.cli import main

    case_file = former_recurved_case(tmp_path / "case")
    out = tmp_path / "out"
    assert main(["run", str(case_file), "--out", str(out), "--halvings", "1"]) == 2
    assert "--halvings: only with --convergence" in capsys.readouterr().err
    assert main(["run", str(case_file), "--out", str(out), "--no-progress", "--convergence",
                 "--halvings", "1"]) == 0
    printed = capsys.readouterr().out
    assert "discretization error: geometry.interface_mesh_size halved 1 time(s)" in printed
    assert "one refinement" in printed
    convergence = json.loads((out / "summary.json").read_text())["convergence"]
    assert [mesh["refinement"] for mesh in convergence["meshes"]] == [1, 2]
    assert {row["status"] for row in convergence["quantities"]} == {"one refinement"}
