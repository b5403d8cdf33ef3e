"""Step cuts and staggered iterations, the same for every stage.

- `advance_with_cuts`: a load step is solved whole; where it fails (SolverError: Newton,
  the linear solver, or the problem's own acceptance test), it is cut in two halves,
  recursively, up to a number of cuts. The parts are fractions [a, b] of the step: the
  problem interpolates its loads (temperature, eigenstrains, SOC, displacement) at b
  (`along`), and b - a is the part's share of the step's time, a power of 1/2.
- `advance_adaptively`: for problems whose steps are limited by a measured quantity (the
  cohesive damage growth): the sub-step is sized from what the last one used of its limit,
  and the size is carried on to the next step, so that a run of small sub-steps near a
  peak is not retried from the whole step every time (each retry costs a Newton solve).
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


class StepOverLimit(StepRejected):
    """A converged step that used `usage` times what its limit allows (usage > 1)."""

    def __init__(self, message: str, usage: float):
        super().__init__(message)
        self.usage = usage


@dataclass(frozen=True)
class AdaptiveReport:
    newton_iterations: int
    cuts: int
    next_fraction: float  # the sub-step size to try next, as a share of this step


# A sub-step aims at this share of its limit: the limit's quantity is not linear in the load
# (damage starts abruptly at a cohesive node's onset), so a size chosen for exactly the limit
# would be rejected about every other time.
TARGET_USAGE = 0.7


def advance_adaptively(solve_part: Callable[[float, float, bool], tuple[int, float]],
                       max_cuts: int, describe: Callable[[float, float], str],
                       first_fraction: float = 1.0) -> AdaptiveReport:
    """Cover the step [0, 1] in sub-steps of adapted size: solve_part(a, b, last_chance)
    solves the part [a, b] and returns (Newton iterations, usage), usage being the share
    of its limit the part used (0 <= usage <= 1), or restores the state and raises
    StepOverLimit (usage > 1) or SolverError. The next size is the last one times
    TARGET_USAGE / usage, at most doubled, at least a tenth; a Newton failure halves it.
    No part is smaller than 2**-max_cuts of the step; a part of that size is the last
    chance (solve_part then accepts what it converges to). first_fraction: the size to try
    first (the previous step's AdaptiveReport.next_fraction, scaled to this step)."""
    smallest = 0.5**max_cuts
    position, size = 0.0, min(max(first_fraction, smallest), 1.0)
    iterations = cuts = 0
    while position < 1.0:
        last_chance = size <= smallest * (1 + 1e-9)
        end = 1.0 if position + size >= 1.0 - 1e-12 else position + size
        try:
            used, usage = solve_part(position, end, last_chance)
        except SolverError as error:
            if last_chance:
                raise
            shrink = (min(0.5, max(0.1, TARGET_USAGE / error.usage))
                      if isinstance(error, StepOverLimit) else 0.5)
            logger.info("cutting the step %s to %.3g of it", describe(position, end), shrink)
            size, cuts = max(size * shrink, smallest), cuts + 1
            continue
        iterations += used
        # a part cut short by the step's end says nothing about the size that fits
        if end - position >= size * (1 - 1e-9):
            size *= min(2.0, TARGET_USAGE / usage) if usage > 0 else 2.0
        position = end
    return AdaptiveReport(iterations, cuts, min(max(size, smallest), 1.0))


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
