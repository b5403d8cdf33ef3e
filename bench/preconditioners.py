"""Preconditioners for the P2 (and P1) elasticity operator on the 3D cells (run on purpose,
never in tests): CG iterations to rtol 1e-8 (--rtol), setup and solve wall time and peak
memory, at about 0.25M and 1M displacement DOFs, for GAMG (as shipped and tuned), hypre
BoomerAMG (with the options that suit elasticity) and, for P2, a two-level p-multigrid (P1
as the coarse level).

    bin/sinter-env python3 bench/preconditioners.py [--cases ...] [--sizes ...] [--pcs ...]
        [--degree 1|2] [--rtol RTOL]
    bin/sinter-env mpirun -n 2 python3 bench/preconditioners.py --pcs NAME

The operator is the one sinterfem solves (solver/physics/thermoelastic.py: the scaled
equations, the Dirichlet rows with a unit diagonal, the rigid-body near-nullspace); the load
is the cool-down's thermal mismatch (as a process eigenstrain alpha dT per material). The
residual norm is the unpreconditioned one for every preconditioner, so that "rtol 1e-8"
means the same thing for all of them. Records are merged into bench/preconditioners.json
(a run replaces the records with its case, size, degree, ranks, preconditioner and rtol)
and the whole table is printed.
"""

import argparse
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from dolfinx.fem import petsc as fem_petsc
from mpi4py import MPI
from petsc4py import PETSc

from solver.case import load_case_text
from solver.geometry.mesh import build_mesh
from solver.numerics.fields import fill_cellwise
from solver.numerics.linear import (
    P_MULTIGRID_COARSE,
    P_MULTIGRID_SMOOTHER,
    PMultigrid,
    configured_ksp,
)
from solver.physics.thermoelastic import ThermoElasticProblem

ROOT = Path(__file__).resolve().parents[1]
RTOL = 1e-8

# The scale of each case's mesh sizes that gives about 0.25M and 1M DOFs (measured), per
# degree; P1 on the recurved cell: 242,586 and 1,278,687 DOFs (meshed by HXT, as
# bench/run.py's p1-3d at 1M)
SIZES = {2: {"recurved-3d": {"0.25M": 0.77, "1M": 0.42},
             "plate-3d": {"0.25M": 5.3, "1M": 3.2}},
         1: {"recurved-3d": {"0.25M": 0.3, "1M": 0.157},
             "plate-3d": {"0.25M": 2.7, "1M": 1.7}}}


def _of_degree(text: str, degree: int) -> str:
    """A case file's text, for degree 1 with P1 displacements on straight cells."""
    if degree == 2:
        return text
    if "[solver]" not in text:
        text += "\n[solver]\n"
    return text.replace("[solver]", "[solver]\ndegree = 1\ngeometry_degree = 1")


def recurved_case(scale: float, degree: int = 2):
    """cases/recurved-3d.toml with mesh_size and interface_mesh_size times `scale`, with
    displacements (and geometry, for P1) of `degree`."""
    text = (ROOT / "cases" / "recurved-3d.toml").read_text()
    text = re.sub(r'^mesh_size = "1.0 um"', f'mesh_size = "{1.0 * scale:g} um"', text,
                  flags=re.M)
    text = re.sub(r'^interface_mesh_size = "0.12 um"',
                  f'interface_mesh_size = "{0.12 * scale:g} um"', text, flags=re.M)
    return load_case_text(_of_degree(text, degree), file="recurved-3d")


def plate_case(mesh_size_um: float, degree: int = 2):
    """cases/bilayer-cu-pi.toml (18 um Cu, 20 um polyimide) as a 200 x 200 um 3D plate."""
    text = (ROOT / "cases" / "bilayer-cu-pi.toml").read_text()
    text = text.replace("dim = 2 ", "dim = 3 ")
    text = text.replace('length = "400 um"', 'length = "200 um"\nwidth = "200 um"')
    text = text.replace('mesh_size = "2 um"', f'mesh_size = "{mesh_size_um:g} um"')
    return load_case_text(_of_degree(text, degree), file="plate-3d")


CASES = {"recurved-3d": recurved_case, "plate-3d": plate_case}

_CG = {"ksp_type": "cg", "ksp_norm_type": "unpreconditioned", "ksp_rtol": RTOL,
       "ksp_atol": 1e-50, "ksp_max_it": 1000}
_GAMG = {**_CG, "pc_type": "gamg", "mg_levels_ksp_type": "chebyshev",
         "mg_levels_pc_type": "jacobi", "pc_gamg_coarse_eq_limit": 1000}
_BOOMERAMG = {**_CG, "pc_type": "hypre", "pc_hypre_type": "boomeramg",
              # explicit: hypre's defaults differ between the versions of trixie and sid
              "pc_hypre_boomeramg_coarsen_type": "HMIS",
              "pc_hypre_boomeramg_interp_type": "ext+i",
              "pc_hypre_boomeramg_relax_type_all": "symmetric-SOR/Jacobi",
              "pc_hypre_boomeramg_strong_threshold": 0.5,
              "pc_hypre_boomeramg_P_max": 4}


@dataclass
class PMultigridVariant:
    """solver.numerics.linear.PMultigrid with these options for its two levels."""

    smoother: dict = field(default_factory=lambda: P_MULTIGRID_SMOOTHER)
    coarse: dict = field(default_factory=lambda: P_MULTIGRID_COARSE)


PRECONDITIONERS = {
    "gamg": _GAMG,  # as shipped (solver/numerics/linear.py before this study)
    "gamg-thr0.01": {**_GAMG, "pc_gamg_threshold": 0.01},
    "gamg-thr0.02": {**_GAMG, "pc_gamg_threshold": 0.02},
    "gamg-thr0.05": {**_GAMG, "pc_gamg_threshold": 0.05},
    "gamg-noaggressive": {**_GAMG, "pc_gamg_aggressive_coarsening": 0},
    "gamg-aggressive-misk": {**_GAMG, "pc_gamg_aggressive_square_graph": False},
    "gamg-sor": {**_GAMG, "mg_levels_pc_type": "sor"},
    "gamg-cheb3": {**_GAMG, "mg_levels_ksp_max_it": 3},
    "gamg-cheb4": {**_GAMG, "mg_levels_ksp_max_it": 4},
    "gamg-unsmoothed": {**_GAMG, "pc_gamg_agg_nsmooths": 0},
    "boomeramg": _BOOMERAMG,
    "boomeramg-agg1": {**_BOOMERAMG, "pc_hypre_boomeramg_agg_nl": 1},
    "boomeramg-0.7-agg1": {**_BOOMERAMG, "pc_hypre_boomeramg_strong_threshold": 0.7,
                           "pc_hypre_boomeramg_agg_nl": 1},
    "boomeramg-pmis-0.7": {**_BOOMERAMG, "pc_hypre_boomeramg_coarsen_type": "PMIS",
                           "pc_hypre_boomeramg_strong_threshold": 0.7},
    "boomeramg-nodal": {**_BOOMERAMG, "pc_hypre_boomeramg_nodal_coarsen": 4,
                        "pc_hypre_boomeramg_nodal_coarsen_diag": 1},
    "boomeramg-nodal-vec": {**_BOOMERAMG, "pc_hypre_boomeramg_nodal_coarsen": 4,
                            "pc_hypre_boomeramg_nodal_coarsen_diag": 1,
                            "pc_hypre_boomeramg_vec_interp_variant": 2,
                            "pc_hypre_boomeramg_vec_interp_qmax": 4,
                            "pc_hypre_boomeramg_vec_interp_smooth": True},
    "boomeramg-nodal-agg1": {**_BOOMERAMG, "pc_hypre_boomeramg_nodal_coarsen": 4,
                             "pc_hypre_boomeramg_nodal_coarsen_diag": 1,
                             "pc_hypre_boomeramg_agg_nl": 1},
    "p-multigrid": PMultigridVariant(),
    "p-multigrid-cheb3": PMultigridVariant(smoother={**P_MULTIGRID_SMOOTHER, "ksp_max_it": 3}),
    "p-multigrid-boomeramg": PMultigridVariant(coarse={
        "ksp_type": "preonly", **{k: v for k, v in _BOOMERAMG.items() if k not in _CG}}),
}


class _OperatorOnly(ThermoElasticProblem):
    """The elasticity problem's forms and matrix, without its unit solutions."""

    def _solve_unit_global_unknowns(self):
        return []


def reset_peak_memory():
    """Restart the kernel's count of this process's peak resident memory (Linux >= 4.0)."""
    Path("/proc/self/clear_refs").write_text("5")


def _status_mb(comm, key: str) -> float:
    status = Path("/proc/self/status").read_text()
    kilobytes = int(re.search(rf"^{key}:\s+(\d+) kB", status, re.M).group(1))
    return comm.allreduce(kilobytes) / 1024


def peak_memory_mb(comm) -> float:
    """The peak resident memory since the last reset, summed over the ranks, in MB."""
    return _status_mb(comm, "VmHWM")


def resident_memory_mb(comm) -> float:
    """The resident memory now, summed over the ranks, in MB."""
    return _status_mb(comm, "VmRSS")


def measure(problem, name: str, options: dict, comm, rtol: float = RTOL) -> dict:
    """Set up and solve with one preconditioner: iterations, times, memory, true residual."""
    A = problem.A
    b = fem_petsc.assemble_vector(problem.L)
    fem_petsc.apply_lifting(b, [problem.a], bcs=[problem.constraints.dirichlet])
    b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
    fem_petsc.set_bc(b, problem.constraints.dirichlet)
    x = A.createVecRight()
    comm.barrier()
    rss_mb = resident_memory_mb(comm)
    reset_peak_memory()
    started = time.perf_counter()
    tolerance = {"ksp_rtol": rtol}
    if isinstance(options, PMultigridVariant):
        ksp = configured_ksp(comm, "bench", {**_CG, **tolerance})
        ksp.getPC().setType(PETSc.PC.Type.PYTHON)
        ksp.getPC().setPythonContext(PMultigrid(problem.V, options.smoother, options.coarse))
    else:
        ksp = configured_ksp(comm, "bench", {**options, **tolerance})
    ksp.setOperators(A)
    ksp.setUp()
    comm.barrier()
    setup_s = time.perf_counter() - started
    started = time.perf_counter()
    ksp.solve(b, x)
    comm.barrier()
    solve_s = time.perf_counter() - started
    residual = b.copy()
    A.mult(x, residual)
    residual.aypx(-1.0, b)
    record = {"preconditioner": name, "iterations": ksp.getIterationNumber(),
              "load_average": os.getloadavg()[0],
              "converged": ksp.getConvergedReason() > 0,
              "relative_residual": residual.norm() / b.norm(),
              "setup_s": setup_s, "solve_s": solve_s, "total_s": setup_s + solve_s,
              "peak_mem_mb": peak_memory_mb(comm)}
    # what setup and solve added: freed memory stays in the heap, the peak includes it
    record["added_mem_mb"] = record["peak_mem_mb"] - rss_mb
    ksp.destroy()
    for vec in (b, x, residual):
        vec.destroy()
    return record


def run(case_name: str, size: str, names: list[str], comm, degree: int = 2,
        rtol: float = RTOL) -> list[dict]:
    case = CASES[case_name](SIZES[degree][case_name][size], degree)
    started = time.perf_counter()
    emesh = build_mesh(case, comm)
    mesh_s = time.perf_counter() - started
    started = time.perf_counter()
    problem = _OperatorOnly(emesh, case)
    assemble_s = time.perf_counter() - started
    delta_t = case.schedule.end_temperature - case.schedule.start
    # the cool-down's load: every material's thermal strain, as the problem's eigenstrain
    fill_cellwise(problem.eigenstrain, emesh, {
        name: float(material.thermal_strain(case.schedule.end_temperature, case.schedule.start))
        for name, material in problem.materials.items()})
    header = {"case": case_name, "size": size, "degree": degree, "rtol": rtol,
              "dofs": problem.dofs, "ranks": comm.size,
              "cells": emesh.mesh.topology.index_map(3).size_global,
              "matrix_block_size": problem.A.getBlockSize(), "delta_temperature": delta_t,
              "mesh_s": mesh_s, "assemble_s": assemble_s,
              "petsc": ".".join(map(str, PETSc.Sys.getVersion()))}
    records = []
    for name in names:
        record = {**header, **measure(problem, name, PRECONDITIONERS[name], comm, rtol)}
        if comm.rank == 0:
            print(_row(record), flush=True)
        records.append(record)
    return records


_COLUMNS = ("case", "degree", "dofs", "ranks", "rtol", "preconditioner", "iterations",
            "setup_s", "solve_s", "peak_mem_mb", "load_average")


def _row(record: dict) -> str:
    cells = []
    for key in _COLUMNS:
        value = record.get(key, "-")  # the load average: not in the earlier records
        cells.append(f"{value:.3g}" if key == "rtol" else f"{value:.1f}"
                     if isinstance(value, float) else str(value))
    if not record["converged"]:
        cells[_COLUMNS.index("iterations")] += " (not converged)"
    return " | ".join(cells)


def save(records: list[dict], out: Path):
    """Merge `records` into the JSON at `out`: they replace those with the same case, size,
    degree, ranks, preconditioner and rtol."""
    key = ("case", "size", "degree", "ranks", "preconditioner", "rtol")
    replaced = {tuple(r[k] for k in key) for r in records}
    old = json.loads(out.read_text()) if out.exists() else []
    merged = [r for r in old if tuple(r[k] for k in key) not in replaced] + records
    merged.sort(key=lambda r: (r["case"], r["degree"], r["dofs"], r["ranks"], r["rtol"],
                               r["preconditioner"]))
    out.write_text(json.dumps(merged, indent=1) + "\n")
    return merged


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--sizes", nargs="+", default=["0.25M", "1M"], choices=["0.25M", "1M"])
    parser.add_argument("--pcs", nargs="+", default=list(PRECONDITIONERS),
                        choices=list(PRECONDITIONERS))
    parser.add_argument("--degree", type=int, default=2, choices=[1, 2])
    parser.add_argument("--rtol", type=float, default=RTOL)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "preconditioners.json")
    args = parser.parse_args()
    comm = MPI.COMM_WORLD
    for case_name in args.cases:
        for size in args.sizes:
            # saved per case and size: a long study interrupted keeps what it measured
            records = run(case_name, size, args.pcs, comm, args.degree, args.rtol)
            if comm.rank == 0:
                merged = save(records, args.out)
    if comm.rank == 0:
        print(" | ".join(_COLUMNS))
        for record in merged:
            print(_row(record))


if __name__ == "__main__":
    main()
