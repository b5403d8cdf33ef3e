"""What a result means (solver/post/verdict.py): the von Mises maximum of the stress field
per material, the delamination conditions and the verdict; the units of every number
(solver/io/units.py) and the provenance of a run (solver/io/provenance.py)."""

import json
import subprocess

import numpy as np
import pytest
import ufl
from dolfinx import fem, mesh
from mpi4py import MPI

from solver.io import provenance, units
from solver.numerics import compat
from solver.post.verdict import VonMisesMaxima, delamination_rows, verdict

from conftest import REPO


def _affine_uniaxial_stress(comm):
    """[0, 2] x [0, 1] with material "left" (x < 1) and "right", and the DG1 stress
    sigma_xx = 1 + x + 2 y (uniaxial: von Mises = |sigma_xx|, affine, so its maximum over
    each material is at a vertex: left 4 at (1, 1), right 5 at (2, 1)); its largest cell
    average is below 5."""
    msh = mesh.create_rectangle(comm, [[0.0, 0.0], [2.0, 1.0]], [8, 5],
                                mesh.CellType.triangle)
    cells = np.arange(msh.topology.index_map(2).size_local
                      + msh.topology.index_map(2).num_ghosts, dtype=np.int32)
    midpoints = mesh.compute_midpoints(msh, 2, cells)
    tags = mesh.meshtags(msh, 2, cells, np.where(midpoints[:, 0] < 1.0, 1, 2).astype(np.int32))
    stress = fem.Function(fem.functionspace(msh, ("DG", 1, (3, 3))))
    x = ufl.SpatialCoordinate(msh)
    sxx = 1 + x[0] + 2 * x[1]
    stress.interpolate(fem.Expression(ufl.as_matrix([[sxx, 0, 0], [0, 0, 0], [0, 0, 0]]),
                                      compat.interpolation_points(stress.function_space)))
    return stress, tags


def _check_affine_maxima(comm):
    stress, tags = _affine_uniaxial_stress(comm)
    maxima = VonMisesMaxima(stress, tags, {1: "left", 2: "right"}).evaluate()
    assert list(maxima) == ["left", "right"]
    assert maxima["left"]["max"] == pytest.approx(4.0, rel=1e-12)
    assert maxima["left"]["at"] == pytest.approx([1.0, 1.0], abs=1e-12)
    assert maxima["right"]["max"] == pytest.approx(5.0, rel=1e-12)
    assert maxima["right"]["at"] == pytest.approx([2.0, 1.0], abs=1e-12)
    # the cell averages (what the history's max_von_mises is) fall short of the field's
    cell = fem.Function(fem.functionspace(stress.function_space.mesh, ("DG", 0, (3, 3))))
    cell.interpolate(stress)
    assert comm.allreduce(cell.x.array.max(), op=MPI.MAX) < 5.0 - 0.1
    return maxima


def test_von_mises_maximum_is_the_stress_fields_at_its_vertex_per_material():
    _check_affine_maxima(MPI.COMM_WORLD)


@pytest.mark.mpi
def test_von_mises_maximum_is_the_same_on_two_ranks():
    comm = MPI.COMM_WORLD
    parallel = _check_affine_maxima(comm)
    assert parallel == _check_affine_maxima(MPI.COMM_SELF)  # every rank has the whole answer


def test_delamination_is_a_failed_condition_at_a_risk_of_one():
    interfaces = {
        # the risk peaked during the schedule above its final value: the peak counts
        "a": {"max_risk": 0.5, "critical_fraction": 0.0,
              "peak_over_history": {"max_risk": {"value": 1.0, "time": 1.0,
                                                 "temperature": 500.0}}},
        "b": {"max_risk": 0.999, "critical_fraction": 0.0},
    }
    rows = delamination_rows(interfaces)
    assert [(row["value"], row["limit"], row["unit"], row["verdict"]) for row in rows] == [
        (1.0, 1.0, "1", "fail"), (0.999, 1.0, "1", "pass")]
    assert rows[0]["condition"].startswith("no delamination at a (")
    process = [{"condition": "alloy", "verdict": "n/a"}, {"condition": "air", "verdict": "pass"}]
    assert verdict(process, rows) == {"pass": False, "failed": [rows[0]["condition"]],
                                      "not_applicable": ["alloy"]}
    assert verdict(process, rows[1:])["pass"] is True
    # the swelling stage's interfaces, over the lithiation
    (swelling,) = delamination_rows({"a": {"max_risk": 0.2, "critical_fraction": 0.0,
                                           "peak_over_swelling": {"max_risk": {
                                               "value": 1.5, "soc": 0.5, "step": 3}}}},
                                    "lithiation")
    assert swelling["value"] == 1.5 and swelling["verdict"] == "fail"
    assert swelling["condition"].startswith("no delamination at a during lithiation (")


def test_every_number_of_the_shipped_summaries_has_a_unit():
    for path in sorted((REPO / "tests" / "data").glob("shipped-summaries*.json")):
        for name, numbers in json.loads(path.read_text())["cases"].items():
            dim = 3 if "3d" in name else 2
            missing = [key for key, value in numbers.items()
                       if value is not None and units.unit_of(key, dim) is None]
            assert not missing, f"{path.name}: {name}: no unit for {missing}"
    assert units.unit_of("interfaces.i.peak_over_history.max_risk.value") == "1"
    assert units.unit_of("interfaces.i.peak_over_history.max_shear_traction_averaged.value") \
        == "Pa"
    assert units.unit_of("interfaces.i.peak_over_history.max_risk.time") == "s"
    assert units.unit_of("final.von_mises_by_material.copper.at.1") == "m"
    assert (units.unit_of("pulloff.peak_force", 2), units.unit_of("pulloff.peak_force", 3)) \
        == ("N/m", "N")
    assert units.summary_units({"final.temperature": 1.0, "bending.curvature": 2.0}, 2) \
        == {"*temperature*": "K", "bending.*": "1/m"}
    assert [units.column(*pair) for pair in (("time", "s"), ("risk", "1"), ("k", "1/m"))] \
        == ["time_s", "risk", "k_per_m"]


def test_provenance_of_a_run():
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        head = None  # no git here (the toolchain root): the commit is read from .git alone
    commit = provenance.git_commit()
    assert len(commit) == 40 and (head is None or commit == head)
    header = provenance.run_header(2, "0.9.0", ["run", "my case.toml"])
    assert header[0] == "command: sinter run 'my case.toml'"
    assert commit in header[1] and "DOLFINx 0.9.0" in header[2]
    assert header[3].startswith("ranks: 2, host: ") and header[4].startswith("started: 20")
    assert provenance.version_line().startswith(f"sinter (sinterfem) "
                                                f"{provenance.sinterfem_version()}")
