"""The material library: linear thermo-elastic constants, read from materials.toml."""

from __future__ import annotations

import functools
import tomllib
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

from solver.behaviour import Behaviour, Plasticity, Viscoelasticity
from solver.errors import CaseError
from solver.units import SIQuantity

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


# Validators shared by Material and the case file's override tables (case.MaterialOverride).
YOUNGS_MODULUS = SIQuantity("pressure", positive=True)
POISSON_RATIO = AfterValidator(_check_poisson_ratio)
THERMAL_EXPANSION = SIQuantity("thermal expansion coefficient")
DENSITY = SIQuantity("density", positive=True)
THERMAL_CONDUCTIVITY = SIQuantity("thermal conductivity", positive=True)
SPECIFIC_HEAT = SIQuantity("specific heat", positive=True)


class Material(BaseModel):
    """One material's constants, as SI floats. Thermal properties may be unknown (None)
    for a material defined in a case file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="library or case-file name of the material")
    source: str = Field(description="where the values come from")
    youngs_modulus: Annotated[float, YOUNGS_MODULUS] = Field(description="Young's modulus E")
    poisson_ratio: Annotated[float, POISSON_RATIO] = Field(
        description="Poisson ratio nu, -1 < nu < 0.5"
    )
    thermal_expansion: Annotated[float, THERMAL_EXPANSION] = Field(
        description="linear thermal expansion coefficient (CTE)"
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
    # Lithiation (the [swelling] stage, solver/swelling.py); a material without them does
    # not swell and keeps its modulus.
    swelling_coefficient: float = Field(
        0.0, ge=0, description="beta in V/V0 = 1 + beta SOC on lithiation (0: does not swell)"
    )
    lithiated_youngs_modulus: Annotated[float | None, YOUNGS_MODULUS] = Field(
        None, description="Young's modulus at full lithiation (SOC = 1), linear in SOC "
        "from youngs_modulus; none: the modulus does not change"
    )


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
            key = ".".join([name, *map(str, first["loc"])])
            raise CaseError(LIBRARY_FILE, key, first["msg"]) from None
    return materials


def library() -> dict[str, Material]:
    """The built-in materials by name (a fresh dict; the Materials are immutable)."""
    return dict(_load_library())
