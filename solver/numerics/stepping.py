"""Step cuts and staggered iterations, the same for every stage.

- `advance_with_cuts`: a load step is solved whole; where it fails (SolverError: Newton,
  the linear solver, or the problem's own acceptance test), it is cut in two halves,
  recursively, up to a number of cuts. The parts are fractions [a, b] of the step: the
  problem interpolates its loads (temperature, eigenstrains, SOC, displacement) at b
  (`along`), and b - a is the part's share of the step's time, a power of 1/2.
- `staggered`: a fixed-point iteration between two solvers (diffusion and stress) until the
  change of one pass falls below a tolerance.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass

from solver.errors import SolverError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CutReport:
    newton_iterations: int
    cuts: int


class StepRejected(SolverError):
    """A converged step that the problem does not accept (e.g. the damage grew too much
    within it): cut like a failed one."""


def advance_with_cuts(solve_step: Callable[[float, float, bool], int], max_cuts: int,
                      describe: Callable[[float, float], str], start: float = 0.0,
                      end: float = 1.0) -> CutReport:
    """solve_step(a, b, last_chance) solves the part [a, b] of the step (fractions) and
    returns its Newton iterations, or restores the state and raises SolverError;
    last_chance tells it that this part can no longer be cut. describe(a, b) names the
    part in the log. Returns the iterations and cuts of all parts."""
    try:
        return CutReport(solve_step(start, end, max_cuts == 0), 0)
    except SolverError:
        if max_cuts == 0:
            raise
    logger.info("cutting the step %s in two", describe(start, end))
    middle = 0.5 * (start + end)
    first = advance_with_cuts(solve_step, max_cuts - 1, describe, start, middle)
    second = advance_with_cuts(solve_step, max_cuts - 1, describe, middle, end)
    return CutReport(first.newton_iterations + second.newton_iterations,
                     1 + first.cuts + second.cuts)


def along(start, end, fraction: float):
    """The load at `fraction` of a step from start to end (exactly `end` at its end)."""
    return end if fraction == 1.0 else start + fraction * (end - start)


def staggered(one_pass: Callable[[], float], tolerance: float, max_iterations: int,
              where: str) -> int:
    """Repeat one_pass() (which returns the change it made) until the change is at most
    `tolerance`; returns the passes, or raises SolverError."""
    change = float("inf")
    for iteration in range(1, max_iterations + 1):
        change = one_pass()
        logger.debug("%s, staggering %d: change %.3e", where, iteration, change)
        if change <= tolerance:
            return iteration
    raise SolverError(f"the staggered diffusion-stress iteration did not converge in "
                      f"{max_iterations} iterations {where} (last change {change:.3g})")
