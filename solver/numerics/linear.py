"""Linear solves: KSP configurations, the near-nullspace of elasticity for algebraic
multigrid, the preconditioner of P2 elasticity (p-multigrid) and the solve of K x = b with
Dirichlet conditions."""

import contextlib

import numpy as np
from dolfinx import fem
from dolfinx.fem import petsc as fem_petsc
from mpi4py import MPI
from petsc4py import PETSc

from solver.errors import SolverError
from solver.numerics import compat

# CG on the symmetric positive definite stiffness of small-strain elasticity, stopping on the
# unpreconditioned residual: rtol means the same whatever the preconditioner
ELASTICITY_KRYLOV = {"ksp_type": "cg", "ksp_norm_type": "unpreconditioned", "ksp_atol": 1e-50,
                     "ksp_max_it": 2000}
# smoothed-aggregation AMG (with rigid_body_modes as the near-nullspace): the preconditioner
# of P1 elasticity, and of the P1 level of the p-multigrid for higher degrees
ELASTICITY_AMG = {"pc_type": "gamg", "mg_levels_ksp_type": "chebyshev",
                  "mg_levels_pc_type": "jacobi", "pc_gamg_coarse_eq_limit": 1000}
# the p-multigrid's smoother on the fine level: two sweeps of Chebyshev (bounds estimated
# by PCMG) with Jacobi, a symmetric smoother, so that the cycle preconditions CG
P_MULTIGRID_SMOOTHER = {"ksp_type": "chebyshev", "pc_type": "jacobi", "ksp_max_it": 2}
# ... and its P1 level: one cycle of the AMG
P_MULTIGRID_COARSE = {"ksp_type": "preonly", **ELASTICITY_AMG}
# LU by MUMPS, on any number of ranks
DIRECT_SOLVER = {"ksp_type": "preonly", "pc_type": "lu", "pc_factor_mat_solver_type": "mumps"}
# PETSc's own LU with a nested-dissection ordering: one rank only
SERIAL_DIRECT_SOLVER = {"ksp_type": "preonly", "pc_type": "lu",
                        "pc_factor_mat_solver_type": "petsc", "pc_factor_mat_ordering_type": "nd"}


def direct_solver(comm) -> dict:
    """LU for `comm`: PETSc's own (nested dissection, the faster one) on one rank, MUMPS in
    parallel."""
    return DIRECT_SOLVER if comm.size > 1 else SERIAL_DIRECT_SOLVER


# The most unknowns that linear_solver = "auto" factorizes by default, per dimension: in 2D
# LU is the faster up to about 100,000 (the nonlinear stages' tangents take 40-90 Krylov
# iterations there); in 3D the factorization's fill grows much faster (the 3D pull-off's
# 12,090 unknowns: 12 s to factor against 0.3 s for the p-multigrid's set-up and 2 s for
# its solve; a 17.7k swelling tangent: 10 s), docs/numerics.md.
DIRECT_SOLVER_MAX_DOFS = {2: 100_000, 3: 10_000}


def uses_direct_solver(choice: str, dofs: int, max_direct_dofs: int | None, gdim: int) -> bool:
    """Whether a [solver] linear_solver choice ("auto", "direct", "iterative") factorizes a
    system of `dofs` unknowns in `gdim` dimensions: auto does up to max_direct_dofs (None:
    DIRECT_SOLVER_MAX_DOFS of the dimension), where LU is the faster."""
    limit = DIRECT_SOLVER_MAX_DOFS[gdim] if max_direct_dofs is None else max_direct_dofs
    return choice == "direct" or (choice == "auto" and dofs <= limit)


# The iterative solvers of the nonlinear stages (docs/numerics.md, "Linear solvers of the
# nonlinear stages"). A finite-strain tangent (swelling) carries initial-stress terms and
# need not be positive definite, nor symmetric with plastic flow: GMRES, preconditioned on
# the right so that rtol bounds the true residual, the measure of Newton's convergence,
# with smoothed-aggregation AMG that is given the rigid-body modes (CondensedNewton's
# nullspace). rtol 1e-8 keeps Newton's iterations those of LU and the results within 1e-7
# of LU's (1e-6 saves few Krylov iterations and moves results by 1e-6); a drop threshold
# and four smoothing steps take a quarter of the iterations of GAMG's defaults on P2
# (measured on swelling-particles-2d: docs/numerics.md).
RIGHT_PRECONDITIONED_GMRES = {"ksp_type": "gmres", "ksp_pc_side": "right",
                              "ksp_gmres_restart": 100}
TANGENT_SOLVER = {
    **RIGHT_PRECONDITIONED_GMRES, "ksp_rtol": 1e-8, "ksp_atol": 1e-50, "ksp_max_it": 1000,
    **ELASTICITY_AMG, "pc_gamg_threshold": 0.02, "mg_levels_ksp_max_it": 4,
}


def scalar_amg_solver(ksp_type: str, rtol: float) -> dict:
    """A Krylov method (cg for a symmetric positive definite operator, gmres, preconditioned
    on the right, for a nonsymmetric one) with BoomerAMG, to rtol of the right-hand side's
    norm: scalar diffusion and heat conduction."""
    krylov = RIGHT_PRECONDITIONED_GMRES if ksp_type == "gmres" else {"ksp_type": ksp_type}
    return {**krylov, "ksp_rtol": rtol, "ksp_atol": 1e-50,
            "ksp_max_it": 1000, "pc_type": "hypre", "pc_hypre_type": "boomeramg"}


@contextlib.contextmanager
def options_set(prefix: str, options: dict):
    """`options` in PETSc's global options database under `prefix` for the duration of the
    block, then removed (options that are absent leave an object's settings as they are)."""
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
    with options_set(prefix, options):
        ksp.setFromOptions()
    return ksp


def set_up_from_options(ksp: PETSc.KSP, options: dict):
    """Set up `ksp` (its operators set) with `options` in the database again: the solvers
    that its preconditioner creates only at set-up (a fieldsplit's blocks) read theirs then."""
    with options_set(ksp.getOptionsPrefix(), options):
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


class PMultigrid:
    """Two-level p-multigrid for elasticity in a vector Lagrange space of degree > 1, as the
    context of a PETSc python PC: a Chebyshev/Jacobi smoother on that space and, as the
    coarse level, the Galerkin operator P^T A P on the P1 space of the same mesh (P: the
    interpolation from P1), approximately solved by one AMG cycle with P1's rigid-body
    modes. AMG sees a P1 operator (the graph it was made for, 1/8 of the unknowns in 3D)
    and the smoother the high-frequency P2 error it cannot: the iterations grow little
    with the mesh, see docs/numerics.md ("Preconditioner for P2 elasticity")."""

    def __init__(self, space, smoother: dict = P_MULTIGRID_SMOOTHER,
                 coarse: dict = P_MULTIGRID_COARSE):
        comm = space.mesh.comm
        gdim = space.mesh.geometry.dim
        coarse_space = fem.functionspace(space.mesh, ("Lagrange", 1, (gdim,)))
        self.interpolation = compat.interpolation_matrix(coarse_space, space)
        self.coarse_modes = rigid_body_modes(coarse_space)
        self.coarse_operator = None
        self.cycle = PETSc.PC().create(comm)
        self.cycle.setOptionsPrefix(f"sinter_pmg_{id(self)}_")
        self.cycle.setType(PETSc.PC.Type.MG)
        self.cycle.setMGLevels(2)
        self.cycle.setMGType(PETSc.PC.MGType.MULTIPLICATIVE)
        self.cycle.setMGInterpolation(1, self.interpolation)
        for level, options in ((self.cycle.getMGSmoother(1), smoother),
                               (self.cycle.getMGCoarseSolve(), coarse)):
            with options_set(level.getOptionsPrefix(), options):
                level.setFromOptions()

    def setUp(self, pc):
        """PETSc calls this for a new operator, or an operator whose values changed."""
        _, fine = pc.getOperators()
        coarse = fine.ptap(self.interpolation)
        coarse.setNearNullSpace(self.coarse_modes)
        self.cycle.getMGCoarseSolve().setOperators(coarse)
        if self.coarse_operator is not None:
            self.coarse_operator.destroy()
        self.coarse_operator = coarse
        self.cycle.setOperators(fine, fine)
        self.cycle.setUp()

    def apply(self, pc, x, y):
        self.cycle.apply(x, y)


def elasticity_ksp(space, matrix=None, rtol: float = 1e-8) -> PETSc.KSP:
    """CG for the stiffness `matrix` of small-strain elasticity in the vector Lagrange
    `space`, to `rtol` on the residual: preconditioned by the p-multigrid (PMultigrid) for
    degree 2 and up, by AMG for degree 1. The rigid-body modes are set as `matrix`'s
    near-nullspace (a later operator must carry them itself, for degree 1); with a matrix,
    the KSP is returned set up."""
    comm = space.mesh.comm
    ksp = configured_ksp(comm, "elastic", {**ELASTICITY_KRYLOV, "ksp_rtol": rtol})
    pc = ksp.getPC()
    if space.ufl_element().degree > 1:
        pc.setType(PETSc.PC.Type.PYTHON)
        pc.setPythonContext(PMultigrid(space))
    else:
        with options_set(ksp.getOptionsPrefix(), ELASTICITY_AMG):
            pc.setFromOptions()
    if matrix is not None:
        matrix.setNearNullSpace(rigid_body_modes(space))
        ksp.setOperators(matrix)
        ksp.setUp()
    return ksp


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
