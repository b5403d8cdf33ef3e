"""Time steps along a heat-treatment schedule of ramps and holds."""

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class TimeStep:
    time: float  # s since the start of the schedule
    temperature: float  # K
    segment: int  # index of the schedule step this time step ends in
    label: str  # "ramp" or "hold"


def time_steps(schedule, temperature_increment: float) -> list[TimeStep]:
    """Ramps are cut into steps of at most temperature_increment; a hold is one step.

    The first entry is the stress-free start at time 0.
    """
    time, temperature = 0.0, schedule.start
    steps = [TimeStep(time, temperature, -1, "start")]
    for index, segment in enumerate(schedule.steps):
        hold = getattr(segment, "hold", None)
        if hold is not None:
            time += hold
            steps.append(TimeStep(time, temperature, index, "hold"))
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
