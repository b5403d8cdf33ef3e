"""[schedule]: the heat treatment, ramps and holds from a stress-free start."""

import math
from collections.abc import Sequence
from typing import Annotated, Any, Literal, NamedTuple

import numpy as np
from pydantic import Discriminator, Field, Tag, model_validator

from solver.case.tables import Table, rule_broken
from solver.case.units import PositiveHeatingRate, PositiveTime, Temperature
from solver.materials.constitutive import ZERO_CELSIUS
from solver.physics.kinetics import Atmosphere


def _celsius(temperature: float) -> str:
    return f"{temperature - ZERO_CELSIUS:g} degC"


class Ramp(Table):
    to: Temperature = Field(description="temperature at the end of the ramp")
    rate: PositiveHeatingRate = Field(description="heating or cooling rate, as a magnitude")


class Hold(Table):
    hold: PositiveTime = Field(description="duration of an isothermal hold")


def _step_kind(step: Any) -> str | None:
    """'ramp' or 'hold' from the keys a step has; None (an error) if it is neither or both."""
    if isinstance(step, Ramp | Hold):
        return "ramp" if isinstance(step, Ramp) else "hold"
    if not isinstance(step, dict):
        return None
    is_ramp = "to" in step or "rate" in step
    is_hold = "hold" in step
    if is_ramp == is_hold:
        return None
    return "ramp" if is_ramp else "hold"


Step = Annotated[
    Annotated[Ramp, Tag("ramp")] | Annotated[Hold, Tag("hold")],
    Discriminator(
        _step_kind,
        custom_error_type="step_kind",
        custom_error_message="expected a ramp { to = ..., rate = ... } or a hold { hold = ... }",
    ),
]


class Segment(NamedTuple):
    """One step of a schedule in time: a ramp or a hold, in SI units."""

    kind: Literal["ramp", "hold"]
    duration: float  # s
    start_temperature: float  # K
    end_temperature: float  # K


class Schedule(Table):
    start: Temperature = Field(description="temperature at the start: the stress-free state")
    steps: list[Step] = Field(
        min_length=1,
        description="ramps { to = T, rate = dT/dt } and holds { hold = t }, in order",
    )
    atmosphere: Atmosphere = Field(
        "argon",
        description="furnace atmosphere: argon, nitrogen, vacuum, forming_gas (non-oxidizing) "
        "or air (oxidizing: fails the process window)",
    )

    @model_validator(mode="after")
    def _check_ramps_change_temperature(self) -> "Schedule":
        temperature = self.start
        for index, step in enumerate(self.steps):
            if isinstance(step, Ramp):
                if math.isclose(step.to, temperature, rel_tol=0.0, abs_tol=1e-9):
                    raise rule_broken(
                        f"steps[{index}].to",
                        f"a ramp must change the temperature, but it is already "
                        f"{_celsius(temperature)}; write {{ hold = ... }} to hold it",
                    )
                temperature = step.to
        return self

    def segments(self) -> list[Segment]:
        """The steps as (kind, duration, start_temperature, end_temperature), in order."""
        segments = []
        temperature = self.start
        for step in self.steps:
            if isinstance(step, Ramp):
                duration = abs(step.to - temperature) / step.rate
                segments.append(Segment("ramp", duration, temperature, step.to))
                temperature = step.to
            else:
                segments.append(Segment("hold", step.hold, temperature, temperature))
        return segments

    @property
    def end_temperature(self) -> float:
        return self.segments()[-1].end_temperature

    @property
    def duration(self) -> float:
        return sum(segment.duration for segment in self.segments())

    def temperature_at(self, times: Sequence[float] | np.ndarray) -> np.ndarray:
        """Temperature (K) at `times` (s from the start): piecewise linear, constant outside."""
        segments = self.segments()
        breakpoints = np.concatenate([[0.0], np.cumsum([s.duration for s in segments])])
        temperatures = [self.start] + [segment.end_temperature for segment in segments]
        return np.interp(np.asarray(times, dtype=float), breakpoints, temperatures)
