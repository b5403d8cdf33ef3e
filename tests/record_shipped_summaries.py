"""Record the summaries of the shipped cases in their quick form: tests/data/shipped-summaries.json.

The reference that tests/test_shipped_cases.py compares every shipped case against (to 1e-6
relative), so that a restructuring of the solver can show it gives the same numbers as the
code it replaces. Run it from the checkout, on 1 rank (the values stored) and on 2 (the
check that they do not depend on the ranks):

    bin/sinter-env python3 tests/record_shipped_summaries.py --commit $(git rev-parse --short HEAD)
    bin/sinter-env mpirun -n 2 python3 tests/record_shipped_summaries.py --out /tmp/np2.json
    bin/sinter-env python3 tests/record_shipped_summaries.py --compare /tmp/np2.json

Only rerun it to store new values when a change of the results is intended, and say so in the
commit. The quick form, the numbers taken from a summary, the skipped keys and the tolerances
are in tests/conftest.py (quick_case, run_quick, reference_numbers, SKIPPED_KEYS, agrees),
shared with the test.
"""

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mpi4py import MPI

from conftest import (
    ABSOLUTE_FLOOR,
    REPO,
    SHIPPED,
    SKIPPED_KEYS,
    agrees,
    reference_numbers,
    relative_difference,
    run_quick,
    toolchain,
)

DATA = REPO / "tests" / "data" / "shipped-summaries.json"


def git_commit() -> str:
    """HEAD's short hash, with a note if solver/, meshes/ or cases/ differ from it."""
    try:
        def git(*words):
            return subprocess.run(["git", *words], cwd=REPO, capture_output=True, text=True,
                                  check=True).stdout.strip()

        dirty = git("status", "--porcelain", "--", "solver", "meshes", "cases")
        return git("rev-parse", "--short", "HEAD") + (" + local changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):  # no git (in the Debian root)
        return "unknown (pass --commit)"


def record(names, comm, keep=None) -> tuple[dict, dict]:
    """Each case's reference numbers and wall time (s) on the ranks of comm; the results
    directories in `keep` if given, else in a scratch directory that is removed."""
    values, seconds = {}, {}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = comm.bcast(str(keep or scratch) if comm.rank == 0 else None)
        for name in names:
            comm.Barrier()
            started, cpu = time.perf_counter(), time.process_time()
            summary = run_quick(name, Path(scratch) / name, comm)
            seconds[name] = comm.allreduce(time.perf_counter() - started, op=MPI.MAX)
            cpu = comm.allreduce(time.process_time() - cpu, op=MPI.MAX)
            values[name] = reference_numbers(summary)  # rank 0's summary is the complete one
            if comm.rank == 0:
                print(f"{name}: {len(values[name])} numbers, {seconds[name]:.1f} s on "
                      f"{comm.size} rank(s) (CPU {cpu:.1f} s per rank)", flush=True)
    return values, seconds


def compare(ours: dict, theirs: dict) -> bool:
    """Print, per case, the largest relative difference between two sets of values (the
    numbers with an absolute floor, conftest.ABSOLUTE_FLOOR, apart) and the numbers that do
    not agree as the test requires; whether all agree."""
    same = True
    for name in sorted(ours.keys() | theirs.keys()):
        a, b = ours.get(name, {}), theirs.get(name, {})
        if a.keys() != b.keys():
            same = False
            print(f"{name}: keys differ: only in the first {sorted(a.keys() - b.keys())}, "
                  f"only in the second {sorted(b.keys() - a.keys())}")
        common = a.keys() & b.keys()
        worst = max(((relative_difference(a[k], b[k]), k) for k in common
                     if k.rsplit(".", 1)[-1] not in ABSOLUTE_FLOOR), default=(0.0, "-"))
        print(f"{name}: largest relative difference {worst[0]:.3g} ({worst[1]}: "
              f"{a.get(worst[1])!r} vs {b.get(worst[1])!r})")
        for key in sorted(common):
            if key.rsplit(".", 1)[-1] in ABSOLUTE_FLOOR:
                print(f"    {key}: {a[key]!r} vs {b[key]!r} (absolute floor "
                      f"{ABSOLUTE_FLOOR[key.rsplit('.', 1)[-1]]:g})")
            if not agrees(key, a[key], b[key]):
                same = False
                print(f"    {key}: {a[key]!r} vs {b[key]!r} DIFFER")
    return same


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DATA)
    parser.add_argument("--case", action="append", help="only these cases (file names)")
    parser.add_argument("--commit", help="the code's commit, for the header (default: git's "
                        "HEAD, where git is at hand)")
    parser.add_argument("--keep", type=Path, help="keep the cases' results directories here")
    parser.add_argument("--compare", type=Path,
                        help="compare --out with this file instead of running the cases")
    args = parser.parse_args()
    if args.compare:
        ours, theirs = (json.loads(p.read_text())["cases"] for p in (args.out, args.compare))
        sys.exit(0 if compare(ours, theirs) else 1)
    comm = MPI.COMM_WORLD
    values, seconds = record(args.case or SHIPPED, comm, args.keep)
    if comm.rank == 0:
        commit = args.commit or git_commit()
        document = {
            "about": {
                "what": "every rank- and machine-independent number of each shipped case's "
                        "summary (cases/*.toml but sweep-*), run quick: "
                        "solver.temperature_increment = 1000 K, hold_steps = 1",
                "compared_by": "tests/test_shipped_cases.py, to 1e-6 relative "
                               "(absolute floor in conftest.ABSOLUTE_FLOOR)",
                "skipped_keys": sorted(SKIPPED_KEYS),
                "code_commit": commit,
                "command": (f"mpirun -n {comm.size} " if comm.size > 1 else "")
                           + "python3 " + " ".join(sys.argv),
                "ranks": comm.size,
                "toolchain": toolchain(),
                "date": datetime.date.today().isoformat(),
                "wall_time_s": {name: round(s, 1) for name, s in seconds.items()},
            },
            "cases": values,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(document, indent=1, sort_keys=False) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
