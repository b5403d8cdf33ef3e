"""Case files: the TOML schema, its validation, and the Case the solver runs.

The schema is the pydantic models below, and for [geometry] the registered kinds' models
(solver/geometry/registry.py); defaults live in their Fields and nowhere else.
Quantities are written with units in the file ('18 um', '400 degC') and stored as SI floats.
Every problem with a file becomes one CaseError naming the file, the dotted key path as the
user wrote it (`geometry.layers[1].thickness`) and what was expected.
"""

import json
import math
import tomllib
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, Union

import numpy as np
from pydantic import (
    BaseModel,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from solver.case.tables import Table, rule_broken
from solver.case.units import (
    KINDS,
    PositiveHeatingRate,
    PositiveLength,
    PositivePressure,
    PositiveTemperatureDifference,
    PositiveTime,
    SIQuantity,
    Temperature,
)
from solver.errors import CaseError
from solver.geometry.registry import GeometrySchema, geometry_kind
from solver.materials.behaviour import Behaviour, Plasticity, Viscoelasticity
from solver.materials.constitutive import ZERO_CELSIUS
from solver.materials.homogenization import mix_properties
from solver.materials.library import (
    DENSITY,
    FLOW_STRESS,
    FLOW_VISCOSITY,
    HARDENING_MODULUS,
    MECHANICAL_KEYS,
    POISSON_RATIO,
    SPECIFIC_HEAT,
    THERMAL_CONDUCTIVITY,
    THERMAL_EXPANSION,
    YOUNGS_MODULUS,
    Material,
    TemperatureTable,
    expansion_problem,
    library,
)
from solver.physics.furnace import FurnaceSection
from solver.physics.kinetics import Atmosphere, KineticsSection
from solver.physics.swelling import SwellingSection
from solver.stages.pulloff import PulloffSection


def _celsius(temperature: float) -> str:
    return f"{temperature - ZERO_CELSIUS:g} degC"


class CaseSection(Table):
    name: str = Field(min_length=1, description="name of the case, used to name its outputs")
    dim: Literal[2, 3] = Field(2, description="spatial dimension: 2 (a cross-section) or 3")
    plane: Literal["strain", "generalized"] = Field(
        "strain",
        description="2D only: plane strain, or generalized plane strain (uniform "
        "out-of-plane strain, no net out-of-plane force)",
    )
    description: str = Field("", description="free text describing the case")


def _material_field(field_name: str) -> Any:
    """An optional override Field that reuses the description of the Material field."""
    return Field(
        None,
        description=Material.model_fields[field_name].description,
        json_schema_extra={"default_text": "library value"},
    )


class MaterialOverride(Table):
    """A [materials.NAME] table: any subset of a Material's values."""

    youngs_modulus: Annotated[float | TemperatureTable | None, YOUNGS_MODULUS] = \
        _material_field("youngs_modulus")
    poisson_ratio: Annotated[float | TemperatureTable | None, POISSON_RATIO] = \
        _material_field("poisson_ratio")
    thermal_expansion: Annotated[float | TemperatureTable | None, THERMAL_EXPANSION] = \
        _material_field("thermal_expansion")
    thermal_expansion_kind: Literal["secant", "instantaneous"] | None = _material_field(
        "thermal_expansion_kind")
    thermal_expansion_reference: Annotated[float | None, SIQuantity("temperature")] = \
        _material_field("thermal_expansion_reference")
    density: Annotated[float | None, DENSITY] = _material_field("density")
    thermal_conductivity: Annotated[float | None, THERMAL_CONDUCTIVITY] = _material_field(
        "thermal_conductivity"
    )
    specific_heat: Annotated[float | None, SPECIFIC_HEAT] = _material_field("specific_heat")
    source: str | None = _material_field("source")
    behaviour: Behaviour | None = _material_field("behaviour")
    plasticity: Plasticity | None = _material_field("plasticity")
    viscoelasticity: Viscoelasticity | None = _material_field("viscoelasticity")
    swelling_coefficient: float | None = Field(
        None, ge=0, description=Material.model_fields["swelling_coefficient"].description,
        json_schema_extra={"default_text": "library value"})
    lithiated_youngs_modulus: Annotated[float | None, YOUNGS_MODULUS] = _material_field(
        "lithiated_youngs_modulus")
    swelling_flow_stress: Annotated[float | None, FLOW_STRESS] = _material_field(
        "swelling_flow_stress")
    swelling_hardening_modulus: Annotated[float | None, HARDENING_MODULUS] = _material_field(
        "swelling_hardening_modulus")
    swelling_flow_viscosity: Annotated[float | None, FLOW_VISCOSITY] = _material_field(
        "swelling_flow_viscosity")
    elongation_at_break: float | None = Field(
        None, gt=0, description=Material.model_fields["elongation_at_break"].description,
        json_schema_extra={"default_text": "library value"})


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


class Interface(Table):
    # Defaults are written with units and converted like file values (validate_default).
    normal_strength: PositivePressure = Field(
        "50 MPa",
        validate_default=True,
        description="cohesive strength of the foil/layer interface in opening",
    )
    shear_strength: PositivePressure = Field(
        "50 MPa",
        validate_default=True,
        description="cohesive strength of the foil/layer interface in shear",
    )
    averaging_length: PositiveLength = Field(
        "1 um",
        validate_default=True,
        description="length over which interface tractions are averaged when reported",
    )
    # The cohesive zone (solver/physics/cohesive.py): bilinear, mixed mode (Benzeggagh-Kenane).
    mode_I_fracture_energy: Annotated[float, SIQuantity("fracture energy", positive=True)] = \
        Field("25 J/m^2", validate_default=True,
              description="cohesive zone: fracture energy in opening (polyimide/Cu intrinsic "
              "adhesion 25-30 J/m^2, DOMAIN.md)")
    mode_II_fracture_energy: Annotated[float, SIQuantity("fracture energy", positive=True)] = \
        Field("25 J/m^2", validate_default=True,
              description="cohesive zone: fracture energy in shear (a placeholder: no data)")
    bk_exponent: float = Field(
        2.0, gt=0, description="cohesive zone: Benzeggagh-Kenane mixed-mode exponent eta")
    penalty_stiffness: Annotated[float, SIQuantity("stiffness per area", positive=True)] = \
        Field("1e16 Pa/m", validate_default=True,
              description="cohesive zone: initial stiffness K of the bonded interface (and the "
              "contact penalty in compression)")
    viscosity: Annotated[float, SIQuantity("time")] = Field(
        "0 s", validate_default=True, ge=0,
        description="cohesive zone: viscous regularization time of the damage (0: none)")
    friction_coefficient: float = Field(
        0.0, ge=0, description="cohesive zone: Coulomb friction coefficient mu_f of the damaged "
        "interface in contact (0: frictionless; docs/pulloff.md)")


class SolverSettings(Table):
    degree: Literal[1, 2] = Field(
        2, description="polynomial degree of the displacement element (1 locks when layers bend)"
    )
    geometry_degree: Literal[1, 2] = Field(
        1, description="polynomial degree of the mesh geometry: 2 curves the element edges "
        "onto curved outlines and interfaces (gmsh setOrder(2) and its high-order "
        "optimization)")

    @model_validator(mode="after")
    def _check_geometry_degree(self) -> "SolverSettings":
        if self.geometry_degree > self.degree:
            raise rule_broken(
                "geometry_degree", f"must not exceed degree ({self.degree}): the displacement "
                "is written at the geometry's degree")
        return self
    temperature_increment: PositiveTemperatureDifference = Field(
        "10 K", validate_default=True, description="largest temperature change in one time step"
    )
    rtol: float = Field(1e-12, gt=0, lt=1, description="relative tolerance of the linear solver")
    hold_steps: int = Field(
        16, ge=1, description="time steps per hold, growing geometrically, where a material "
        "has a history (plastic, viscoelastic); elastic cases take one step per hold"
    )
    time_error_tolerance: float = Field(
        1e-3, ge=0, lt=1,
        description="largest estimated local time-integration error of a hold step of a "
        "viscoelastic material, relative to its largest stress: hold steps are cut into "
        "sub-steps that keep it (0: off, the steps of the schedule only)"
    )


class MixSection(Table):
    """[mix]: the mix layer's composition, homogenized into its material's E, nu and CTE."""

    material: str = Field(
        "mix", description="the material whose E, nu and CTE the composition replaces")
    binder: str = Field("polyimide", description="binder material: the matrix")
    active: str = Field("silicon", description="material of the active particles")
    active_fraction: float = Field(
        gt=0, lt=1, description="volume fraction of active particles in the layer")
    conductive: str | None = Field(
        None, description="material of the conductive powder, if any (e.g. copper)")
    conductive_fraction: float = Field(
        0.0, ge=0, lt=1, description="volume fraction of conductive powder in the layer")
    porosity: float = Field(0.0, ge=0, lt=1, description="volume fraction of pores in the layer")
    scheme: Literal["mori-tanaka"] = Field(
        "mori-tanaka",
        description="homogenization scheme: Mori-Tanaka, spheres in the binder; the "
        "Hashin-Shtrikman bounds are reported with it",
    )

    @model_validator(mode="after")
    def _check_fractions(self) -> "MixSection":
        if (self.conductive is None) != (self.conductive_fraction == 0):
            raise rule_broken(
                "conductive_fraction",
                "give conductive and a positive conductive_fraction together, or neither")
        taken = self.active_fraction + self.conductive_fraction + self.porosity
        if taken >= 1:
            raise rule_broken(
                "active_fraction",
                f"active_fraction + conductive_fraction + porosity = {taken:g} leaves no "
                "volume for the binder",
            )
        return self


class CaseFile(Table):
    """The whole case file as written, validated."""

    case: CaseSection = Field(description="what the case is")
    geometry: GeometrySchema = Field(description="the shape to mesh")
    materials: dict[str, MaterialOverride] = Field(
        default_factory=dict,
        description="[materials.NAME] tables: override library values or define materials",
    )
    schedule: Schedule = Field(description="the heat treatment")
    interface: Interface = Field(default_factory=Interface, description="the foil/layer interface")
    solver: SolverSettings = Field(default_factory=SolverSettings, description="numerics")
    kinetics: KineticsSection = Field(
        default_factory=KineticsSection,
        description="process kinetics: the patents' checks and the process eigenstrains",
    )
    furnace: FurnaceSection | None = Field(
        None,
        description="optional furnace-scale heat transfer in an electrode roll or stack: the "
        "unit cell follows the temperature history of one position in it",
    )
    mix: MixSection | None = Field(
        None,
        description="optional composition of the mix layer: its material's E, nu and CTE "
        "are computed from it (solver/materials/homogenization.py) instead of taken from the "
        "library",
    )
    pulloff: PulloffSection | None = Field(
        None,
        description="optional virtual pull-off test after the schedule (sinter pulloff, "
        "solver/stages/pulloff.py, docs/pulloff.md)",
    )
    swelling: SwellingSection | None = Field(
        None,
        description="optional lithiation after the schedule, from the sintered state "
        "(solver/physics/swelling.py, docs/swelling.md)",
    )

    _resolved_materials: dict[str, Material] = PrivateAttr(default_factory=dict)
    _mix_properties: dict[str, float] | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _check_across_tables(self) -> "CaseFile":
        dim = self.case.dim
        problem = geometry_kind(self).dim_problem(self.geometry, dim)
        if problem is not None:
            raise rule_broken(*problem)
        if dim == 3 and "plane" in self.case.model_fields_set:
            raise rule_broken("case.plane", "plane is only used in 2D (case.dim = 2)")
        self._resolved_materials = _resolve_materials(self.materials)
        if self.mix is not None:
            self._mix_properties = _homogenize_mix(self.mix, self.materials,
                                                   self._resolved_materials)
        for key, name in self.geometry.material_keys():
            if name not in self._resolved_materials:
                raise rule_broken(
                    f"geometry.{key}",
                    f"unknown material '{name}'; known: {', '.join(self._resolved_materials)}",
                )
        for process in ("curing", "densification"):
            for index, name in enumerate(getattr(self.kinetics, process).materials):
                if name not in self._resolved_materials:
                    raise rule_broken(
                        f"kinetics.{process}.materials[{index}]",
                        f"unknown material '{name}'; known: "
                        f"{', '.join(self._resolved_materials)}",
                    )
        if self.swelling is not None:
            used = list(dict.fromkeys(name for _, name in self.geometry.material_keys()))
            problem = self.swelling.material_problem(self._resolved_materials, used)
            if problem is not None:
                raise rule_broken(f"swelling.{problem[0]}", problem[1])
        return self


def _homogenize_mix(
    mix: MixSection, overrides: dict[str, MaterialOverride], materials: dict[str, Material]
) -> dict[str, float]:
    """Replace the mix material's E, nu and CTE in `materials` by the composition's
    Mori-Tanaka values; return everything computed (for the summary)."""
    for key in ("material", "binder", "active", "conductive"):
        name = getattr(mix, key)
        if name is not None and name not in materials:
            raise rule_broken(
                f"mix.{key}", f"unknown material '{name}'; known: {', '.join(materials)}")
    typed = overrides.get(mix.material)
    typed_keys = typed.model_fields_set & set(MECHANICAL_KEYS) if typed is not None else set()
    if typed_keys:
        raise rule_broken(
            f"materials.{mix.material}.{sorted(typed_keys)[0]}",
            "is computed from [mix]; leave it out, or remove [mix] to give it by hand",
        )
    for key in ("binder", "active", "conductive"):
        name = getattr(mix, key)
        if name is not None and materials[name].is_tabulated(*MECHANICAL_KEYS):
            raise rule_broken(f"mix.{key}", f"'{name}' has a temperature table for E, nu or "
                               "the CTE; the homogenization takes constant values")
    properties = mix_properties(
        materials[mix.binder], materials[mix.active], mix.active_fraction,
        materials[mix.conductive] if mix.conductive else None, mix.conductive_fraction,
        mix.porosity,
    )
    composition = (f"binder {mix.binder} {properties['binder_fraction']:.3g}, active "
                   f"{mix.active} {mix.active_fraction:.3g}"
                   + (f", conductive {mix.conductive} {mix.conductive_fraction:.3g}"
                      if mix.conductive else "")
                   + f", porosity {mix.porosity:.3g}")
    materials[mix.material] = materials[mix.material].model_copy(update={
        key: properties[key] for key in MECHANICAL_KEYS
    } | {"source": f"{mix.scheme} homogenization of [mix] ({composition} by volume); other "
                   f"values: {materials[mix.material].source}"})
    return properties


def _resolve_materials(overrides: dict[str, MaterialOverride]) -> dict[str, Material]:
    """The library with the case file's [materials.NAME] tables merged in key by key."""
    materials = library()
    for name, override in overrides.items():
        given = override.model_dump(exclude_unset=True)
        # a dump turns temperature tables into dicts: keep the tables themselves
        given.update({key: getattr(override, key) for key in override.model_fields_set
                      if isinstance(getattr(override, key), TemperatureTable)})
        base = materials.get(name)
        # behaviour parameters merge key by key too, over the library's (or the defaults)
        for key, table in (("plasticity", Plasticity), ("viscoelasticity", Viscoelasticity)):
            if key in given:
                below = getattr(base, key, None) if base is not None else None
                merged = {**(below.model_dump() if below is not None else {}), **given[key]}
                given[key] = table.model_validate(merged)
        if base is not None:
            overridden = [key for key in given if key != "source"]
            source = given.pop("source", None) or (
                f"{base.source} [case file overrides: {', '.join(overridden)}]"
            )
            # The values are validated SI floats already: a copy need not revalidate them.
            materials[name] = base.model_copy(update={**given, "source": source})
            _check_expansion(name, materials[name])
            continue
        for key in MECHANICAL_KEYS:
            if key not in given:
                raise rule_broken(
                    f"materials.{name}.{key}",
                    f"required: '{name}' is not in the library, so the case file must give "
                    f"{', '.join(MECHANICAL_KEYS)} (library: {', '.join(library())})",
                )
        given.setdefault("source", "defined in the case file")
        _check_expansion(name, Material.model_construct(name=name, **given))
        materials[name] = Material(name=name, **given)
    return materials


def _check_expansion(name: str, material: Material):
    problem = expansion_problem(material)
    if problem is not None:
        raise rule_broken(f"materials.{name}.{problem[0]}", problem[1])


@dataclass(frozen=True)
class Case:
    """A validated case, ready to run: SI floats throughout."""

    case: CaseSection
    geometry: Any  # the schema of its kind (solver/geometry/registry.py)
    materials: dict[str, Material]  # the library merged with the case file's overrides
    schedule: Schedule
    interface: Interface
    solver: SolverSettings
    kinetics: KineticsSection
    furnace: FurnaceSection | None
    source: Path  # the case file
    raw: dict[str, Any]  # the parsed TOML, as written
    text: str = ""  # the case file's text, kept with the results
    mix_properties: dict[str, float] | None = None  # what [mix] computed, if given
    swelling: SwellingSection | None = None  # lithiation after the schedule, if given
    pulloff: PulloffSection | None = None  # the virtual pull-off test, if given

    def materials_used(self) -> list[str]:
        """Names of the materials the geometry refers to, in order of first use."""
        return list(dict.fromkeys(name for _, name in self.geometry.material_keys()))


def load_case(path: str | Path) -> Case:
    """Read, validate and resolve a case file; any problem is one CaseError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CaseError(path, "(file)", f"cannot read the case file: {error}") from None
    return load_case_text(text, file=path)


def load_case_text(text: str, *, file: str | Path = "<case>") -> Case:
    """Validate case-file text; `file` names it in messages and becomes `Case.source`."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise CaseError(file, "(TOML syntax)", str(error)) from None
    try:
        validated = CaseFile.model_validate(raw)
    except ValidationError as error:
        raise _case_error(error, file) from None
    return Case(
        case=validated.case,
        geometry=validated.geometry,
        materials=validated._resolved_materials,
        schedule=validated.schedule,
        interface=validated.interface,
        solver=validated.solver,
        kinetics=validated.kinetics,
        furnace=validated.furnace,
        source=Path(file),
        raw=raw,
        text=text,
        mix_properties=validated._mix_properties,
        swelling=validated.swelling,
        pulloff=validated.pulloff,
    )


# --- From pydantic's errors to the user's keys --------------------------------------------


@dataclass
class _Location:
    key: str  # as the user writes it: geometry.layers[1].thickness
    owner: type[BaseModel] | None  # the table the last key belongs to
    annotation: Any  # what is expected at the key
    metadata: list[Any]  # Annotated metadata of that (SIQuantity, ...)
    field: FieldInfo | None


def _unwrap(annotation: Any) -> tuple[Any, list[Any]]:
    """The annotation without Annotated and `| None`, and the Annotated metadata."""
    metadata: list[Any] = []
    while True:
        if typing.get_origin(annotation) is Annotated:
            annotation, *extra = typing.get_args(annotation)
            metadata.extend(extra)
        elif _is_union(annotation) and type(None) in typing.get_args(annotation):
            # `X | None`; the schema's only optional union of several types is a property
            # that may be a temperature table, described by its SIQuantity metadata
            rest = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            annotation = rest[0] if len(rest) == 1 else Union[tuple(rest)]  # noqa: UP007
        else:
            return annotation, metadata


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (Union, types.UnionType)


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _members_by_tag(union: Any, discriminator: str | None) -> dict[str, type[BaseModel]]:
    """The models of a tagged union by tag: a Tag annotation, or the discriminator field."""
    members = {}
    for member in typing.get_args(union):
        model, metadata = _unwrap(member)
        tags = [item.tag for item in metadata if isinstance(item, Tag)]
        if not tags and discriminator:
            tags = list(typing.get_args(model.model_fields[discriminator].annotation))
        members.update(dict.fromkeys(tags, model))
    return members


def _locate(loc: Sequence[str | int]) -> _Location:
    """Follow a pydantic error location through the schema, dropping union tags."""
    key = ""
    owner: type[BaseModel] | None = None
    node: Any = CaseFile
    metadata: list[Any] = []
    field: FieldInfo | None = None
    discriminator: str | None = None
    for part in loc:
        node, extra = _unwrap(node)
        metadata += extra
        if _is_union(node):
            # pydantic names the union member it tried; the user never wrote that tag.
            node = _members_by_tag(node, discriminator).get(str(part))
            discriminator = None
            continue
        if isinstance(part, int):
            key += f"[{part}]"
            node = typing.get_args(node)[0] if typing.get_origin(node) is list else None
        else:
            key = f"{key}.{part}" if key else part
            if _is_model(node):
                owner, field = node, node.model_fields.get(part)
                node = field.annotation if field else None
                metadata = list(field.metadata) if field else []
                discriminator = field.discriminator if field else None
                continue
            node = typing.get_args(node)[1] if typing.get_origin(node) is dict else None
        metadata, field = [], None
    node, extra = _unwrap(node)
    return _Location(key, owner, node, metadata + extra, field)


def _show(value: Any) -> str:
    return f"'{value}'" if isinstance(value, str) else repr(value)


def _what(annotation: Any, metadata: list[Any]) -> str:
    """What a key expects, as a user reads it: "a length (e.g. '2 um')", "2 or 3", ..."""
    for item in metadata:
        if isinstance(item, SIQuantity) and item.kind is None:  # a number (or its table)
            return "a number"
        if isinstance(item, SIQuantity):
            kind = KINDS[item.kind]
            adjective = "positive " if item.positive else ""
            return f"a {adjective}{kind.noun} (e.g. '{kind.example}')"
    if typing.get_origin(annotation) is Literal:
        return " or ".join(_show(value) for value in typing.get_args(annotation))
    if _is_union(annotation):
        return f"a table with kind = {' or '.join(map(_show, _members_by_tag(annotation, 'kind')))}"
    if _is_model(annotation) or typing.get_origin(annotation) is dict:
        return "a table"
    if typing.get_origin(annotation) is list:
        return "a list"
    names = {str: "a string", float: "a number", int: "an integer", bool: "true or false"}
    return names.get(annotation, "a value")


def _describe(error: Any) -> tuple[str, str]:
    """(key path, message) for one pydantic error."""
    where = _locate(error["loc"])
    kind, context = error["type"], error.get("ctx", {})
    got = _show(error.get("input"))
    if kind == "case_rule":
        key = f"{where.key}.{context['key']}" if where.key else context["key"]
        return key, context["message"]
    if kind == "extra_forbidden":
        known = ", ".join(where.owner.model_fields) if where.owner else ""
        return where.key, f"unknown key; known keys here: {known}"
    if kind == "missing":
        expected = _what(where.annotation, where.metadata)
        about = f" ({where.field.description})" if where.field and where.field.description else ""
        return where.key, f"required key is missing: expected {expected}{about}"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tag_key = f"{where.key}.{context['discriminator'].strip(chr(39))}"
        expected = _what(where.annotation, where.metadata).removeprefix("a table with kind = ")
        if kind == "union_tag_not_found":
            return tag_key, f"required key is missing: expected {expected}"
        return tag_key, f"expected {expected}, got {_show(context['tag'])}"
    if kind == "quantity" or kind == "range":
        return where.key, error["msg"]
    if kind == "too_short":
        return where.key, f"expected at least {context['min_length']} entry, got none"
    if kind == "string_too_short":
        return where.key, "expected a non-empty string"
    if kind == "greater_than":
        return where.key, f"expected a number greater than {context['gt']}, got {got}"
    if kind.endswith("_type") or kind.endswith("_parsing") or kind == "literal_error":
        return where.key, f"expected {_what(where.annotation, where.metadata)}, got {got}"
    return where.key, f"{error['msg']}, got {got}"


def _case_error(error: ValidationError, file: str | Path) -> CaseError:
    """One CaseError for a ValidationError: its first problem, and how many more there are.

    An unknown key comes first: a misspelt key also makes the intended one "missing", and
    the misspelling is what the user has to fix.
    """
    problems = sorted(error.errors(), key=lambda problem: problem["type"] != "extra_forbidden")
    key, message = _describe(problems[0])
    if len(problems) > 1:
        message += f" (and {len(problems) - 1} more problem{'s' * (len(problems) > 2)})"
    return CaseError(file, key or "(top level)", message)


# --- The keys table for docs/case-keys.md --------------------------------------------------


def _default_text(field: FieldInfo, metadata: list[Any]) -> str:
    extra = field.json_schema_extra
    if isinstance(extra, dict) and "default_text" in extra:
        return str(extra["default_text"])
    if field.default_factory is not None:
        return "(table)"
    if field.default is PydanticUndefined:
        return "required"
    if field.default is None:
        return "-"
    if isinstance(field.default, str) and not any(isinstance(m, SIQuantity) for m in metadata):
        return f'`"{field.default}"`'  # as it is written in TOML
    return f"`{field.default}`"


def _unit_text(annotation: Any, metadata: list[Any]) -> str:
    for item in metadata:
        if isinstance(item, SIQuantity) and item.kind is None:  # a number (or its table)
            return "number"
        if isinstance(item, SIQuantity):
            kind = KINDS[item.kind]
            return f"{kind.noun} [{kind.si_unit}], e.g. `{kind.example}`"
    if typing.get_origin(annotation) is Literal:
        return " \\| ".join(f"`{json.dumps(value)}`" for value in typing.get_args(annotation))
    return _what(annotation, metadata).removeprefix("a ").removeprefix("an ")


def _key_rows(model: type[BaseModel], prefix: str, note: str = "") -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        key = f"{prefix}.{name}" if prefix else name
        annotation, metadata = _unwrap(field.annotation)
        metadata += field.metadata
        if typing.get_origin(annotation) in (list, dict):
            item, item_metadata = _unwrap(typing.get_args(annotation)[-1])
            inner = f"{key}[]" if typing.get_origin(annotation) is list else f"{key}.NAME"
            if _is_union(item) or _is_model(item):
                rows += _union_rows(item, inner, field.discriminator, note)
                continue
        if _is_model(annotation) or (_is_union(annotation) and any(
                _is_model(member) for member in typing.get_args(annotation))):
            rows += _union_rows(annotation, key, field.discriminator, note)
            continue
        cells = [
            f"`{key}`",
            _unit_text(annotation, metadata),
            _default_text(field, metadata),
            f"{note}{field.description or ''}",
        ]
        rows.append(f"| {' | '.join(cells)} |")
    return rows


def _union_rows(annotation: Any, key: str, discriminator: str | None, note: str) -> list[str]:
    if _is_model(annotation):
        return _key_rows(annotation, key, note)
    rows = []
    for tag, model in _members_by_tag(annotation, discriminator).items():
        rows += _key_rows(model, key, f"{note}({tag}) ")
    return rows


def keys_table_markdown() -> str:
    """A Markdown table of every case-file key, generated from the schema."""
    header = [
        "| key | unit kind | default | meaning |",
        "|---|---|---|---|",
    ]
    return "\n".join(header + _key_rows(CaseFile, "")) + "\n"
