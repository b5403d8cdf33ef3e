"""Linear solves: KSP configurations and the near-nullspace of elasticity for algebraic
multigrid."""

import numpy as np
from dolfinx import fem
from petsc4py import PETSc

# CG with smoothed-aggregation AMG (with rigid_body_modes as the near-nullspace): the
# symmetric positive definite stiffness of small-strain elasticity
ELASTICITY_SOLVER = {
    "ksp_type": "cg", "ksp_atol": 1e-50, "ksp_max_it": 2000, "pc_type": "gamg",
    "mg_levels_ksp_type": "chebyshev", "mg_levels_pc_type": "jacobi",
    "pc_gamg_coarse_eq_limit": 1000,
}


def configured_ksp(comm, name: str, options: dict) -> PETSc.KSP:
    """A KSP set up from `options`, leaving PETSc's global options database as it was."""
    ksp = PETSc.KSP().create(comm)
    prefix = f"sinter_{name}_{id(ksp)}_"
    ksp.setOptionsPrefix(prefix)
    database = PETSc.Options()
    for key, value in options.items():
        database[prefix + key] = value
    ksp.setFromOptions()
    for key in options:
        database.delValue(prefix + key)
    return ksp


def rigid_body_modes(space) -> PETSc.NullSpace:
    """The near-nullspace of elasticity (translations, rotations) for algebraic multigrid."""
    gdim = space.mesh.geometry.dim
    coords = space.tabulate_dof_coordinates()[:, :gdim]
    coords = (coords - coords.mean(axis=0)) / max(np.ptp(coords, axis=0).max(), 1e-300)
    x, y = coords[:, 0], coords[:, 1]
    if gdim == 2:
        modes = [(1, 0), (0, 1), (-y, x)]
    else:
        z = coords[:, 2]
        zero = np.zeros_like(x)
        modes = [(1, 0, 0), (0, 1, 0), (0, 0, 1), (-y, x, zero), (zero, -z, y), (z, zero, -x)]
    vectors = []
    for mode in modes:
        f = fem.Function(space)
        values = f.x.array.reshape(-1, gdim)
        for i, component in enumerate(mode):
            values[:, i] = component
        vec = f.x.petsc_vec.copy()
        for other in vectors:  # Gram-Schmidt: PETSc wants an orthonormal basis
            vec.axpy(-vec.dot(other), other)
        vec.normalize()
        vectors.append(vec)
    return PETSc.NullSpace().create(vectors=vectors)
