"""[materials.NAME] and [mix]: the case file's changes to the material library.

A [materials.NAME] table overrides a library entry (solver/materials/materials.toml) key by
key or defines a material; [mix] computes the mix material's E, nu and CTE from its
composition (solver/materials/homogenization.py).
"""

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from solver.case.tables import Table, rule_broken
from solver.case.units import SI_VALUES, SIQuantity
from solver.materials.behaviour import Behaviour, Plasticity, Viscoelasticity
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
    library,
    material_problem,
)


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
    placeholders: tuple[str, ...] | None = Field(
        None, description=Material.model_fields["placeholders"].description,
        json_schema_extra={"default_text": "the library's, less the keys the case gives"})



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



def resolve_materials(overrides: dict[str, MaterialOverride]) -> dict[str, Material]:
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
                given[key] = table.model_validate(merged, context=SI_VALUES)
        if base is not None:
            overridden = [key for key in given if key != "source"]
            given.setdefault("placeholders", tuple(
                key for key in base.placeholders if key not in given))
            source = given.pop("source", None) or (
                f"{base.source} [case file overrides: {', '.join(overridden)}]"
            )
            # The values are validated SI floats already: a copy need not revalidate them.
            materials[name] = base.model_copy(update={**given, "source": source})
            _check_material(name, materials[name])
            continue
        for key in MECHANICAL_KEYS:
            if key not in given:
                raise rule_broken(
                    f"materials.{name}.{key}",
                    f"required: '{name}' is not in the library, so the case file must give "
                    f"{', '.join(MECHANICAL_KEYS)} (library: {', '.join(library())})",
                )
        given.setdefault("source", "defined in the case file")
        _check_material(name, Material.model_construct(name=name, **given))
        materials[name] = Material.model_validate({"name": name, **given}, context=SI_VALUES)
    return {name: _with_behaviour_parameters(material) for name, material in materials.items()}


def _with_behaviour_parameters(material: Material) -> Material:
    """The material with the default parameters of its behaviour where it gives none, so
    that the resolved case shows every value the run uses."""
    for behaviour, key, table in (("plastic", "plasticity", Plasticity),
                                  ("viscoelastic", "viscoelasticity", Viscoelasticity)):
        if material.behaviour == behaviour and getattr(material, key) is None:
            return material.model_copy(update={key: table()})
    return material


def _check_material(name: str, material: Material):
    problem = material_problem(material)
    if problem is not None:
        raise rule_broken(f"materials.{name}.{problem[0]}", problem[1])



def homogenize_mix(
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
    base = materials[mix.material]
    materials[mix.material] = base.model_copy(update={
        key: properties[key] for key in MECHANICAL_KEYS
    } | {"source": f"{mix.scheme} homogenization of [mix] ({composition} by volume)"
                   f"{OTHER_VALUES}{base.source}",
         "placeholders": tuple(key for key in base.placeholders if key not in MECHANICAL_KEYS)})
    return properties


# Between the homogenized source of a [mix] material and the source of its other values.
OTHER_VALUES = "; other values: "


def source_before_mix(source: str) -> str:
    """The source a [mix] material had before the homogenization (homogenize_mix)."""
    return source.split(OTHER_VALUES, 1)[1]

