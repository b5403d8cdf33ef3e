"""Quasi-static small-strain thermo-mechanics with history-dependent materials.

Stresses, consistent tangents and internal variables live at quadrature points; the
material models (solver/materials/constitutive.py) update them in vectorized numpy, and Newton's
method with the consistent tangent drives the global residual to zero. The global unknowns
of the unit cells (out-of-plane strain in generalized plane strain, the uniform
displacement of the free face) are eliminated in every Newton iteration by superposing
solutions of the linearized system, as in solver/physics/thermoelastic.py: the linearized problem
is linear, so the superposition is exact and Newton converges as for the coupled system.
"""

import logging
from dataclasses import dataclass

import basix.ufl
import numpy as np
import ufl
from dolfinx import fem
from mpi4py import MPI
from petsc4py import PETSc

from solver.errors import SolverError
from solver.materials.library import largest
from solver.numerics.condensation import CondensedCell, CondensedForms, CondensedNewton
from solver.numerics.fields import CellwiseProjector
from solver.numerics.linear import elasticity_ksp, rigid_body_modes
from solver.numerics.newton import NewtonSettings, newton_solve
from solver.numerics.stepping import advance_with_cuts, along
from solver.physics import boundary
from solver.physics.thermoelastic import ElasticState

logger = logging.getLogger(__name__)

SQRT2 = np.sqrt(2.0)

# The step-size controller of advance: a sub-step's error is third order in its length, the
# next one is SAFETY (tolerance/error)^(1/3) times it, within [MIN_SHRINK, MAX_GROWTH] times;
# a sub-step shorter than the driver's step / 2^ERROR_CUTS is accepted whatever its error.
SAFETY = 0.9
MIN_SHRINK = 0.2
MAX_GROWTH = 4.0
ERROR_CUTS = 12


@dataclass
class StepResult:
    state: ElasticState
    newton_iterations: int


class InelasticProblem(CondensedCell):
    """models: material name -> a MaterialModel (solver/materials/constitutive.py);
    thermal_strain(name, T): the isotropic thermal eigenstrain of that material at
    temperature T, from the stress-free start at start_temperature."""

    def __init__(self, emesh, case, models: dict, thermal_strain, start_temperature: float):
        self.emesh, self.case = emesh, case
        msh = emesh.mesh
        self.gdim = msh.geometry.dim
        self.generalized = self.gdim == 2 and case.case.plane == "generalized"
        self.models = models
        self.thermal_strain = thermal_strain
        degree = case.solver.degree
        self.V = fem.functionspace(msh, ("Lagrange", degree, (self.gdim,)))
        self.u = fem.Function(self.V, name="u")
        self.out_of_plane_strain = fem.Constant(msh, PETSc.ScalarType(0.0))
        self.temperature = self.start_temperature = start_temperature
        # sigma:eps(v) with eps of degree-1 polynomials is exact at this degree
        self.quadrature_degree = max(2 * (degree - 1), 1)
        cell = msh.topology.cell_name()
        vector_element = basix.ufl.quadrature_element(cell, value_shape=(6,),
                                                      degree=self.quadrature_degree)
        matrix_element = basix.ufl.quadrature_element(cell, value_shape=(6, 6),
                                                      degree=self.quadrature_degree)
        scalar_element = basix.ufl.quadrature_element(cell, value_shape=(),
                                                      degree=self.quadrature_degree)
        self.stress_q = fem.Function(fem.functionspace(msh, vector_element))
        self.tangent_q = fem.Function(fem.functionspace(msh, matrix_element))
        self.scalar_q = fem.Function(fem.functionspace(msh, scalar_element))
        self.dx = ufl.Measure("dx", domain=msh,
                              metadata={"quadrature_degree": self.quadrature_degree,
                                        "quadrature_scheme": "default"})
        points, _ = basix.make_quadrature(basix.CellType[msh.topology.cell_name()],
                                          self.quadrature_degree)
        self.points_per_cell = points.shape[0]
        self._strain_expression = fem.Expression(
            self.mandel_strain(self.u, self.out_of_plane_strain), points)
        cells = msh.topology.index_map(msh.topology.dim)
        self._all_cells = np.arange(cells.size_local + cells.num_ghosts, dtype=np.int32)
        tags = emesh.cell_tags
        # Rows of the evaluated strain go cell by cell (all local cells, point by point); the
        # quadrature functions' values follow their dofmaps.
        strain_rows, stress_dofs, tangent_dofs, scalar_dofs = {}, {}, {}, {}
        for tag, material in emesh.geometry.cell_materials.items():
            material_cells = tags.indices[tags.values == tag]
            strain_rows.setdefault(material, []).append(
                (material_cells[:, None] * self.points_per_cell
                 + np.arange(self.points_per_cell)).ravel())
            stress_dofs.setdefault(material, []).append(
                self.stress_q.function_space.dofmap.list[material_cells].ravel())
            tangent_dofs.setdefault(material, []).append(
                self.tangent_q.function_space.dofmap.list[material_cells].ravel())
            scalar_dofs.setdefault(material, []).append(
                self.scalar_q.function_space.dofmap.list[material_cells].ravel())
        # rows of the strain, dofs of stress_q, tangent_q, scalar_q: all point by point
        self.material_points = {
            name: (np.concatenate(strain_rows[name]), np.concatenate(stress_dofs[name]),
                   np.concatenate(tangent_dofs[name]), np.concatenate(scalar_dofs[name]))
            for name in strain_rows}
        self.states = {name: models[name].initial_state(len(points[0]), start_temperature)
                       for name, points in self.material_points.items()}

        self.constraints = boundary.cell_constraints(case, emesh, self.V)
        max_modulus = max(largest(case.materials[name].youngs_modulus)
                          for name in self.material_points)
        # A residual this small (in scaled units: strain times cell size) is converged.
        self._absolute_tolerance = 1e-13 * emesh.mesh_size ** (self.gdim - 1)
        self._scale = 1.0 / (max_modulus * emesh.mesh_size ** (self.gdim - 2))
        v, du = ufl.TestFunction(self.V), ufl.TrialFunction(self.V)
        self._test_strain = self.mandel_strain(v)
        self.residual = fem.form(self._scale * ufl.inner(self.stress_q, self._test_strain)
                                 * self.dx)
        self.jacobian = fem.form(self._scale * ufl.inner(
            ufl.dot(self.tangent_q, self.mandel_strain(du)), self._test_strain) * self.dx)
        unit_zz = ufl.as_vector([0, 0, 1, 0, 0, 0])
        self.negative_residual = fem.form(-self._scale * ufl.inner(self.stress_q,
                                                                   self._test_strain) * self.dx)
        self.negative_out_of_plane_coupling = fem.form(-self._scale * ufl.inner(
            ufl.dot(self.tangent_q, unit_zz), self._test_strain) * self.dx)
        increment = fem.Function(self.V)
        increment_zz = fem.Constant(msh, PETSc.ScalarType(0.0))
        increment_strain = ufl.dot(self.tangent_q, self.mandel_strain(increment)
                                   + increment_zz * unit_zz)
        constraint_residuals, constraint_changes = [], []
        if self.constraints.free_face is not None:
            face_strain = self.mandel_strain(self.constraints._face_weight)
            constraint_residuals.append(
                fem.form(ufl.inner(self.stress_q, face_strain) * self.dx))
            constraint_changes.append(
                fem.form(ufl.inner(increment_strain, face_strain) * self.dx))
        if self.generalized:
            constraint_residuals.append(fem.form(self.stress_q[2] * self.dx))
            constraint_changes.append(fem.form(increment_strain[2] * self.dx))
        self.dofs = self.V.dofmap.index_map.size_global * self.V.dofmap.index_map_bs
        ksp = elasticity_ksp(self.V, rtol=case.solver.rtol)
        self.linearization = CondensedNewton(
            self.u, self.out_of_plane_strain, self.constraints, ksp,
            CondensedForms(self.residual, self.negative_residual, self.jacobian,
                           self.negative_out_of_plane_coupling, constraint_residuals,
                           constraint_changes, increment, increment_zz),
            self._scale, self.generalized, nullspace=rigid_body_modes(self.V))
        self.newton = NewtonSettings.of(case.solver)
        self._trial = None  # (temperature, dt, eigenstrains) of the step being solved
        self._trial_states = None  # the material points' states at the current iterate
        self.max_step_cuts = case.solver.max_step_cuts
        # per unit cell size: LU takes entries of the order of a cell's volume for zero
        self.projector = CellwiseProjector(msh.comm, self.dx,
                                           emesh.mesh_size ** self.gdim)
        self._last_eigenstrain = {}
        self.step_cuts = 0
        # error-driven sub-steps (advance): the tolerance on the estimated local error of a
        # step relative to the largest stress of the material; 0 switches them off
        self.time_error_tolerance = case.solver.time_error_tolerance
        self.step_sizes: list[float] = []  # every accepted (sub-)step that took time, s
        self.rejected_steps = 0

    # -- kinematics ----------------------------------------------------------------------
    def mandel_strain(self, u, out_of_plane_strain=0):
        """The 3D small strain as a Mandel 6-vector [xx, yy, zz, sqrt2 yz, sqrt2 xz, sqrt2 xy];
        in 2D eps_zz is the (uniform) out-of-plane strain."""
        e = ufl.sym(ufl.grad(u))
        if self.gdim == 2:
            return ufl.as_vector([e[0, 0], e[1, 1], out_of_plane_strain, 0, 0,
                                  SQRT2 * e[0, 1]])
        return ufl.as_vector([e[0, 0], e[1, 1], e[2, 2], SQRT2 * e[1, 2], SQRT2 * e[0, 2],
                              SQRT2 * e[0, 1]])

    def stress_tensor_3d(self):
        """The 3x3 stress from the quadrature values (for projections, not interpolation)."""
        s = self.stress_q
        return ufl.as_matrix([[s[0], s[5] / SQRT2, s[4] / SQRT2],
                              [s[5] / SQRT2, s[1], s[3] / SQRT2],
                              [s[4] / SQRT2, s[3] / SQRT2, s[2]]])

    def stress_into(self, target: fem.Function):
        """L2 projection of the quadrature-point stress onto a DG tensor space (3x3)."""
        return self.projector.project("stress", self.stress_tensor_3d, target)

    def internal_variable_names(self) -> list[str]:
        """The per-point scalars the materials offer for output (constitutive `output`)."""
        names = [name for model in self.models.values()
                 for name in getattr(model, "output_variables", ())]
        return list(dict.fromkeys(names))

    def internal_variable_into(self, variable: str, target: fem.Function):
        """L2 projection of an internal variable onto a scalar DG space; zero in materials
        that do not have it."""
        values = self.scalar_q.x.array
        values[:] = 0.0
        for name, (*_, scalar_dofs) in self.material_points.items():
            model = self.models[name]
            if variable in getattr(model, "output_variables", ()):
                values[scalar_dofs] = model.output(self.states[name])[variable]
        return self.projector.project("scalar", lambda: self.scalar_q, target)

    # -- material points -----------------------------------------------------------------
    def _update_material_points(self, temperature, dt, process_eigenstrain):
        strain = self._strain_expression.eval(self.emesh.mesh, self._all_cells).reshape(-1, 6)
        stress = self.stress_q.x.array.reshape(-1, 6)
        tangent = self.tangent_q.x.array.reshape(-1, 6, 6)
        new_states = {}
        isotropic = np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
        for name, (rows, stress_dofs, tangent_dofs, _) in self.material_points.items():
            eigen = (self.thermal_strain(name, temperature)
                     + process_eigenstrain.get(name, 0.0)) * isotropic
            stress[stress_dofs], tangent[tangent_dofs], new_states[name] = \
                self.models[name].update(strain[rows], eigen, temperature, dt, self.states[name])
        return new_states

    # -- a time step -----------------------------------------------------------------------
    def residual_norm(self) -> float:
        """Newton's hook: the material points at the iterate, then the residual norm."""
        self._trial_states = self._update_material_points(*self._trial)
        return super().residual_norm()

    def step(self, temperature: float, dt: float, process_eigenstrain=None) -> StepResult:
        """Advance to `temperature` over `dt`; the state is kept only when Newton converges
        (else SolverError, with the state restored, and the caller may cut the step)."""
        process_eigenstrain = process_eigenstrain or {}
        saved = self.u.x.array.copy(), float(self.out_of_plane_strain.value), \
            self.face_displacement
        self._trial = (temperature, dt, process_eigenstrain)
        try:
            iterations = newton_solve(self, self.newton,
                                      self._absolute_tolerance * np.sqrt(self.dofs),
                                      f"at T = {temperature:.2f} K, dt = {dt:.3g} s")
        except SolverError:
            self.u.x.array[:], self.out_of_plane_strain.value, self.face_displacement = saved
            raise
        self.states = self._trial_states
        self.temperature = temperature
        self._last_eigenstrain = dict(process_eigenstrain)
        state = ElasticState(temperature - self.start_temperature,
                             float(self.out_of_plane_strain.value), self.face_displacement)
        return StepResult(state, iterations)

    def advance(self, temperature: float, dt: float, process_eigenstrain: dict):
        """Step to `temperature` over dt (temperature and eigenstrains linear in time in
        between); an isothermal step in sub-steps that keep the estimated local
        time-integration error of every material within time_error_tolerance (relative to the
        material's largest stress).
        Returns (state, Newton iterations of all sub-steps); self.step_sizes gets the accepted
        sub-steps, self.rejected_steps and self.step_cuts count the redone ones."""
        # Only isothermal steps (holds): along ramps the plastic return mapping's path error,
        # first order in the temperature step and not estimated, dominates, and sub-steps
        # there would change it at random places (solver.temperature_increment governs it).
        isothermal = temperature == self.temperature
        if dt <= 0.0 or self.time_error_tolerance <= 0.0 or not isothermal \
                or not self._has_time_error():
            state, iterations = self._advance_cutting(temperature, dt, process_eigenstrain)
            if dt > 0.0:
                self.step_sizes.append(dt)
            return state, iterations
        start_eigenstrain = dict(self._last_eigenstrain)
        iterations, elapsed = 0, 0.0
        # every driver step starts whole: advance depends on the state only (a restart
        # from a checkpoint takes the same sub-steps)
        substep = dt
        smallest = dt / 2**ERROR_CUTS
        while elapsed < dt:
            # the last sub-step takes what is left, a sliver is spread over the one before
            substep = dt - elapsed if elapsed + 1.05 * substep >= dt else substep
            end = elapsed + substep
            fraction = end / dt
            saved = self._saved()
            state, used = self._advance_cutting(
                temperature, substep,
                {name: start_eigenstrain.get(name, 0.0) + fraction
                 * (value - start_eigenstrain.get(name, 0.0))
                 for name, value in process_eigenstrain.items()})
            iterations += used
            error = self._relative_time_error(saved[0])
            factor = (SAFETY * (self.time_error_tolerance / error) ** (1.0 / 3.0)
                      if error > 0.0 else MAX_GROWTH)
            if error > self.time_error_tolerance and substep > smallest:
                self._restore(saved)
                self.rejected_steps += 1
                logger.debug("sub-step %.3g s rejected: error %.2e", substep, error)
                substep = max(substep * max(factor, MIN_SHRINK), smallest)
                continue
            elapsed = end
            self.step_sizes.append(substep)
            if error > 0.0:
                substep *= min(max(factor, MIN_SHRINK), MAX_GROWTH)
            else:  # no estimate (a first step, or nothing relaxing): the rest of the step
                substep = dt
        return state, iterations

    def _has_time_error(self) -> bool:
        return any(hasattr(model, "time_error") for model in self.models.values())

    def _relative_time_error(self, start_states: dict) -> float:
        """The largest estimated local error of the last step over all materials, each
        relative to its largest stress (the same on every rank)."""
        comm = self.emesh.mesh.comm
        stress = self.stress_q.x.array.reshape(-1, 6)
        worst = 0.0
        for name, (_, stress_dofs, *_) in self.material_points.items():
            model = self.models[name]
            if not hasattr(model, "time_error"):
                continue
            local_error = model.time_error(start_states[name], self.states[name])
            error = comm.allreduce(float(local_error.max(initial=0.0)), op=MPI.MAX)
            scale = comm.allreduce(float(np.linalg.norm(stress[stress_dofs], axis=1)
                                         .max(initial=0.0)), op=MPI.MAX)
            if error > 0.0:
                worst = max(worst, error / scale if scale > 0.0 else np.inf)
        return worst

    def _saved(self):
        """What a rejected sub-step must put back."""
        return (self.states, self.u.x.array.copy(), float(self.out_of_plane_strain.value),
                self.face_displacement, self.temperature, dict(self._last_eigenstrain))

    def _restore(self, saved):
        (self.states, u, self.out_of_plane_strain.value, self.face_displacement,
         self.temperature, self._last_eigenstrain) = saved
        self.u.x.array[:] = u

    def _advance_cutting(self, temperature: float, dt: float, process_eigenstrain: dict):
        """Step to `temperature` over dt; where Newton fails, the step is cut in halves
        (temperature and eigenstrains linear in between). Returns (state, Newton iterations
        of all sub-steps); self.step_cuts counts the cuts."""
        start_temperature = self.temperature
        start_eigenstrain = dict(self._last_eigenstrain)
        results = []

        def solve_part(a: float, b: float, last_chance: bool) -> int:
            result = self.step(
                along(start_temperature, temperature, b), (b - a) * dt,
                {name: along(start_eigenstrain.get(name, 0.0), value, b)
                 for name, value in process_eigenstrain.items()})
            results.append(result.state)
            return result.newton_iterations

        report = advance_with_cuts(
            solve_part, self.max_step_cuts,
            lambda a, b: f"to T = {along(start_temperature, temperature, b):.2f} K "
                         f"(dt = {(b - a) * dt:.3g} s)")
        self.step_cuts += report.cuts
        return results[-1], report.newton_iterations
