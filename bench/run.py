"""Wall time of the shipped cases (run on purpose with `make bench`, never in tests).

Writes a JSON list with, per case: ranks, DOFs, cells, wall time of the whole run.
"""

import argparse
import json
import tempfile
import tomllib
from pathlib import Path

from mpi4py import MPI

from solver.case import load_case
from solver.stages.pipeline import run_case

CASES = Path(__file__).resolve().parents[1] / "cases"


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench/results.json"))
    args = parser.parse_args()
    comm = MPI.COMM_WORLD
    records = []
    with tempfile.TemporaryDirectory() as scratch:
        scratch = comm.bcast(scratch)
        for path in sorted(CASES.glob("*.toml")):
            if "sweep" in tomllib.loads(path.read_text()):
                continue  # a sweep file, not a case
            summary = run_case(load_case(path), Path(scratch) / path.stem, comm, progress=False)
            records.append({key: summary[key] for key in
                            ("case", "ranks", "dofs", "cells", "dolfinx_version", "wall_time")})
    if comm.rank == 0:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(records, indent=2) + "\n")
        for record in records:
            print(f"{record['case']}: {record['dofs']} DOFs on {record['ranks']} rank(s): "
                  f"{record['wall_time']:.2f} s")


if __name__ == "__main__":
    main()
