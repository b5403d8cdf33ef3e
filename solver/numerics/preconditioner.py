"""A Krylov solver's preconditioner kept across changes of its operator.

Setting up algebraic multigrid costs as much as many Krylov iterations. Where the operator
changes a little (the stiffness of materials whose E or nu depend on temperature, from one
step to the next; the tangent of a material law, from one Newton iteration to the next), the
multigrid hierarchy of an earlier operator still preconditions the new one well. The Krylov
method always iterates on the current operator, so reusing the preconditioner changes the
number of iterations, not the solution (to the solver's tolerance). It is rebuilt when a
solve takes more than GROWTH times the iterations of the first solve after its last fresh
setup. A direct solver (KSP preonly) is factorized afresh for every operator: an old
factorization would be a preconditioner, not a solver.
"""

import logging

from petsc4py import PETSc

from solver.errors import SolverError

logger = logging.getLogger(__name__)

GROWTH = 1.5


class PreconditionerReuse:
    """Sets the operators of `ksp`, reusing its preconditioner while it converges fast.

    Call `set_operator(A)` whenever A (a matrix whose values changed, or a new one) is the
    operator of the next solves, and run every solve through `run`; `fresh_setups` and
    `reuses` count the two kinds of setup, `retries` the fresh setups after a solve failed
    with a reused preconditioner."""

    def __init__(self, ksp: PETSc.KSP, name: str, growth: float = GROWTH):
        self.ksp, self.name, self.growth = ksp, name, growth
        self.iterative = ksp.getType() != PETSc.KSP.Type.PREONLY
        self.fresh_setups = 0
        self.reuses = 0
        self.retries = 0
        self._matrix = None
        self._reused = False  # whether the operator's preconditioner is an earlier one's
        self._fresh_iterations = None  # of the first solve that iterated after a fresh setup
        self._slow = True  # the next set_operator builds the preconditioner afresh

    def set_operator(self, matrix: PETSc.Mat):
        self._matrix = matrix
        self._reused = self.iterative and not self._slow
        self.ksp.getPC().setReusePreconditioner(self._reused)
        self.ksp.setOperators(matrix)
        if self._reused:
            self.reuses += 1
        else:
            self.fresh_setups += 1
            self._fresh_iterations = None
            self._slow = False
        logger.debug("%s: %s preconditioner (%d fresh setups, %d reuses)", self.name,
                     "reused" if self._reused else "fresh", self.fresh_setups, self.reuses)

    def run(self, solve):
        """Run `solve()`, one solve with the operator, which raises SolverError where the
        Krylov method fails; where it fails with a reused preconditioner (which may have
        turned indefinite for the new operator), once more with a fresh one."""
        try:
            solve()
        except SolverError:
            if not self._reused:
                raise
            logger.debug("%s: failed with the reused preconditioner, rebuilding", self.name)
            self._slow = True
            self.retries += 1
            self.set_operator(self._matrix)
            solve()
        self._record(self.ksp.getIterationNumber())

    def _record(self, iterations: int):
        if iterations == 0:  # a zero right-hand side or an exact guess says nothing
            return
        if self._fresh_iterations is None:
            self._fresh_iterations = iterations
        elif iterations > self.growth * self._fresh_iterations:
            self._slow = True
            logger.debug("%s: %d iterations against %d after the fresh setup: rebuilding",
                         self.name, iterations, self._fresh_iterations)
