"""The whole case file: its tables, the rules across them, and the Case the solver runs.

Each table's schema is in its own module (solver/case/schedule.py, materials.py,
interface.py, solver_section.py; the [geometry] kinds in solver/geometry/kinds/, gathered by
solver/geometry/registry.py; the physics' own tables next to their physics). Defaults live
in the models' Fields and nowhere else; quantities are SI floats once validated.
"""

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator
from pydantic_core import PydanticCustomError

from solver.case.interface import Interface
from solver.case.introspect import show
from solver.case.materials import MaterialOverride, MixSection, homogenize_mix, resolve_materials
from solver.case.output_section import OutputSettings
from solver.case.schedule import Schedule, _celsius
from solver.case.solver_section import SolverSettings
from solver.case.tables import Table, rule_broken
from solver.case.units import NotAGeometricLength, SIQuantity
from solver.geometry.registry import GeometrySchema, geometry_kind
from solver.materials.library import Material, used_placeholders
from solver.physics.furnace import FurnaceSection
from solver.physics.kinetics import KineticsSection
from solver.physics.swelling import SwellingSection
from solver.stages.pulloff import PulloffSection

# A case's name becomes file and directory names (results/NAME, a sweep's cases/NAME.toml
# and runs/NAME): letters, digits, '.', '_' and '-', not starting with '.' or '-', so that
# it can neither leave the directory it is put in ('../x', '/x') nor hide in it ('.x').
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


class CaseSection(Table):
    name: str = Field(description="name of the case, used to name its outputs: letters, "
                      "digits, '.', '_' and '-', starting with a letter or a digit, at most "
                      "100 characters")
    dim: Literal[2, 3] = Field(2, description="spatial dimension: 2 (a cross-section) or 3")
    plane: Literal["strain", "generalized"] = Field(
        "strain",
        description="2D only: plane strain, or generalized plane strain (uniform "
        "out-of-plane strain, no net out-of-plane force)",
    )
    description: str = Field("", description="free text describing the case")

    @field_validator("name")
    @classmethod
    def _name_fits_a_file_name(cls, name: str) -> str:
        if NAME.fullmatch(name) is None:
            raise PydanticCustomError(
                "name", "{message}", {"message": "expected a name of letters, digits, '.', '_' "
                                      "and '-' that starts with a letter or a digit (at most 100 "
                                      f"characters: it names the outputs), got {show(name)}"})
        return name


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
    output: OutputSettings = Field(
        default_factory=OutputSettings,
        description="which fields are written, in which formats and when (docs/outputs.md)",
    )

    _resolved_materials: dict[str, Material] = PrivateAttr(default_factory=dict)
    _mix_properties: dict[str, float] | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _check_across_tables(self) -> "CaseFile":
        dim = self.case.dim
        problem = geometry_kind(self).dim_problem(self.geometry, dim)
        if problem is not None:
            raise rule_broken(*problem)
        problem = mesh_size_problem(self.geometry, dim)
        if problem is not None:
            raise rule_broken(*problem)
        if dim == 3 and "plane" in self.case.model_fields_set:
            raise rule_broken("case.plane", "plane is only used in 2D (case.dim = 2)")
        self._resolved_materials = resolve_materials(self.materials)
        if self.mix is not None:
            self._mix_properties = homogenize_mix(self.mix, self.materials,
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
        self._check_output_times()
        if self.swelling is not None:
            used = list(dict.fromkeys(name for _, name in self.geometry.material_keys()))
            problem = self.swelling.material_problem(self._resolved_materials, used)
            if problem is not None:
                raise rule_broken(f"swelling.{problem[0]}", problem[1])
        return self

    def _check_output_times(self):
        """The listed output times and temperatures are on the schedule's way."""
        end = self.schedule.duration + (self.furnace.cool_down if self.furnace else 0.0)
        for index, time in enumerate(self.output.at_times):
            if time > end * (1 + 1e-12):
                raise rule_broken(f"output.at_times[{index}]",
                                  f"after the end of the schedule ({end:g} s)")
        segments = self.schedule.segments()
        lowest = min(min(s.start_temperature, s.end_temperature) for s in segments)
        highest = max(max(s.start_temperature, s.end_temperature) for s in segments)
        for index, temperature in enumerate(self.output.at_temperatures):
            if not lowest - 1e-9 <= temperature <= highest + 1e-9:
                raise rule_broken(f"output.at_temperatures[{index}]",
                                  f"the schedule never reaches it (it runs from "
                                  f"{_celsius(lowest)} to {_celsius(highest)})")


# Elements a mesh may have, at least: far beyond what a case solves here, and a mesh size
# smaller still would have Gmsh allocate until the machine runs out of memory (or refine
# below its geometric tolerance, 1e-8 um) rather than fail with a message.
MAX_ELEMENTS = 5e6


def mesh_size_problem(geometry, dim: int) -> tuple[str, str] | None:
    """(key, why) when a mesh size gives more than MAX_ELEMENTS: the bulk size fills the
    cell, (extent / size)^dim; a refined size (interface_mesh_size, ...) lines the
    interfaces, (extent / size)^(dim - 1), where the extent is the geometry's largest
    length (so the counts are lower bounds)."""
    lengths = dict(_lengths(geometry))
    sizes = {key: value for key, value in lengths.items() if key.endswith("mesh_size")}
    extent = max((value for key, value in lengths.items() if key not in sizes), default=0.0)
    for key, size in sizes.items():
        power = dim if key == "mesh_size" else dim - 1
        # in decades: (extent / size)^power overflows a float for sizes like 1e-300 m
        decades = power * math.log10(extent / size) if extent > size else 0.0
        if decades > math.log10(MAX_ELEMENTS):
            count = f"1e{decades:.0f}" if math.isfinite(decades) else "1e308"
            return (f"geometry.{key}", f"{size * 1e6:g} um gives at least {count} "
                    f"elements over the geometry's {extent * 1e6:g} um (at most "
                    f"{MAX_ELEMENTS:.0e}): a coarser {key}")
    return None


def _lengths(table):
    """(key, value in m) of every length of the geometry a table and its list entries have
    (set ones; not a unit or a tolerance, NotAGeometricLength)."""
    for key, field_info in type(table).model_fields.items():
        value = getattr(table, key)
        metadata = field_info.metadata
        if (value is not None
                and any(isinstance(item, SIQuantity) and item.kind == "length" for item in metadata)
                and not any(isinstance(item, NotAGeometricLength) for item in metadata)):
            yield key, value
        elif isinstance(value, list):
            for index, entry in enumerate(value):
                if isinstance(entry, Table):
                    yield from ((f"{key}[{index}].{name}", length)
                                for name, length in _lengths(entry))


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
    output: OutputSettings = field(default_factory=OutputSettings)  # the fields written
    mix: MixSection | None = None  # the mix layer's composition, if given

    def materials_used(self) -> list[str]:
        """Names of the materials the geometry refers to, in order of first use."""
        return list(dict.fromkeys(name for _, name in self.geometry.material_keys()))

    def materials_behind_results(self) -> list[str]:
        """The materials whose values the results depend on: those of the geometry and
        those a [mix] composition is homogenized from."""
        components = ([self.mix.binder, self.mix.active, self.mix.conductive]
                      if self.mix is not None else [])
        return list(dict.fromkeys(
            [*self.materials_used(), *(name for name in components if name is not None)]))

    def warnings(self) -> list[str]:
        """What a user must know before trusting the results: the placeholder values the
        run uses (solver/materials/materials.toml marks them). One line each."""
        messages = []
        for name in self.materials_behind_results():
            keys = used_placeholders(self.materials[name], swelling=self.swelling is not None,
                                     pulloff=self.pulloff is not None)
            if keys:
                remedy = f"give measured values in [materials.{name}]" + (
                    " or its composition in [mix]" if name == "mix" and self.mix is None else "")
                messages.append(
                    f"material '{name}': {', '.join(keys)} "
                    f"{'is a placeholder' if len(keys) == 1 else 'are placeholders'}, not "
                    f"measured data: {remedy}")
        return messages

