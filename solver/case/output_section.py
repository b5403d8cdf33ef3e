"""[output]: which fields a run writes, in which formats, and when (docs/outputs.md).

The tables (summary.json, interface.csv, history.csv, ...) are always written; this table
chooses the fields. The defaults here are the only ones: every field a case has except the
temperature (uniform over the cell at each step: it is a column of history.csv), as XDMF,
at the final state of each stage.
"""

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from solver.case.tables import Table, rule_broken
from solver.case.units import SIQuantity, Temperature

FieldName = Literal["displacement", "stress", "von_mises", "temperature", "material",
                    "equivalent_plastic_strain", "recrystallized_fraction",
                    "viscous_stress_norm", "soc"]
FormatName = Literal["xdmf", "vtx"]
DEFAULT_FIELDS = ("displacement", "stress", "von_mises", "material",
                  "equivalent_plastic_strain", "recrystallized_fraction",
                  "viscous_stress_norm", "soc")
DEFAULT_FORMATS = ("xdmf",)

NonNegativeTime = Annotated[float, SIQuantity("time")]


class OutputSettings(Table):
    fields: list[FieldName] = Field(
        default_factory=lambda: list(DEFAULT_FIELDS),
        json_schema_extra={"default_text": "all but temperature"},
        description="the fields written, of displacement, stress, von_mises, temperature, "
        "material, equivalent_plastic_strain, recrystallized_fraction, viscous_stress_norm, "
        "soc (one the case does not have, such as the plastic strain of an elastic case or the "
        "SOC without diffusion, is left out and run.log says so); [] writes none: the tables "
        "alone")
    formats: list[FormatName] = Field(
        default_factory=lambda: list(DEFAULT_FORMATS), min_length=1,
        json_schema_extra={"default_text": '`["xdmf"]`'},
        description="xdmf: fields.xdmf, the fields at the mesh geometry's degree and cell "
        "averages (what ParaView's views read); vtx: displacement.bp and stress.bp (ADIOS2), "
        "the displacement at its element degree and the stress one degree less")
    every: int = Field(
        0, ge=0, description="also every so many time steps: 0, N, 2N, ... as history.csv "
        "numbers its rows (swelling: SOC increments N, 2N, ...); 0: only the listed times and "
        "temperatures and the final state")
    at_times: list[NonNegativeTime] = Field(
        default_factory=list, json_schema_extra={"default_text": "none"},
        description="also at these times of the schedule, e.g. [\"30 min\", \"1 h\"] "
        "(a time step is put at each)")
    at_temperatures: list[Temperature] = Field(
        default_factory=list, json_schema_extra={"default_text": "none"},
        description="also whenever the temperature arrives at one of these, e.g. "
        "[\"200 degC\"] (a time step is put there; a hold at it is written where it starts; "
        "with [furnace], the temperature of the followed position)")

    @field_validator("fields", "formats")
    @classmethod
    def _once_each(cls, names: list[str]) -> list[str]:
        return list(dict.fromkeys(names))

    @model_validator(mode="after")
    def _not_before_the_start(self) -> "OutputSettings":
        for index, time in enumerate(self.at_times):
            if time < 0:
                raise rule_broken(f"at_times[{index}]", "a time of the schedule, from 0 at its "
                                  f"start, got {time:g} s")
        return self
