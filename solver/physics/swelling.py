"""The swelling stage: lithiation of the active materials, from the sintered state.

A state of charge (SOC, 0 to 1) swells each lithiating material isotropically,
V/V0 = 1 + beta SOC, and softens it linearly from E to its lithiated modulus. A material
with a `swelling_flow_stress` (lithiated silicon, and the binder and foil around it) flows
plastically (J2, von Mises of the Cauchy stress, linear isotropic hardening
`swelling_hardening_modulus` H; with a `swelling_flow_viscosity` eta the overstress law
sigma_eq = sigma_f + H p + eta dp/dt, the time of an increment being its SOC change over
`soc_rate`).

- `finite` (default): total Lagrangian, F = I + grad u = Fe Fs with the swelling stretch
  Fs = (1 + beta SOC)^(1/3) I (identity where nothing swells), a compressible neo-Hookean
  law in Fe, and the first Piola stress P = J_s P_e(Fe) Fs^-T. Exact at +280 % volume.
  Plastic flow makes it F = Fe Fp Fs (Simo 1992; Simo & Hughes 1998, box 9.1): the
  state is Cp^-1 at the quadrature points; the trial be = Fm Cp^-1 Fm^T with Fm = F / s,
  the Kirchhoff deviator mu dev be is returned radially onto the yield radius
  sqrt(2/3) sigma_f Je (the flow stress is one of the Cauchy stress, tau / Je), and
  be = s / mu + tr(be_trial) / 3 I. Without flow this is exactly the neo-Hookean law.
- `small`: linear elasticity with the eigenstrain beta SOC / 3 I; it agrees with `finite`
  to first order in beta SOC. Plastic flow: radial return of the small-strain deviator,
  the state is the plastic strain.

The return mapping is written in UFL and closed-form (perfect plasticity, linear
overstress, linear hardening), so the tangent UFL derives from it is the consistent one.

The sintered residual stress of the same run enters as a constant initial stress added to
P (a small-strain prestress: it is neither rotated nor convected with the deformation), and
the displacement is measured from the sintered configuration. Every material is elastic in
this stage (neo-Hookean in `finite`) but for the flow above: the
process stage's plastic and viscoelastic states are not continued, but the initial stress
enters the yield condition (a sintered stress above a material's flow stress relaxes in the
first increment).

Newton's method with a backtracking line search solves each SOC increment, with the
tangent from UFL (the derivative of P with respect to F); an increment where Newton fails
is cut in halves. The unit cells' global unknowns (free face, out-of-plane strain) are
condensed in every Newton iteration by superposing solutions of the linearized system, as
in solver/physics/inelastic.py: exact for the linearized problem, so Newton converges as for the
coupled system.
"""

import logging
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
import ufl
from dolfinx import fem
from mpi4py import MPI
from petsc4py import PETSc
from pydantic import BaseModel, ConfigDict, Field

from solver.case.units import SIQuantity
from solver.errors import SolverError
from solver.materials.elasticity import as_3d, hooke, lame
from solver.materials.plasticity import (
    equivalent_plastic_strain_increment,
    plastic_strain_increment,
    radial_return,
)
from solver.numerics import compat
from solver.numerics.condensation import CondensedCell, CondensedForms, CondensedNewton
from solver.numerics.fields import CellwiseProjector, cellwise_field, interpolate_expression
from solver.numerics.linear import (
    DIRECT_SOLVER,
    TANGENT_SOLVER,
    configured_ksp,
    rigid_body_modes,
    uses_direct_solver,
)
from solver.numerics.newton import NewtonSettings, newton_solve
from solver.numerics.stepping import advance_with_cuts, along, staggered
from solver.physics import boundary

logger = logging.getLogger(__name__)


# --- the [swelling] section -------------------------------------------------------------


class SocStep(BaseModel):
    model_config = ConfigDict(extra="forbid")

    soc: float = Field(ge=0, le=1, description="state of charge at the end of this step "
                       "(0: as sintered, delithiated; 1: fully lithiated)")
    increments: int = Field(10, ge=1, description="load increments from the previous SOC")


class DiffusionSection(BaseModel):
    """The optional [swelling.diffusion] table: lithium diffuses into the lithiating
    material from its surfaces (solver/physics/diffusion.py), instead of a uniform SOC."""

    model_config = ConfigDict(extra="forbid")

    diffusivity: Annotated[float, SIQuantity("diffusivity", positive=True)] = Field(
        description="D of lithium in the lithiating material (a-Si: 1e-16 to 1e-14 m^2/s, "
        "Ding et al. 2009)")
    coupling: Literal["two-way", "one-way"] = Field(
        "two-way", description="two-way: the hydrostatic stress drives the flux (j = -D "
        "(grad c - c Omega / (R T) grad sigma_h)); one-way: Fickian diffusion, the stress "
        "follows")
    blocking_materials: list[str] = Field(
        ["copper"], description="materials whose contact blocks lithium; every other "
        "boundary of the lithiating material with another material, and its part of the "
        "`top` face, holds the path's SOC")
    max_concentration: Annotated[float, SIQuantity("concentration", positive=True)] = Field(
        3.75 * 2330.0 / 28.0855e-3, description="lithium concentration at SOC 1 (Omega = "
        "beta / max_concentration)", json_schema_extra={"default_text": "Li15Si4: 3.11e5 "
                                                          "mol/m^3"})
    temperature: Annotated[float, SIQuantity("temperature", positive=True)] = Field(
        298.15, description="temperature of the cell (R T of the chemical potential)",
        json_schema_extra={"default_text": "'25 degC'"})
    coupling_tolerance: float = Field(
        1e-6, gt=0, description="two-way: largest SOC change between staggering iterates")
    max_coupling_iterations: int = Field(
        50, ge=1, description="two-way: staggering iterations per increment")


class SwellingSection(BaseModel):
    """The optional [swelling] table: lithiation after the sintering schedule."""

    model_config = ConfigDict(extra="forbid")

    path: list[SocStep] = Field(
        min_length=1,
        description="SOC steps { soc = 1.0, increments = 20 } from SOC 0 (the sintered "
        "state), in order; lithiation and delithiation",
    )
    cycles: int = Field(1, ge=1, description="times the path is run, one after the other")
    formulation: Literal["finite", "small"] = Field(
        "finite", description="finite strain (F = Fe Fp Fs, neo-Hookean) or small strain "
        "(linear elastic with the eigenstrain beta SOC / 3); both with J2 flow where "
        "plastic_flow")
    materials: list[str] | None = Field(
        None, description="the materials that lithiate",
        json_schema_extra={"default_text": "every material with a swelling_coefficient > 0"},
    )
    plastic_flow: bool = Field(
        True, description="materials with a swelling_flow_stress flow plastically; "
        "false: every material is elastic")
    soc_rate: Annotated[float, SIQuantity("charging rate", positive=True)] = Field(
        0.1 / 3600, description="SOC change per unit time along the path (C-rate): the "
        "time of an increment, for swelling_flow_viscosity",
        json_schema_extra={"default_text": "'0.1 1/h' (C/10)"})
    diffusion: DiffusionSection | None = Field(
        None, description="lithium diffusion from the surfaces (the path's SOC is the "
        "surface SOC, over time from soc_rate) instead of a uniform SOC; docs/diffusion.md")
    max_step_cuts: int | None = Field(
        None, ge=0, description="times an SOC increment may be halved where Newton fails",
        json_schema_extra={"default_text": "solver.max_step_cuts"})
    max_newton_iterations: int | None = Field(
        None, ge=1, description="Newton iterations per increment",
        json_schema_extra={"default_text": "solver.max_newton_iterations"})
    newton_rtol: float | None = Field(
        None, gt=0, lt=1, description="Newton's relative tolerance",
        json_schema_extra={"default_text": "solver.newton_rtol"})

    def swelling_materials(self, materials: dict, used: list[str]) -> list[str]:
        """The lithiating materials among those the geometry uses."""
        if self.materials is not None:
            return [name for name in self.materials if name in used]
        return [name for name in used if materials[name].swelling_coefficient > 0]

    def material_problem(self, materials: dict, used: list[str]) -> tuple[str, str] | None:
        """(key, message) for a material reference that cannot be run, else None."""
        for index, name in enumerate(self.materials or []):
            if name not in materials:
                return (f"materials[{index}]",
                        f"unknown material '{name}'; known: {', '.join(materials)}")
            if name not in used:
                return (f"materials[{index}]", f"'{name}' is not in the geometry; it uses "
                        f"{', '.join(used)}")
            if materials[name].swelling_coefficient <= 0:
                return (f"materials[{index}]", f"'{name}' has no swelling_coefficient; give "
                        f"one in [materials.{name}]")
        lithiating = self.swelling_materials(materials, used)
        if not lithiating:
            return ("materials", "no material of the geometry swells: give a "
                    "swelling_coefficient in [materials.NAME] or name the materials")
        if self.diffusion is not None:
            if len(lithiating) > 1:
                return ("diffusion", "diffusion takes one lithiating material, got "
                        f"{', '.join(lithiating)}: name one in swelling.materials")
            for index, name in enumerate(self.diffusion.blocking_materials):
                if name not in materials:
                    return (f"diffusion.blocking_materials[{index}]",
                            f"unknown material '{name}'; known: {', '.join(materials)}")
        return None

    def soc_targets(self) -> list[tuple[float, int, int]]:
        """(SOC, cycle, path step) at the end of every increment, from SOC 0."""
        targets, soc = [], 0.0
        for cycle in range(self.cycles):
            for index, step in enumerate(self.path):
                for value in np.linspace(soc, step.soc, step.increments + 1)[1:]:
                    targets.append((float(value), cycle, index))
                soc = step.soc
        return targets


# --- the problem ------------------------------------------------------------------------

@dataclass
class SwellingState:
    soc: float
    out_of_plane_strain: float  # F_zz - 1 in generalized plane strain, else 0
    face_displacement: float  # of a unit cell's free face, from the sintered state


def lithium_surface(emesh, active_tags, blocking_tags) -> np.ndarray:
    """Owned facets through which lithium enters the active cells: those shared with a cell
    of another material that does not block it, and the active cells' part of the `top`
    face (the electrolyte side). Symmetry and periodic faces stay closed."""
    msh, tags = emesh.mesh, emesh.cell_tags
    tdim = msh.topology.dim
    msh.topology.create_connectivity(tdim - 1, tdim)
    facet_cells = msh.topology.connectivity(tdim - 1, tdim)
    cells = msh.topology.index_map(tdim)
    material = np.full(cells.size_local + cells.num_ghosts, -1, dtype=np.int64)
    material[tags.indices] = tags.values
    owned = msh.topology.index_map(tdim - 1).size_local
    offsets = facet_cells.offsets
    counts = np.diff(offsets)[:owned]
    # shared_facet ghosting (solver.geometry.mesh): both cells of an owned interior facet are local
    interior = np.flatnonzero(counts == 2)
    first = material[facet_cells.array[offsets[interior]]]
    second = material[facet_cells.array[offsets[interior] + 1]]
    first_active, second_active = np.isin(first, active_tags), np.isin(second, active_tags)
    other = np.where(first_active, second, first)
    surface = [interior[(first_active != second_active) & ~np.isin(other, blocking_tags)]]
    top = emesh.geometry.facet_groups.get("top")
    if top is not None:
        facets = emesh.facet_tags.indices[emesh.facet_tags.values == top]
        facets = facets[facets < owned]
        facets = facets[counts[facets] == 1]
        surface.append(facets[np.isin(material[facet_cells.array[offsets[facets]]],
                                      active_tags)])
    return np.concatenate(surface).astype(np.int32)


def _contract(tangent, direction):
    """A : dF for a fourth-order tangent A_ijkl and a second-order dF."""
    i, j, k, m = ufl.indices(4)
    return ufl.as_tensor(tangent[i, j, k, m] * direction[k, m], (i, j))


class SwellingProblem(CondensedCell):
    """Quasi-static swelling of `case.swelling`'s materials on the case's mesh.

    initial_stress: a 3x3 (DG) stress field of the sintered state, or None (stress-free);
    constraints: a function of the displacement space giving the boundary conditions
    (default: the case's unit-cell conditions, solver/physics/boundary.py)."""

    def __init__(self, emesh, case, initial_stress: fem.Function | None = None,
                 constraints=None):
        self.emesh, self.case, self.section = emesh, case, case.swelling
        msh = emesh.mesh
        self.comm = msh.comm
        self.gdim = msh.geometry.dim
        self.generalized = self.gdim == 2 and case.case.plane == "generalized"
        degree = case.solver.degree
        used = list(dict.fromkeys(emesh.geometry.cell_materials.values()))
        materials = {name: case.materials[name] for name in used}
        self.swelling_materials = self.section.swelling_materials(case.materials, used)
        self.swelling_coefficients = {name: materials[name].swelling_coefficient
                                      for name in self.swelling_materials}
        lithiated = {name: (m.lithiated_youngs_modulus or m.youngs_modulus)
                     if name in self.swelling_materials else m.youngs_modulus
                     for name, m in materials.items()}
        self.soc = fem.Constant(msh, PETSc.ScalarType(0.0))  # the path's SOC
        self.time_step = fem.Constant(msh, PETSc.ScalarType(1.0))  # of the increment, s
        # 1 while an increment is solved; 0 once its plastic state is committed, so that
        # the stress evaluated afterwards (outputs) is the converged one, not returned again
        self._returning = fem.Constant(msh, PETSc.ScalarType(0.0))
        self.quadrature_degree = 2 * degree
        self.diffusion = None
        if self.section.diffusion is not None:
            self.diffusion = self._set_up_diffusion(emesh, materials)
        # the SOC in the material: the path's, or the diffusing field (0 outside)
        self.local_soc = self.soc if self.diffusion is None else self.diffusion.soc
        self.out_of_plane_strain = fem.Constant(msh, PETSc.ScalarType(0.0))
        E0 = cellwise_field(emesh, {n: m.youngs_modulus for n, m in materials.items()}, "E")
        E1 = cellwise_field(emesh, lithiated, "E_lithiated")
        nu = cellwise_field(emesh, {n: m.poisson_ratio for n, m in materials.items()}, "nu")
        self.beta = cellwise_field(emesh, {n: self.swelling_coefficients.get(n, 0.0)
                                           for n in materials}, "beta")
        E = E0 + (E1 - E0) * self.local_soc
        self.lame_lambda, self.shear_modulus = lame(E, nu)

        self.V = fem.functionspace(msh, ("Lagrange", degree, (self.gdim,)))
        self.u = fem.Function(self.V, name="u")
        self.dofs = self.V.dofmap.index_map.size_global * self.V.dofmap.index_map_bs
        quadrature = {"quadrature_degree": 2 * degree, "quadrature_scheme": "default"}
        self.dx = ufl.Measure("dx", domain=msh, metadata=quadrature)
        self.projector = CellwiseProjector(self.comm, self.dx, emesh.mesh_size ** self.gdim)
        self.flowing_materials = [name for name in materials if self.section.plastic_flow
                                  and materials[name].swelling_flow_stress is not None]
        self._state_buffers = ()
        if self.flowing_materials:
            self._set_up_flow(emesh, materials, 2 * degree)
        self.constraints = constraints(self.V) if constraints is not None else \
            boundary.cell_constraints(case, emesh, self.V)

        # Scaled equations: residual entries are strains (stress / E_max, per unit size).
        cells = msh.topology.index_map(msh.topology.dim).size_global
        volume = self._integrate(fem.form(fem.Constant(msh, PETSc.ScalarType(1.0)) * self.dx))
        self.size = (volume / cells) ** (1 / self.gdim)
        max_modulus = max(max(m.youngs_modulus for m in materials.values()),
                          max(lithiated.values()))
        self._scale = 1.0 / (max_modulus * self.size ** (self.gdim - 1))
        self._absolute_tolerance = 1e-12 * np.sqrt(self.dofs)

        F = self.deformation_gradient(self.u)
        F_variable = ufl.variable(F)
        self.initial_stress = initial_stress
        P = self._first_piola(F_variable)
        if initial_stress is not None:
            P = P + initial_stress
        self.first_piola, self.tangent, self.F = P, ufl.diff(P, F_variable), F
        self._hydrostatic_stress = ufl.tr(self.cauchy_stress()) / 3
        self._flow_updates = []
        if self.flowing_materials:
            points = compat.interpolation_points(self.plastic_state.function_space)
            self._flow_updates = [
                (self.plastic_state, fem.Expression(self._new_plastic_state, points)),
                (self.equivalent_plastic_strain,
                 fem.Expression(self._new_equivalent_plastic_strain, points))]
        v, du = ufl.TestFunction(self.V), ufl.TrialFunction(self.V)
        test_gradient = self.gradient_3d(v)
        residual = ufl.inner(self.first_piola, test_gradient) * self.dx
        self.residual = fem.form(self._scale * residual)
        self.negative_residual = fem.form(-self._scale * residual)
        self.jacobian = fem.form(self._scale * ufl.derivative(residual, self.u, du))
        unit_zz = ufl.as_matrix([[0, 0, 0], [0, 0, 0], [0, 0, 1]])
        self.negative_out_of_plane_coupling = fem.form(
            -self._scale * ufl.inner(_contract(self.tangent, unit_zz), test_gradient) * self.dx)
        increment = fem.Function(self.V)
        increment_zz = fem.Constant(msh, PETSc.ScalarType(0.0))
        stress_change = _contract(self.tangent, self.gradient_3d(increment)
                                  + increment_zz * unit_zz)
        constraint_residuals, constraint_changes = [], []
        if self.constraints.free_face is not None:
            face = self.gradient_3d(self.constraints._face_weight)
            constraint_residuals.append(fem.form(ufl.inner(self.first_piola, face) * self.dx))
            constraint_changes.append(fem.form(ufl.inner(stress_change, face) * self.dx))
        if self.generalized:
            constraint_residuals.append(fem.form(self.first_piola[2, 2] * self.dx))
            constraint_changes.append(fem.form(stress_change[2, 2] * self.dx))

        # Under a large swelling the tangent carries large initial-stress terms and need
        # not be positive definite, where CG fails: LU (MUMPS, which pivots), or GMRES with
        # AMG ([solver] linear_solver; solver/numerics/linear.py's TANGENT_SOLVER).
        self.direct_solver = uses_direct_solver(case.solver.linear_solver, self.dofs,
                                                case.solver.direct_solver_max_dofs,
                                                self.V.mesh.geometry.dim)
        self.linearization = CondensedNewton(
            self.u, self.out_of_plane_strain, self.constraints,
            configured_ksp(self.comm, "swelling",
                           DIRECT_SOLVER if self.direct_solver else TANGENT_SOLVER),
            CondensedForms(self.residual, self.negative_residual, self.jacobian,
                           self.negative_out_of_plane_coupling, constraint_residuals,
                           constraint_changes, increment, increment_zz),
            self._scale, self.generalized,
            nullspace=None if self.direct_solver else rigid_body_modes(self.V))
        self.newton = NewtonSettings.of(case.solver, rtol=self.section.newton_rtol,
                                        max_iterations=self.section.max_newton_iterations)
        self.max_step_cuts = case.solver.max_step_cuts if self.section.max_step_cuts is None \
            else self.section.max_step_cuts
        self.step_cuts = 0
        self.newton_iterations = 0
        # V/V0 of each swelling material: the integral of det F over its cells
        tags = emesh.cell_tags
        dx_tags = ufl.Measure("dx", domain=msh, subdomain_data=tags,
                              metadata={"quadrature_degree": 2 * degree})
        self._volumes = {}
        for name in self.swelling_materials:
            material_tags = tuple(t for t, n in emesh.geometry.cell_materials.items()
                                  if n == name)
            one = fem.Constant(msh, PETSc.ScalarType(1.0))
            self._volumes[name] = (fem.form(ufl.det(F) * dx_tags(material_tags)),
                                   self._integrate(fem.form(one * dx_tags(material_tags))))

    # -- kinematics and constitutive law -------------------------------------------------
    def gradient_3d(self, w):
        """grad w as a 3x3 tensor (zero third row and column in 2D)."""
        return as_3d(ufl.grad(w))

    def deformation_gradient(self, u):
        """F = I + grad u in 3D; in 2D F_zz = 1 + the out-of-plane strain."""
        unit_zz = ufl.as_matrix([[0, 0, 0], [0, 0, 0], [0, 0, 1]])
        F = ufl.Identity(3) + self.gradient_3d(u)
        return F + self.out_of_plane_strain * unit_zz if self.gdim == 2 else F

    def swelling_stretch(self):
        """s with Fs = s I: V/V0 = s^3 = 1 + beta SOC."""
        return (1 + self.beta * self.local_soc) ** (1.0 / 3.0)

    def _set_up_flow(self, emesh, materials, quadrature_degree):
        """Quadrature-point state of the flowing materials: Cp^-1 (finite) or the plastic
        strain (small), and the equivalent plastic strain; cell-wise flow parameters."""
        import basix.ufl

        msh = emesh.mesh
        cell = msh.topology.cell_name()
        tensor = basix.ufl.quadrature_element(cell, value_shape=(3, 3),
                                              degree=quadrature_degree)
        scalar = basix.ufl.quadrature_element(cell, value_shape=(), degree=quadrature_degree)
        self.plastic_state = fem.Function(fem.functionspace(msh, tensor))
        if self.section.formulation == "finite":
            self.plastic_state.x.array.reshape(-1, 9)[:] = np.eye(3).ravel()
        self.equivalent_plastic_strain = fem.Function(fem.functionspace(msh, scalar))
        self._state_buffers = (fem.Function(self.plastic_state.function_space),
                               fem.Function(self.equivalent_plastic_strain.function_space))
        self.flow_indicator = cellwise_field(
            emesh, {n: float(n in self.flowing_materials) for n in materials}, "flowing")
        self.flow_stress = cellwise_field(
            emesh, {n: materials[n].swelling_flow_stress if n in self.flowing_materials
                    else 0.0 for n in materials}, "flow_stress")
        self.hardening_modulus = cellwise_field(
            emesh, {n: (materials[n].swelling_hardening_modulus or 0.0)
                    if n in self.flowing_materials else 0.0 for n in materials},
            "hardening_modulus")
        self.flow_viscosity = cellwise_field(
            emesh, {n: (materials[n].swelling_flow_viscosity or 0.0)
                    if n in self.flowing_materials else 0.0 for n in materials},
            "flow_viscosity")

    def _set_up_diffusion(self, emesh, materials):
        """Lithium diffusion in the (one) lithiating material, from its surfaces."""
        from solver.materials.library import largest
        from solver.physics.diffusion import LithiumDiffusion, inclusion_stress_response

        settings = self.section.diffusion
        (name,) = self.swelling_materials
        material = materials[name]
        geometry = emesh.geometry
        active = [tag for tag, n in geometry.cell_materials.items() if n == name]
        blocking = [tag for tag, n in geometry.cell_materials.items()
                    if n in settings.blocking_materials]
        return LithiumDiffusion(
            emesh.mesh, emesh.cell_tags, active, lithium_surface(emesh, active, blocking),
            settings.diffusivity, swelling_coefficient=material.swelling_coefficient,
            max_concentration=settings.max_concentration, temperature=settings.temperature,
            # the unlithiated modulus: the larger response, a safe stabilization
            stress_response=inclusion_stress_response(
                largest(material.youngs_modulus), largest(material.poisson_ratio),
                material.swelling_coefficient),
            solver=self.case.solver)

    def _first_piola(self, F):
        mu, lmbda = self.shear_modulus, self.lame_lambda
        identity = ufl.Identity(3)
        flowing = bool(self.flowing_materials)
        if self.section.formulation == "small":
            strain = ufl.sym(F - identity) - self.beta * self.local_soc / 3 * identity
            if not flowing:
                return hooke(strain, lmbda, mu)
            strain = strain - self.plastic_state
            trial = 2 * mu * ufl.dev(strain) + self._initial_deviator()
            multiplier, scale = self._return_mapping(trial, mu, 1.0)
            plastic_change = plastic_strain_increment(trial, scale, mu)
            self._new_plastic_state = self.plastic_state + plastic_change
            self._new_equivalent_plastic_strain = self.equivalent_plastic_strain \
                + equivalent_plastic_strain_increment(multiplier)
            return hooke(strain, lmbda, mu) - 2 * mu * plastic_change
        s = self.swelling_stretch()
        if not flowing:
            Fe = F / s
            Fe_inverse_transpose = ufl.inv(Fe).T
            elastic = mu * (Fe - Fe_inverse_transpose) + lmbda * ufl.ln(ufl.det(Fe)) \
                * Fe_inverse_transpose
            return s**2 * elastic  # J_s P_e Fs^-T with Fs = s I
        Fm = F / s
        Je = ufl.det(Fm)
        be_trial = Fm * self.plastic_state * Fm.T
        trial = mu * ufl.dev(be_trial) + self._initial_deviator()
        multiplier, scale = self._return_mapping(trial, mu * ufl.tr(be_trial) / 3, Je)
        deviator = scale * trial - self._initial_deviator()  # the part be carries
        be = deviator / mu + ufl.tr(be_trial) / 3 * identity
        Fm_inverse = ufl.inv(Fm)
        self._new_plastic_state = Fm_inverse * be * Fm_inverse.T
        self._new_equivalent_plastic_strain = self.equivalent_plastic_strain \
            + equivalent_plastic_strain_increment(multiplier)
        kirchhoff = deviator + (mu * (ufl.tr(be_trial) / 3 - 1) + lmbda * ufl.ln(Je)) * identity
        return s**3 * kirchhoff * ufl.inv(F).T  # J_s tau_e F^-T

    def _initial_deviator(self):
        """The deviator of the sintered stress, which the yield condition sees with the
        stage's own stress (at small strain: it is added to P, not convected)."""
        if self.initial_stress is None:
            return ufl.as_matrix([[0, 0, 0], [0, 0, 0], [0, 0, 0]])
        return ufl.dev(ufl.sym(self.initial_stress))

    def _return_mapping(self, trial_deviator, shear_modulus, elastic_volume_ratio):
        """solver/plasticity.radial_return with this stage's flow parameters: only while an
        increment is solved, with the overstress viscosity over the increment's time."""
        return radial_return(trial_deviator, shear_modulus, self.flow_stress,
                             self.hardening_modulus, self.equivalent_plastic_strain,
                             self.flow_indicator * self._returning, elastic_volume_ratio,
                             self.flow_viscosity / self.time_step)

    def cauchy_stress(self):
        """sigma = P F^T / det F (with the initial stress carried in P); at small strain the
        stress is P itself."""
        if self.section.formulation == "small":
            return self.first_piola
        return self.first_piola * self.F.T / ufl.det(self.F)

    def stress_into(self, target: fem.Function, expression=None, name="cauchy"):
        """A stress (default: the Cauchy stress) on a DG space: interpolated, or with plastic
        flow (whose state lives at quadrature points) its L2 projection, local to each cell.
        `name` keys the projection's forms, one per expression and space."""
        expression = self.cauchy_stress() if expression is None else expression
        if not self.flowing_materials:
            return interpolate_expression(target, expression)
        return self.projector.project(name, lambda: expression, target)

    def volume_ratios(self) -> dict[str, float]:
        """V/V0 of each swelling material, from the integral of det F."""
        return {name: self._integrate(form) / volume
                for name, (form, volume) in self._volumes.items()}

    def material_soc(self) -> float:
        """The SOC of the lithiating materials: the path's, or with diffusion the mean of
        the field over the material."""
        return float(self.soc.value) if self.diffusion is None else self.diffusion.mean_soc()

    def prescribed_volume_ratio(self, name: str) -> float:
        """1 + beta SOC (with diffusion: of the mean SOC, the free volume of the material)."""
        return 1 + self.swelling_coefficients[name] * self.material_soc()

    # -- linear algebra ------------------------------------------------------------------
    def _integrate(self, form) -> float:
        return self.comm.allreduce(fem.assemble_scalar(form), op=MPI.SUM)

    # -- an SOC increment ----------------------------------------------------------------
    def _current(self):
        diffusion = () if self.diffusion is None else (
            self.diffusion.soc.x.array.copy(), self.diffusion.hydrostatic_stress.x.array.copy())
        return (self.u.x.array.copy(), float(self.out_of_plane_strain.value),
                self.face_displacement, float(self.soc.value), diffusion)

    def _restore(self, saved):
        self.u.x.array[:], self.out_of_plane_strain.value, self.face_displacement, \
            self.soc.value, diffusion = saved
        if diffusion:
            self.diffusion.soc.x.array[:], self.diffusion.hydrostatic_stress.x.array[:] = \
                diffusion
        self.constraints.set_face_displacement(self.face_displacement)

    def step(self, soc: float) -> int:
        """Solve for `soc` from the current state; returns the Newton iterations. The state
        is kept only when Newton (and the diffusion coupling) converges, else SolverError
        and the state is restored."""
        saved = self._current()
        # the time of the increment: for the overstress law and the diffusion (never 0)
        self.time_step.value = max(abs(soc - saved[3]) / self.section.soc_rate, 1e-30)
        self.soc.value = soc
        self._returning.value = 1.0
        try:
            iterations = self._newton(soc) if self.diffusion is None else \
                self._coupled_solve(soc)
        except SolverError:
            self._restore(saved)
            raise
        self._commit_flow()
        if self.diffusion is not None:
            self.diffusion.commit()
        return iterations

    def _coupled_solve(self, soc: float) -> int:
        """Diffusion with the path's SOC at the surface over the increment's time, then the
        mechanics with the new SOC field; two-way: staggered with the hydrostatic stress
        until the SOC settles (solver/physics/diffusion.py's stabilized staggering)."""
        settings = self.section.diffusion
        two_way = settings.coupling == "two-way"
        newton_iterations = []

        def one_pass() -> float:
            change = self.diffusion.solve(float(self.time_step.value), surface_soc=soc,
                                          staggered=two_way)
            newton_iterations.append(self._newton(soc))
            if two_way:
                self.diffusion.set_hydrostatic_stress(self._hydrostatic_stress,
                                                      quadrature_degree=self.quadrature_degree)
            return change

        if two_way:
            staggered(one_pass, settings.coupling_tolerance, settings.max_coupling_iterations,
                      f"at SOC = {soc:.6g}")
        else:
            one_pass()
        return sum(newton_iterations)

    def _newton(self, soc: float) -> int:
        return newton_solve(self, self.newton, self._absolute_tolerance, f"at SOC = {soc:.6g}")

    def advance(self, soc: float) -> int:
        """Step to `soc`; where Newton fails, the SOC increment is cut in halves. Returns the
        Newton iterations of all sub-increments; self.step_cuts counts the cuts."""
        start = float(self.soc.value)
        report = advance_with_cuts(
            lambda a, b, last_chance: self.step(along(start, soc, b)), self.max_step_cuts,
            lambda a, b: f"of SOC {along(start, soc, a):.6g} -> {along(start, soc, b):.6g}")
        self.step_cuts += report.cuts
        self.newton_iterations += report.newton_iterations
        return report.newton_iterations

    def _commit_flow(self):
        """The converged increment's plastic state becomes the start of the next one
        (every new value is evaluated from the old state before any is replaced). The
        stress is then the elastic one of the new state: the converged stress."""
        pairs = list(zip(self._flow_updates, self._state_buffers, strict=True))
        for (_, expression), buffer in pairs:
            buffer.interpolate(expression)
        for (target, _), buffer in pairs:
            target.x.array[:] = buffer.x.array
        self._returning.value = 0.0

    def max_equivalent_plastic_strain(self) -> float:
        local = self.equivalent_plastic_strain.x.array if self.flowing_materials else []
        return self.comm.allreduce(float(np.max(local)) if len(local) else 0.0, op=MPI.MAX)

    def get_state(self) -> dict:
        """The scalars of the state and the counters, for a checkpoint (its functions: u,
        the plastic state, the diffusion's fields, are kept cell-wise beside it)."""
        return {"soc": float(self.soc.value),
                "out_of_plane_strain": float(self.out_of_plane_strain.value),
                "face_displacement": self.face_displacement, "step_cuts": self.step_cuts,
                "newton_iterations": self.newton_iterations}

    def set_state(self, scalars: dict):
        """Resume at a checkpoint's state (get_state's scalars; the functions set already)."""
        self.soc.value = scalars["soc"]
        self.out_of_plane_strain.value = scalars["out_of_plane_strain"]
        self.face_displacement = scalars["face_displacement"]
        self.constraints.set_face_displacement(self.face_displacement)
        self.step_cuts, self.newton_iterations = (scalars["step_cuts"],
                                                  scalars["newton_iterations"])

    def state(self) -> SwellingState:
        return SwellingState(float(self.soc.value), float(self.out_of_plane_strain.value),
                             self.face_displacement)
