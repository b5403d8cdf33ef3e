"""The one Newton driver of every nonlinear problem in sinterfem.

A problem supplies two hooks and keeps its own state (displacement, condensed global
unknowns, material points):

- `residual_norm()`: the norm of the out-of-balance forces at the current iterate, inf
  where the iterate is inadmissible (an element turned inside out);
- `newton_increment()`: linearize at the current iterate and solve; returns an `Increment`,
  whose `move(fraction)` puts the iterate at start + fraction * increment. A linear solve
  that fails raises SolverError.

The driver iterates to `norm <= max(rtol * first norm, atol)` with a backtracking line
search on the residual norm, or, for problems whose increments are the natural measure
(heat conduction with radiation), to `increment.size <= rtol` without residual norms.
It does not restore a failed iterate: the problem's step does that, since only it knows
its whole state.

PETSc's SNES is not used: the global unknowns of the unit cells are condensed out inside
each linearized solve (solver/numerics/condensation.py) and the material points are
updated in numpy inside the residual, neither of which SNES's own line searches see.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal, Protocol

import numpy as np

from solver.errors import SolverError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class NewtonSettings:
    """How a Newton solve iterates."""

    rtol: float
    max_iterations: int
    line_search_halvings: int = 0
    criterion: Literal["residual", "increment"] = "residual"
    linear: bool = False  # "increment" criterion: one Newton step solves it exactly

    @classmethod
    def of(cls, solver, **overrides) -> "NewtonSettings":
        """From a case's [solver] section; an override that is None keeps its value."""
        settings = cls(rtol=solver.newton_rtol, max_iterations=solver.max_newton_iterations,
                       line_search_halvings=solver.line_search_halvings)
        return replace(settings, **{k: v for k, v in overrides.items() if v is not None})


@dataclass
class Increment:
    """A solved Newton direction: `move(fraction)` sets the iterate along it; `size` is its
    scaled norm (the measure of the "increment" criterion)."""

    move: Callable[[float], None]
    size: float = np.inf


class NewtonProblem(Protocol):
    def residual_norm(self) -> float: ...

    def newton_increment(self) -> Increment: ...


def newton_solve(problem: NewtonProblem, settings: NewtonSettings, atol: float = 0.0,
                 where: str = "", reference: float | None = None) -> int:
    """Iterate to convergence; returns the Newton iterations, or raises SolverError naming
    `where` (the load of the step, for the message). reference: the norm that rtol is
    relative to (default: the first residual's); a problem that starts from a predicted
    iterate gives the residual of the step's load before the prediction, so that a good
    prediction does not tighten the test."""
    if settings.criterion == "increment":
        return _solve_on_increments(problem, settings, where)
    norm = first = problem.residual_norm()
    if reference is not None and np.isfinite(reference):
        first = max(first, reference)
    for iteration in range(settings.max_iterations + 1):
        logger.debug("Newton %d: |R| = %.3e", iteration, norm)
        if not np.isfinite(norm):
            break
        if norm <= max(settings.rtol * first, atol):
            return iteration
        if iteration == settings.max_iterations:
            break
        norm = line_search(problem, problem.newton_increment(), norm,
                           settings.line_search_halvings)
    raise SolverError(f"Newton did not converge in {settings.max_iterations} iterations"
                      f"{' ' + where if where else ''} (|R| = {norm:.3e}, first {first:.3e})")


def _solve_on_increments(problem: NewtonProblem, settings: NewtonSettings, where: str) -> int:
    size = np.inf
    for iteration in range(1, settings.max_iterations + 1):
        increment = problem.newton_increment()
        increment.move(1.0)
        size = increment.size
        logger.debug("Newton %d: |dx| = %.3e", iteration, size)
        if settings.linear or size <= settings.rtol:
            return iteration
    raise SolverError(f"Newton did not converge in {settings.max_iterations} iterations"
                      f"{' ' + where if where else ''} (last relative increment {size:.3g})")


def line_search(problem: NewtonProblem, increment: Increment, norm: float,
                halvings: int) -> float:
    """Take the Newton increment, halved while it does not reduce the residual norm: points
    that flip between elastic and plastic, or a full step that turns elements inside out,
    otherwise stall Newton. The full step is tried first and kept whenever it helps; if no
    length helps, the one with the smallest residual. Returns the residual norm there."""
    tried = []
    for attempt in range(halvings + 1):
        fraction = 0.5**attempt
        increment.move(fraction)
        tried.append((problem.residual_norm(), fraction))
        if tried[-1][0] < norm:
            break
    else:
        best, fraction = min(tried)
        if fraction != tried[-1][1]:
            increment.move(fraction)
            problem.residual_norm()  # the problem's trial state at the chosen length
        tried.append((best, fraction))
    if fraction < 1:
        logger.debug("line search: step length %g", fraction)
    return tried[-1][0]
