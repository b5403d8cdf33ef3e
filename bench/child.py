"""One run of `make bench` in its own process (under mpirun for several ranks): a case run
(`sinter run`) or a pull-off (`sinter pulloff`), with its phases measured (instrument.py);
rank 0 writes the record as JSON.

    python3 bench/child.py run|pulloff CASE.toml --record RECORD.json [--mesh-out DIR]

--mesh-out: after the run, write the mesh with its cell tags (mesh.xdmf) and the elastic
constants and thermal strain of each tag at the end of the schedule (materials.json), for
the bare DOLFINx script (bare_dolfinx.py) and the scikit-fem script (skfem_elastic.py); for
a P1 run on one rank also the mesh as a Gmsh file (p1.msh), which sinterfem (kind = "mesh")
and scikit-fem both read in the mesh-file runs.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import instrument  # noqa: E402
from mpi4py import MPI  # noqa: E402

instrument.install()

from meshes.built import MICROMETRE  # noqa: E402
from solver.case import load_case  # noqa: E402
from solver.io.log import setup_logging  # noqa: E402
from solver.materials.constitutive import as_table  # noqa: E402
from solver.stages.pipeline import run_case, run_pulloff  # noqa: E402


def write_mesh(emesh, case, directory: Path, run: Path, comm):
    """mesh.xdmf (mesh and cell tags, in metres) and materials.json beside it; for a P1
    run on one rank also p1.npz: the vertices, the tetrahedra, their tags and sinterfem's
    final displacement at the vertices (from the run's state.npz), and p1.msh: the same
    vertices (in micrometres, as the builders' models), tetrahedra and tags (gmsh:physical)
    as a binary Gmsh 2.2 file."""
    import meshio
    import numpy as np
    from dolfinx import io

    directory.mkdir(parents=True, exist_ok=True)
    with io.XDMFFile(comm, str(directory / "mesh.xdmf"), "w") as xdmf:
        xdmf.write_mesh(emesh.mesh)
        emesh.cell_tags.name = "materials"
        xdmf.write_meshtags(emesh.cell_tags, emesh.mesh.geometry)
    if comm.rank == 0:
        start, end = case.schedule.start, case.schedule.end_temperature
        materials = {}
        for tag, name in emesh.geometry.cell_materials.items():
            material = case.materials[name]
            materials[str(tag)] = {
                "name": name,
                "youngs_modulus": float(as_table(material.youngs_modulus)(end)),
                "poisson_ratio": float(as_table(material.poisson_ratio)(end)),
                "thermal_strain": float(material.thermal_strain(end, start))}
        if comm.size == 1 and case.solver.degree == 1 and case.solver.geometry_degree == 1:
            msh = emesh.mesh
            with np.load(run / "state.npz") as state:
                rows = np.empty(len(state["u_cells"]), dtype=np.int64)
                rows[state["u_cells"]] = np.arange(len(rows))
                values = state["u_values"]
            cells = np.arange(msh.topology.index_map(3).size_local)
            # P1 on a P1 geometry: a cell's dofs follow its geometry nodes
            nodes = msh.geometry.dofmap[cells]
            displacement = np.zeros_like(msh.geometry.x)
            displacement[nodes.ravel()] = values[rows[msh.topology.original_cell_index[
                cells]]].reshape(-1, 3)
            tags = np.zeros(len(cells), dtype=np.int32)
            tags[emesh.cell_tags.indices] = emesh.cell_tags.values
            np.savez(directory / "p1.npz", points=msh.geometry.x, tetrahedra=nodes,
                     tags=tags, displacement=displacement)
            meshio.write(directory / "p1.msh", meshio.Mesh(
                msh.geometry.x / MICROMETRE, [("tetra", nodes)],
                cell_data={"gmsh:physical": [tags], "gmsh:geometrical": [tags]}),
                file_format="gmsh22", binary=True)
        (directory / "materials.json").write_text(json.dumps(
            {"start_temperature": start, "end_temperature": end, "degree": case.solver.degree,
             "materials": materials}, indent=1) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=("run", "pulloff"))
    parser.add_argument("case", type=Path)
    parser.add_argument("--record", type=Path, required=True)
    parser.add_argument("--mesh-out", type=Path)
    args = parser.parse_args()
    comm = MPI.COMM_WORLD
    setup_logging(-1)  # warnings on stderr (kept where the run fails), everything in run.log
    case = load_case(args.case)
    record = {}
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(comm.bcast(scratch)) / "run"
        with instrument.measured(comm, record):
            summary = (run_case(case, out, comm, progress=False) if args.command == "run"
                       else run_pulloff(case, out, comm))
        if args.mesh_out is not None:
            write_mesh(instrument.last_mesh(), case, args.mesh_out, out, comm)
        comm.barrier()
    record.update({"dofs": summary["dofs"], "cells": summary["cells"],
                   "dolfinx_version": summary["dolfinx_version"]})
    record["summary"] = {key: summary[key] for key in ("final", "schedule", "pulloff")
                         if key in summary}
    if comm.rank == 0:
        args.record.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
