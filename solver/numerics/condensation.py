"""The Newton increment of a unit cell whose global unknowns are condensed out.

A unit cell has up to two global unknowns besides the displacement field: the uniform
displacement of its free face (zero net force on that face) and, in generalized plane
strain, the uniform out-of-plane strain (zero net out-of-plane force). The linearized
problem is linear in both, so its solution is the increment at fixed global unknowns plus
a combination of unit solutions (unit face displacement; unit out-of-plane strain), with
the amplitudes fixed by the linearized net-force conditions: a small dense system.

With an iterative solver, the tangent is assembled into one matrix and its preconditioner
kept from one Newton iteration to the next while the Krylov iterations stay within 1.5
times those after its last fresh setup (solver/numerics/preconditioner.py): the operator is
always the exact tangent, so Newton converges as with a fresh preconditioner. The unit
solutions start from the previous iteration's, which the tangent changes little.
"""

from dataclasses import dataclass

import numpy as np
from dolfinx import fem
from dolfinx.fem import petsc as fem_petsc
from petsc4py import PETSc

from solver.errors import SolverError
from solver.numerics.linear import solve_dirichlet
from solver.numerics.newton import Increment
from solver.numerics.preconditioner import PreconditionerReuse


@dataclass
class CondensedForms:
    """The scaled forms of a unit cell's linearization (ufl forms compiled with fem.form).

    residual / negative_residual: the out-of-balance forces and their negative;
    jacobian: the tangent stiffness; negative_out_of_plane_coupling: minus the tangent's
    response to a unit out-of-plane strain (None outside generalized plane strain);
    constraint_residuals: the net forces of the global unknowns (face, then zz);
    constraint_changes: their linearized change for the increment held in `increment` and
    `increment_zz`."""

    residual: object
    negative_residual: object
    jacobian: object
    negative_out_of_plane_coupling: object | None
    constraint_residuals: list
    constraint_changes: list
    increment: fem.Function
    increment_zz: fem.Constant


class CondensedNewton:
    """Residual norm and Newton increment of a unit cell with its global unknowns.

    Holds the iterate's global unknowns: `face_displacement` (a float) and the
    out-of-plane strain (a fem.Constant shared with the problem's forms)."""

    def __init__(self, u: fem.Function, out_of_plane_strain: fem.Constant, constraints,
                 ksp: PETSc.KSP, forms: CondensedForms, scale: float, generalized: bool,
                 nullspace=None):
        self.u, self.out_of_plane_strain = u, out_of_plane_strain
        self.constraints, self.ksp, self.forms = constraints, ksp, forms
        self.scale, self.generalized, self.nullspace = scale, generalized, nullspace
        self.comm = u.function_space.mesh.comm
        self.face_displacement = 0.0
        self.forces = np.zeros(len(forms.constraint_residuals))
        self.preconditioner = PreconditionerReuse(ksp, "the linearized solve")
        if self.preconditioner.iterative:
            ksp.setInitialGuessNonzero(True)
        self._tangent = None  # the matrix the tangent is assembled into
        self._unit_guesses = None  # the last iteration's unit solutions

    def _integrate(self, form) -> float:
        return self.comm.allreduce(fem.assemble_scalar(form))

    def constraint_forces(self) -> np.ndarray:
        return np.array([self._integrate(f) for f in self.forms.constraint_residuals])

    def residual_norm(self) -> float:
        """Norm of the out-of-balance forces on the free dofs and of the global unknowns'
        net forces, in the scaled units of the equations; inf where it is not finite (an
        inadmissible state, e.g. an element turned inside out)."""
        self.forces = self.constraint_forces()
        r = fem_petsc.assemble_vector(self.forms.residual)
        r.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        owned = r.getLocalSize()
        for bc in self.constraints.dirichlet:
            dofs, _ = bc.dof_indices()
            r.array[dofs[dofs < owned]] = 0.0  # reactions, not out-of-balance forces
        norm = r.norm()
        r.destroy()
        norm = float(np.sqrt(norm**2 + np.sum((self.scale * self.forces) ** 2)))
        return norm if np.isfinite(norm) else np.inf

    def solve(self, rhs_form, face_value: float, guess: fem.Function | None = None
              ) -> fem.Function:
        """Solve K x = b (b assembled from rhs_form; None: zero) with x = face_value on the
        free face and 0 on the other Dirichlet dofs, an iterative solver from `guess` (None:
        zero).

        Signs live in the forms, not in a scaling of the assembled vector: a ghosted vector's
        scale() leaves the ghost entries alone, which would then be added to their owners
        unscaled.
        """
        solution = fem.Function(self.u.function_space)

        def attempt():
            b = fem_petsc.assemble_vector(self.forms.negative_residual if rhs_form is None
                                          else rhs_form)
            if rhs_form is None:
                with b.localForm() as local:
                    local.set(0.0)
            self.constraints.set_face_displacement(face_value)
            solution.x.array[:] = 0.0 if guess is None else guess.x.array
            try:
                solve_dirichlet(self.ksp, self.forms.jacobian, b, self.constraints.dirichlet,
                                solution, "the linearized solve")
            finally:
                b.destroy()

        self.preconditioner.run(attempt)
        return solution

    def _constraint_change(self, increment: fem.Function, increment_zz: float) -> np.ndarray:
        self.forms.increment.x.array[:] = increment.x.array
        self.forms.increment_zz.value = increment_zz
        return np.array([self._integrate(f) for f in self.forms.constraint_changes])

    def _assemble_tangent(self):
        """The tangent at the iterate, the operator of the next solves."""
        if self._tangent is None:
            self._tangent = fem_petsc.assemble_matrix(self.forms.jacobian,
                                                      bcs=self.constraints.dirichlet)
            if self.nullspace is not None:
                self._tangent.setNearNullSpace(self.nullspace)
        else:
            self._tangent.zeroEntries()
            fem_petsc.assemble_matrix(self._tangent, self.forms.jacobian,
                                      bcs=self.constraints.dirichlet)
        self._tangent.assemble()
        self.preconditioner.set_operator(self._tangent)

    def newton_increment(self) -> Increment:
        """The Newton increment at the iterate (the forces of the last residual_norm), the
        global unknowns condensed out; the tangent is assembled afresh."""
        self._assemble_tangent()
        has_face = self.constraints.free_face is not None
        guesses = self._unit_guesses or [None, None]
        try:
            increment = self.solve(self.forms.negative_residual, 0.0)
            units = []  # (solution, its out-of-plane strain) per global unknown
            if has_face:
                units.append((self.solve(None, 1.0, guesses[0]), 0.0))
            if self.generalized:
                units.append((self.solve(self.forms.negative_out_of_plane_coupling, 0.0,
                                         guesses[-1]), 1.0))
        except PETSc.Error as error:
            raise SolverError(f"the linearized solve failed ({error})") from error
        finally:
            self.constraints.set_face_displacement(self.face_displacement)
        if self.preconditioner.iterative and units:
            self._unit_guesses = [solution for solution, _ in units]
        face_change = zz_change = 0.0
        if units:
            base = self._constraint_change(increment, 0.0)
            matrix = np.column_stack([self._constraint_change(*unit) for unit in units])
            amplitudes = np.linalg.solve(matrix, -(self.forces + base))
            for amplitude, (solution, _) in zip(amplitudes, units, strict=True):
                increment.x.array[:] += amplitude * solution.x.array
            face_change = amplitudes[0] if has_face else 0.0
            zz_change = amplitudes[-1] if self.generalized else 0.0
        start = (self.u.x.array.copy(), self.face_displacement,
                 float(self.out_of_plane_strain.value))

        def move(fraction: float):
            self.u.x.array[:] = start[0] + fraction * increment.x.array
            self.face_displacement = start[1] + fraction * face_change
            self.out_of_plane_strain.value = start[2] + fraction * zz_change
            self.constraints.set_face_displacement(self.face_displacement)

        return Increment(move)


class CondensedCell:
    """A problem whose global unknowns live in its `linearization` (a CondensedNewton),
    with the Newton hooks of solver/numerics/newton.py."""

    linearization: CondensedNewton

    def residual_norm(self) -> float:
        return self.linearization.residual_norm()

    def newton_increment(self) -> Increment:
        return self.linearization.newton_increment()

    @property
    def face_displacement(self) -> float:
        return self.linearization.face_displacement

    @face_displacement.setter
    def face_displacement(self, value: float):
        self.linearization.face_displacement = value
