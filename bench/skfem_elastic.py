"""The P1 3D cool-down of the bench in scikit-fem + pyamg (`comparisons.skfem_ratio` of
bench/results.json); run in bench/.venv, which bench/run.py fills on demand.

It reads the mesh sinterfem built from the Gmsh file that sinterfem's mesh-file run reads
too (p1.msh of bench/child.py --mesh-out: vertices in micrometres, tetrahedra, cell tags as
gmsh:physical) and the constants per tag (materials.json), and solves the same linear
thermo-elasticity as bench/bare_dolfinx.py (its docstring says which): one assembly,
smoothed-aggregation AMG with the six rigid-body modes as B, CG to a relative residual of
1e-10 (tighter than the bare script's 1e-8, so that the displacements can be compared to
1e-6), two solves and the face displacement from the reactions; sinterfem's displacement at
the vertices (p1.npz, the same vertices) is the comparison. The assembly goes by chunks of
elements, so that the element matrices of ~2M tetrahedra never are in memory at once.
The record has the wall times of the phases and their CPU seconds (cpu_s: mesh, assemble,
setup, the rest, which is the solves and the reactions, and in all).

    python3 bench/skfem_elastic.py MESH_DIR --record RECORD.json
"""

import argparse
import json
import resource
import time
from pathlib import Path

import meshio
import numpy as np
import pyamg
from skfem import Basis, BilinearForm, ElementTetP1, ElementVector, LinearForm, MeshTet, asm
from skfem.helpers import ddot, div, sym_grad, trace

RTOL = 1e-10
CHUNK = 200_000  # elements per assembly chunk


@BilinearForm
def stiffness(u, v, w):
    eps_u, eps_v = sym_grad(u), sym_grad(v)
    return 2 * w["mu"] * ddot(eps_u, eps_v) + w["lam"] * trace(eps_u) * trace(eps_v)


@LinearForm
def thermal_load(v, w):
    # sigma(eps_th I) : eps(v) = (3 lambda + 2 mu) eps_th div v
    return (3 * w["lam"] + 2 * w["mu"]) * w["eps"] * div(v)


def rigid_body_modes(points: np.ndarray, nodal_dofs: np.ndarray, size: int) -> np.ndarray:
    """Translations and rotations as the columns of B, per dof."""
    x = (points - points.mean(axis=0)) / np.ptp(points, axis=0).max()
    modes = np.zeros((size, 6))
    for axis in range(3):
        modes[nodal_dofs[axis], axis] = 1.0
    for column, (a, b) in enumerate([(0, 1), (1, 2), (2, 0)], start=3):
        modes[nodal_dofs[a], column] = -x[:, b]
        modes[nodal_dofs[b], column] = x[:, a]
    return modes


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mesh_dir", type=Path)
    parser.add_argument("--record", type=Path, required=True)
    args = parser.parse_args()
    started, cpu_started = time.perf_counter(), time.process_time()
    mesh_file = meshio.read(args.mesh_dir / "p1.msh")
    constants = json.loads((args.mesh_dir / "materials.json").read_text())["materials"]
    points = mesh_file.points * 1e-6  # micrometres in the file
    tetrahedra = mesh_file.cells_dict["tetra"]
    tags = mesh_file.cell_data_dict["gmsh:physical"]["tetra"]
    mesh = MeshTet(points.T.copy(), tetrahedra.T.copy())
    element = ElementVector(ElementTetP1())
    mesh_s = time.perf_counter() - started
    cpu = {"mesh": time.process_time() - cpu_started}

    assembly_started, cpu_assembly_started = time.perf_counter(), time.process_time()
    scale = 1.0 / max(m["youngs_modulus"] for m in constants.values())
    lam, mu, eps = (np.zeros(len(tags)) for _ in range(3))
    for tag, material in constants.items():
        E, nu = material["youngs_modulus"] * scale, material["poisson_ratio"]
        cells = tags == int(tag)
        lam[cells] = E * nu / ((1 + nu) * (1 - 2 * nu))
        mu[cells] = E / (2 * (1 + nu))
        eps[cells] = material["thermal_strain"]
    K, f = None, None
    for first in range(0, len(tags), CHUNK):
        chunk = np.arange(first, min(first + CHUNK, len(tags)))
        basis = Basis(mesh, element, elements=chunk, intorder=1)
        fields = {name: values[chunk][:, None] * np.ones((1, basis.X.shape[1]))
                  for name, values in (("lam", lam), ("mu", mu), ("eps", eps))}
        part = asm(stiffness, basis, **fields).tocsr()
        K = part if K is None else K + part
        load = asm(thermal_load, basis, **fields)
        f = load if f is None else f + load
    basis = Basis(mesh, element, intorder=1)
    assemble_s = time.perf_counter() - assembly_started
    cpu["assemble"] = time.process_time() - cpu_assembly_started

    low, high = points.min(axis=0), points.max(axis=0)
    tolerance = 1e-6 * (high - low).max()
    nodal = basis.nodal_dofs  # (3, vertices)
    held = np.concatenate([nodal[axis, np.isclose(points[:, axis], low[axis], rtol=0,
                                                   atol=tolerance)] for axis in range(3)])
    moved = np.concatenate([nodal[axis, np.isclose(points[:, axis], high[axis], rtol=0,
                                                    atol=tolerance)] for axis in range(2)])
    fixed = np.union1d(held, moved)
    free = np.setdiff1d(np.arange(basis.N), fixed)
    K_free = K[free][:, free].tocsr()

    setup_started, cpu_setup_started = time.perf_counter(), time.process_time()
    B = rigid_body_modes(points, nodal, basis.N)[free]
    hierarchy = pyamg.smoothed_aggregation_solver(K_free, B=B, symmetry="symmetric")
    setup_s = time.perf_counter() - setup_started
    cpu["setup"] = time.process_time() - cpu_setup_started

    solutions, iterations, solve_s = {}, 0, 0.0
    for name, face in (("load", 0.0), ("unit", 1.0)):
        u = np.zeros(basis.N)
        u[moved] = face
        rhs = (f if name == "load" else 0 * f)[free] - K[free][:, fixed] @ u[fixed]
        residuals = []
        solve_started = time.perf_counter()
        u[free] = hierarchy.solve(rhs, tol=RTOL, accel="cg", maxiter=2000,
                                  residuals=residuals)
        solve_s += time.perf_counter() - solve_started
        iterations += len(residuals) - 1
        if residuals[-1] > RTOL * residuals[0]:
            raise RuntimeError(f"the {name} solve did not converge: "
                               f"{residuals[-1] / residuals[0]:.2e}")
        solutions[name] = u

    weight = np.zeros(basis.N)
    weight[moved] = 1.0
    # the net force on the moved faces: the reaction K u - f in the sense of the weight
    load_force = weight @ (K @ solutions["load"] - f)
    unit_force = weight @ (K @ solutions["unit"])
    d = -load_force / unit_force
    u = solutions["load"] + d * solutions["unit"]
    total_s = time.perf_counter() - started
    cpu["total"] = time.process_time() - cpu_started
    cpu["rest"] = cpu["total"] - sum(cpu[phase] for phase in ("mesh", "assemble", "setup"))

    theirs = np.load(args.mesh_dir / "p1.npz")["displacement"]  # sinterfem's, at the vertices
    ours = np.stack([u[nodal[axis]] for axis in range(3)], axis=1)
    difference = float(np.abs(ours - theirs).max() / np.abs(theirs).max())
    record = {"mesh_s": mesh_s, "assemble_s": assemble_s, "setup_s": setup_s,
              "solve_s": solve_s, "total_s": total_s, "iterations": iterations,
              "linear_solves": 2, "ranks": 1, "dofs": int(basis.N), "cells": len(tags),
              "peak_mem_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
              "face_displacement": float(d),
              "displacement_max_relative_difference": difference,
              "amg_levels": len(hierarchy.levels), "cpu_s": cpu}
    args.record.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
