"""The one Newton driver, the step-cut driver and the staggered loop (solver/numerics/), on
scalar problems with known solutions."""

import math

import pytest

from solver.errors import SolverError
from solver.numerics.newton import Increment, NewtonSettings, newton_solve
from solver.numerics.stepping import (
    TARGET_USAGE,
    StepOverLimit,
    StepRejected,
    advance_adaptively,
    advance_with_cuts,
    along,
    staggered,
)


class Scalar:
    """f(x) = 0 by Newton: residual |f(x)|, increment -f/f'."""

    def __init__(self, f, df, x):
        self.f, self.df, self.x = f, df, x
        self.norms = []

    def residual_norm(self) -> float:
        value = abs(self.f(self.x))
        self.norms.append(value)
        return value if math.isfinite(value) else math.inf

    def newton_increment(self) -> Increment:
        start, step = self.x, -self.f(self.x) / self.df(self.x)

        def move(fraction):
            self.x = start + fraction * step

        return Increment(move, abs(step))


def test_newton_converges_quadratically_to_the_cube_root_of_two():
    problem = Scalar(lambda x: x**3 - 2, lambda x: 3 * x**2, 2.0)
    iterations = newton_solve(problem, NewtonSettings(rtol=1e-14, max_iterations=20,
                                                      line_search_halvings=6))
    assert problem.x == pytest.approx(2 ** (1 / 3), rel=1e-14)
    assert iterations <= 6
    # |f| falls quadratically: |f_{k+1}| / |f_k|^2 stays bounded (f''/(2 f'^2) ~ 0.4 here)
    errors = [e for e in problem.norms if e > 1e-12]
    assert all(b / a**2 < 1.0 for a, b in zip(errors[1:-1], errors[2:], strict=False))


def test_the_line_search_brings_newton_home_from_where_it_diverges():
    """arctan from x0 = 3: full Newton steps overshoot further each time (|x| grows); the
    line search halves them into a descent on |f| and converges to 0."""
    settings = NewtonSettings(rtol=1e-12, max_iterations=30, line_search_halvings=6)
    problem = Scalar(math.atan, lambda x: 1 / (1 + x**2), 3.0)
    newton_solve(problem, settings, atol=1e-14)
    assert abs(problem.x) < 1e-12
    plain = Scalar(math.atan, lambda x: 1 / (1 + x**2), 3.0)
    with pytest.raises(SolverError, match="did not converge in 4 iterations at x0 = 3"):
        newton_solve(plain, NewtonSettings(rtol=1e-12, max_iterations=4), where="at x0 = 3")
    assert abs(plain.x) > 1e3  # 3, -9.5, 124, -2.4e4, 9e8: away from the root


def test_where_no_length_helps_the_best_one_is_kept():
    """A residual that every length of the step increases, least at half of it: the line
    search keeps the half step (neither the full one nor the last tried), and Newton then
    fails."""

    class Valley:
        x = 1.0

        def residual_norm(self):
            return 1.0 if self.x == 1.0 else 1.2 + 10 * (self.x - 1.5) ** 2

        def newton_increment(self):
            start = self.x

            def move(fraction):
                self.x = start + fraction

            return Increment(move)

    problem = Valley()
    with pytest.raises(SolverError):
        newton_solve(problem, NewtonSettings(rtol=1e-9, max_iterations=1,
                                             line_search_halvings=3))
    assert problem.x == 1.5  # tried 2, 1.5, 1.25, 1.125: residuals 3.7, 1.2, 1.8, 2.6


def test_an_inadmissible_start_is_a_failure_not_convergence():
    problem = Scalar(lambda x: math.inf, lambda x: 1.0, 0.0)
    with pytest.raises(SolverError):
        newton_solve(problem, NewtonSettings(rtol=1e-9, max_iterations=5))


def test_the_increment_criterion_and_a_linear_problem():
    problem = Scalar(lambda x: x**3 - 2, lambda x: 3 * x**2, 2.0)
    iterations = newton_solve(problem, NewtonSettings(rtol=1e-13, max_iterations=20,
                                                      criterion="increment"))
    assert problem.x == pytest.approx(2 ** (1 / 3), rel=1e-13) and iterations <= 7
    linear = Scalar(lambda x: 4 * x - 2, lambda x: 4.0, 10.0)
    assert newton_solve(linear, NewtonSettings(1e-13, 20, criterion="increment",
                                               linear=True)) == 1
    assert linear.x == 0.5


def test_a_step_is_cut_in_halves_until_its_parts_solve():
    """Parts longer than a quarter of the step fail: the step is cut three times into four
    quarters, solved in order."""
    solved = []

    def solve_part(a, b, last_chance):
        if b - a > 0.25:
            raise SolverError("too long")
        solved.append((a, b))
        return 2

    report = advance_with_cuts(solve_part, 8, lambda a, b: f"{a}-{b}")
    assert solved == [(0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0)]
    assert report.cuts == 3 and report.newton_iterations == 8
    with pytest.raises(SolverError):
        advance_with_cuts(solve_part, 1, lambda a, b: "")


def test_a_rejected_step_is_cut_and_accepted_on_its_last_chance():
    def solve_part(a, b, last_chance):
        if not last_chance:
            raise StepRejected("the damage grew too much")
        return 1

    report = advance_with_cuts(solve_part, 2, lambda a, b: "")
    assert report.cuts == 3 and report.newton_iterations == 4


def test_adaptive_sub_steps_follow_the_usage_of_their_limit():
    """A quantity that grows as the square of the load within [0.4, 0.6] and not elsewhere,
    by 1 over that interval, limited to 0.1 per sub-step: the sub-steps cover the step
    exactly, none uses more than its limit, the rejected ones are retried smaller, and the
    size grows back (at most doubling) where the quantity stops growing."""
    limit = 0.1

    def grown(x):
        return (min(max(x, 0.4), 0.6) - 0.4) ** 2 / 0.04

    accepted, rejected = [], []

    def solve_part(a, b, last_chance):
        usage = (grown(b) - grown(a)) / limit
        if usage > 1 and not last_chance:
            rejected.append((a, b))
            raise StepOverLimit("too much", usage)
        accepted.append((a, b, usage))
        return 3, min(usage, 1.0)

    report = advance_adaptively(solve_part, 12, lambda a, b: f"{a}-{b}", first_fraction=0.25)
    starts = [a for a, _, _ in accepted]
    ends = [b for _, b, _ in accepted]
    assert starts[0] == 0.0 and ends[-1] == 1.0 and starts[1:] == ends[:-1]
    assert max(usage for *_, usage in accepted) <= 1.0
    assert report.cuts == len(rejected) > 0
    assert report.newton_iterations == 3 * len(accepted)
    # enough sub-steps for the growth (at least 1 / limit), not many more
    inside = [u for a, b, u in accepted if b > 0.4 and a < 0.6]
    assert 10 <= len(inside) <= 10 / TARGET_USAGE + 4
    # after the growth the sizes double until the step's end
    after = [b - a for a, b, _ in accepted if a >= 0.6]
    for earlier, later in zip(after[:-2], after[1:-1], strict=True):  # the last: cut short
        assert later == pytest.approx(2 * earlier)


def test_adaptive_sub_steps_halve_on_a_failure_and_stop_at_the_smallest():
    """Parts longer than 0.3 fail: 1 -> 0.5 -> 0.25 solves, the doubled size fails again
    each time; the last part, cut short by the step's end, leaves the size as it was."""
    solved = []

    def solve_part(a, b, last_chance):
        if b - a > 0.3:
            raise SolverError("Newton failed")
        solved.append((a, b))
        return 1, 0.0

    report = advance_adaptively(solve_part, 4, lambda a, b: "")
    assert solved == [(0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0)]
    assert report.cuts == 4 and report.next_fraction == 0.5

    def never(a, b, last_chance):
        raise SolverError("Newton failed")

    with pytest.raises(SolverError):
        advance_adaptively(never, 3, lambda a, b: "")


def test_along_ends_exactly_at_the_end():
    assert along(0.1, 0.7, 1.0) == 0.7
    assert along(300.0, 500.0, 0.5) == 400.0


def test_the_staggered_loop_finds_the_fixed_point_of_cos():
    state = {"x": 1.0}

    def one_pass():
        new = math.cos(state["x"])
        change, state["x"] = abs(new - state["x"]), new
        return change

    passes = staggered(one_pass, 1e-12, 200, "at t = 0")
    assert state["x"] == pytest.approx(0.7390851332151607, abs=1e-11)
    assert 20 < passes < 200  # a contraction of rate |sin x*| = 0.67
    state["x"] = 1.0
    with pytest.raises(SolverError, match="did not converge in 5 iterations at t = 0"):
        staggered(one_pass, 1e-12, 5, "at t = 0")
