"""Lithium diffusion in the active cells, with a stress-dependent chemical potential.

The concentration is normalized: c = C / C_max = SOC (0 to 1), C_max [mol/m^3] the
concentration at full lithiation. Ideal dilute solution with the Larche-Cahn stress term
(Zhang, Shyy & Sastry, J. Electrochem. Soc. 154 (2007) A910; Cheng & Verbrugge, J. Power
Sources 190 (2009) 453):

    mu = mu_0 + R T ln c - Omega sigma_h,
    J / C_max = j = -D c grad(mu) / (R T) = -D (grad c - c Omega / (R T) grad sigma_h),
    dc/dt = -div j,

with sigma_h = tr(sigma) / 3 the hydrostatic stress, positive in tension: the chemical
potential is lower where the lattice is stretched, so lithium flows up the gradient of
sigma_h, into tension. Omega [m^3/mol] is the partial molar volume of Li. The swelling
stage lets the volume grow as V/V0 = 1 + beta SOC; the linearized Vegard law with the
eigenstrain Omega C / 3 I of Zhang et al. is the same strain when Omega C_max = beta, so
Omega = beta / C_max here (for Si: C_max = 3.75 Li per Si = 3.75 rho / M = 3.11e5
mol/m^3, beta = 2.8 gives Omega = 9.0e-6 m^3/mol, 0.75 of the molar volume of Si per Li,
as V/V0 about 1 + 0.75 x for Li_xSi).

The diffusivity of Li in (amorphous) silicon is about 1e-16 to 1e-14 m^2/s (Ding et al.,
Solid State Ionics 180 (2009) 222, GITT and EIS on Si films); here it is constant.

Discretization: Lagrange P1 or P2 concentration on the whole mesh, with the equation
integrated over the active cells only; degrees of freedom that no active cell touches are
held at zero (they carry no meaning). Backward Euler in time. At the surface facets either
the SOC is prescribed (Dirichlet) or an inward flux q = -j.n [SOC m/s] (exterior facets
only). The hydrostatic stress, discontinuous between cells, is L2-projected over the
active cells onto the concentration space before its gradient is taken.

Two-way coupling (`solve_coupled`) is staggered: within a time step, elasticity with the
current c, then the diffusion with that stress, until c changes by less than a tolerance.
Plain staggering diverges when the coupling number theta = Omega kappa / (R T) times c
exceeds about 1 (kappa = 2 E beta / (9 (1 - nu)), the drop of sigma_h per unit SOC of a
spherical inclusion in its own material; theta is about 230 for Si with beta = 2.8).
The diffusion solve therefore carries the stabilization of the fixed-stress split of
poroelasticity: sigma_h = sigma_h^k - kappa (c - c^k) inside the step, with c^k the
previous iterate as the multiplier of the correction, which vanishes at convergence
(measured: 6-10 iterations per step at theta c = 2.66 with a P1 concentration and P2
displacement, where plain staggering diverges; 3-14 at theta = 232). A P2 concentration
converges slowly (36-46): the P2 displacement cannot follow a P2 eigenstrain cell by cell.
The bulk value K beta instead of kappa bounds every response and converges for any theta,
in about twice the iterations.
Staggering (not a monolithic solve) is what the swelling stage, which owns its own
mechanics, can use: it passes its hydrostatic stress to `set_hydrostatic_stress`.
"""

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import ufl
from dolfinx import fem
from dolfinx import mesh as dolfinx_mesh
from dolfinx.fem import petsc as fem_petsc
from mpi4py import MPI
from petsc4py import PETSc

from solver.materials.elasticity import as_3d, hooke, lame
from solver.numerics.fields import field_by_tag, touched_dofs
from solver.numerics.linear import (
    DIRECT_SOLVER,
    ELASTICITY_AMG,
    ELASTICITY_KRYLOV,
    configured_ksp,
    rigid_body_modes,
    scalar_amg_solver,
    solve_dirichlet,
    uses_direct_solver,
)
from solver.numerics.stepping import staggered

logger = logging.getLogger(__name__)

GAS_CONSTANT = 8.314462618  # J/(mol K)
ROOM_TEMPERATURE = 298.15  # K
# Li15Si4 (x = 3.75 per Si), Si at 2330 kg/m^3 and 28.0855 g/mol
SILICON_MAX_CONCENTRATION = 3.75 * 2330.0 / 28.0855e-3  # mol/m^3
# The iterative solves' relative tolerance: the SOC (of order 1) then carries errors of
# about 1e-10, four decades below the staggering's tolerance (1e-6 of SOC by default).
ITERATIVE_RTOL = 1e-10
# The projection's mass matrix: Jacobi bounds its condition number independently of h.
MASS_SOLVER = {"ksp_type": "cg", "ksp_rtol": ITERATIVE_RTOL, "ksp_atol": 1e-50,
               "ksp_max_it": 1000, "pc_type": "jacobi"}


def iterative_options(solver, dofs: int, gdim: int, options: dict) -> dict | None:
    """`options` where the [solver] settings `solver` (linear_solver, direct_solver_max_dofs;
    None: the defaults) choose an iterative solve of `dofs` unknowns in `gdim` dimensions,
    None for LU."""
    if solver is None:
        from solver.case.solver_section import SolverSettings

        solver = SolverSettings()
    direct = uses_direct_solver(solver.linear_solver, dofs, solver.direct_solver_max_dofs,
                                gdim)
    return None if direct else options


def inclusion_stress_response(youngs_modulus: float, poisson_ratio: float,
                              swelling_coefficient: float) -> float:
    """kappa [Pa per unit SOC]: the hydrostatic stress drop of a spherical inclusion
    swelling by beta dc / 3 in its own material, 2 E beta / (9 (1 - nu)); in a free sphere
    sigma_h = kappa (mean c - c) exactly."""
    return 2 * youngs_modulus * swelling_coefficient / (9 * (1 - poisson_ratio))


def _cell_size(msh, dx) -> float:
    """(volume / cells)^(1/d) of the integration domain dx: a length to scale forms by."""
    one = fem.Constant(msh, PETSc.ScalarType(1.0))
    comm = msh.comm
    volume = comm.allreduce(fem.assemble_scalar(fem.form(one * dx)), op=MPI.SUM)
    cells = msh.topology.index_map(msh.topology.dim).size_global
    return (volume / cells) ** (1 / msh.topology.dim)


class _LinearSystem:
    """a(u, v) = L(v) with Dirichlet conditions: by LU (`iterative` None), or by the KSP
    options `iterative` (solver/numerics/linear.py), with `nullspace` as the near-nullspace
    of its algebraic multigrid. The matrix is reassembled only when asked: a constant
    operator keeps its factors, or its preconditioner (built once). An iterative solve starts
    from the target's current values (the previous solution, or staggering iterate)."""

    def __init__(self, comm, name: str, matrix_form, rhs_form, iterative: dict | None = None,
                 nullspace=None):
        self.matrix_form, self.rhs_form = matrix_form, rhs_form
        self.ksp = configured_ksp(comm, name, DIRECT_SOLVER if iterative is None else iterative)
        self.ksp.setInitialGuessNonzero(iterative is not None)
        self.nullspace = nullspace
        self.matrix = None

    def solve(self, bcs, target: fem.Function, refactor: bool = True):
        if refactor or self.matrix is None:
            if self.matrix is not None:
                self.matrix.destroy()
            self.matrix = fem_petsc.assemble_matrix(self.matrix_form, bcs=bcs)
            self.matrix.assemble()
            if self.nullspace is not None:
                self.matrix.setNearNullSpace(self.nullspace)
            self.ksp.setOperators(self.matrix)
        solve_dirichlet(self.ksp, self.matrix_form, self.rhs_form, bcs, target)


class LithiumDiffusion:
    """Backward Euler diffusion of the SOC `soc` in the cells tagged `active_tags`.

    surface_facets: local facet indices where the surface SOC or the inward flux applies;
    diffusivity [m^2/s]; swelling_coefficient beta and max_concentration C_max [mol/m^3]
    give Omega = beta / C_max; stress_response: kappa [Pa per unit SOC] for the stabilized
    staggering (`inclusion_stress_response`; 0: plain staggering). The stress enters only
    through `set_hydrostatic_stress` (zero until then: plain Fickian diffusion).
    solver: the case's [solver] settings, whose linear_solver and direct_solver_max_dofs
    choose LU or an iterative solve (None: their defaults). The transport operator is
    nonsymmetric once the stress drives the flux: GMRES with BoomerAMG; the projection's
    mass matrix: CG with Jacobi.
    """

    def __init__(self, msh, cell_tags, active_tags: Sequence[int], surface_facets,
                 diffusivity: float, *, degree: int = 1, swelling_coefficient: float = 0.0,
                 max_concentration: float = SILICON_MAX_CONCENTRATION,
                 temperature: float = ROOM_TEMPERATURE, stress_response: float = 0.0,
                 initial_soc: float = 0.0, solver=None):
        self.mesh, self.comm = msh, msh.comm
        tdim = msh.topology.dim
        self.partial_molar_volume = swelling_coefficient / max_concentration
        self.temperature = temperature
        self.space = V = fem.functionspace(msh, ("Lagrange", degree))
        self.soc = fem.Function(V, name="soc")
        self.dofs = V.dofmap.index_map.size_global
        self._iterative = iterative_options(
            solver, self.dofs, msh.geometry.dim, scalar_amg_solver("gmres", ITERATIVE_RTOL))
        self.direct_solver = self._iterative is None
        self.previous = fem.Function(V)  # the SOC at the start of the step
        self.hydrostatic_stress = fem.Function(V, name="hydrostatic_stress")  # projected
        self._iterate = fem.Function(V)  # c^k, the previous staggering iterate
        active_tags = tuple(int(t) for t in active_tags)
        self._every_cell = ufl.Measure("dx", domain=msh, subdomain_data=cell_tags,
                                       metadata={"quadrature_degree": 2 * degree + 1})
        self.dx = self._every_cell(active_tags)
        self._active_tags = active_tags
        one = fem.Constant(msh, PETSc.ScalarType(1.0))
        self.volume = self.comm.allreduce(fem.assemble_scalar(fem.form(one * self.dx)),
                                          op=MPI.SUM)
        self.size = _cell_size(msh, self.dx)

        self._active_dofs, inactive = self._active_and_inactive_dofs(cell_tags, active_tags)
        self._inactive = fem.dirichletbc(PETSc.ScalarType(0.0), inactive, V)
        fdim = tdim - 1
        msh.topology.create_connectivity(fdim, tdim)
        facets = np.unique(np.asarray(surface_facets, dtype=np.int32))
        self.surface_soc = fem.Constant(msh, PETSc.ScalarType(0.0))
        self._surface = fem.dirichletbc(self.surface_soc, fem.locate_dofs_topological(
            V, fdim, facets), V)
        surface = dolfinx_mesh.meshtags(msh, fdim, facets, np.ones(len(facets), np.int32))
        ds = ufl.Measure("ds", domain=msh, subdomain_data=surface)(1)

        self.dt = fem.Constant(msh, PETSc.ScalarType(1.0))
        self._zero = fem.Constant(msh, PETSc.ScalarType(0.0))
        self.surface_flux = fem.Constant(msh, PETSc.ScalarType(0.0))  # inward, SOC m/s
        self.stress_response = stress_response
        self._stabilization = fem.Constant(msh, PETSc.ScalarType(0.0))  # kappa, or 0
        D = fem.Constant(msh, PETSc.ScalarType(diffusivity))
        coupling = self.partial_molar_volume / (GAS_CONSTANT * temperature)  # 1/Pa
        c, v = ufl.TrialFunction(V), ufl.TestFunction(V)
        c_k, kappa = self._iterate, self._stabilization
        # j = -D (grad c - c Omega/(RT) grad sigma_h), sigma_h = p - kappa (c - c^k); c^k
        # multiplies the stabilization (linear in c), which vanishes as c^k -> c.
        drift = coupling * ufl.grad(self.hydrostatic_stress)
        flux = -D * (ufl.grad(c) - c * drift + coupling * kappa * c_k * ufl.grad(c))
        known_flux = -D * coupling * kappa * c_k * ufl.grad(c_k)
        # scaled by dt / h^d: entries of order 1 + D dt / h^2, as the Dirichlet rows' 1
        scale = self.dt / self.size ** tdim
        self._system = _LinearSystem(
            self.comm, "diffusion",
            fem.form(scale * (c * v / self.dt - ufl.inner(flux, ufl.grad(v))) * self.dx
                     + self._pattern(c, v)),
            fem.form(scale * (self.previous * v / self.dt
                              - ufl.inner(known_flux, ufl.grad(v))) * self.dx
                     + scale * self.surface_flux * v * ds),
            self._iterative)
        self._projections = {}  # id of a stress expression -> (expression, its system)
        self.set_soc(initial_soc)
        self._mean = fem.form(self.soc * self.dx)
        imbalance = ufl.grad(self.soc) - self.soc * drift
        self._flux_norms = (fem.form(ufl.inner(imbalance, imbalance) * self.dx),
                            fem.form(ufl.inner(ufl.grad(self.soc), ufl.grad(self.soc))
                                     * self.dx))

    def _pattern(self, trial, test):
        """A zero term over every cell: the matrix's sparsity then holds the diagonal of
        the inactive dofs, where their Dirichlet rows put 1 (integrals over the active
        cells alone leave those entries out)."""
        return self._zero * trial * test * self._every_cell

    def _active_and_inactive_dofs(self, cell_tags, active_tags):
        """Local (owned and ghost) dofs that an active cell on some rank touches, and the
        others."""
        cells = cell_tags.indices[np.isin(cell_tags.values, active_tags)]
        active = touched_dofs(self.space, cells)
        return np.flatnonzero(active).astype(np.int32), np.flatnonzero(~active).astype(np.int32)

    # -- state ---------------------------------------------------------------------------
    def set_soc(self, value: float):
        """A uniform SOC in the active cells, as the state at the start of the next step."""
        self.soc.x.array[self._active_dofs] = value
        self.soc.x.scatter_forward()
        self.commit()

    def commit(self):
        """Accept the current SOC as the start of the next time step."""
        self.previous.x.array[:] = self.soc.x.array

    def mean_soc(self) -> float:
        """The SOC averaged over the active cells (the uptake M_t / (C_max V))."""
        return self.comm.allreduce(fem.assemble_scalar(self._mean), op=MPI.SUM) / self.volume

    def flux_residual(self) -> float:
        """||grad c - c Omega/(RT) grad sigma_h|| / ||grad c|| (L2 over the active cells):
        zero where the chemical potential is uniform (equilibrium)."""
        norms = [self.comm.allreduce(fem.assemble_scalar(f), op=MPI.SUM)
                 for f in self._flux_norms]
        return float(np.sqrt(norms[0] / norms[1]))

    def set_hydrostatic_stress(self, expression, quadrature_degree: int | None = None):
        """L2-project the hydrostatic stress (a UFL expression, Pa) over the active cells
        onto the concentration space: the stress term of the flux takes its gradient.
        quadrature_degree: that of an expression holding quadrature-point data (whose
        points the load's rule must then be)."""
        key = id(expression)
        if key not in self._projections:
            V, volume = self.space, self.size ** self.mesh.topology.dim
            p, q = ufl.TrialFunction(V), ufl.TestFunction(V)
            dx = self.dx if quadrature_degree is None else self._every_cell(
                self._active_tags, metadata={"quadrature_degree": quadrature_degree,
                                             "quadrature_scheme": "default"})
            system = _LinearSystem(self.comm, "diffusion_projection",
                                   fem.form(p * q / volume * self.dx + self._pattern(p, q)),
                                   fem.form(expression * q / volume * dx),
                                   None if self._iterative is None else MASS_SOLVER)
            # the expression is kept with its system: its id is then not reused
            self._projections[key] = (expression, system)
        system = self._projections[key][1]
        system.solve([self._inactive], self.hydrostatic_stress, refactor=False)

    # -- a time step ---------------------------------------------------------------------
    def solve(self, dt: float, surface_soc: float | None = None, surface_flux: float = 0.0,
              staggered: bool = False) -> float:
        """Solve the step of length dt from `previous` with the current hydrostatic stress
        and returns the largest change of the SOC. surface_soc: the SOC at the surface
        facets at the end of the step (None: the inward flux surface_flux [SOC m/s] there
        instead). staggered: one iterate of a staggered loop, with the stabilization
        sigma_h -> sigma_h - kappa (c - c^k) (repeat, with the stress of the new SOC, until
        the change is small; then `commit`)."""
        self.dt.value = dt
        self._stabilization.value = self.stress_response if staggered else 0.0
        self.surface_flux.value = surface_flux if surface_soc is None else 0.0
        bcs = [self._inactive]
        if surface_soc is not None:
            self.surface_soc.value = surface_soc
            bcs.append(self._surface)
        self._iterate.x.array[:] = self.soc.x.array
        self._system.solve(bcs, self.soc)
        change = np.abs(self.soc.x.array - self._iterate.x.array).max(initial=0.0)
        return self.comm.allreduce(change, op=MPI.MAX)

    def step(self, dt: float, surface_soc: float | None = None,
             surface_flux: float = 0.0) -> float:
        """One time step with the hydrostatic stress held as it is; returns the mean SOC."""
        self.solve(dt, surface_soc, surface_flux)
        self.commit()
        return self.mean_soc()


class SmallStrainElasticity:
    """Linear elasticity with the swelling eigenstrain beta c / 3 I, 3D or plane strain.

    youngs_modulus, poisson_ratio, swelling_coefficient: values per cell tag (beta 0 where
    nothing swells); soc: the SOC field (LithiumDiffusion.soc); constraints: (facets,
    component) pairs held at zero displacement (e.g. symmetry planes). The stiffness does
    not depend on the SOC (no softening), so it is factored once (LU), or its AMG built
    once (CG with the rigid-body modes, where `solver`'s [solver] settings choose an
    iterative solve; None: their defaults).
    """

    def __init__(self, msh, cell_tags, youngs_modulus: dict[int, float],
                 poisson_ratio: dict[int, float], swelling_coefficient: dict[int, float],
                 soc: fem.Function, constraints: Sequence[tuple[np.ndarray, int]],
                 degree: int = 2, solver=None):
        self.mesh, self.comm = msh, msh.comm
        self.gdim = gdim = msh.geometry.dim
        E = field_by_tag(msh, cell_tags, youngs_modulus)
        nu = field_by_tag(msh, cell_tags, poisson_ratio)
        beta = field_by_tag(msh, cell_tags, swelling_coefficient)
        self.lame_lambda, self.shear_modulus = lame(E, nu)
        self.space = V = fem.functionspace(msh, ("Lagrange", degree, (gdim,)))
        self.u = fem.Function(V, name="u")
        self.eigenstrain = beta * soc / 3 * ufl.Identity(3)
        fdim = msh.topology.dim - 1
        self.bcs = [fem.dirichletbc(PETSc.ScalarType(0.0),
                                    fem.locate_dofs_topological(V.sub(component), fdim,
                                                                np.asarray(facets, np.int32)),
                                    V.sub(component))
                    for facets, component in constraints]
        dx = ufl.Measure("dx", domain=msh, metadata={"quadrature_degree": 2 * degree})
        u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
        scale = 1.0 / (max(youngs_modulus.values()) * _cell_size(msh, dx) ** (gdim - 2))
        dofs = V.dofmap.index_map.size_global * V.dofmap.index_map_bs
        iterative = iterative_options(
            solver, dofs, gdim, {**ELASTICITY_KRYLOV, **ELASTICITY_AMG, "ksp_rtol": ITERATIVE_RTOL})
        self._system = _LinearSystem(
            self.comm, "diffusion_elasticity",
            fem.form(scale * ufl.inner(self._stress_of(self._strain(u)), self._strain(v)) * dx),
            fem.form(scale * ufl.inner(self._stress_of(self.eigenstrain), self._strain(v))
                     * dx),
            iterative, None if iterative is None else rigid_body_modes(V))

    def _strain(self, w):
        """sym grad w as 3x3 (plane strain in 2D: zero third row and column)."""
        return ufl.sym(as_3d(ufl.grad(w)))

    def _stress_of(self, strain):
        return hooke(strain, self.lame_lambda, self.shear_modulus)

    def stress(self):
        """The 3x3 Cauchy stress (sigma_zz included in plane strain), UFL."""
        return self._stress_of(self._strain(self.u) - self.eigenstrain)

    def hydrostatic_stress(self):
        return ufl.tr(self.stress()) / 3

    def solve(self):
        """The displacement for the current SOC field."""
        self._system.solve(self.bcs, self.u, refactor=False)


@dataclass
class CoupledHistory:
    times: list[float] = field(default_factory=list)
    mean_soc: list[float] = field(default_factory=list)
    iterations: list[int] = field(default_factory=list)  # staggering iterations per step


def solve_coupled(diffusion: LithiumDiffusion, elasticity: SmallStrainElasticity,
                  times: Sequence[float], *,
                  surface_soc: Callable[[float], float] | None = None,
                  surface_flux: Callable[[float], float] | None = None,
                  coupling: Literal["two-way", "one-way"] = "two-way",
                  tolerance: float = 1e-9, max_iterations: int = 50) -> CoupledHistory:
    """Diffuse from times[0] over the steps between `times`, with the elastic stress.

    surface_soc(t) or surface_flux(t) (inward, SOC m/s) at the end of each step (neither:
    a closed particle). two-way: the hydrostatic stress enters the flux, staggered to
    max |c^(k+1) - c^k| <= tolerance per step; one-way: plain diffusion, the stress
    follows. Either way the stress is that of the final SOC of each step.
    """
    history = CoupledHistory([float(times[0])], [diffusion.mean_soc()], [0])
    hydrostatic_stress = elasticity.hydrostatic_stress()
    elasticity.solve()
    if coupling == "two-way":
        diffusion.set_hydrostatic_stress(hydrostatic_stress)
    for before, now in zip(times[:-1], times[1:], strict=True):
        dt = now - before
        boundary = (surface_soc(now) if surface_soc is not None else None,
                    surface_flux(now) if surface_flux is not None else 0.0)
        if coupling == "one-way":
            diffusion.solve(dt, *boundary)
            iterations = 1
        else:
            def one_pass(dt=dt, boundary=boundary) -> float:
                change = diffusion.solve(dt, *boundary, staggered=True)
                elasticity.solve()
                diffusion.set_hydrostatic_stress(hydrostatic_stress)
                return change

            iterations = staggered(one_pass, tolerance, max_iterations, f"at t = {now:.6g} s")
        diffusion.commit()
        if coupling == "one-way":
            elasticity.solve()
        history.times.append(float(now))
        history.mean_soc.append(diffusion.mean_soc())
        history.iterations.append(iterations)
    return history
