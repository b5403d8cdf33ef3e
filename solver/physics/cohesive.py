"""A cohesive zone along the foil/layer interface, on the conformal mesh.

The interface is duplicated without re-meshing: the displacement is a blocked Lagrange field
with 2*gdim components, w = (u_foil, u_layer). u_foil lives on the foil cells and u_layer on
the other cells; every dof outside the closure of its field's cells is held at zero. At an
interface node both fields are active, and their difference is the opening
delta = u_layer - u_foil.

The interface acts at its nodes: a node carries the lumped weight w_i = integral of its
basis function over the interface (for quadratic elements these are Simpson's weights, a
Newton-Cotes rule: nodal integration of cohesive elements has no spurious traction
oscillations), the lumped normal n_i (the projection of the foil's outward normal, so it
points from the foil into the layer and opening is positive) and a damage variable D_i.
Because the damage lives exactly where it is used, it never heals and the energy balance
closes.

Traction-separation law: bilinear, mixed mode with the Benzeggagh-Kenane criterion in the
form of Camanho & Davila (2003, NASA/TM-2002-211737), one penalty stiffness K:

    delta_m = sqrt(<delta_n>^2 + |delta_s|^2),   B = |delta_s|^2 / delta_m^2
    delta_0 = sqrt(delta_n0^2 + (delta_s0^2 - delta_n0^2) B^eta),  delta_n0 = N/K, delta_s0 = S/K
    delta_f = 2 (G_Ic + (G_IIc - G_Ic) B^eta) / (K delta_0)
    D_BK    = delta_f (delta_m - delta_0) / (delta_m (delta_f - delta_0)), clipped to [0, 1]
    D       = (D_old + r max(D_old, D_BK)) / (1 + r),  r = dt / viscosity (r = inf: no viscosity)
    t       = K delta - D K (<delta_n> n + delta_s) + D t_f

Compression is never damaged: the normal penalty K <-delta_n> acts whatever D is, so a
debonded binder still bears on a copper head. The damaged fraction D carries friction in
contact (t_f = 0 when the coefficient mu_f is 0, the default): a regularized Coulomb law with
the penalty K as the stick stiffness and an irreversible slip s_p per node, by return mapping:

    t_trial = K (delta_s - s_p_old),  |t_f| <= mu_f K <-delta_n>
    stick: t_f = t_trial;  slip: t_f = mu_f K <-delta_n> t_trial / |t_trial|
    s_p     = delta_s - t_f / K  (out of contact the slip follows: s_p = delta_s, t_f = 0)

The free energy per area is psi = K <-delta_n>^2 / 2 + (1 - D) K (<delta_n>^2 + |delta_s|^2) / 2
+ D K |delta_s - s_p|^2 / 2, so the dissipation is (psi_0 - psi_f) dD + D t_f . ds_p.

The bulk is linear elastic with an optional initial stress and an isotropic eigenstrain, so
its stiffness matrix is assembled once; or (plastic = True) small-strain J2 plasticity with
linear hardening in the materials with a `swelling_flow_stress` (solver/materials/plasticity.py: the
plastic strain and the equivalent plastic strain at the quadrature points, the initial stress
in the yield condition, the consistent tangent by UFL), and then the tangent of the flowing
materials' cells is assembled in every Newton iteration (the other cells' stiffness once,
with a kernel free of the return mapping). The nodal springs are added to it in every Newton
iteration (their tangent includes the softening, d D / d delta by central differences, and
the consistent stick/slip tangent of the friction). Newton with a backtracking line search,
its linear systems restricted to the active dofs and solved by LU or, per [solver]
linear_solver, by GMRES with a p-multigrid whose P1 level holds both bodies. A load step
is taken in sub-steps of adapted size (advance): Newton starts from the last sub-step's
change extrapolated, and a sub-step is retried smaller where it does not converge, where a
node loses too much of its strength or where the peak force would be missed. Damage, slip
and the plastic state are
updated only when a step has converged; the plastic work (trapezoidal in the stress, so that
it closes the energy balance with the trapezoidal external work) is `plastic_work`.
"""

import logging
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import ufl
from dolfinx import fem
from dolfinx.fem import petsc as fem_petsc
from mpi4py import MPI
from petsc4py import PETSc

from solver.case.solver_section import SolverSettings
from solver.errors import SolverError
from solver.materials.elasticity import as_3d, hooke, in_plane, lame
from solver.materials.plasticity import (
    equivalent_plastic_strain_increment,
    plastic_strain_increment,
    radial_return,
)
from solver.numerics import compat
from solver.numerics.fields import cellwise_field, field_by_tag, touched_dofs
from solver.numerics.linear import (
    check_converged,
    configured_ksp,
    direct_solver,
    options_set,
    uses_direct_solver,
)
from solver.numerics.newton import Increment, NewtonSettings, newton_solve
from solver.numerics.stepping import CutReport, StepOverLimit, advance_adaptively, along

logger = logging.getLogger(__name__)

# The iterative solver of the Newton steps: the tangent is not symmetric with friction and
# not positive definite where the interface softens, so GMRES (right-preconditioned: the
# tolerance is on the true residual), to 1e-8 of the Newton residual: far below what a
# Newton step changes, so Newton takes the steps LU takes. The preconditioner is a two-level
# p-multigrid of the active dofs (_two_level): the penalty springs, far stiffer than the
# bulk, couple the bodies node by node, which algebraic multigrid of each body does not see
# (docs/pulloff.md); the P1 level of the same mesh, with both bodies and their springs,
# solved by LU, sees them, and two local SOR sweeps smooth the rest.
COHESIVE_ITERATIVE_SOLVER = {
    "ksp_type": "gmres", "ksp_pc_side": "right", "ksp_gmres_restart": 200, "ksp_rtol": 1e-8,
    "ksp_atol": 1e-50, "ksp_max_it": 2000, "pc_type": "mg", "pc_mg_levels": 2,
    "pc_mg_galerkin": "both", "mg_levels_ksp_type": "richardson", "mg_levels_pc_type": "sor",
    "mg_levels_ksp_max_it": 2,
}


# The share of the interface's strength that it may lose in one step while the pulling
# force is at its largest so far (up to and over its peak): the peak force (the pull-off
# strength) is then sampled within about this share of where it occurs. The force peaks
# where a crack starts to run; the bilinear law makes it a corner, which steps limited per
# node alone cross by the force's slope times the step (0.7 % low on the plain 2D cell).
PEAK_INTERFACE_LOSS = 0.01
# The share of the interface's strength that nodes starting to soften may lose in the step
# in which they start: where a whole interface starts at once (a flat cell), the corner of
# the force is then sampled so closely that the trapezoidal work misses little of it (the
# triangle between the samples either side: on the flat 3D cell 1.2e-3 of G_c with 0.5 %
# here, 2e-5 with 0.02 %). Where nodes start one by one, their share stays small.
ONSET_INTERFACE_LOSS = 2e-4
# A sub-step whose extrapolated state (CohesiveProblem._predictor) uses more than this many
# times its limits is cut before Newton is spent on it; the margin covers the error of the
# linear extrapolation where nodes start to soften.
PREDICTED_OVER_LIMIT = 1.5


@dataclass(frozen=True)
class CohesiveLaw:
    """Bilinear mixed-mode (Benzeggagh-Kenane) traction-separation law, SI units."""

    normal_strength: float  # Pa
    shear_strength: float  # Pa
    mode_I_fracture_energy: float  # J/m^2
    mode_II_fracture_energy: float  # J/m^2
    bk_exponent: float
    penalty_stiffness: float  # Pa/m
    viscosity: float = 0.0  # s; 0: rate independent
    friction_coefficient: float = 0.0  # Coulomb mu_f on the damaged fraction; 0: frictionless

    @classmethod
    def from_interface(cls, interface):
        return cls(interface.normal_strength, interface.shear_strength,
                   interface.mode_I_fracture_energy, interface.mode_II_fracture_energy,
                   interface.bk_exponent, interface.penalty_stiffness, interface.viscosity,
                   interface.friction_coefficient)

    def onset_and_final(self, mixity):
        """delta_0 and delta_f for the mode mixity B = G_II / G_T (array)."""
        k = self.penalty_stiffness
        weight = np.power(mixity, self.bk_exponent)
        normal_onset, shear_onset = self.normal_strength / k, self.shear_strength / k
        onset = np.sqrt(normal_onset**2 + (shear_onset**2 - normal_onset**2) * weight)
        energy = self.mode_I_fracture_energy + (
            self.mode_II_fracture_energy - self.mode_I_fracture_energy) * weight
        final = 2 * energy / (k * onset)
        return onset, np.maximum(final, onset * (1 + 1e-9))

    @staticmethod
    def _separation(opening, shear):
        """The effective separation (opening positive part and slip) and the mixity."""
        positive = np.maximum(opening, 0.0)
        shear2 = np.einsum("ni,ni->n", shear, shear)
        magnitude2 = positive**2 + shear2
        mixity = np.divide(shear2, magnitude2, out=np.zeros_like(shear2),
                           where=magnitude2 > 0)
        return np.sqrt(magnitude2), mixity

    def damage(self, opening, shear):
        """The damage the law gives for a normal opening and a shear-slip vector (no history).
        opening: (n,), shear: (n, gdim)."""
        magnitude, mixity = self._separation(opening, shear)
        onset, final = self.onset_and_final(mixity)
        with np.errstate(divide="ignore", invalid="ignore"):
            d = final * (magnitude - onset) / (magnitude * (final - onset))
        return np.clip(np.nan_to_num(d, nan=0.0), 0.0, 1.0)

    def strength_loss(self, damage, opening, shear):
        """The share of its strength a node has lost at `damage` (1 - t_max / strength on
        the softening branch, (kappa - delta_0) / (delta_f - delta_0)), with the mixity of
        the opening and shear given. The damage D = 1 - t / (k kappa) is a stiffness loss:
        with delta_f / delta_0 = 200 (the shipped interfaces) D is 0.5 when the node has
        lost 0.5 % of its strength, so steps limited in D crawl past every node's onset."""
        _, mixity = self._separation(opening, shear)
        onset, final = self.onset_and_final(mixity)
        return damage * onset / (final - damage * (final - onset))

    def critical_energy(self, mixity):
        """G_c(B) of the BK criterion."""
        return self.mode_I_fracture_energy + (
            self.mode_II_fracture_energy - self.mode_I_fracture_energy) * mixity**self.bk_exponent


class PeakTracker:
    """The course of a quantity over the converged steps: whether its last value is the
    largest so far (a step from there may cross its peak)."""

    def __init__(self):
        self.last, self.largest = None, -np.inf

    def at_largest(self) -> bool:
        return self.last is None or self.last >= self.largest

    def follow(self, value: float):
        self.last, self.largest = value, max(self.largest, value)


class InterfaceNodes:
    """The interface's nodes on this rank: weights, normals, blocks of the mixed space."""

    def __init__(self, W, emesh, interface_name, foil_indicator, degree):
        msh = emesh.mesh
        self.gdim = msh.geometry.dim
        facet_tag = emesh.geometry.interfaces[interface_name][0]
        dS = ufl.Measure("dS", domain=msh, subdomain_data=emesh.facet_tags)(facet_tag)
        scalar = fem.functionspace(msh, ("Lagrange", degree))
        vector = fem.functionspace(msh, ("Lagrange", degree, (self.gdim,)))
        n = ufl.FacetNormal(msh)
        chi = foil_indicator
        foil_normal = chi("+") * n("+") + chi("-") * n("-")
        weights = _assembled(fem.form(ufl.avg(ufl.TestFunction(scalar)) * dS))
        normals = _assembled(fem.form(ufl.inner(foil_normal, ufl.avg(ufl.TestFunction(vector)))
                                      * dS))
        self.blocks = np.flatnonzero(weights > 0).astype(np.int32)
        self.weights = weights[self.blocks]
        normals = normals.reshape(-1, self.gdim)[self.blocks]
        self.normals = normals / np.linalg.norm(normals, axis=1)[:, None]
        owned_blocks = W.dofmap.index_map.size_local
        self.owned = self.blocks < owned_blocks
        coordinates = scalar.tabulate_dof_coordinates()
        self.coordinates = coordinates[self.blocks]
        assert scalar.dofmap.index_map.size_local == owned_blocks


def _held_owned_dofs(conditions, owned: int) -> np.ndarray:
    """For each of the `owned` dofs of a rank: whether one of the Dirichlet `conditions`
    holds it."""
    held = np.zeros(owned, bool)
    for bc in conditions:
        dofs, _ = bc.dof_indices()
        held[dofs[dofs < owned]] = True
    return held


def _assembled(form) -> np.ndarray:
    """A vector form assembled, summed over the ranks and scattered to the ghosts."""
    vector = fem_petsc.assemble_vector(form)
    vector.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
    vector.ghostUpdate(addv=PETSc.InsertMode.INSERT, mode=PETSc.ScatterMode.FORWARD)
    with vector.localForm() as local:
        values = local.array.copy()
    vector.destroy()
    return values


class InterfaceHistory(NamedTuple):
    """The irreversible nodal state: damage (n,) and frictional slip (n, gdim)."""

    damage: np.ndarray
    slip: np.ndarray


class Friction(NamedTuple):
    """The return mapping at the nodes: traction of the damaged fraction, slip, and what the
    tangent needs (sliding nodes, the slip direction, the trial traction's size)."""

    traction: np.ndarray
    slip: np.ndarray
    sliding: np.ndarray
    direction: np.ndarray
    trial_size: np.ndarray
    limit: np.ndarray


class CohesiveProblem:
    """Two bodies (foil, layer) joined by the cohesive interface.

    emesh: solver.geometry.mesh.ElectrodeMesh; materials: name -> Material (E, nu; with plastic, the
    swelling_flow_stress and swelling_hardening_modulus);
    initial_stress: an optional UFL stress added in both bodies, gdim x gdim or, in 2D, 3x3
    (its in-plane part is added; with plasticity the yield condition sees all of it);
    eigenstrain: an optional DG0 isotropic eigenstrain field, scaled by self.load_factor;
    plastic: J2 flow in the materials with a swelling_flow_stress (others stay elastic).
    Plane strain in 2D.
    """

    def __init__(self, emesh, materials, law: CohesiveLaw, degree=2, interface_name=None,
                 initial_stress=None, eigenstrain=None, plastic=False,
                 solver: SolverSettings | None = None):
        self.emesh, self.law = emesh, law
        msh = emesh.mesh
        self.comm = msh.comm
        self.gdim = gdim = msh.geometry.dim
        interface_name = interface_name or next(iter(emesh.geometry.interfaces))
        _, foil_tag, _ = emesh.geometry.interfaces[interface_name]
        self.foil_tag = foil_tag
        layer_tags = [tag for tag in emesh.geometry.cell_materials if tag != foil_tag]
        solver = SolverSettings() if solver is None else solver  # [solver]: Newton, cuts
        self.newton = NewtonSettings.of(solver)
        self.max_step_cuts = solver.max_step_cuts
        self._dt = None  # the pseudo-time of the step being solved

        names = emesh.geometry.cell_materials
        E = cellwise_field(emesh, {n: materials[n].youngs_modulus for n in names.values()}, "E")
        nu = cellwise_field(emesh, {n: materials[n].poisson_ratio for n in names.values()}, "nu")
        self.lame_lambda, self.shear_modulus = lame(E, nu)
        max_modulus = max(materials[n].youngs_modulus for n in names.values())
        self.scale = 1.0 / max_modulus  # equations in O(1) numbers: strain times length

        self.W = fem.functionspace(msh, ("Lagrange", degree, (2 * gdim,)))
        self.w = fem.Function(self.W, name="w")
        self.load_factor = fem.Constant(msh, PETSc.ScalarType(0.0))
        self.eigenstrain = eigenstrain
        self._full_initial_stress = initial_stress
        self.initial_stress = None if initial_stress is None else in_plane(initial_stress, gdim)
        tags = emesh.cell_tags
        foil_cells = tags.indices[tags.values == foil_tag]
        self.foil_indicator = field_by_tag(msh, tags, {foil_tag: 1.0})
        self.nodes = InterfaceNodes(self.W, emesh, interface_name, self.foil_indicator, degree)
        self.damage = np.zeros(len(self.nodes.blocks))
        self.slip = np.zeros((len(self.nodes.blocks), gdim))
        self.friction = law.friction_coefficient > 0
        # the interface's length (2D, per unit depth) or area (3D)
        self.interface_measure = self.interface_sum(np.ones_like(self.nodes.weights))
        # a converged residual (scaled: strain times length) is this small in absolute terms
        count = self.comm.allreduce(int(self.nodes.owned.sum()))
        self._absolute_tolerance = 1e-13 * self.interface_measure / max(count, 1)

        self.flowing_materials = sorted(
            {n for n in names.values()
             if plastic and getattr(materials[n], "swelling_flow_stress", None) is not None})
        self.plastic = bool(self.flowing_materials)
        self.plastic_work = 0.0
        measure = {}
        if self.plastic:
            # the state lives at these points; the elastic part is integrated exactly
            quadrature_degree = max(2 * (degree - 1), 1)
            measure = {"metadata": {"quadrature_degree": quadrature_degree,
                                    "quadrature_scheme": "default"}}
            self.dx_all = ufl.Measure("dx", domain=msh, **measure)
            self._set_up_flow(materials, quadrature_degree)
        dx = ufl.Measure("dx", domain=msh, subdomain_data=tags, **measure)
        self.dx_foil = dx(foil_tag)
        self.dx_layer = sum((dx(tag) for tag in layer_tags[1:]), dx(layer_tags[0]))
        v = ufl.TestFunction(self.W)
        self._test = v
        # the cells of the materials that flow carry the return mapping; the others are
        # elastic, their stiffness constant: it is assembled once, apart from the tangent of
        # the flowing cells (whose kernel is the costlier by far)
        flowing_tags = {tag for tag, name in names.items() if name in self.flowing_materials}
        parts = {True: [], False: []}
        for body, body_tags in ((self.foil, [foil_tag]), (self.layer, layer_tags)):
            for flowing in (True, False):
                for tag in body_tags:
                    if (tag in flowing_tags) is flowing:
                        parts[flowing].append(ufl.inner(
                            self.stress(body(self.w)) if flowing
                            else self._elastic_stress(body(self.w)),
                            self.strain(body(v))) * dx(tag))

        def scaled_sum(forms):
            return self.scale * sum(forms[1:], forms[0])

        residual = scaled_sum(parts[True] + parts[False])
        self._residual_ufl = residual
        self.residual = fem.form(residual)
        trial = ufl.TrialFunction(self.W)
        self.jacobian = fem.form(ufl.derivative(residual, self.w, trial))
        # (elastic cells, flowing cells); None where there are none
        self._tangent_parts = [fem.form(ufl.derivative(scaled_sum(part), self.w, trial))
                               if part else None for part in (parts[False], parts[True])]

        if self.plastic:
            # each cell's state is that of its body's field
            self._set_up_flow_updates(self.body_displacement())
        self._inactive = self._inactive_dofs(foil_cells, [c for t in layer_tags
                                                          for c in tags.indices[tags.values == t]])
        self.dirichlet = list(self._inactive)
        self.step_cuts = 0
        self._next_increment = np.inf  # the load sub-step to try first (advance)
        # the last converged sub-step: its load, its change of the load and of w
        self.last_load, self.last_load_change = None, 0.0
        self.last_change = fem.Function(self.W)
        self._peak = PeakTracker()
        self._forms = {}
        self.dofs = self.W.dofmap.index_map.size_global * self.W.dofmap.index_map_bs
        # Newton's linear systems are solved on the active dofs only: a body's dofs outside
        # its cells are identity rows that would otherwise more than double what LU factors
        # (and they would hide the bodies' rigid-body modes from algebraic multigrid)
        self._active = self._active_dofs()
        self.unknowns = self._active.getSize()
        self.direct = uses_direct_solver(solver.linear_solver, self.unknowns,
                                         solver.direct_solver_max_dofs, gdim)
        self.ksp = configured_ksp(self.comm, "cohesive", self._direct_solver() if self.direct
                                  else {})
        self.krylov_iterations = 0
        self._bulk_matrix = self._newton_matrix = self._active_matrix = None
        logger.info("cohesive problem: %d DOFs, %d active, %s linear solver", self.dofs,
                    self.unknowns, "direct" if self.direct else "iterative")

    # -- fields and kinematics -------------------------------------------------------------
    def foil(self, w):
        return ufl.as_vector([w[i] for i in range(self.gdim)])

    def layer(self, w):
        return ufl.as_vector([w[self.gdim + i] for i in range(self.gdim)])

    def body_displacement(self):
        """The displacement as one UFL field: u_foil in the foil's cells, u_layer elsewhere
        (discontinuous across the cohesive interface)."""
        chi = self.foil_indicator
        return chi * self.foil(self.w) + (1 - chi) * self.layer(self.w)

    def strain(self, u):
        return ufl.sym(ufl.grad(u))

    def stress(self, u, with_initial=True):
        """Plane-strain (2D) or 3D stress, eigenstrain and initial stress included; with
        plasticity, the return mapping's stress from the committed plastic state."""
        if self.plastic:
            change, _ = self._flow(u)
            sigma = self._hooke(self._elastic_strain(u) - change)
            if with_initial and self._full_initial_stress is not None:
                sigma += self._initial_stress_3d()
            return in_plane(sigma, self.gdim)
        sigma = self._hooke(self.strain(u))
        if self.eigenstrain is not None:
            eigen = self.load_factor * self.eigenstrain
            sigma -= (3 * self.lame_lambda + 2 * self.shear_modulus) * eigen \
                * ufl.Identity(self.gdim)
        if with_initial and self.initial_stress is not None:
            sigma += self.initial_stress
        return sigma

    def _elastic_stress(self, u):
        """The stress of an elastic (not flowing) material: stress(u) where the return
        mapping leaves no plastic strain, without its expression."""
        if not self.plastic:
            return self.stress(u)
        strain = as_3d(self.strain(u))
        if self.eigenstrain is not None:
            strain -= self.load_factor * self.eigenstrain * ufl.Identity(3)
        sigma = self._hooke(strain)
        if self._full_initial_stress is not None:
            sigma += self._initial_stress_3d()
        return in_plane(sigma, self.gdim)

    # -- plasticity ------------------------------------------------------------------------
    def _set_up_flow(self, materials, quadrature_degree):
        """Quadrature-point state: plastic strain (3x3), equivalent plastic strain, and the
        stress of the last converged step (for the trapezoidal plastic work); cell-wise flow
        parameters."""
        import basix.ufl

        msh = self.emesh.mesh
        cell = msh.topology.cell_name()
        tensor = fem.functionspace(msh, basix.ufl.quadrature_element(
            cell, value_shape=(3, 3), degree=quadrature_degree))
        scalar = fem.functionspace(msh, basix.ufl.quadrature_element(
            cell, value_shape=(), degree=quadrature_degree))
        self.plastic_strain = fem.Function(tensor, name="plastic_strain")
        self.equivalent_plastic_strain = fem.Function(scalar, name="equivalent_plastic_strain")
        self._converged_stress = fem.Function(tensor)
        self._flow_state = (self.plastic_strain, self.equivalent_plastic_strain,
                            self._converged_stress)
        self._flow_buffers = tuple(fem.Function(f.function_space) for f in self._flow_state)
        used = self.emesh.geometry.cell_materials.values()

        def parameter(key, label):
            return cellwise_field(self.emesh, {n: (getattr(materials[n], key, None) or 0.0)
                                               if n in self.flowing_materials else 0.0
                                               for n in used}, label)

        self.flow_indicator = cellwise_field(
            self.emesh, {n: float(n in self.flowing_materials) for n in used}, "flowing")
        self.flow_stress = parameter("swelling_flow_stress", "flow_stress")
        self.hardening_modulus = parameter("swelling_hardening_modulus", "hardening_modulus")

    def _set_up_flow_updates(self, body):
        """The new state at the quadrature points from the body displacement field `body`,
        the plastic work of a step and the cell averages of p."""
        change, multiplier = self._flow(body)
        stress = self._hooke(self._elastic_strain(body) - change)
        if self._full_initial_stress is not None:
            stress += self._initial_stress_3d()
        points = compat.interpolation_points(self.plastic_strain.function_space)
        self._flow_updates = [
            fem.Expression(self.plastic_strain + change, points),
            fem.Expression(self.equivalent_plastic_strain
                           + equivalent_plastic_strain_increment(multiplier), points),
            fem.Expression(stress, points)]
        self._converged_stress.interpolate(self._flow_updates[2])  # w = 0
        new_strain, _, new_stress = self._flow_buffers
        self._plastic_work_form = fem.form(0.5 * ufl.inner(
            self._converged_stress + new_stress, new_strain - self.plastic_strain)
            * self.dx_all)
        cells = fem.functionspace(self.emesh.mesh, ("DG", 0))
        test = ufl.TestFunction(cells)
        self._cell_forms = (fem.form(self.equivalent_plastic_strain * test * self.dx_all),
                            fem.form(test * self.dx_all))

    def _initial_stress_3d(self):
        stress = self._full_initial_stress
        return as_3d(stress)

    def _elastic_strain(self, u):
        """3x3 strain less the eigenstrain and the committed plastic strain."""
        strain = as_3d(self.strain(u)) - self.plastic_strain
        if self.eigenstrain is not None:
            strain -= self.load_factor * self.eigenstrain * ufl.Identity(3)
        return strain

    def _hooke(self, strain):
        return hooke(strain, self.lame_lambda, self.shear_modulus)

    def _flow(self, u):
        """The return mapping at u: (plastic strain increment, plastic multiplier). The
        yield condition sees the initial stress's deviator with the trial deviator."""
        trial = 2 * self.shear_modulus * ufl.dev(self._elastic_strain(u))
        if self._full_initial_stress is not None:
            trial += ufl.dev(self._initial_stress_3d())
        multiplier, scale = radial_return(trial, self.shear_modulus, self.flow_stress,
                                          self.hardening_modulus,
                                          self.equivalent_plastic_strain, self.flow_indicator)
        return plastic_strain_increment(trial, scale, self.shear_modulus), multiplier

    def _commit_flow(self):
        """The converged step's plastic state becomes the start of the next one, and its
        plastic work is added to plastic_work (every new value is evaluated from the old
        state before any is replaced)."""
        for expression, buffer in zip(self._flow_updates, self._flow_buffers, strict=True):
            buffer.interpolate(expression)
        self.plastic_work += self.comm.allreduce(fem.assemble_scalar(self._plastic_work_form))
        for state, buffer in zip(self._flow_state, self._flow_buffers, strict=True):
            state.x.array[:] = buffer.x.array

    def _flow_snapshot(self):
        if not self.plastic:
            return None
        return [f.x.array.copy() for f in self._flow_state], self.plastic_work

    def _restore_flow(self, snapshot):
        if snapshot is not None:
            arrays, self.plastic_work = snapshot
            for state, array in zip(self._flow_state, arrays, strict=True):
                state.x.array[:] = array

    def cell_plastic_strain(self) -> np.ndarray:
        """The cell averages of the equivalent plastic strain on this rank's owned cells
        (zeros without plasticity)."""
        cells = self.emesh.mesh.topology.index_map(self.gdim).size_local
        if not self.plastic:
            return np.zeros(cells)
        integral, volume = (_assembled(form)[:cells] for form in self._cell_forms)
        return integral / volume

    def _inactive_dofs(self, foil_cells, layer_cells):
        """Zero Dirichlet conditions on each field's dofs outside its cells' closure."""
        msh = self.emesh.mesh
        scalar = fem.functionspace(msh, ("Lagrange", self.W.ufl_element().degree))
        conditions = []
        for field, cells in ((0, foil_cells), (1, np.asarray(layer_cells, np.int32))):
            active = touched_dofs(scalar, cells)
            inactive_blocks = np.flatnonzero(~active).astype(np.int32)
            for component in range(self.gdim):
                index = field * self.gdim + component
                dofs = inactive_blocks * 2 * self.gdim + index
                conditions.append(fem.dirichletbc(PETSc.ScalarType(0.0), dofs.astype(np.int32),
                                                  self.W.sub(index)))
        return conditions

    def fix(self, field: str, component: int, facets, value: float = 0.0) -> fem.Constant:
        """Hold a component of the foil or layer displacement on facets at a (changeable)
        value; returns the Constant that holds it."""
        index = (0 if field == "foil" else self.gdim) + component
        fdim = self.emesh.mesh.topology.dim - 1
        dofs = fem.locate_dofs_topological(self.W.sub(index), fdim, facets)
        constant = fem.Constant(self.emesh.mesh, PETSc.ScalarType(value))
        self.dirichlet.append(fem.dirichletbc(constant, dofs, self.W.sub(index)))
        self._bulk_matrix = None
        return constant

    def traction(self, field: str, name: str) -> fem.Constant:
        """A uniform traction [Pa] on the foil's or the layer's facets of the group `name`;
        returns the (gdim vector) Constant that holds it, zero at first."""
        msh = self.emesh.mesh
        ds = ufl.Measure("ds", domain=msh, subdomain_data=self.emesh.facet_tags)(
            self.emesh.geometry.facet_groups[name])
        constant = fem.Constant(msh, np.zeros(self.gdim, dtype=PETSc.ScalarType))
        body = self.foil if field == "foil" else self.layer
        self._residual_ufl -= self.scale * ufl.inner(constant, body(self._test)) * ds
        self.residual = fem.form(self._residual_ufl)
        self._forms = {}  # the reactions are the residual's
        return constant

    def facets(self, name):
        tag = self.emesh.geometry.facet_groups[name]
        return self.emesh.facet_tags.indices[self.emesh.facet_tags.values == tag]

    # -- interface -------------------------------------------------------------------------
    def jumps(self, values=None):
        """Opening delta = u_layer - u_foil at the interface nodes: (n, gdim)."""
        w = (self.w.x.array if values is None else values).reshape(-1, 2 * self.gdim)
        nodes = w[self.nodes.blocks]
        return nodes[:, self.gdim:] - nodes[:, :self.gdim]

    def _split(self, delta):
        normal = self.nodes.normals
        opening = np.einsum("ni,ni->n", delta, normal)
        return opening, delta - opening[:, None] * normal

    def _rate_weight(self, dt):
        """Weight of the rate-independent damage in the viscous update."""
        if self.law.viscosity <= 0 or dt is None:
            return 1.0
        r = dt / self.law.viscosity
        return r / (1 + r)

    def nodal_damage(self, delta, dt=None):
        """D at the nodes for the opening delta, from the damage of the last converged step."""
        opening, shear = self._split(delta)
        target = np.maximum(self.damage, self.law.damage(opening, shear))
        weight = self._rate_weight(dt)
        return (1 - weight) * self.damage + weight * target

    def tractions(self, delta, damage):
        """Tractions on the layer at the nodes (foil -> layer normal; tension positive)."""
        opening, shear = self._split(delta)
        k = self.law.penalty_stiffness
        traction = k * delta - damage[:, None] * k * (
            np.maximum(opening, 0.0)[:, None] * self.nodes.normals + shear)
        if self.friction:
            traction += damage[:, None] * self.coulomb(delta).traction
        return traction

    def coulomb(self, delta) -> Friction:
        """The friction of the damaged fraction for the opening delta, by return mapping from
        the slip of the last converged step."""
        opening, shear = self._split(delta)
        k = self.law.penalty_stiffness
        limit = self.law.friction_coefficient * k * np.maximum(-opening, 0.0)
        trial = k * (shear - self.slip)
        size = np.linalg.norm(trial, axis=1)
        sliding = size > limit
        direction = np.divide(trial, size[:, None], out=np.zeros_like(trial),
                              where=size[:, None] > 0)
        traction = np.where(sliding[:, None], limit[:, None] * direction, trial)
        return Friction(traction, shear - traction / k, sliding, direction, size, limit)

    def _spring_tangent(self, delta, dt):
        """d t / d delta at the nodes: (n, gdim, gdim), softening included."""
        n, gdim = len(delta), self.gdim
        damage = self.nodal_damage(delta, dt)
        opening, _ = self._split(delta)
        normal = self.nodes.normals
        nn = np.einsum("ni,nj->nij", normal, normal)
        identity = np.broadcast_to(np.eye(gdim), (n, gdim, gdim))
        k = self.law.penalty_stiffness
        open_projector = np.where((opening > 0)[:, None, None], nn, 0.0) + identity - nn
        tangent = k * identity - k * damage[:, None, None] * open_projector
        if self.friction:
            friction = self.coulomb(delta)
            tangent = tangent + damage[:, None, None] * self._friction_tangent(friction, nn)
        # d D / d delta by central differences where the damage grows
        growing = damage > self.damage + 1e-14
        if growing.any():
            size = 1e-6 * np.maximum(np.linalg.norm(delta, axis=1),
                                     self.law.normal_strength / k)
            gradient = np.zeros((n, gdim))
            for i in range(gdim):
                step = np.zeros((n, gdim))
                step[:, i] = size
                gradient[:, i] = (self.nodal_damage(delta + step, dt)
                                  - self.nodal_damage(delta - step, dt)) / (2 * size)
            gradient[~growing] = 0.0
            opening_part = np.maximum(opening, 0.0)[:, None] * normal + (delta - opening[:, None]
                                                                          * normal)
            tangent = tangent - k * np.einsum("ni,nj->nij", opening_part, gradient)
            if self.friction:
                tangent = tangent + np.einsum("ni,nj->nij", friction.traction, gradient)
        return tangent

    def _friction_tangent(self, friction: Friction, nn):
        """d t_f / d delta: K P_t in stick; in slip -mu_f K e n (the limit falls as the
        contact opens) + K limit / |t_trial| (P_t - e e) (the direction turns); 0 out of
        contact."""
        k, mu = self.law.penalty_stiffness, self.law.friction_coefficient
        tangential = np.eye(self.gdim)[None] - nn
        e = friction.direction
        in_contact = (friction.limit > 0)[:, None, None]
        turning = k * np.divide(friction.limit, friction.trial_size,
                                out=np.zeros_like(friction.limit),
                                where=friction.trial_size > 0)[:, None, None] * (
            tangential - np.einsum("ni,nj->nij", e, e))
        sliding = (np.where(in_contact, -mu * k * np.einsum("ni,nj->nij", e, self.nodes.normals),
                            0.0) + turning)
        stick = (~friction.sliding & (friction.limit > 0))[:, None, None]
        return np.where(stick, k * tangential, sliding)

    # -- linear algebra --------------------------------------------------------------------
    def _bulk(self):
        """The bulk stiffness of the elastic cells (assembled once, in the pattern of the whole
        tangent); the flowing cells' tangent is added to the Newton matrix (_matrix)."""
        if self._bulk_matrix is None:
            # the whole tangent first: the final assembly keeps only the entries it set
            self._bulk_matrix = fem_petsc.assemble_matrix(self.jacobian, bcs=self.dirichlet)
            self._bulk_matrix.assemble()
            constant, flowing = self._tangent_parts
            if flowing is not None:
                self._bulk_matrix.zeroEntries()
                if constant is not None:
                    fem_petsc.assemble_matrix(self._bulk_matrix, constant, bcs=self.dirichlet)
                self._bulk_matrix.assemble()
            self._newton_matrix = None
        return self._bulk_matrix

    def _direct_solver(self) -> dict:
        """LU of the active dofs: on one rank in 2D with the approximate minimum degree
        ordering, which factors the 2D pull-off's tangent in half the time nested dissection
        takes (6,444 unknowns: 35 against 85 ms); else linear.direct_solver."""
        if self.comm.size == 1 and self.gdim == 2:
            return {**direct_solver(self.comm), "pc_factor_mat_ordering_type": "amd"}
        return direct_solver(self.comm)

    def _active_dofs(self) -> PETSc.IS:
        """The owned dofs of W that are not held for lying outside their body, in the global
        numbering of W's PETSc vectors."""
        index_map, bs = self.W.dofmap.index_map, self.W.dofmap.index_map_bs
        owned = index_map.size_local * bs
        inactive = _held_owned_dofs(self._inactive, owned)
        start = index_map.local_range[0] * bs
        return PETSc.IS().createGeneral(
            (start + np.flatnonzero(~inactive)).astype(PETSc.IntType), comm=self.comm)

    def _two_level(self):
        """The iterative solver's preconditioner: p-multigrid of the active dofs with the
        interpolation from the P1 space of both bodies (the Galerkin coarse operator, by LU)
        restricted to their active dofs. The held dofs (Dirichlet rows) take no coarse
        correction: their identity rows, of another scale than the stiffness, would dominate
        the coarse operator."""
        gdim, bs = self.gdim, 2 * self.gdim
        msh = self.emesh.mesh
        coarse_space = fem.functionspace(msh, ("Lagrange", 1, (bs,)))
        interpolation = compat.interpolation_matrix(coarse_space, self.W)
        tags = self.emesh.cell_tags
        index_map = coarse_space.dofmap.index_map
        active = np.zeros((index_map.size_local, bs), bool)
        vertices = fem.functionspace(msh, ("Lagrange", 1))
        for body, cells in enumerate((tags.indices[tags.values == self.foil_tag],
                                      tags.indices[tags.values != self.foil_tag])):
            touched = touched_dofs(vertices, cells)[:index_map.size_local]
            active[:, body * gdim:(body + 1) * gdim] = touched[:, None]
        coarse_active = PETSc.IS().createGeneral(
            (index_map.local_range[0] * bs + np.flatnonzero(active.ravel())).astype(
                PETSc.IntType), comm=self.comm)
        restricted = interpolation.createSubMatrix(self._active, coarse_active)
        interpolation.destroy()
        held = _held_owned_dofs(self.dirichlet, self.W.dofmap.index_map.size_local * bs)
        local_active = self._active.getIndices() - self.W.dofmap.index_map.local_range[0] * bs
        first = self._active_matrix.getOwnershipRange()[0]
        restricted.zeroRows((first + np.flatnonzero(held[local_active])).astype(PETSc.IntType),
                            diag=0.0)
        coarse_solver = {f"mg_coarse_{key}": value
                         for key, value in direct_solver(self.comm).items()}
        options = {**COHESIVE_ITERATIVE_SOLVER, **coarse_solver}
        with options_set(self.ksp.getOptionsPrefix(), options):
            self.ksp.setFromOptions()
            self.ksp.getPC().setMGInterpolation(1, restricted)
            self.ksp.setUp()
        restricted.destroy()  # the PC holds it
        logger.info("cohesive preconditioner: p-multigrid, %d unknowns, %d on the P1 level",
                    self.unknowns, coarse_active.getSize())

    def _constrained_mask(self):
        """(n_nodes, 2 gdim) True where an interface node's component is held."""
        mask = np.zeros(len(self.w.x.array), bool)
        for bc in self.dirichlet:
            dofs, _ = bc.dof_indices()
            mask[dofs] = True
        return mask.reshape(-1, 2 * self.gdim)[self.nodes.blocks]

    def _residual(self, dt):
        """The scaled residual vector (ghosts updated, Dirichlet rows zero)."""
        b = fem_petsc.assemble_vector(self.residual)
        b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        delta = self.jumps()
        forces = self.scale * self.nodes.weights[:, None] * self.tractions(
            delta, self.nodal_damage(delta, dt))
        owned = self.nodes.owned
        bs = 2 * self.gdim
        array = b.array  # owned entries
        rows = self.nodes.blocks[owned]
        for i in range(self.gdim):
            array[rows * bs + i] -= forces[owned, i]
            array[rows * bs + self.gdim + i] += forces[owned, i]
        for bc in self.dirichlet:
            dofs, _ = bc.dof_indices()
            array[dofs[dofs < len(array)]] = 0.0
        return b

    def _matrix(self, dt):
        """The Newton matrix: the bulk stiffness plus the springs' tangent, in one matrix that
        is refilled each time (the factorization reuses its ordering)."""
        bulk = self._bulk()
        if self._newton_matrix is None:
            self._newton_matrix = bulk.copy()
        A = self._newton_matrix
        bulk.copy(A, structure=PETSc.Mat.Structure.SAME_NONZERO_PATTERN)
        _, flowing = self._tangent_parts
        if flowing is not None:  # the consistent tangent of the flowing cells, at w
            fem_petsc.assemble_matrix(A, flowing, bcs=self.dirichlet)
            A.assemble(PETSc.Mat.AssemblyType.FLUSH)  # its diagonal was inserted, springs add
        delta = self.jumps()
        tangent = self.scale * self.nodes.weights[:, None, None] * self._spring_tangent(delta,
                                                                                         dt)
        gdim, bs = self.gdim, 2 * self.gdim
        block = np.zeros((len(delta), bs, bs))
        block[:, :gdim, :gdim] = tangent
        block[:, gdim:, gdim:] = tangent
        block[:, :gdim, gdim:] = -tangent
        block[:, gdim:, :gdim] = -tangent
        held = self._held
        block[held[:, :, None] | held[:, None, :]] = 0.0
        for node in np.flatnonzero(self.nodes.owned):
            A.setValuesBlockedLocal([self.nodes.blocks[node]], [self.nodes.blocks[node]],
                                    block[node], addv=PETSc.InsertMode.ADD)
        A.assemble()
        return A

    # -- solution --------------------------------------------------------------------------
    def residual_norm(self) -> float:
        """Newton's hook: the norm of the scaled residual (inf where it is not finite)."""
        b = self._residual(self._dt)
        norm = b.norm()
        b.destroy()
        return norm if np.isfinite(norm) else np.inf

    def newton_increment(self) -> Increment:
        A = self._matrix(self._dt)
        first = self._active_matrix is None
        self._active_matrix = A.createSubMatrix(self._active, self._active,
                                                submat=self._active_matrix)
        self.ksp.setOperators(self._active_matrix)
        if first and not self.direct:
            self._two_level()
        b = self._residual(self._dt)
        increment = fem.Function(self.W)  # zero on the inactive dofs
        rhs = b.getSubVector(self._active)
        solution = increment.x.petsc_vec.getSubVector(self._active)
        self.ksp.solve(rhs, solution)
        increment.x.petsc_vec.restoreSubVector(self._active, solution)
        b.restoreSubVector(self._active, rhs)
        b.destroy()
        if not self.direct:
            self.krylov_iterations += self.ksp.getIterationNumber()
            logger.debug("cohesive linear solve: %d Krylov iterations",
                         self.ksp.getIterationNumber())
        check_converged(self.ksp, "the cohesive linearized solve")
        increment.x.scatter_forward()
        start = self.w.x.array.copy()

        def move(fraction: float):
            self.w.x.array[:] = start - fraction * increment.x.array

        return Increment(move)

    def _prescribed(self):
        """Put the Dirichlet values into w."""
        fem_petsc.set_bc(self.w.x.petsc_vec, self.dirichlet)
        self.w.x.scatter_forward()

    def solve_step(self, dt=None, predictor=None) -> int:
        """Equilibrium at the current loads; the damage and slip history and the plastic
        state are updated only on convergence (else SolverError and w is restored). Newton
        starts from w + predictor where one is given (the prescribed values are kept).
        Returns the Newton iterations."""
        saved = self.w.x.array.copy()
        self._held = self._constrained_mask()
        self._prescribed()
        self._dt = dt
        reference = None
        if predictor is not None:
            reference = self.residual_norm()
            self.w.x.array[:] += predictor
            self._prescribed()
        try:
            iterations = newton_solve(self, self.newton, self._absolute_tolerance,
                                      "of the cohesive interface", reference)
        except SolverError:
            self.w.x.array[:] = saved
            raise
        delta = self.jumps()
        if self.friction:
            self.slip = self.coulomb(delta).slip
        self.damage = self.nodal_damage(delta, dt)
        if self.plastic:
            self._commit_flow()
        return iterations

    def advance(self, set_load, start: float, end: float, dt=None, max_strength_loss=1.0,
                converged=None, max_cuts: int | None = None, peak=None) -> CutReport:
        """Move a load parameter from start to end (set_load(value) applies it) and solve,
        in sub-steps sized by advance_adaptively from the share of their limits the last
        one used (_step_usage: no node loses more than max_strength_loss of its strength,
        the onset and the peak are resolved); the size carries over to the next call, so a
        run of small steps near the peak is not retried from the whole step each time.
        dt: the pseudo-time of the step (for the viscosity); converged(value, history
        before, report) is called after every converged sub-step; max_cuts: the smallest
        sub-step is 2**-max_cuts of the step (default: solver.max_step_cuts); peak: the
        pulling force, a function of the state, whose peak is to be resolved."""

        def solve_part(a: float, b: float, last_chance: bool) -> tuple[int, float]:
            load = along(start, end, b)
            set_load(load)
            saved, before = self.w.x.array.copy(), self.history()
            flow_before = self._flow_snapshot()
            part_dt = None if dt is None else dt * (b - a)
            at_peak = peak is not None and self._peak.at_largest()
            predictor = self._predictor(load)
            if predictor is not None and not last_chance:
                # a sub-step that the extrapolation shows far over its limits is not solved
                delta = self.jumps(self.w.x.array + predictor)
                usage, why = self._step_usage(self.nodal_damage(delta, part_dt),
                                              before.damage, delta, max_strength_loss,
                                              at_peak)
                if usage > PREDICTED_OVER_LIMIT:
                    raise StepOverLimit(f"predicted: {why}", usage)
            iterations = self.solve_step(part_dt, predictor)
            usage, why = self._step_usage(self.damage, before.damage, self.jumps(),
                                          max_strength_loss, at_peak)
            if usage > 1 and not last_chance:
                self.w.x.array[:] = saved
                self.damage, self.slip = before
                self._restore_flow(flow_before)
                raise StepOverLimit(why, usage)
            if peak is not None:
                self._peak.follow(peak())
            self.last_load_change = 0.0 if self.last_load is None else load - self.last_load
            self.last_load = load
            self.last_change.x.array[:] = self.w.x.array - saved
            if converged is not None:
                converged(load, before, CutReport(iterations, 0))
            return iterations, min(usage, 1.0)

        span = abs(end - start)
        report = advance_adaptively(
            solve_part, self.max_step_cuts if max_cuts is None else max_cuts,
            lambda a, b: f"of the cohesive load {along(start, end, a):.4g} -> "
                         f"{along(start, end, b):.4g}",
            first_fraction=self._next_increment / span if span > 0 else 1.0)
        if span > 0:
            self._next_increment = report.next_fraction * span
        self.step_cuts += report.cuts
        return CutReport(report.newton_iterations, report.cuts)

    def _step_usage(self, damage, damage_before, delta, max_strength_loss: float,
                    at_peak: bool) -> tuple[float, str]:
        """The share of its limits a sub-step from damage_before to damage (at the opening
        delta) uses, the largest of: the strength a node loses over max_strength_loss, the
        interface's strength lost by the nodes that start to soften over
        ONSET_INTERFACE_LOSS, and where the force is at its largest so far (at_peak) the
        interface's strength lost over PEAK_INTERFACE_LOSS; and the limit that set it, in
        words."""
        opening, shear = self._split(delta)
        lost = self.law.strength_loss(damage, opening, shear)
        lost_before = self.law.strength_loss(damage_before, opening, shear)
        loss = self.comm.allreduce(float(np.max(lost - lost_before, initial=0.0)), op=MPI.MAX)
        usage, why = loss / max_strength_loss, f"a node lost {loss:.3g} of its strength"
        area = self.interface_measure
        onset_loss = self.interface_sum(np.where(damage_before > 0, 0.0, lost)) / area
        if onset_loss > ONSET_INTERFACE_LOSS * usage:
            usage = onset_loss / ONSET_INTERFACE_LOSS
            why = f"the nodes that started to soften lost {onset_loss:.3g} of its strength"
        if at_peak:
            mean_loss = self.interface_sum(lost - lost_before) / area
            if mean_loss > PEAK_INTERFACE_LOSS * usage:
                usage = mean_loss / PEAK_INTERFACE_LOSS
                why = (f"the interface lost {mean_loss:.3g} of its strength at the largest "
                       "force so far")
        return usage, why + " in one step"

    def _predictor(self, load: float):
        """The last converged sub-step's change of w, scaled to the load step from there to
        `load` (None before the first one, or for a step in another direction): Newton then
        starts with the flowing points flowing and the opening nodes opening, where from
        the last state it would take an elastic first step and search its length back."""
        if self.last_load is None or self.last_load_change == 0:
            return None
        ratio = (load - self.last_load) / self.last_load_change
        return ratio * self.last_change.x.array if ratio > 0 else None

    def stepping_state(self) -> dict:
        """What advance carries from one load step to the next, but last_change (for a
        checkpoint: JSON numbers)."""
        return {"next_increment": self._next_increment, "last_load": self.last_load,
                "last_load_change": self.last_load_change,
                "peak": [self._peak.last, self._peak.largest]}

    def set_stepping_state(self, state: dict):
        self._next_increment = state["next_increment"]
        self.last_load, self.last_load_change = state["last_load"], state["last_load_change"]
        self._peak.last, self._peak.largest = state["peak"]

    def history(self) -> InterfaceHistory:
        """A copy of the irreversible nodal state."""
        return InterfaceHistory(self.damage.copy(), self.slip.copy())

    # -- post-processing -------------------------------------------------------------------
    def reaction(self, weight: fem.Function) -> float:
        """The virtual work of the internal forces on the displacement pattern `weight` (the
        reaction to it, in N per unit depth in 2D)."""
        key = ("reaction", id(weight))
        if key not in self._forms:
            self._forms[key] = fem.form(ufl.replace(self._residual_ufl, {self._test: weight}))
        return self.comm.allreduce(fem.assemble_scalar(self._forms[key])) / self.scale

    def elastic_energy(self) -> float:
        """Strain energy of both bodies (without the initial stress), per unit depth in 2D;
        with plasticity, of the elastic strain of the committed state."""
        if "energy" not in self._forms:
            energy = 0.0
            for field, measure in ((self.foil, self.dx_foil), (self.layer, self.dx_layer)):
                u = field(self.w)
                if self.plastic:
                    elastic = self._elastic_strain(u)
                    energy += 0.5 * ufl.inner(self._hooke(elastic), elastic) * measure
                    continue
                energy += 0.5 * ufl.inner(self.stress(u, with_initial=False),
                                          self.strain(u)) * measure
            self._forms["energy"] = fem.form(energy)
        return self.comm.allreduce(fem.assemble_scalar(self._forms["energy"]))

    def stored_energy(self) -> float:
        """The bodies' energy with the eigenstrain and the initial stress sigma_0, from the
        unstrained state: 0.5 eps_e : C : eps_e + sigma_0 : eps_e, eps_e = eps - eps_s I (in
        plane strain eps_zz = 0, so eps_e,zz = -eps_s; with plasticity less the committed
        plastic strain). Its change is the work of the internal forces on d eps plus the
        eigenstrain's (eigenstrain_work_rate), less the plastic work."""
        if "stored" not in self._forms:
            energy = 0.0
            for field, measure in ((self.foil, self.dx_foil), (self.layer, self.dx_layer)):
                if self.plastic:  # the 3x3 elastic strain and initial stress
                    elastic = self._elastic_strain(field(self.w))
                    energy += 0.5 * ufl.inner(self._hooke(elastic), elastic) * measure
                    if self._full_initial_stress is not None:
                        energy += ufl.inner(self._initial_stress_3d(), elastic) * measure
                    continue
                strain = self.strain(field(self.w))
                eigen = 0.0 if self.eigenstrain is None else self.load_factor * self.eigenstrain
                elastic = strain - eigen * ufl.Identity(self.gdim)
                elastic_3d = as_3d(elastic, -eigen)  # eps_e,zz = -eps_s in plane strain
                density = 0.5 * ufl.inner(self._hooke(elastic_3d), elastic_3d)
                if self.initial_stress is not None:
                    density += ufl.inner(self.initial_stress, elastic)
                energy += density * measure
            self._forms["stored"] = fem.form(energy)
        return self.comm.allreduce(fem.assemble_scalar(self._forms["stored"]))

    def eigenstrain_work_rate(self) -> float:
        """d W / d load_factor, the work of the eigenstrain eps_s I per unit load factor:
        -integral of tr(sigma) eps_s (plane strain: sigma_zz = lambda tr eps
        - (3 lambda + 2 mu) eps_s); 0 without an eigenstrain."""
        if self.eigenstrain is None:
            return 0.0
        if "eigenstrain work" not in self._forms:
            rate = 0.0
            for field, measure in ((self.foil, self.dx_foil), (self.layer, self.dx_layer)):
                u = field(self.w)
                if self.plastic:  # the committed state's 3x3 stress
                    stress = self._hooke(self._elastic_strain(u))
                    if self._full_initial_stress is not None:
                        stress += self._initial_stress_3d()
                    rate += -ufl.tr(stress) * self.eigenstrain * measure
                    continue
                trace = ufl.tr(self.stress(u))
                if self.gdim == 2:  # and sigma_zz
                    eigen = self.load_factor * self.eigenstrain
                    trace += self._hooke(as_3d(self.strain(u)) - eigen * ufl.Identity(3))[2, 2]
                rate += -trace * self.eigenstrain * measure
            self._forms["eigenstrain work"] = fem.form(rate)
        return self.comm.allreduce(fem.assemble_scalar(self._forms["eigenstrain work"]))

    def nodal_free_energy(self, damage=None):
        """Recoverable energy per area at the nodes."""
        damage = self.damage if damage is None else damage
        opening, shear = self._split(self.jumps())
        k = self.law.penalty_stiffness
        energy = 0.5 * k * (np.minimum(opening, 0.0)**2 + (1 - damage)
                            * (np.maximum(opening, 0.0)**2 + np.einsum("ni,ni->n", shear, shear)))
        if self.friction:
            energy += damage * self._stick_energy(shear)
        return energy

    def _stick_energy(self, shear):
        """K |delta_s - s_p|^2 / 2: the friction spring's energy per area (damaged part)."""
        stick = shear - self.slip
        return 0.5 * self.law.penalty_stiffness * np.einsum("ni,ni->n", stick, stick)

    def dissipation(self, before: InterfaceHistory):
        """Energy per area dissipated at the nodes since the history `before`: the integral of
        Y dD along the law's softening branch, Y = K delta(D)^2 / 2 with
        delta(D) = delta_0 delta_f / (delta_f - D (delta_f - delta_0)), at the current mode
        mixity (exact for proportional paths; from D = 0 to 1 it is G_c(B)). With friction,
        Y is less the friction spring's energy (taken at the end of the step), and the
        friction's work D t_f . ds_p (backward Euler, like the return mapping) is added."""
        damage_before = before.damage
        opening, shear = self._split(self.jumps())
        shear2 = np.einsum("ni,ni->n", shear, shear)
        magnitude2 = np.maximum(opening, 0.0)**2 + shear2
        mixity = np.divide(shear2, magnitude2, out=np.ones_like(shear2), where=magnitude2 > 0)
        onset, final = self.law.onset_and_final(mixity)
        span = final - onset

        def inverse_separation(damage):
            return 1.0 / (final - damage * span)

        dissipated = 0.5 * self.law.penalty_stiffness * (onset * final)**2 / span * (
            inverse_separation(self.damage) - inverse_separation(damage_before))
        if self.friction:
            stick = shear - self.slip  # t_f / K at a converged state
            dissipated += self.damage * self.law.penalty_stiffness * np.einsum(
                "ni,ni->n", stick, self.slip - before.slip) - self._stick_energy(shear) * (
                self.damage - damage_before)
        return dissipated

    def interface_sum(self, nodal_values) -> float:
        """Sum over the ranks of weight * value at the owned interface nodes."""
        owned = self.nodes.owned
        return self.comm.allreduce(float(np.sum(self.nodes.weights[owned]
                                                * nodal_values[owned])))
