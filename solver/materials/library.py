"""The material library: linear thermo-elastic constants, read from materials.toml."""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError, core_schema

from solver.case.tables import rule_broken
from solver.case.units import QuantityError, SIQuantity, to_si
from solver.errors import CaseError
from solver.materials.behaviour import Behaviour, Plasticity, Viscoelasticity
from solver.materials.constitutive import TemperatureTable, thermal_strain

LIBRARY_FILE = Path(__file__).with_name("materials.toml")

# The keys a material needs for a thermo-elastic solve; a case file that defines a
# material the library lacks must give all of them.
MECHANICAL_KEYS = ("youngs_modulus", "poisson_ratio", "thermal_expansion")


def _check_poisson_ratio(value: float | None) -> float | None:
    # Stability of an isotropic elastic solid needs -1 < nu < 0.5.
    if value is not None and not -1.0 < value < 0.5:
        raise PydanticCustomError(
            "range",
            "expected a Poisson ratio between -1 and 0.5 (exclusive), got {value}",
            {"value": value},
        )
    return value


TABLE_NOTE = (", or a table against temperature { temperatures = [...], values = [...] } "
              "(linear in between, constant beyond)")


@dataclass(frozen=True)
class TemperatureDependent(SIQuantity):
    """Annotated metadata for a property given as a quantity or as a table against
    temperature, `{ temperatures = ["23 degC", "200 degC"], values = ["2.5 GPa", "2 GPa"] }`:
    stores an SI float or a constitutive.TemperatureTable (K, SI values). kind None: plain
    numbers (e.g. a Poisson ratio), checked by `check`."""

    check: Callable[[float], float] | None = None

    def validate(self, value: Any, si_values: bool = False) -> float | TemperatureTable | None:
        if isinstance(value, TemperatureTable):  # validated already (a merged material)
            return value
        if not isinstance(value, dict):
            return self._one(value, "", si_values)
        if set(value) != {"temperatures", "values"}:
            raise _table_error("expected a table { temperatures = [...], values = [...] }, "
                               f"got the keys {', '.join(map(str, value)) or 'none'}")
        temperatures, values = value["temperatures"], value["values"]
        if not isinstance(temperatures, list) or not isinstance(values, list) \
                or not temperatures or len(values) != len(temperatures):
            raise _table_error("a table needs one value per temperature (at least one), got "
                               f"{_count(temperatures)} temperatures and {_count(values)} values")
        kelvin = [_si(t, "temperature", False, f"temperatures[{i}]: ", si_values)
                  for i, t in enumerate(temperatures)]
        for i in range(1, len(kelvin)):
            if kelvin[i] <= kelvin[i - 1]:
                raise _table_error(f"the temperatures must increase, got {temperatures[i]!r} "
                                   f"after {temperatures[i - 1]!r}")
        return TemperatureTable(kelvin, [self._one(v, f"values[{i}]: ", si_values)
                                         for i, v in enumerate(values)])

    def _one(self, value: Any, where: str, si_values: bool) -> float | None:
        if value is None:
            return None
        if self.kind is None:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _table_error(f"{where}expected a number, got {value!r}")
            number = float(value)
        else:
            number = _si(value, self.kind, self.positive, where, si_values)
        if self.check is not None:
            try:
                self.check(number)
            except PydanticCustomError as error:
                raise _table_error(f"{where}{error.message()}") from None
        return number

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler):
        return core_schema.with_info_plain_validator_function(self.validate_in_context)


def _table_error(message: str) -> PydanticCustomError:
    return PydanticCustomError("quantity", "{message}", {"message": message})


def _count(items: Any) -> int:
    return len(items) if isinstance(items, list) else 1


def _si(value: Any, kind: str, positive: bool, where: str, si_values: bool) -> float:
    try:
        return to_si(value, kind, positive=positive, si_values=si_values)
    except QuantityError as error:
        raise _table_error(f"{where}{error}") from None


# Validators shared by Material and the case file's override tables (case.MaterialOverride).
YOUNGS_MODULUS = TemperatureDependent("pressure", positive=True)
POISSON_RATIO = TemperatureDependent(None, check=_check_poisson_ratio)
THERMAL_EXPANSION = TemperatureDependent("thermal expansion coefficient")
DENSITY = SIQuantity("density", positive=True)
FLOW_STRESS = SIQuantity("pressure", positive=True)
FLOW_VISCOSITY = SIQuantity("viscosity", positive=True)
HARDENING_MODULUS = SIQuantity("pressure", positive=True)
THERMAL_CONDUCTIVITY = SIQuantity("thermal conductivity", positive=True)
SPECIFIC_HEAT = SIQuantity("specific heat", positive=True)


class Material(BaseModel):
    """One material's constants, as SI floats. Thermal properties may be unknown (None)
    for a material defined in a case file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="library or case-file name of the material")
    source: str = Field(description="where the values come from")
    youngs_modulus: Annotated[float | TemperatureTable, YOUNGS_MODULUS] = Field(
        description="Young's modulus E" + TABLE_NOTE
    )
    poisson_ratio: Annotated[float | TemperatureTable, POISSON_RATIO] = Field(
        description="Poisson ratio nu, -1 < nu < 0.5" + TABLE_NOTE
    )
    thermal_expansion: Annotated[float | TemperatureTable, THERMAL_EXPANSION] = Field(
        description="linear thermal expansion coefficient (CTE)" + TABLE_NOTE
        + "; a table needs thermal_expansion_kind"
    )
    thermal_expansion_kind: Literal["secant", "instantaneous"] | None = Field(
        None, description="what a CTE table holds: the secant (mean) coefficient from "
        "thermal_expansion_reference, or the instantaneous one d(strain)/dT"
    )
    thermal_expansion_reference: Annotated[float | None, SIQuantity("temperature")] = Field(
        None, description="the temperature a secant CTE table is measured from (required "
        "with thermal_expansion_kind = secant)"
    )
    # Optional: a material defined in a case file may leave its thermal properties out. The
    # validator wraps the whole `float | None` so a bad value reports one error, not one per
    # member of the union.
    density: Annotated[float | None, DENSITY] = Field(None, description="mass density")
    thermal_conductivity: Annotated[float | None, THERMAL_CONDUCTIVITY] = Field(
        None, description="thermal conductivity"
    )
    specific_heat: Annotated[float | None, SPECIFIC_HEAT] = Field(
        None, description="specific heat capacity"
    )
    behaviour: Behaviour = Field(
        "elastic", description="elastic, plastic (J2 with annealing) or viscoelastic (Prony)"
    )
    plasticity: Plasticity | None = Field(
        None, description="parameters of behaviour = plastic (defaults: electrodeposited Cu)"
    )
    viscoelasticity: Viscoelasticity | None = Field(
        None, description="parameters of behaviour = viscoelastic (defaults: a polyimide)"
    )
    # Lithiation (the [swelling] stage, solver/physics/swelling.py); a material without them does
    # not swell and keeps its modulus.
    swelling_coefficient: float = Field(
        0.0, ge=0, description="beta in V/V0 = 1 + beta SOC on lithiation (0: does not swell)"
    )
    lithiated_youngs_modulus: Annotated[float | None, YOUNGS_MODULUS] = Field(
        None, description="Young's modulus at full lithiation (SOC = 1), linear in SOC "
        "from youngs_modulus; none: the modulus does not change"
    )
    swelling_flow_stress: Annotated[float | None, FLOW_STRESS] = Field(
        None, description="von Mises flow stress (of the Cauchy stress) in the [swelling] "
        "stage, perfectly plastic J2 flow; of the lithiated material for one that "
        "lithiates; none: elastic in that stage"
    )
    swelling_hardening_modulus: Annotated[float | None, HARDENING_MODULUS] = Field(
        None, description="H of the linear isotropic hardening of the swelling stage's flow, "
        "flow stress + H (equivalent plastic strain); none: perfectly plastic"
    )
    elongation_at_break: float | None = Field(
        None, gt=0, description="tensile elongation at break (engineering strain): the "
        "pull-off test's layer-failure criterion on the equivalent plastic strain of the "
        "binder (docs/pulloff.md); none: no criterion"
    )
    swelling_flow_viscosity: Annotated[float | None, FLOW_VISCOSITY] = Field(
        None, description="eta of the overstress law sigma_eq = flow stress + eta "
        "(equivalent plastic strain rate) (+ the hardening), with [swelling] soc_rate; none: "
        "rate-independent"
    )

    placeholders: tuple[str, ...] = Field(
        (), description="the keys whose values are placeholders, not measured or computed "
        "data: a run that uses them warns")

    @model_validator(mode="after")
    def _is_complete(self) -> Material:
        problem = material_problem(self)
        if problem is not None:
            raise rule_broken(*problem)
        return self

    def thermal_strain(self, temperature: float | np.ndarray,
                       stress_free_temperature: float) -> np.ndarray:
        """The linear thermal strain at `temperature` from the stress-free temperature:
        eps(T) - eps(T0) with eps of the CTE's kind (constitutive.thermal_strain)."""
        if not isinstance(self.thermal_expansion, TemperatureTable):
            return self.thermal_expansion * (np.asarray(temperature, dtype=float)
                                             - stress_free_temperature)
        reference = self.thermal_expansion_reference
        if reference is None:  # instantaneous: integrated from anywhere, here T0
            reference = stress_free_temperature
        return (thermal_strain(self.thermal_expansion, temperature, reference,
                               self.thermal_expansion_kind)
                - thermal_strain(self.thermal_expansion, stress_free_temperature, reference,
                                 self.thermal_expansion_kind))

    def is_tabulated(self, *keys: str) -> bool:
        """Whether any of the named properties depends on temperature (a table)."""
        return any(isinstance(getattr(self, key), TemperatureTable) for key in keys)


# The keys of a material the unit cell's problems use: a placeholder among them is a warning.
# density, thermal_conductivity and specific_heat are not among them ([furnace] has its own).
SWELLING_KEYS = ("swelling_coefficient", "lithiated_youngs_modulus", "swelling_flow_stress",
                 "swelling_hardening_modulus", "swelling_flow_viscosity")


def used_placeholders(material: Material, swelling: bool, pulloff: bool) -> list[str]:
    """The placeholder keys of `material` that a run uses (with a [swelling] stage, a
    pull-off test)."""
    used = (*MECHANICAL_KEYS, *(SWELLING_KEYS if swelling else ()),
            *(("elongation_at_break",) if pulloff else ()))
    return [key for key in used if key in material.placeholders]


def largest(value: float | TemperatureTable) -> float:
    """The largest value of a property over temperature (a scale, e.g. for the equations)."""
    return float(np.max(value.values)) if isinstance(value, TemperatureTable) else value


def material_problem(material: Material) -> tuple[str, str] | None:
    """(key, message) if the CTE's kind or reference is missing or a placeholder is not a
    material value, else None."""
    values = [key for key in Material.model_fields
              if key not in ("name", "source", "placeholders")]
    for key in material.placeholders:
        if key not in values:
            return ("placeholders", f"'{key}' is not a material value; expected some of "
                    f"{', '.join(values)}")
    if not isinstance(material.thermal_expansion, TemperatureTable):
        return None
    if material.thermal_expansion_kind is None:
        return ("thermal_expansion_kind", "required with a thermal_expansion table: 'secant' "
                "(mean coefficient from thermal_expansion_reference) or 'instantaneous'")
    if material.thermal_expansion_kind == "secant" and \
            material.thermal_expansion_reference is None:
        return ("thermal_expansion_reference", "required with a secant thermal_expansion "
                "table: the temperature its mean coefficients are measured from")
    return None


@functools.cache
def _load_library() -> dict[str, Material]:
    with LIBRARY_FILE.open("rb") as stream:
        entries = tomllib.load(stream)
    materials = {}
    for name, entry in entries.items():
        try:
            materials[name] = Material(name=name, **entry)
        except ValidationError as error:
            first = error.errors()[0]
            rule = [first["ctx"]["key"]] if first["type"] == "case_rule" else []
            key = ".".join([name, *map(str, first["loc"]), *rule])
            raise CaseError(LIBRARY_FILE, key, first["msg"]) from None
    return materials


def library() -> dict[str, Material]:
    """The built-in materials by name (a fresh dict; the Materials are immutable)."""
    return dict(_load_library())
