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
