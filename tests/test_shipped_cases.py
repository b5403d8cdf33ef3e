"""Every shipped case gives the summary recorded in tests/data/shipped-summaries*.json.

Each case runs as shipped, geometry and mesh included, with the schedule in as few steps as
its materials allow (`solver.temperature_increment` larger than any ramp, one step per
hold: conftest.quick_case): elastic end states do not depend on the steps, and the
history-dependent cases are checked step by step elsewhere (test_inelastic, test_process).

Every number of its summary that does not depend on the ranks or the machine
(conftest.reference_numbers: times, versions, paths, Newton iteration and step-cut counts
left out) is compared with the value recorded by tests/record_shipped_summaries.py (from
the code before the solver's restructuring; the file's header says which, and how), to
RELATIVE (1e-6; conftest.ABSOLUTE_FLOOR for the few numbers that are zero up to roundoff),
and the set of keys must be the recorded one: a number that is no longer in the
summary, or a new one, fails. All cases run on 2 MPI ranks (`mpirun -n 2 python3 -m pytest
-m mpi`); the cheapest (SERIAL) also on 1, in the serial suite. `sinter check` accepts every
case (test_cli).
"""

import json
import math

import pytest
from mpi4py import MPI

from conftest import (
    RELATIVE,
    REPO,
    SHIPPED,
    agrees,
    reference_numbers,
    relative_difference,
    run_quick,
    toolchain,
)

# The values hold for the Gmsh and DOLFINx they were recorded with (another Gmsh meshes
# otherwise: Debian unstable's 4.15 against Debian 13's 4.13), so there is one recording per
# toolchain the suite runs on (shipped-summaries.json: Debian 13's; -sid.json: Debian
# unstable's, both of the code before the restructuring); on any other toolchain only the
# keys and the finiteness of the values are checked.
RECORDINGS = {path.name: json.loads(path.read_text())
              for path in sorted((REPO / "tests" / "data").glob("shipped-summaries*.json"))}
MATCHING = [name for name, data in RECORDINGS.items()
            if data["about"]["toolchain"] == toolchain()]
SAME_TOOLCHAIN = bool(MATCHING)
RECORDING = MATCHING[0] if MATCHING else "shipped-summaries.json"
RECORDED = RECORDINGS[RECORDING]
# The cases that also run on 1 rank, in the serial suite (50 s together): those that took
# less than 5 s each on 1 rank, and furnace-roll (16 s) and swelling-particles-2d (19 s) for
# the furnace's and the swelling's solvers. Left out: particles-3d (94 s), pulloff-plain-2d
# (57 s), pulloff-recurved-2d (86 s), swelling-diffusion-2d (38 s), recurved-3d (21 s) and
# pulloff-recurved-3d (its quick form: 26 s of CPU per rank on 2 ranks, 39 s wall);
# variants of them run serially in the tests of each feature.
SERIAL = ["bilayer-cu-pi.toml", "furnace-roll.toml", "particles-2d.toml",
          "particles-undercut-2d.toml", "plain-vs-recurved-2d.toml", "pulloff-flat-2d.toml",
          "recurved-2d.toml", "rough-ra-2d.toml", "sinter-schedule-2d.toml",
          "swelling-particles-2d.toml", "thinfilm-on-recurved.toml", "thinfilm-stack.toml",
          "user-mesh-2d.toml"]


def differences(name: str, summary: dict, values: bool = True) -> list[str]:
    """How the numbers of `summary` differ from those recorded for the case `name`: their
    keys, and their values unless `values` is false (then only that they are finite)."""
    recorded, now = RECORDED["cases"][name], reference_numbers(summary)
    problems = [f"{key}: recorded ({recorded[key]!r}), no longer in the summary"
                for key in sorted(recorded.keys() - now.keys())]
    problems += [f"{key}: new in the summary ({now[key]!r}), not recorded (a new quantity: add "
                 f"it to tests/data/{RECORDING} by hand, leaving the rest alone)"
                 for key in sorted(now.keys() - recorded.keys())]
    for key in sorted(recorded.keys() & now.keys()):
        if not values:
            if isinstance(now[key], float) and not math.isfinite(now[key]):
                problems.append(f"{key}: {now[key]!r}")
        elif not agrees(key, recorded[key], now[key]):
            relative = relative_difference(recorded[key], now[key])
            problems.append(f"{key}: recorded {recorded[key]!r}, now {now[key]!r} (relative "
                            f"difference {relative:.2g})")
    return problems


def check(name: str, comm, out) -> None:
    summary = run_quick(name, out, comm)
    assert summary["ranks"] == comm.size
    # rank 0's summary is the complete one (the interfaces' tractions are gathered there)
    problems = comm.bcast(differences(name, summary, SAME_TOOLCHAIN) if comm.rank == 0
                          else None)
    assert not problems, (f"{name} on {comm.size} rank(s): {len(problems)} number(s) differ "
                          f"from tests/data/{RECORDING} (rel {RELATIVE}):\n"
                          + "\n".join(problems))
    if not SAME_TOOLCHAIN:
        pytest.skip(f"keys checked; values recorded with {RECORDED['about']['toolchain']}, "
                    f"not compared on {toolchain()}")


def test_every_shipped_case_is_recorded():
    for recording in RECORDINGS.values():
        assert sorted(recording["cases"]) == SHIPPED
    assert set(SERIAL) <= set(SHIPPED)


@pytest.mark.mpi
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_case_gives_the_recorded_summary_on_two_ranks(name, tmp_path_factory):
    comm = MPI.COMM_WORLD
    assert comm.size == 2
    base = comm.bcast(str(tmp_path_factory.mktemp("shipped")) if comm.rank == 0 else None)
    check(name, comm, f"{base}/{name}")


@pytest.mark.parametrize("name", SERIAL)
def test_shipped_case_gives_the_recorded_summary_on_one_rank(name, tmp_path):
    assert MPI.COMM_WORLD.size == 1
    check(name, MPI.COMM_WORLD, tmp_path / name)
