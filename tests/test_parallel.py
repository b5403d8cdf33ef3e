"""Parallel runs give the serial results.

The `mpi` tests run under `mpirun -n 2 python3 -m pytest -m mpi` (make test does); the
comparison of whole runs on 1 and 2 ranks launches mpirun itself.
"""

import json
import subprocess
import sys

import numpy as np
import pytest
from mpi4py import MPI
from test_layers import check_against_closed_form

from solver.case.schema import load_case
from solver.stages.process import run_case

from conftest import CASES, REPO, solve_final


@pytest.mark.mpi
def test_bilayer_matches_timoshenko_in_parallel(shipped_bilayer):
    check_against_closed_form(shipped_bilayer)


@pytest.mark.mpi
def test_recurved_run_in_parallel_writes_one_result(tmp_path_factory):
    comm = MPI.COMM_WORLD
    base = comm.bcast(str(tmp_path_factory.mktemp("parallel")) if comm.rank == 0 else None)
    summary = run_case(load_case(CASES / "recurved-2d.toml"), f"{base}/recurved",
                       progress=False)
    assert summary["ranks"] == comm.size
    if comm.rank == 0:
        written = json.loads(open(f"{base}/recurved/summary.json").read())
        assert written["interfaces"]["interface_copper_mix"]["max_risk"] > 0


def _summary_numbers(summary, prefix=""):
    """Every number in a summary that must not depend on the ranks."""
    # Newton's iteration counts may differ by roundoff (a line search's comparison)
    skip = {"wall_time", "ranks", "host", "newton_iterations"}
    for key, value in summary.items():
        if key in skip:
            continue
        if isinstance(value, dict):
            yield from _summary_numbers(value, f"{prefix}{key}.")
        elif isinstance(value, float | int) and not isinstance(value, bool):
            yield f"{prefix}{key}", float(value)


def summaries_on_one_and_two_ranks(case_file, tmp_path) -> list[dict]:
    """Run a case with `sinter run` on 1 and on 2 ranks; check that every summary number is
    the same to 1e-6 relative, and return both summaries."""
    summaries = []
    for ranks in (1, 2):
        out = tmp_path / f"np{ranks}"
        command = [sys.executable, "-m", "solver.cli", "run", str(case_file),
                   "--out", str(out), "--no-progress", "-q"]
        if ranks > 1:
            command = ["mpirun", "-n", str(ranks), *command]
        result = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                                timeout=600)
        assert result.returncode == 0, result.stderr
        summaries.append(json.loads((out / "summary.json").read_text()))
    serial, parallel = (dict(_summary_numbers(s)) for s in summaries)
    assert serial.keys() == parallel.keys()
    assert len(serial) > 15
    for key, value in serial.items():
        assert parallel[key] == pytest.approx(value, rel=1e-6), key
    return summaries


def test_recurved_summary_is_the_same_on_one_and_two_ranks(tmp_path):
    summaries_on_one_and_two_ranks(CASES / "recurved-2d.toml", tmp_path)


@pytest.mark.mpi
def test_probe_agrees_across_ranks(shipped_bilayer):
    solved = solve_final(shipped_bilayer)
    from solver.post.probes import probe

    points = np.array([[100e-6, 9e-6], [200e-6, 28e-6], [399e-6, 37e-6]])
    values = probe(solved.problem.u, points)
    gathered = MPI.COMM_WORLD.allgather(values)
    for other in gathered[1:]:
        np.testing.assert_array_equal(other, gathered[0])
