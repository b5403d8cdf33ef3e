"""Parallel runs give the serial results.

The `mpi` tests run under `mpirun -n 2 python3 -m pytest -m mpi` (make test does); the
comparison of whole runs on 1 and 2 ranks launches mpirun itself.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mpi4py import MPI
from test_layers import BILAYER_CURVATURE, BILAYER_STRESS, check_against_closed_form

from solver.case import load_case
from solver.stages.pipeline import run_case

from conftest import CASES, REPO, one_step_case, solve_final

TRACTIONS = ("max_normal_traction", "max_shear_traction", "max_normal_traction_averaged",
             "max_shear_traction_averaged", "max_risk")


def process_physics(*interfaces, generalized=True, cell=True) -> list[str]:
    """The summary keys of a process run's physics: the final state and, for each interface,
    the peak tractions and the risk index (the out-of-plane strain where it is an unknown,
    the displacement of the periodic faces of a unit cell)."""
    keys = ["final.max_von_mises"]
    if cell:
        keys.append("final.face_displacement")
    if generalized:
        keys.append("final.out_of_plane_strain")
    return keys + [f"interfaces.{name}.{key}" for name in interfaces for key in TRACTIONS]


# with the largest von Mises stress of the stress field in each material (and where it is:
# every summary number is compared)
RECURVED_PHYSICS = [*process_physics("interface_copper_mix"),
                    "final.von_mises_by_material.copper.max",
                    "final.von_mises_by_material.mix.max"]


def _distributed(msh) -> bool:
    """Whether every rank holds only part of the mesh's cells."""
    cells = msh.topology.index_map(msh.topology.dim)
    return msh.comm.allreduce(0 < cells.size_local < cells.size_global, op=MPI.LAND)


@pytest.mark.mpi
def test_bilayer_matches_timoshenko_in_parallel(shipped_bilayer):
    """The serial test's tolerances (measured 3.7e-4 curvature, 7.4e-5 stresses, alike on
    1 and 2 ranks), on a mesh that is really split."""
    solved, _ = check_against_closed_form(shipped_bilayer, BILAYER_CURVATURE, BILAYER_STRESS)
    assert MPI.COMM_WORLD.size == 1 or _distributed(solved.emesh.mesh)


@pytest.mark.mpi
def test_recurved_run_in_parallel_writes_one_result(tmp_path_factory):
    """run_case on all ranks writes one result (rank 0's), whose physics is that of the
    same run on rank 0 alone (COMM_SELF) to 1e-6. Cooled in one step (the elastic end state
    does not depend on the steps; the 1-vs-2-rank test below runs the whole schedule)."""
    comm = MPI.COMM_WORLD
    base = Path(comm.bcast(str(tmp_path_factory.mktemp("parallel")) if comm.rank == 0
                           else None))
    case_file = comm.bcast(one_step_case(base / "case", "recurved-2d") if comm.rank == 0
                           else None)
    case = load_case(case_file)
    summary = run_case(case, base / "recurved", progress=False)
    assert summary["ranks"] == comm.size
    if comm.rank == 0:
        serial = run_case(case, base / "serial", comm=MPI.COMM_SELF, progress=False)
        assert serial["ranks"] == 1
        written = json.loads((base / "recurved" / "summary.json").read_text())
        assert dict(_summary_numbers(written)) == pytest.approx(dict(_summary_numbers(summary)))
        assert_same_results(base / "serial", base / "recurved", RECURVED_PHYSICS)
        assert sorted(p.name for p in base.iterdir()) == ["case", "recurved", "serial"]
    comm.barrier()


def _summary_numbers(summary, prefix=""):
    """Every number in a summary that must not depend on the ranks (lists by position)."""
    # Newton's iteration counts may differ by roundoff (a line search's comparison)
    skip = {"wall_time", "ranks", "host", "newton_iterations"}
    items = summary.items() if isinstance(summary, dict) else enumerate(summary)
    for key, value in items:
        if key in skip:
            continue
        if isinstance(value, dict | list):
            yield from _summary_numbers(value, f"{prefix}{key}.")
        elif isinstance(value, float | int) and not isinstance(value, bool):
            yield f"{prefix}{key}", float(value)


def assert_same_results(serial_dir, parallel_dir, physics) -> list[dict]:
    """Two result directories of one case hold the same results: every summary number to
    1e-6 relative, among them every key of `physics` (present, and not zero: a physics
    output the run lost, or one that is zero, would compare equal whatever the ranks), the
    final displacement field of every cell (state.npz, by the cells' input numbers) to 1e-8
    of its largest value (measured 1.1e-9 on recurved-2d at solver.rtol 1e-10),
    the same files, the same fields in them (assert_same_fields), and the tractions along
    the interfaces (interface.csv, written to 9 digits) to 1e-6 of their largest (measured
    1.1e-7; the largest difference of the solver's error in the stresses of the smallest
    elements, docs/numerics.md). Returns both summaries."""
    directories = [Path(serial_dir), Path(parallel_dir)]
    summaries = [json.loads((d / "summary.json").read_text()) for d in directories]
    serial, parallel = (dict(_summary_numbers(s)) for s in summaries)
    assert serial.keys() == parallel.keys()
    for key in physics:
        assert key in serial, f"the summary has no {key}"
        assert serial[key] != 0, key
    for key, value in serial.items():
        assert parallel[key] == pytest.approx(value, rel=1e-6), key
    states = [np.load(d / "state.npz") for d in directories]
    fields = []
    for state in states:
        order = np.argsort(state["u_cells"])
        fields.append((state["u_cells"][order], state["u_values"][order]))
    np.testing.assert_array_equal(fields[0][0], fields[1][0])
    scale = np.abs(fields[0][1]).max()
    assert scale > 0
    np.testing.assert_allclose(fields[1][1], fields[0][1], rtol=0, atol=1e-8 * scale)
    assert ({p.name for p in directories[0].iterdir()}
            == {p.name for p in directories[1].iterdir()})
    assert_same_fields(directories)
    if (directories[0] / "interface.csv").exists():
        tables = [pd.read_csv(d / "interface.csv").sort_values(["interface", "x_m", "y_m", "z_m"])
                  for d in directories]
        assert len(tables[0]) == len(tables[1]) > 0
        for column in ("x_m", "y_m", "normal_traction_Pa", "shear_traction_Pa",
                       "normal_traction_averaged_Pa", "shear_traction_averaged_Pa", "risk"):
            expected = tables[0][column].to_numpy()
            np.testing.assert_allclose(tables[1][column].to_numpy(), expected, rtol=0,
                                       atol=1e-6 * np.abs(expected).max(), err_msg=column)
    return summaries


def xdmf_content(path) -> dict:
    """{(time, field): (positions, values)} of an XDMF file as ParaView reads it (VTK's Xdmf3
    reader, float32): a point field at the mesh's points, a cell field at the cells'
    centroids."""
    from vtkmodules.util.numpy_support import vtk_to_numpy
    from vtkmodules.vtkCommonExecutionModel import vtkStreamingDemandDrivenPipeline
    from vtkmodules.vtkIOXdmf3 import vtkXdmf3Reader

    reader = vtkXdmf3Reader()
    reader.SetFileName(str(Path(path).absolute()))
    reader.UpdateInformation()
    content = {}
    for time in reader.GetOutputInformation(0).Get(
            vtkStreamingDemandDrivenPipeline.TIME_STEPS()):
        reader.UpdateTimeStep(time)
        blocks = reader.GetOutputDataObject(0).NewIterator()
        blocks.InitTraversal()
        while not blocks.IsDoneWithTraversal():
            block = blocks.GetCurrentDataObject()
            points = vtk_to_numpy(block.GetPoints().GetData()).astype(float)
            offsets = vtk_to_numpy(block.GetCells().GetOffsetsArray())
            cells = vtk_to_numpy(block.GetCells().GetConnectivityArray()).reshape(
                len(offsets) - 1, -1)
            for positions, data in ((points, block.GetPointData()),
                                    (points[cells].mean(axis=1), block.GetCellData())):
                for k in range(data.GetNumberOfArrays()):
                    values = vtk_to_numpy(data.GetArray(k)).astype(float)
                    content[time, data.GetArrayName(k)] = (positions, values)
            blocks.GoToNextItem()
    return content


def vtx_content(path) -> dict:
    """{(step, variable): (positions, values)} of a VTX file: its nodes and each field, of
    every rank's block, without the ghost nodes (a rank's copies of another's)."""
    os.environ.setdefault("ADIOS2_ALWAYS_USE_MPI", "1")  # Debian sid: the MPI bindings only
    import adios2

    content = {}
    with adios2.FileReader(str(path)) as reader:
        names = [name for name in reader.available_variables()
                 if name not in ("geometry", "connectivity", "types", "step", "vtkGhostType",
                                 "vtkOriginalPointIds", "NumberOfNodes", "NumberOfEntities")]
        blocks = range(len(reader.all_blocks_info("geometry")[0]))  # one per rank
        points = np.concatenate([reader.read("geometry", block_id=b) for b in blocks])
        for step in range(reader.num_steps()):
            def read(name, step=step):
                return np.concatenate([reader.read(name, block_id=b, step_selection=[step, 1])
                                       for b in blocks])

            owned = read("vtkGhostType").ravel() == 0
            for name in names:
                content[step, name] = (points[owned],
                                       read(name).reshape(len(points), -1)[owned])
    return content


def assert_same_fields(directories):
    """The field files of two runs hold the same fields at the same times, with the same
    values at the same places, relative to each field's largest value: XDMF to 1e-6 (its
    reader gives float32), displacement.bp to 1e-8 and stress.bp to 1e-6, the tolerances of
    state.npz and interface.csv at solver.rtol 1e-10 (the stress, a derivative,
    differs more).
    Discontinuous (DG) fields have several nodes at one place: stress.bp's values are
    compared as sorted lists."""
    from scipy.spatial import cKDTree

    readers = {"fields.xdmf": (xdmf_content, 1e-6), "displacement.bp": (vtx_content, 1e-8),
               "stress.bp": (vtx_content, 1e-6)}
    for name, (read, tolerance) in readers.items():
        if not (directories[0] / name).exists():
            continue
        serial, parallel = read(directories[0] / name), read(directories[1] / name)
        assert serial.keys() == parallel.keys() and serial, name
        for key, (positions, values) in serial.items():
            other_positions, other_values = parallel[key]
            scale = np.abs(values).max()
            if name == "stress.bp":
                np.testing.assert_allclose(np.sort(other_values, axis=0),
                                           np.sort(values, axis=0), rtol=0,
                                           atol=tolerance * scale, err_msg=f"{name} {key}")
                continue
            distance, match = cKDTree(other_positions).query(positions)
            size = np.ptp(positions, axis=0).max()
            assert distance.max() < 1e-6 * size, f"{name} {key}: other places"
            np.testing.assert_allclose(other_values[match], values, rtol=0,
                                       atol=tolerance * max(scale, 1e-300),
                                       err_msg=f"{name} {key}")


def summaries_on_one_and_two_ranks(case_file, tmp_path, physics) -> list[dict]:
    """Run a case with `sinter run` on 1 and on 2 ranks; check that the results are the same
    (assert_same_results, with these physics keys) and return both summaries."""
    for ranks in (1, 2):
        out = tmp_path / f"np{ranks}"
        command = [sys.executable, "-m", "solver.cli", "run", str(case_file),
                   "--out", str(out), "--no-progress", "-q"]
        if ranks > 1:
            command = ["mpirun", "-n", str(ranks), *command]
        result = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                                timeout=600)
        assert result.returncode == 0, result.stderr
    summaries = assert_same_results(tmp_path / "np1", tmp_path / "np2", physics)
    assert [s["ranks"] for s in summaries] == [1, 2]
    return summaries


def test_recurved_summary_is_the_same_on_one_and_two_ranks(tmp_path):
    """The whole schedule, with fields every 10 steps in both formats."""
    case = tmp_path / "recurved-2d.toml"
    case.write_text((CASES / "recurved-2d.toml").read_text()
                    + '\n[output]\nevery = 10\nformats = ["xdmf", "vtx"]\n')
    summaries = summaries_on_one_and_two_ranks(case, tmp_path, RECURVED_PHYSICS)
    assert summaries[0]["outputs"]["files"] == ["fields.xdmf", "displacement.bp", "stress.bp"]
    assert len(summaries[0]["outputs"]["times"]) == 5  # steps 0, 10, 20, 30 and 38


@pytest.mark.mpi
def test_probe_in_parallel_gives_the_serial_values(shipped_bilayer):
    """The bilayer solved on all ranks and, on every rank, alone (COMM_SELF): the
    displacement probed across the strip (in cells of other ranks too) is the same, to 1e-9
    of its largest value (measured: 1.6e-10 on 2 ranks)."""
    from solver.post.probes import probe

    comm = MPI.COMM_WORLD
    parallel = solve_final(shipped_bilayer)
    serial = solve_final(shipped_bilayer, comm=MPI.COMM_SELF)
    assert comm.size == 1 or _distributed(parallel.emesh.mesh)
    # every 0.5 um along the strip: points in the cells both ranks hold (the ghost layer at
    # the partition boundary) are among them
    x, y = np.meshgrid(np.linspace(0.3e-6, 399.7e-6, 800), np.linspace(0.2e-6, 37.8e-6, 5))
    points = np.column_stack([x.ravel(), y.ravel()])
    values = probe(parallel.problem.u, points)
    expected = probe(serial.problem.u, points)
    scale = np.abs(expected).max()
    assert scale > 0
    np.testing.assert_allclose(values, expected, rtol=0, atol=1e-9 * scale)
    print(f"probe: largest difference {np.abs(values - expected).max() / scale:.1e}")
