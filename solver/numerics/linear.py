"""Linear solves: KSP configurations, the near-nullspace of elasticity for algebraic
multigrid, and the solve of K x = b with Dirichlet conditions."""

from contextlib import contextmanager

import numpy as np
from dolfinx import fem
from dolfinx.fem import petsc as fem_petsc
from mpi4py import MPI
from petsc4py import PETSc

from solver.errors import SolverError

# CG with smoothed-aggregation AMG (with rigid_body_modes as the near-nullspace): the
# symmetric positive definite stiffness of small-strain elasticity
ELASTICITY_SOLVER = {
    "ksp_type": "cg", "ksp_atol": 1e-50, "ksp_max_it": 2000, "pc_type": "gamg",
    "mg_levels_ksp_type": "chebyshev", "mg_levels_pc_type": "jacobi",
    "pc_gamg_coarse_eq_limit": 1000,
}
# LU by MUMPS, on any number of ranks
DIRECT_SOLVER = {"ksp_type": "preonly", "pc_type": "lu", "pc_factor_mat_solver_type": "mumps"}
# PETSc's own LU with a nested-dissection ordering: one rank only
SERIAL_DIRECT_SOLVER = {"ksp_type": "preonly", "pc_type": "lu",
                        "pc_factor_mat_solver_type": "petsc", "pc_factor_mat_ordering_type": "nd"}


def direct_solver(comm) -> dict:
    """LU for `comm`: PETSc's own (nested dissection, the faster one) on one rank, MUMPS in
    parallel."""
    return DIRECT_SOLVER if comm.size > 1 else SERIAL_DIRECT_SOLVER


def uses_direct_solver(choice: str, dofs: int, max_direct_dofs: int) -> bool:
    """Whether a [solver] linear_solver choice ("auto", "direct", "iterative") factorizes a
    system of `dofs` unknowns: auto does up to max_direct_dofs, where LU is the faster."""
    return choice == "direct" or (choice == "auto" and dofs <= max_direct_dofs)


# The iterative solvers of the nonlinear stages (docs/numerics.md, "Linear solvers of the
# nonlinear stages"). A finite-strain tangent (swelling) carries initial-stress terms and
# need not be positive definite, nor symmetric with plastic flow: GMRES, preconditioned on
# the right so that rtol bounds the true residual, the measure of Newton's convergence,
# with smoothed-aggregation AMG that is given the rigid-body modes (CondensedNewton's
# nullspace). rtol 1e-8 keeps Newton's iterations those of LU and the results within 1e-7
# of LU's (1e-6 saves few Krylov iterations and moves results by 1e-6); a drop threshold
# and four smoothing steps take a quarter of the iterations of GAMG's defaults on P2
# (measured on swelling-particles-2d: docs/numerics.md).
TANGENT_SOLVER = {
    "ksp_type": "gmres", "ksp_pc_side": "right", "ksp_gmres_restart": 100,
    "ksp_rtol": 1e-8, "ksp_atol": 1e-50, "ksp_max_it": 1000, "pc_type": "gamg",
    "pc_gamg_threshold": 0.02, "mg_levels_ksp_type": "chebyshev",
    "mg_levels_ksp_max_it": 4, "mg_levels_pc_type": "jacobi",
    "pc_gamg_coarse_eq_limit": 1000,
}


def scalar_amg_solver(ksp_type: str, rtol: float) -> dict:
    """A Krylov method (cg for a symmetric positive definite operator, gmres, preconditioned
    on the right, for a nonsymmetric one) with BoomerAMG, to rtol of the right-hand side's
    norm: scalar diffusion and heat conduction."""
    right = {"ksp_pc_side": "right", "ksp_gmres_restart": 100} if ksp_type == "gmres" else {}
    return {"ksp_type": ksp_type, **right, "ksp_rtol": rtol, "ksp_atol": 1e-50,
            "ksp_max_it": 1000, "pc_type": "hypre", "pc_hypre_type": "boomeramg"}


@contextmanager
def _in_database(prefix: str, options: dict):
    """`options` under `prefix` in PETSc's global options database, removed afterwards."""
    database = PETSc.Options()
    for key, value in options.items():
        database[prefix + key] = value
    try:
        yield
    finally:
        for key in options:
            database.delValue(prefix + key)


def configured_ksp(comm, name: str, options: dict) -> PETSc.KSP:
    """A KSP set up from `options`, leaving PETSc's global options database as it was."""
    ksp = PETSc.KSP().create(comm)
    prefix = f"sinter_{name}_{id(ksp)}_"
    ksp.setOptionsPrefix(prefix)
    with _in_database(prefix, options):
        ksp.setFromOptions()
    return ksp


def set_up_from_options(ksp: PETSc.KSP, options: dict):
    """Set up `ksp` (its operators set) with `options` in the database again: the solvers
    that its preconditioner creates only at set-up (a fieldsplit's blocks) read theirs then."""
    with _in_database(ksp.getOptionsPrefix(), options):
        ksp.setFromOptions()
        ksp.setUp()


def rigid_body_modes(space) -> PETSc.NullSpace:
    """The near-nullspace of elasticity (translations, rotations) for algebraic multigrid."""
    gdim = space.mesh.geometry.dim
    coords = space.tabulate_dof_coordinates()[:, :gdim]
    # one centre and scale for the whole mesh: per rank, the "rotations" would turn about
    # each rank's own centre, piecewise rigid modes that are not modes of the whole body
    comm = space.mesh.comm
    lower, upper = coords.min(axis=0, initial=np.inf), coords.max(axis=0, initial=-np.inf)
    comm.Allreduce(MPI.IN_PLACE, lower, op=MPI.MIN)
    comm.Allreduce(MPI.IN_PLACE, upper, op=MPI.MAX)
    coords = (coords - (lower + upper) / 2) / max((upper - lower).max(), 1e-300)
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


def check_converged(ksp: PETSc.KSP, what: str = "a linear solve"):
    """SolverError unless the last solve of `ksp` converged."""
    reason = ksp.getConvergedReason()
    if reason <= 0:
        raise SolverError(f"{what} did not converge (KSP reason {reason}, "
                          f"{ksp.getIterationNumber()} iterations)")


def solve_dirichlet(ksp: PETSc.KSP, a, rhs, bcs, solution: fem.Function,
                    what: str = "a linear solve"):
    """Solve K x = b into `solution`, with x = the Dirichlet values of `bcs` on their dofs.

    ksp's operator K is the matrix of the bilinear form `a` assembled with `bcs` (unit
    diagonal on their rows); rhs: the linear form of b, or b already assembled (then lifted
    and set here in place, and left to the caller). SolverError where the solve does not
    converge; the solution is scattered to the ghosts."""
    b = fem_petsc.assemble_vector(rhs) if not isinstance(rhs, PETSc.Vec) else rhs
    fem_petsc.apply_lifting(b, [a], bcs=[bcs])
    b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
    fem_petsc.set_bc(b, bcs)
    ksp.solve(b, solution.x.petsc_vec)
    if b is not rhs:
        b.destroy()
    check_converged(ksp, what)
    solution.x.scatter_forward()
    return solution
