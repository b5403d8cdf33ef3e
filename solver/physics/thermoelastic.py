"""Quasi-static linear thermo-elasticity with a uniform temperature change.

3D, plane strain (out-of-plane strain zero) or generalized plane strain (out-of-plane
strain one uniform unknown, zero net out-of-plane force). Global unknowns (that strain,
the uniform displacement of a unit cell's free face) are condensed out by superposition:
the problem is linear, so the solution is the one with the global unknowns held at zero
plus a combination of unit solutions, with the combination fixed by the zero-net-force
conditions. The unit solutions depend only on the stiffness, so they are computed once per
operator.

Load patterns: the load is linear in the vector of the materials' isotropic eigenstrains
(each material's thermal strain from the stress-free start plus its process eigenstrain,
one number per material), and so is the condensed solution. Per operator the problem keeps
an orthonormal basis of the eigenstrain vectors solved for and their solutions; a step
whose eigenstrain vector lies in their span is their combination, without a solve, and
otherwise its new direction is solved and added to the basis. A cool-down with constant
CTEs and no process eigenstrain is thus one solve whatever the number of steps, and no
operator takes more solves than there are materials (besides its unit solutions). Where E
or nu are tables in temperature, the operator is assembled again where they change, its
basis starts anew, and the solves start from the previous operator's solutions and keep
its preconditioner while that still converges fast (solver/numerics/preconditioner.py).
"""

import logging
from dataclasses import dataclass

import numpy as np
import ufl
from dolfinx import fem
from dolfinx.fem import petsc as fem_petsc
from petsc4py import PETSc

from solver.materials.constitutive import as_table
from solver.materials.elasticity import as_3d, hooke, lame
from solver.materials.library import largest
from solver.numerics.fields import cellwise_field, fill_cellwise, interpolate_expression
from solver.numerics.linear import elasticity_ksp, solve_dirichlet
from solver.numerics.preconditioner import PreconditionerReuse
from solver.physics import boundary

logger = logging.getLogger(__name__)

# An eigenstrain vector whose part outside the basis' span is this small relative to it
# lies in the span (roundoff of the thermal strains is ~1e-16 relative)
SPAN_TOLERANCE = 1e-12


@dataclass
class ElasticState:
    """The solution for one temperature change."""

    delta_temperature: float
    out_of_plane_strain: float  # e_zz in generalized plane strain, else 0
    face_displacement: float  # uniform normal displacement of the free face (unit cells)


@dataclass
class Solution:
    """A displacement field (its local dofs, ghosts included) with its global unknowns."""

    displacement: np.ndarray
    out_of_plane_strain: float = 0.0
    face_displacement: float = 0.0


def combination(coefficients, solutions: list[Solution]) -> Solution:
    """sum_j coefficients[j] * solutions[j] (at least one solution)."""
    total = Solution(np.zeros_like(solutions[0].displacement))
    for coefficient, solution in zip(coefficients, solutions, strict=True):
        total.displacement += coefficient * solution.displacement
        total.out_of_plane_strain += coefficient * solution.out_of_plane_strain
        total.face_displacement += coefficient * solution.face_displacement
    return total


@dataclass
class LoadPatterns:
    """The solutions of one operator: an orthonormal basis of eigenstrain vectors (one entry
    per material) with their condensed solutions, their solutions with the global unknowns
    held at zero (initial guesses for the next operator), and the unit solutions of the
    global unknowns with the matrix of their net forces."""

    directions: list[np.ndarray]
    solutions: list[Solution]
    held: list[np.ndarray]
    units: list[Solution] | None = None
    unit_forces: np.ndarray | None = None

    @classmethod
    def empty(cls) -> "LoadPatterns":
        return cls([], [], [])

    def coefficients(self, vector: np.ndarray) -> np.ndarray:
        """The coordinates of `vector` in the basis."""
        return np.array([direction @ vector for direction in self.directions])

    def outside(self, vector: np.ndarray) -> np.ndarray | None:
        """The unit direction of the part of `vector` outside the span (Gram-Schmidt twice),
        or None where it lies in the span."""
        remainder = vector.copy()
        for _ in range(2):
            for direction in self.directions:
                remainder -= (direction @ remainder) * direction
        size = np.linalg.norm(remainder)
        if size <= SPAN_TOLERANCE * np.linalg.norm(vector):
            return None
        return remainder / size


class ThermoElasticProblem:
    def __init__(self, emesh, case):
        self.emesh = emesh
        msh = emesh.mesh
        self.gdim = msh.geometry.dim
        self.generalized = self.gdim == 2 and case.case.plane == "generalized"
        materials = {name: case.materials[name] for name in emesh.geometry.cell_materials.values()}
        self.materials = materials
        self.start_temperature = case.schedule.start
        # E and nu may be tables in temperature: the fields hold their values at the
        # temperature of the operator (_set_stiffness); `eigenstrain` holds every cell's
        # isotropic eigenstrain (thermal from the stress-free start plus process) of the
        # state, or of the load pattern being solved
        self.youngs_modulus = cellwise_field(emesh, dict.fromkeys(materials, 0.0), "E")
        self.poisson_ratio = cellwise_field(emesh, dict.fromkeys(materials, 0.0), "nu")
        self._stiffness = self._stiffness_at(self.start_temperature)
        self._fill_stiffness()
        self._tabulated_stiffness = any(m.is_tabulated("youngs_modulus", "poisson_ratio")
                                        for m in materials.values())
        self.eigenstrain = cellwise_field(emesh, dict.fromkeys(materials, 0.0), "eigenstrain")
        self.process_eigenstrain: dict[str, float] = {}  # per material name, set per step
        E, nu = self.youngs_modulus, self.poisson_ratio
        self.lame_lambda, self.shear_modulus = lame(E, nu)

        self.V = fem.functionspace(msh, ("Lagrange", case.solver.degree, (self.gdim,)))
        self.u = fem.Function(self.V, name="u")
        self.out_of_plane_strain = fem.Constant(msh, PETSc.ScalarType(0.0))

        self.constraints = boundary.cell_constraints(case, emesh, self.V)
        # Scale the equations to O(1) entries: the Dirichlet rows carry a unit diagonal.
        max_modulus = max(largest(m.youngs_modulus) for m in materials.values())
        self._scale = 1.0 / (max_modulus * emesh.mesh_size ** (self.gdim - 2))
        u, v = ufl.TrialFunction(self.V), ufl.TestFunction(self.V)
        residual = ufl.inner(self.stress(u, self.out_of_plane_strain), self.strain(v)) * ufl.dx
        self.a = fem.form(self._scale * ufl.lhs(residual))
        self.L = fem.form(self._scale * ufl.rhs(residual))
        # the net forces that the global unknowns make zero: on the free face (the virtual
        # work of the stress on the face's unit displacement pattern), out of the plane
        self._net_force_forms = []
        if self.constraints.free_face is not None:
            face_pattern = self.strain(self.constraints._face_weight)
            self._net_force_forms.append(fem.form(
                ufl.inner(self.stress(self.u, self.out_of_plane_strain), face_pattern)
                * ufl.dx))
        if self.generalized:
            self._net_force_forms.append(fem.form(self.stress_tensor_3d()[2, 2] * ufl.dx))

        self.A = fem_petsc.assemble_matrix(self.a, bcs=self.constraints.dirichlet)
        self.A.assemble()
        self.ksp = elasticity_ksp(self.V, self.A, case.solver.rtol)
        self.ksp.setInitialGuessNonzero(True)
        self.preconditioner = PreconditionerReuse(self.ksp, "the elasticity solve")
        self.preconditioner.set_operator(self.A)
        self.dofs = self.V.dofmap.index_map.size_global * self.V.dofmap.index_map_bs
        self._stiffness_temperature = self.start_temperature
        self._patterns = LoadPatterns.empty()
        self._previous_patterns = LoadPatterns.empty()  # of the operator before: guesses
        # what the run cost: assemblies of the operator, load pattern solves, all solves
        self.assemblies, self.pattern_solves, self.linear_solves = 1, 0, 0

    def _stiffness_at(self, temperature: float) -> dict[str, tuple[float, float]]:
        """(E, nu) of every material at `temperature`."""
        return {n: (float(as_table(m.youngs_modulus)(temperature)),
                    float(as_table(m.poisson_ratio)(temperature)))
                for n, m in self.materials.items()}

    def _fill_stiffness(self):
        fill_cellwise(self.youngs_modulus, self.emesh,
                      {n: modulus for n, (modulus, _) in self._stiffness.items()})
        fill_cellwise(self.poisson_ratio, self.emesh,
                      {n: ratio for n, (_, ratio) in self._stiffness.items()})

    def _set_stiffness(self, temperature: float):
        """Where E or nu are tables: the operator at `temperature`, assembled again (and its
        load patterns started anew) where the properties changed."""
        if not self._tabulated_stiffness or temperature == self._stiffness_temperature:
            return
        self._stiffness_temperature = temperature
        stiffness = self._stiffness_at(temperature)
        if stiffness == self._stiffness:
            return
        self._stiffness = stiffness
        self._fill_stiffness()
        self.A.zeroEntries()
        fem_petsc.assemble_matrix(self.A, self.a, bcs=self.constraints.dirichlet)
        self.A.assemble()
        self.assemblies += 1
        self.preconditioner.set_operator(self.A)
        self._previous_patterns, self._patterns = self._patterns, LoadPatterns.empty()

    def eigenstrain_vector(self, temperature: float) -> np.ndarray:
        """Every material's isotropic eigenstrain at `temperature` (thermal strain from the
        stress-free start plus process eigenstrain), in the order of self.materials."""
        return np.array([float(m.thermal_strain(temperature, self.start_temperature))
                         + self.process_eigenstrain.get(name, 0.0)
                         for name, m in self.materials.items()])

    def _fill_eigenstrain(self, vector: np.ndarray):
        fill_cellwise(self.eigenstrain, self.emesh,
                      dict(zip(self.materials, map(float, vector), strict=True)))

    # -- constitutive law ------------------------------------------------------------------
    def strain(self, u):
        """The in-plane (2D) or full (3D) small strain tensor."""
        return ufl.sym(ufl.grad(u))

    def _elastic_volume_change(self, u, out_of_plane_strain):
        """tr(eps - eps_eigen), with eps_zz = out_of_plane_strain in 2D."""
        volume_change = ufl.tr(self.strain(u)) - 3 * self.eigenstrain
        return volume_change + out_of_plane_strain if self.gdim == 2 else volume_change

    def set_process_eigenstrain(self, by_material: dict[str, float]):
        """Isotropic process eigenstrain per material name (materials not named: zero)."""
        self.process_eigenstrain = dict(by_material)

    def stress(self, u, out_of_plane_strain):
        """The in-plane (2D) or full (3D) stress with the eigenstrain (thermal + process)."""
        return hooke(self.strain(u) - self.eigenstrain * ufl.Identity(self.gdim),
                     self.lame_lambda, self.shear_modulus,
                     self._elastic_volume_change(u, out_of_plane_strain))

    def stress_tensor_3d(self):
        """The full 3x3 stress of the current solution (sigma_zz included in 2D)."""
        u, e_zz = self.u, self.out_of_plane_strain
        if self.gdim == 3:
            return self.stress(u, e_zz)
        elastic = as_3d(self.strain(u) - self.eigenstrain * ufl.Identity(2),
                        e_zz - self.eigenstrain)
        return hooke(elastic, self.lame_lambda, self.shear_modulus,
                     self._elastic_volume_change(u, e_zz))

    def stress_into(self, target: fem.Function):
        """Interpolate the stress into a DG tensor space (3x3) that can hold it."""
        return interpolate_expression(target, self.stress_tensor_3d())

    # -- solution --------------------------------------------------------------------------
    def _solve_held(self, guess: np.ndarray | None, out_of_plane_strain: float,
                    face_displacement: float) -> np.ndarray:
        """The displacement for the eigenstrain field as it is, with the global unknowns
        held at the given values, from `guess` (None: zero); a copy of its dofs."""
        self.out_of_plane_strain.value = out_of_plane_strain
        self.constraints.set_face_displacement(face_displacement)

        def attempt():
            self.u.x.array[:] = 0.0 if guess is None else guess
            solve_dirichlet(self.ksp, self.a, self.L, self.constraints.dirichlet, self.u,
                            "the elasticity solve")

        self.preconditioner.run(attempt)
        self.linear_solves += 1
        logger.debug("elastic solve: %d CG iterations", self.ksp.getIterationNumber())
        return self.u.x.array.copy()

    def _net_forces(self, displacement: np.ndarray, out_of_plane_strain: float) -> np.ndarray:
        """The net forces of the global unknowns for a displacement, with the eigenstrain
        field as it is."""
        comm = self.emesh.mesh.comm
        self.u.x.array[:] = displacement
        self.out_of_plane_strain.value = out_of_plane_strain
        return np.array([comm.allreduce(fem.assemble_scalar(form))
                         for form in self._net_force_forms])

    def _solve_units(self):
        """The unit solutions of the global unknowns (eigenstrain zero) and their net
        forces, once per operator."""
        patterns, previous = self._patterns, self._previous_patterns.units
        self._fill_eigenstrain(np.zeros(len(self.materials)))
        units = []
        if self.constraints.free_face is not None:
            units.append((0.0, 1.0))
        if self.generalized:
            units.append((1.0, 0.0))
        patterns.units = [
            Solution(self._solve_held(previous[k].displacement if previous else None,
                                      out_of_plane, face), out_of_plane, face)
            for k, (out_of_plane, face) in enumerate(units)]
        patterns.unit_forces = np.column_stack(
            [self._net_forces(unit.displacement, unit.out_of_plane_strain)
             for unit in patterns.units]) if units else None

    def _solve_pattern(self, direction: np.ndarray):
        """Solve for the eigenstrain vector `direction` and add it to the load patterns."""
        patterns, previous = self._patterns, self._previous_patterns
        if patterns.units is None:
            self._solve_units()
        self._fill_eigenstrain(direction)
        guess = (combination(previous.coefficients(direction),
                             [Solution(held) for held in previous.held]).displacement
                 if previous.held else None)
        held = self._solve_held(guess, 0.0, 0.0)
        solution = Solution(held.copy())
        if patterns.units:
            amplitudes = np.linalg.solve(patterns.unit_forces, -self._net_forces(held, 0.0))
            solution = combination([1.0, *amplitudes], [solution, *patterns.units])
        patterns.directions.append(direction)
        patterns.solutions.append(solution)
        patterns.held.append(held)
        self.pattern_solves += 1
        logger.debug("load pattern %d solved (eigenstrains %s)", len(patterns.directions),
                     np.array2string(direction, precision=4))

    def advance(self, temperature: float, dt: float, process_eigenstrain: dict):
        """The state at `temperature` (elasticity has no history: dt does not matter)."""
        self.set_process_eigenstrain(process_eigenstrain)
        return self.solve(temperature - self.start_temperature), 1

    def solve(self, delta_temperature: float) -> ElasticState:
        """Solve for a uniform temperature change from the stress-free state: the total
        stress C(T) : (strain - eigenstrain(T)) with E, nu and the CTE at T, from the load
        patterns of the operator (solving a new one where the step's eigenstrains lie
        outside their span)."""
        temperature = self.start_temperature + delta_temperature
        self._set_stiffness(temperature)
        eigenstrains = self.eigenstrain_vector(temperature)
        direction = self._patterns.outside(eigenstrains)
        if direction is not None:
            self._solve_pattern(direction)
        patterns = self._patterns
        state = (combination(patterns.coefficients(eigenstrains), patterns.solutions)
                 if patterns.solutions else Solution(np.zeros_like(self.u.x.array)))
        self._fill_eigenstrain(eigenstrains)
        self.u.x.array[:] = state.displacement
        self.out_of_plane_strain.value = state.out_of_plane_strain
        self.constraints.set_face_displacement(state.face_displacement)
        return ElasticState(delta_temperature, state.out_of_plane_strain,
                            state.face_displacement)
