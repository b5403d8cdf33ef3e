"""The 3D cool-down of the bench written in bare DOLFINx: the reference that sinterfem's end
to end time is compared with (`comparisons.bare_dolfinx_ratio` of bench/results.json).

It reads the mesh that sinterfem built, with its cell tags (mesh.xdmf), and each tag's
Young's modulus, Poisson ratio and thermal strain at the end of the cool-down
(materials.json), both written by bench/child.py --mesh-out; nothing else of sinterfem.
The problem is the same linear thermo-elasticity: small strain, isotropic Hooke's law with
the thermal strain as an eigenstrain; the symmetry planes x = 0, y = 0 and the bottom
z = 0 held on their normal, the top free, and the faces x = max and y = max moved along
their normal by one shared displacement d with zero net force on them together. As that
condition is linear in d, u = u_load + d u_unit with two solves of one operator, and d from
the two reactions. One assembly, CG + GAMG with the rigid-body near-nullspace, rtol 1e-8.

    mpirun -n N python3 bench/bare_dolfinx.py MESH_DIR --record RECORD.json
"""

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np
import ufl
from dolfinx import fem, io, mesh
from dolfinx.fem import petsc as fem_petsc
from mpi4py import MPI
from petsc4py import PETSc

RTOL = 1e-8


def rigid_body_modes(V, low, high) -> PETSc.NullSpace:
    """Three translations and three rotations about the box's centre, orthonormalized (PETSc
    wants that); the centre and size are the whole mesh's, the same on every rank."""
    x = V.tabulate_dof_coordinates()[:, :3]
    x = (x - (low + high) / 2) / (high - low).max()
    zero = np.zeros(len(x))
    modes = [(1, 0, 0), (0, 1, 0), (0, 0, 1), (-x[:, 1], x[:, 0], zero),
             (zero, -x[:, 2], x[:, 1]), (x[:, 2], zero, -x[:, 0])]
    vectors = []
    for mode in modes:
        f = fem.Function(V)
        values = f.x.array.reshape(-1, 3)
        for i, component in enumerate(mode):
            values[:, i] = component
        vector = f.x.petsc_vec.copy()
        for other in vectors:
            vector.axpy(-vector.dot(other), other)
        vector.normalize()
        vectors.append(vector)
    return PETSc.NullSpace().create(vectors=vectors)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mesh_dir", type=Path)
    parser.add_argument("--record", type=Path, required=True)
    args = parser.parse_args()
    comm = MPI.COMM_WORLD
    started = time.perf_counter()
    with io.XDMFFile(comm, str(args.mesh_dir / "mesh.xdmf"), "r") as xdmf:
        msh = xdmf.read_mesh(name="mesh")
        cell_tags = xdmf.read_meshtags(msh, name="materials")
    data = json.loads((args.mesh_dir / "materials.json").read_text())
    mesh_s = time.perf_counter() - started

    # the constants per cell, from the tags
    Q = fem.functionspace(msh, ("DG", 0))
    E, nu, eps_th = fem.Function(Q), fem.Function(Q), fem.Function(Q)
    for tag, material in data["materials"].items():
        cells = cell_tags.find(int(tag))
        E.x.array[cells] = material["youngs_modulus"]
        nu.x.array[cells] = material["poisson_ratio"]
        eps_th.x.array[cells] = material["thermal_strain"]
    for f in (E, nu, eps_th):
        f.x.scatter_forward()
    scale = 1.0 / max(m["youngs_modulus"] for m in data["materials"].values())
    lmbda = scale * E * nu / ((1 + nu) * (1 - 2 * nu))
    mu = scale * E / (2 * (1 + nu))

    V = fem.functionspace(msh, ("Lagrange", data["degree"], (3,)))
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)

    def strain(w):
        return ufl.sym(ufl.grad(w))

    def stress(eps):
        return 2 * mu * eps + lmbda * ufl.tr(eps) * ufl.Identity(3)

    thermal = eps_th * ufl.Identity(3)
    a = fem.form(ufl.inner(stress(strain(u)), strain(v)) * ufl.dx)
    loads = {"load": fem.form(ufl.inner(stress(thermal), strain(v)) * ufl.dx),
             "unit": fem.form(ufl.inner(fem.Constant(msh, np.zeros(3)), v) * ufl.dx)}

    # boundaries by their coordinates: the cell is a box
    x = msh.geometry.x
    low, high = np.empty(3), np.empty(3)
    comm.Allreduce(x.min(axis=0), low, op=MPI.MIN)
    comm.Allreduce(x.max(axis=0), high, op=MPI.MAX)
    tolerance = 1e-6 * (high - low).max()
    fdim = msh.topology.dim - 1

    def facets(axis, value):
        return mesh.locate_entities_boundary(
            msh, fdim, lambda p: np.isclose(p[axis], value, rtol=0, atol=tolerance))

    face = fem.Constant(msh, PETSc.ScalarType(0.0))
    bcs = [fem.dirichletbc(PETSc.ScalarType(0.0),
                           fem.locate_dofs_topological(V.sub(axis), fdim, facets(axis,
                                                                                  low[axis])),
                           V.sub(axis)) for axis in range(3)]
    moved = [fem.locate_dofs_topological(V.sub(axis), fdim, facets(axis, high[axis]))
             for axis in range(2)]
    bcs += [fem.dirichletbc(face, dofs, V.sub(axis)) for axis, dofs in enumerate(moved)]
    # the face weight: 1 on the moved normal components; its work is the net face force
    weight = fem.Function(V)
    for dofs in moved:  # indices into the whole space's array
        weight.x.array[dofs] = 1.0
    weight.x.scatter_forward()

    assembly_started = time.perf_counter()
    A = fem_petsc.assemble_matrix(a, bcs=bcs)
    A.assemble()
    assemble_s = time.perf_counter() - assembly_started
    A.setNearNullSpace(rigid_body_modes(V, low, high))

    ksp = PETSc.KSP().create(comm)
    ksp.setOperators(A)
    ksp.setType("cg")
    ksp.getPC().setType("gamg")
    ksp.setTolerances(rtol=RTOL, atol=1e-50, max_it=2000)
    setup_started = time.perf_counter()
    ksp.setUp()
    setup_s = time.perf_counter() - setup_started

    solutions, iterations, solve_s = {}, 0, 0.0
    for name, face_value in (("load", 0.0), ("unit", 1.0)):
        face.value = face_value
        assembly_started = time.perf_counter()
        b = fem_petsc.assemble_vector(loads[name])
        fem_petsc.apply_lifting(b, [a], bcs=[bcs])
        b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        fem_petsc.set_bc(b, bcs)
        assemble_s += time.perf_counter() - assembly_started
        solution = fem.Function(V)
        solve_started = time.perf_counter()
        ksp.solve(b, solution.x.petsc_vec)
        solve_s += time.perf_counter() - solve_started
        if ksp.getConvergedReason() <= 0:
            raise RuntimeError(f"the {name} solve did not converge: {ksp.getConvergedReason()}")
        iterations += ksp.getIterationNumber()
        solution.x.scatter_forward()
        solutions[name] = solution

    def reaction(solution, with_thermal):
        eps = strain(solution) - (thermal if with_thermal else 0 * thermal)
        return comm.allreduce(fem.assemble_scalar(fem.form(
            ufl.inner(stress(eps), strain(weight)) * ufl.dx)), op=MPI.SUM)

    d = -reaction(solutions["load"], True) / reaction(solutions["unit"], False)
    u_final = fem.Function(V)
    u_final.x.array[:] = solutions["load"].x.array + d * solutions["unit"].x.array
    total_s = time.perf_counter() - started
    record = {"mesh_s": mesh_s, "assemble_s": assemble_s, "setup_s": setup_s,
              "solve_s": solve_s, "total_s": total_s}
    record = {key: comm.allreduce(value, op=MPI.MAX) for key, value in record.items()}
    record.update({
        "iterations": iterations, "linear_solves": 2, "ranks": comm.size,
        "dofs": V.dofmap.index_map.size_global * V.dofmap.index_map_bs,
        "cells": msh.topology.index_map(3).size_global,
        "peak_mem_mb": comm.allreduce(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024.0,
        "face_displacement": d,
        "max_displacement": comm.allreduce(float(np.abs(u_final.x.array).max()), op=MPI.MAX)})
    if comm.rank == 0:
        args.record.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
