"""Time steps along a heat-treatment schedule of ramps and holds."""

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TimeStep:
    time: float  # s since the start of the schedule
    temperature: float  # K
    segment: int  # index of the schedule step this time step ends in
    label: str  # "ramp" or "hold"


# Each step of a hold is this much longer than the one before it: relaxation is fast at the
# start of a hold and slow at its end, so the steps follow it.
HOLD_STEP_GROWTH = 1.5


def time_steps(schedule, temperature_increment: float, hold_steps: int = 1) -> list[TimeStep]:
    """Ramps are cut into steps of at most temperature_increment; a hold into `hold_steps`
    steps growing geometrically (HOLD_STEP_GROWTH).

    The first entry is the stress-free start at time 0.
    """
    time, temperature = 0.0, schedule.start
    steps = [TimeStep(time, temperature, -1, "start")]
    for index, segment in enumerate(schedule.steps):
        hold = getattr(segment, "hold", None)
        if hold is not None:
            growth = HOLD_STEP_GROWTH ** np.arange(hold_steps)
            for end in np.cumsum(growth) / growth.sum() * hold:
                steps.append(TimeStep(time + end, temperature, index, "hold"))
            time += hold
            continue
        change = segment.to - temperature
        count = max(1, math.ceil(abs(change) / temperature_increment - 1e-9))
        duration = abs(change) / segment.rate
        for k in range(1, count + 1):
            steps.append(TimeStep(time + duration * k / count,
                                  temperature + change * k / count, index, "ramp"))
        time += duration
        temperature = segment.to
    return steps


def step_statistics(step_sizes, rejected_steps: int) -> dict:
    """The summary's account of the steps the material models took: sub-steps included
    (solver.time_error_tolerance), each of positive length (s)."""
    sizes = np.asarray(step_sizes, dtype=float)
    sizes = sizes[sizes > 0.0]
    return {"material_steps": int(sizes.size), "rejected_steps": int(rejected_steps),
            "smallest_step": float(sizes.min()) if sizes.size else 0.0,
            "largest_step": float(sizes.max()) if sizes.size else 0.0}


def arrival_times(times, temperatures, temperature: float) -> list[float]:
    """The times at which a piecewise-linear temperature path (samples `times`,
    `temperatures`) arrives at `temperature`: where it crosses or reaches it, coming from
    another temperature (a hold at it counts once, where it starts), and 0 if it starts there.
    """
    tolerance = 1e-9  # K: the listed and the schedule's temperatures come from one conversion
    arrivals = [float(times[0])] if abs(temperatures[0] - temperature) <= tolerance else []
    for k in range(1, len(times)):
        before, after = temperatures[k - 1] - temperature, temperatures[k] - temperature
        if abs(before) <= tolerance or before * after > 0:
            continue
        fraction = 1.0 if abs(after) <= tolerance else before / (before - after)
        arrivals.append(float(times[k - 1] + fraction * (times[k] - times[k - 1])))
    return arrivals


def with_steps_at(steps: list[TimeStep], times, temperature_at) -> tuple[list[TimeStep], set]:
    """The steps with one more at each of `times` (s) that is not already a step's time (the
    step it cuts in two gives its segment and label; `temperature_at(t)` its temperature),
    and the indices of the steps at `times`."""
    steps = list(steps)
    for time in sorted(set(times)):
        if any(math.isclose(step.time, time, rel_tol=1e-12, abs_tol=1e-9) for step in steps):
            continue
        cut = next(k for k, step in enumerate(steps) if step.time > time)
        steps.insert(cut, TimeStep(time, float(temperature_at(time)), steps[cut].segment,
                                   steps[cut].label))
    at = {k for k, step in enumerate(steps)
          if any(math.isclose(step.time, time, rel_tol=1e-12, abs_tol=1e-9) for time in times)}
    return steps, at
