"""Quasi-static linear thermo-elasticity with a uniform temperature change.

3D, plane strain (out-of-plane strain zero) or generalized plane strain (out-of-plane
strain one uniform unknown, zero net out-of-plane force). Global unknowns (that strain,
the uniform displacement of a unit cell's free face) are condensed out by superposition:
the problem is linear, so the solution is the load case plus a combination of unit
solutions, with the combination fixed by the zero-net-force conditions. The unit
solutions depend only on the stiffness, so they are computed once.
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
from solver.physics import boundary

logger = logging.getLogger(__name__)


@dataclass
class ElasticState:
    """The solution for one temperature change."""

    delta_temperature: float
    out_of_plane_strain: float  # e_zz in generalized plane strain, else 0
    face_displacement: float  # uniform normal displacement of the free face (unit cells)


class ThermoElasticProblem:
    def __init__(self, emesh, case):
        self.emesh = emesh
        msh = emesh.mesh
        self.gdim = msh.geometry.dim
        self.generalized = self.gdim == 2 and case.case.plane == "generalized"
        materials = {name: case.materials[name] for name in emesh.geometry.cell_materials.values()}
        self.materials = materials
        self.start_temperature = case.schedule.start
        # E, nu and the CTE may be tables in temperature: the fields hold their values at
        # the temperature solved for (_set_temperature); `expansion` is the secant
        # coefficient from the stress-free start, eps_th(T) / (T - T_start)
        self.youngs_modulus = cellwise_field(emesh, dict.fromkeys(materials, 0.0), "E")
        self.poisson_ratio = cellwise_field(emesh, dict.fromkeys(materials, 0.0), "nu")
        self.expansion = cellwise_field(emesh, dict.fromkeys(materials, 0.0), "alpha")
        self._fill_stiffness(self.start_temperature)
        self._tabulated_stiffness = any(m.is_tabulated("youngs_modulus", "poisson_ratio")
                                        for m in materials.values())
        # Isotropic process eigenstrain (curing shrinkage, densification), set per time step.
        self.process_eigenstrain = cellwise_field(emesh, dict.fromkeys(materials, 0.0),
                                                  "process_eigenstrain")
        E, nu = self.youngs_modulus, self.poisson_ratio
        self.lame_lambda, self.shear_modulus = lame(E, nu)

        self.V = fem.functionspace(msh, ("Lagrange", case.solver.degree, (self.gdim,)))
        self.u = fem.Function(self.V, name="u")
        self.delta_temperature = fem.Constant(msh, PETSc.ScalarType(0.0))
        self.out_of_plane_strain = fem.Constant(msh, PETSc.ScalarType(0.0))

        self.constraints = boundary.cell_constraints(case, emesh, self.V)
        # Scale the equations to O(1) entries: the Dirichlet rows carry a unit diagonal.
        max_modulus = max(largest(m.youngs_modulus) for m in materials.values())
        self._scale = 1.0 / (max_modulus * case.geometry.mesh_size ** (self.gdim - 2))
        u, v = ufl.TrialFunction(self.V), ufl.TestFunction(self.V)
        residual = ufl.inner(self.stress(u, self.delta_temperature, self.out_of_plane_strain),
                             self.strain(v)) * ufl.dx
        self.a = fem.form(self._scale * ufl.lhs(residual))
        self.L = fem.form(self._scale * ufl.rhs(residual))

        self.A = fem_petsc.assemble_matrix(self.a, bcs=self.constraints.dirichlet)
        self.A.assemble()
        self.ksp = elasticity_ksp(self.V, self.A, case.solver.rtol)
        self.dofs = self.V.dofmap.index_map.size_global * self.V.dofmap.index_map_bs
        self._stiffness_temperature = self.start_temperature
        self._unit_solutions = self._solve_unit_global_unknowns()

    def _fill_stiffness(self, temperature: float):
        """E and nu of every cell at `temperature`."""
        fill_cellwise(self.youngs_modulus, self.emesh,
                      {n: float(as_table(m.youngs_modulus)(temperature))
                       for n, m in self.materials.items()})
        fill_cellwise(self.poisson_ratio, self.emesh,
                      {n: float(as_table(m.poisson_ratio)(temperature))
                       for n, m in self.materials.items()})

    def _set_temperature(self, temperature: float):
        """The thermal eigenstrain, and where E or nu are tables the stiffness (matrix and
        unit solutions anew), at `temperature`."""
        change = temperature - self.start_temperature
        fill_cellwise(self.expansion, self.emesh, {
            n: float(m.thermal_strain(temperature, self.start_temperature)) / change
            if change != 0.0 else 0.0 for n, m in self.materials.items()})
        if not self._tabulated_stiffness or temperature == self._stiffness_temperature:
            return
        self._fill_stiffness(temperature)
        self.A.zeroEntries()
        fem_petsc.assemble_matrix(self.A, self.a, bcs=self.constraints.dirichlet)
        self.A.assemble()
        self.ksp.setOperators(self.A)
        self._stiffness_temperature = temperature
        self._unit_solutions = self._solve_unit_global_unknowns()

    # -- constitutive law ------------------------------------------------------------------
    def strain(self, u):
        """The in-plane (2D) or full (3D) small strain tensor."""
        return ufl.sym(ufl.grad(u))

    def _elastic_volume_change(self, u, delta_temperature, out_of_plane_strain):
        """tr(eps - eps_thermal), with eps_zz = out_of_plane_strain in 2D."""
        volume_change = ufl.tr(self.strain(u)) - 3 * self.eigenstrain(delta_temperature)
        return volume_change + out_of_plane_strain if self.gdim == 2 else volume_change

    def eigenstrain(self, delta_temperature):
        """The isotropic eigenstrain: thermal alpha*dT plus the process eigenstrain."""
        return self.expansion * delta_temperature + self.process_eigenstrain

    def set_process_eigenstrain(self, by_material: dict[str, float]):
        """Isotropic process eigenstrain per material name (materials not named: zero)."""
        fill_cellwise(self.process_eigenstrain, self.emesh, by_material, default=0.0)

    def stress(self, u, delta_temperature, out_of_plane_strain):
        """The in-plane (2D) or full (3D) stress with the eigenstrain (thermal + process)."""
        thermal = self.eigenstrain(delta_temperature)
        return hooke(self.strain(u) - thermal * ufl.Identity(self.gdim), self.lame_lambda,
                     self.shear_modulus,
                     self._elastic_volume_change(u, delta_temperature, out_of_plane_strain))

    def stress_tensor_3d(self):
        """The full 3x3 stress of the current solution (sigma_zz included in 2D)."""
        u, delta_t, e_zz = self.u, self.delta_temperature, self.out_of_plane_strain
        if self.gdim == 3:
            return self.stress(u, delta_t, e_zz)
        thermal = self.eigenstrain(delta_t)
        elastic = as_3d(self.strain(u) - thermal * ufl.Identity(2), e_zz - thermal)
        return hooke(elastic, self.lame_lambda, self.shear_modulus,
                     self._elastic_volume_change(u, delta_t, e_zz))

    def stress_into(self, target: fem.Function):
        """Interpolate the stress into a DG tensor space (3x3) that can hold it."""
        return interpolate_expression(target, self.stress_tensor_3d())

    # -- solution --------------------------------------------------------------------------
    def _solve_load(self, delta_temperature, out_of_plane_strain, face_displacement):
        """Solve with the given loads and face displacement; returns a copy of u."""
        self.delta_temperature.value = delta_temperature
        self.out_of_plane_strain.value = out_of_plane_strain
        self.constraints.set_face_displacement(face_displacement)
        solve_dirichlet(self.ksp, self.a, self.L, self.constraints.dirichlet, self.u,
                        "the elasticity solve")
        logger.debug("elastic solve: %d CG iterations", self.ksp.getIterationNumber())
        solution = fem.Function(self.V)
        solution.x.array[:] = self.u.x.array
        return solution

    def _global_forces(self, solution, delta_temperature, out_of_plane_strain):
        """The net forces that the global unknowns must cancel, for a given solution."""
        self.u.x.array[:] = solution.x.array
        self.delta_temperature.value = delta_temperature
        self.out_of_plane_strain.value = out_of_plane_strain
        forces = []
        if self.constraints.free_face is not None:
            forces.append(self.constraints.free_face_force(self))
        if self.generalized:
            sigma = self.stress_tensor_3d()
            forces.append(self.integrate(sigma[2, 2] * ufl.dx))
        return np.array(forces)

    def integrate(self, integrand) -> float:
        """The integral of a UFL integrand over the whole (distributed) mesh."""
        comm = self.emesh.mesh.comm
        return comm.allreduce(fem.assemble_scalar(fem.form(integrand)))

    def _solve_unit_global_unknowns(self):
        """Unit solutions: (solution, out-of-plane strain, face displacement) per unknown."""
        units = []
        if self.constraints.free_face is not None:
            units.append((self._solve_load(0.0, 0.0, 1.0), 0.0, 1.0))
        if self.generalized:
            units.append((self._solve_load(0.0, 1.0, 0.0), 1.0, 0.0))
        return units

    def advance(self, temperature: float, dt: float, process_eigenstrain: dict):
        """The state at `temperature` (elasticity has no history: dt does not matter)."""
        self.set_process_eigenstrain(process_eigenstrain)
        return self.solve(temperature - self.start_temperature), 1

    def solve(self, delta_temperature: float) -> ElasticState:
        """Solve for a uniform temperature change from the stress-free state: the total
        stress C(T) : (strain - eigenstrain(T)) with E, nu and the CTE at T."""
        self._set_temperature(self.start_temperature + delta_temperature)
        load = self._solve_load(delta_temperature, 0.0, 0.0)
        out_of_plane, face = 0.0, 0.0
        if self._unit_solutions:
            residual = self._global_forces(load, delta_temperature, 0.0)
            # the unit solutions' columns without the process eigenstrain's forces
            offset = self._global_forces(fem.Function(self.V), 0.0, 0.0)
            matrix = np.column_stack([self._global_forces(sol, 0.0, ezz) - offset
                                      for sol, ezz, _ in self._unit_solutions])
            amplitudes = np.linalg.solve(matrix, -residual)
            for amplitude, (sol, ezz, disp) in zip(amplitudes, self._unit_solutions,
                                                   strict=True):
                load.x.array[:] += amplitude * sol.x.array
                out_of_plane += amplitude * ezz
                face += amplitude * disp
        self.u.x.array[:] = load.x.array
        self.delta_temperature.value = delta_temperature
        self.out_of_plane_strain.value = out_of_plane
        return ElasticState(delta_temperature, out_of_plane, face)
