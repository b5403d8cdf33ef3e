"""Every shipped case meshes and runs on 2 MPI ranks (`mpirun -n 2 python3 -m pytest -m mpi`).

Each case runs as shipped, geometry and mesh included, with the schedule in as few steps as
its materials allow (`solver.temperature_increment` larger than any ramp, one step per
hold): elastic end states do not depend on the steps, and the history-dependent cases are
checked step by step elsewhere (test_inelastic, test_process). Their serial runs are in the
tests of each feature; `sinter check` accepts every case (test_cli).
"""

import math
import tomllib

import pytest
from mpi4py import MPI

from solver.case.schema import load_case_text
from solver.sweep.plan import case_toml

from conftest import CASES

SHIPPED = sorted(path.name for path in CASES.glob("*.toml") if not path.name.startswith("sweep-"))


def quick(path):
    document = tomllib.loads(path.read_text())
    document.setdefault("solver", {}).update(temperature_increment="1000 K", hold_steps=1)
    return load_case_text(case_toml(document), file=path)


def finite_numbers(data):
    for value in data.values():
        if isinstance(value, dict):
            yield from finite_numbers(value)
        elif isinstance(value, float):
            yield value


@pytest.mark.mpi
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_case_runs_on_two_ranks(name, tmp_path_factory):
    comm = MPI.COMM_WORLD
    base = comm.bcast(str(tmp_path_factory.mktemp("shipped")) if comm.rank == 0 else None)
    case = quick(CASES / name)
    if case.pulloff is not None:
        from solver.stages.pulloff import run_pulloff

        summary = run_pulloff(case, f"{base}/{name}", comm=comm)
        assert summary["pulloff"]["strength"] > 0
    else:
        from solver.stages.process import run_case

        summary = run_case(case, f"{base}/{name}", comm=comm, progress=False)
        assert summary["final"]["max_von_mises"] > 0
    assert summary["ranks"] == comm.size == 2
    assert all(math.isfinite(value) for value in finite_numbers(summary))
