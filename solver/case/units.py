"""Physical quantities in case files: '18 um', '400 degC', '5 K/min' -> SI floats.

All unit arithmetic is pint's; this module only decides which kind of quantity a key
expects (a length, a temperature, ...) and turns a mismatch into a message a user can act on.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import pint
from pydantic import GetCoreSchemaHandler
from pydantic_core import PydanticCustomError, core_schema

from solver.errors import CaseError

ureg = pint.UnitRegistry()
ZERO_CELSIUS_K = 273.15  # 0 degC in K


@dataclass(frozen=True)
class QuantityKind:
    """A kind of physical quantity a case-file key can hold."""

    noun: str  # as it reads in a message: "expected a {noun}"
    dimensionality: str  # pint dimensionality expression
    example: str  # shown in messages and the keys table
    si_unit: str  # the unit of the float stored on the models (pint syntax)


KINDS: dict[str, QuantityKind] = {
    kind.noun: kind
    for kind in (
        QuantityKind("length", "[length]", "2 um", "m"),
        QuantityKind("pressure", "[pressure]", "50 MPa", "Pa"),
        # An absolute temperature and a temperature difference share pint's dimensionality;
        # they differ in which units are allowed (degC is absolute, delta_degC a difference).
        QuantityKind("temperature", "[temperature]", "400 degC", "K"),
        QuantityKind("temperature difference", "[temperature]", "10 K", "K"),
        QuantityKind("time", "[time]", "10 h", "s"),
        QuantityKind("heating rate", "[temperature]/[time]", "5 K/min", "K/s"),
        QuantityKind("thermal expansion coefficient", "1/[temperature]", "17e-6 1/K", "1/K"),
        QuantityKind("density", "[mass]/[length]**3", "8920 kg/m^3", "kg/m^3"),
        QuantityKind("thermal conductivity", "[power]/[length]/[temperature]", "1 W/m/K", "W/m/K"),
        QuantityKind("specific heat", "[energy]/[mass]/[temperature]", "386 J/kg/K", "J/kg/K"),
        QuantityKind("heat transfer coefficient", "[power]/[length]**2/[temperature]",
                     "10 W/m^2/K", "W/m^2/K"),
        QuantityKind("activation energy", "[energy]/[substance]", "250 kJ/mol", "J/mol"),
        QuantityKind("pre-exponential factor", "1/[time]", "1e13 1/s", "1/s"),
        QuantityKind("work of sintering", "[time]/[temperature]", "1.2e-11 s/K", "s/K"),
        QuantityKind("fracture energy", "[energy]/[length]**2", "25 J/m^2", "J/m^2"),
        QuantityKind("stiffness per area", "[pressure]/[length]", "1e16 Pa/m", "Pa/m"),
        QuantityKind("speed", "[length]/[time]", "1 um/s", "m/s"),
        QuantityKind("viscosity", "[pressure]*[time]", "1e12 Pa*s", "Pa*s"),
        QuantityKind("charging rate", "1/[time]", "0.1 1/h", "1/s"),
        QuantityKind("diffusivity", "[length]**2/[time]", "1e-15 m^2/s", "m^2/s"),
        QuantityKind("concentration", "[substance]/[length]**3", "3.11e5 mol/m^3", "mol/m^3"),
    )
}

# A leading number, then the units. pint's own expression parser multiplies the number by
# the units, which it refuses for offset units ('400 degC'); pint's unit parser handles the
# rest, including reading 'degC/min' and '1/degC' as temperature differences.
_NUMBER_THEN_UNITS = re.compile(r"\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(.*?)\s*$")


class QuantityError(ValueError):
    """A value that is not the expected kind of quantity; the message says what was expected."""


def _expected(kind: QuantityKind, positive: bool) -> str:
    adjective = "positive " if positive else ""
    return f"expected a {adjective}{kind.noun} (e.g. '{kind.example}')"


def _show(value: Any) -> str:
    return f"'{value}'" if isinstance(value, str) else repr(value)


# The validation context of values that are SI floats already (validated tables merged
# key by key, solver/case/materials.py): a bare number is SI there, a temperature included.
SI_VALUES = {"si_values": True}


def bare_temperature(number: float) -> str:
    """Why a temperature without a unit is refused: both readings of it."""
    return (f"{number:g} is {number:g} K ({number - ZERO_CELSIUS_K:g} degC) or {number:g} degC "
            f"({number + ZERO_CELSIUS_K:g} K): give the unit, e.g. '{number:g} degC' or "
            f"'{number:g} K'")


def to_si(value: Any, dimension: str, *, positive: bool = False,
          si_values: bool = False) -> float:
    """The SI magnitude of `value` (a string with units, or a number taken as SI).

    A bare number for an absolute temperature is refused (400 could be K or degC) unless
    `si_values` says the numbers are SI already. A temperature difference may be a bare
    number: kelvin and degrees Celsius differences are the same size.
    Raises QuantityError with a one-line message naming the expected kind.
    """
    kind = KINDS[dimension]
    problem = f"{_expected(kind, positive)}, got {_show(value)}"
    # bool is an int subclass: `thickness = true` is a mistake, not 1 m.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        magnitude = float(value)
        if kind.noun == "temperature" and not si_values and math.isfinite(magnitude):
            raise QuantityError(bare_temperature(magnitude))
    elif isinstance(value, str):
        magnitude = _string_to_si(value, kind, problem)
    else:
        raise QuantityError(problem)
    if not math.isfinite(magnitude):
        raise QuantityError(f"{problem} (not finite)")
    if positive and magnitude <= 0:
        raise QuantityError(problem)
    return magnitude


def _string_to_si(text: str, kind: QuantityKind, problem: str) -> float:
    try:
        return _parsed_string_to_si(text, kind)
    except QuantityError as error:
        raise QuantityError(f"{problem}{error}") from None


@functools.lru_cache(maxsize=4096)
def _parsed_string_to_si(text: str, kind: QuantityKind) -> float:
    """The SI magnitude of a quantity string (cached: pint's parser is most of the time a
    case takes to validate, and a case and its sweep repeat the same strings); a failure is
    a QuantityError with what to append to the expectation."""
    match = _NUMBER_THEN_UNITS.fullmatch(text)
    if match is None:
        raise QuantityError(" (a number, then units)")
    number, unit_text = match.groups()
    try:
        units = ureg.parse_units(unit_text)
    # pint's parser raises whatever its tokenizer hits on garbage (AssertionError,
    # TokenError, UndefinedUnitError, ...): any failure here means "not a unit".
    except Exception:
        raise QuantityError(f" (unknown units '{unit_text}')") from None
    quantity = ureg.Quantity(float(number), units)
    if not quantity.check(kind.dimensionality):
        raise QuantityError("")
    if kind.noun == "temperature" and any(
        name.startswith("delta_") for name, _ in quantity.unit_items()
    ):
        raise QuantityError(", which is a temperature difference")
    if kind.noun == "temperature difference" and _is_offset(units):
        raise QuantityError(", which is an absolute temperature (write 'K' or 'delta_degC')")
    return float(quantity.to(kind.si_unit).magnitude)


def _is_offset(units: pint.Unit) -> bool:
    """Whether `units` measure from an offset zero (degC, degF), i.e. are not a difference."""
    return ureg.Quantity(0.0, units).to("kelvin").magnitude != 0.0


def parse_quantity(value: Any, dimension: str, *, key: str, file: str | Path) -> float:
    """The SI magnitude of `value` as a `dimension` (a name in KINDS), or a CaseError on `key`."""
    try:
        return to_si(value, dimension)
    except QuantityError as error:
        raise CaseError(file, key, str(error)) from None


@dataclass(frozen=True)
class SIQuantity:
    """Annotated metadata for a model field that accepts a quantity and stores SI floats.

    `Annotated[float, SIQuantity("length", positive=True)]`
    """

    kind: str
    positive: bool = False

    def validate(self, value: Any, si_values: bool = False) -> float | None:
        # TOML has no null: None only arrives as the default of an optional field.
        if value is None:
            return None
        try:
            return to_si(value, self.kind, positive=self.positive, si_values=si_values)
        except QuantityError as error:
            # A custom error carries the message as is (a ValueError would get a prefix).
            raise PydanticCustomError("quantity", "{message}", {"message": str(error)}) from None

    def validate_in_context(self, value: Any, info: core_schema.ValidationInfo) -> Any:
        return self.validate(value, si_values=bool((info.context or {}).get("si_values")))

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.with_info_before_validator_function(self.validate_in_context,
                                                               handler(source))


@dataclass(frozen=True)
class NotAGeometricLength:
    """Annotated metadata of a length key that is no length of the geometry (a unit, a
    tolerance): the checks that compare mesh sizes with the geometry's lengths leave it out."""


# The quantity types of the case file's keys (a key may also annotate its own).
PositiveLength = Annotated[float, SIQuantity("length", positive=True)]
OptionalPositiveLength = Annotated[float | None, SIQuantity("length", positive=True)]
PositiveLengthUnit = Annotated[float, SIQuantity("length", positive=True), NotAGeometricLength()]
PositivePressure = Annotated[float, SIQuantity("pressure", positive=True)]
Temperature = Annotated[float, SIQuantity("temperature", positive=True)]
PositiveTemperatureDifference = Annotated[
    float, SIQuantity("temperature difference", positive=True)
]
PositiveTime = Annotated[float, SIQuantity("time", positive=True)]
PositiveHeatingRate = Annotated[float, SIQuantity("heating rate", positive=True)]
