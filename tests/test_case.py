"""Case files: units, the material library, and one clear error per bad file."""

from pathlib import Path

import pytest

from solver.case import load_case, load_case_text
from solver.case.keys_doc import keys_table_markdown
from solver.case.units import parse_quantity
from solver.errors import CaseError
from solver.materials.library import library

REPO = Path(__file__).resolve().parents[1]
BILAYER = REPO / "cases" / "bilayer-cu-pi.toml"
BILAYER_TEXT = BILAYER.read_text()

RECURVED = """
[case]
name = "recurved"

[geometry]
kind = "recurved"
pitch = "20 um"
foil_thickness = "18 um"
neck_width = "4 um"
head_width = "8 um"
height = "10 um"
mix_thickness = "30 um"
mesh_size = "1 um"

[schedule]
start = "400 degC"
steps = [ { hold = "1 h" }, { to = "25 degC", rate = "5 K/min" } ]
"""


def case_error(text: str) -> CaseError:
    with pytest.raises(CaseError) as raised:
        load_case_text(text, file="cases/x.toml")
    assert "\n" not in str(raised.value)
    assert str(raised.value).startswith(f"cases/x.toml: {raised.value.key}: ")
    return raised.value


def test_shipped_bilayer_loads_in_si():
    case = load_case(BILAYER)
    assert case.source == BILAYER
    assert case.case.name == "bilayer-cu-pi" and case.case.dim == 2
    assert case.case.plane == "strain"
    assert case.geometry.length == pytest.approx(400e-6)
    assert case.geometry.layers[0].thickness == pytest.approx(18e-6)
    assert case.geometry.layers[1].thickness == pytest.approx(20e-6)
    assert case.geometry.mesh_size == pytest.approx(2e-6)
    assert case.schedule.start == pytest.approx(673.15)
    assert case.schedule.steps[0].to == pytest.approx(298.15)
    assert case.schedule.steps[0].rate == pytest.approx(5 / 60)
    assert case.materials["copper"].youngs_modulus == pytest.approx(120e9)
    assert case.materials["polyimide"].thermal_expansion == pytest.approx(40e-6)
    assert case.materials_used() == ["copper", "polyimide"]
    assert case.raw["geometry"]["length"] == "400 um"
    # Defaults come from the models.
    assert case.interface.normal_strength == pytest.approx(50e6)
    assert case.interface.averaging_length == pytest.approx(1e-6)
    assert case.solver.degree == 2
    assert case.solver.temperature_increment == pytest.approx(10.0)


def test_schedule_segments_and_temperature_history():
    schedule = load_case_text(RECURVED).schedule
    hold, cooling = schedule.segments()
    assert hold == ("hold", pytest.approx(3600.0), 673.15, 673.15)
    assert cooling.kind == "ramp" and cooling.duration == pytest.approx(375 / (5 / 60))
    assert schedule.end_temperature == pytest.approx(298.15)
    end = 3600.0 + cooling.duration
    temperatures = schedule.temperature_at(
        [0.0, 3600.0, 3600.0 + cooling.duration / 2, end, 2 * end]
    )
    assert temperatures == pytest.approx([673.15, 673.15, 485.65, 298.15, 298.15])


@pytest.mark.parametrize(
    ("value", "dimension", "si"),
    [
        ("10 h", "time", 36000.0),
        ("18 um", "length", 18e-6),
        ("400 degC", "temperature", 673.15),
        ("300 K", "temperature", 300.0),
        ("25 K", "temperature difference", 25.0),
        ("25 delta_degC", "temperature difference", 25.0),
        ("5 K/min", "heating rate", 5 / 60),
        ("5 degC/min", "heating rate", 5 / 60),
        ("120 GPa", "pressure", 120e9),
        ("17e-6 1/K", "thermal expansion coefficient", 17e-6),
        (2e-6, "length", 2e-6),
    ],
)
def test_quantities_convert_to_si(value, dimension, si):
    assert parse_quantity(value, dimension, key="k", file="f.toml") == pytest.approx(si)


@pytest.mark.parametrize(
    ("value", "dimension"),
    [
        ("2 GPa", "length"),
        ("25 delta_degC", "temperature"),
        ("25 degC", "temperature difference"),
        ("5 blorbs", "length"),
        ("um", "length"),
        (True, "length"),
    ],
)
def test_quantity_of_the_wrong_kind_names_the_key(value, dimension):
    with pytest.raises(CaseError, match=rf"^f\.toml: a\.b: expected a {dimension} \(e\.g\. '"):
        parse_quantity(value, dimension, key="a.b", file="f.toml")


def test_recurved_defaults_derive_from_other_keys():
    geometry = load_case_text(RECURVED).geometry
    assert geometry.neck_height == pytest.approx(0.4 * 10e-6)
    assert geometry.fillet_radius == pytest.approx(0.25 * 4e-6)
    assert geometry.interface_mesh_size == pytest.approx(1e-6 / 3)
    assert geometry.foil_material == "copper" and geometry.mix_material == "mix"


def test_override_changes_only_the_keys_given():
    text = BILAYER_TEXT.replace(
        "[materials.polyimide]", '[materials.silicon]\nyoungs_modulus = "130 GPa"\n\n[materials.pi]'
    )
    case = load_case_text(text.replace('material = "polyimide"', 'material = "pi"'))
    silicon, built_in = case.materials["silicon"], library()["silicon"]
    assert silicon.youngs_modulus == pytest.approx(130e9)
    assert silicon.poisson_ratio == built_in.poisson_ratio
    assert silicon.thermal_expansion == built_in.thermal_expansion
    assert silicon.density == built_in.density
    assert "youngs_modulus" in silicon.source
    assert case.materials["pi"].density is None  # a new material: thermal data not given
    assert library()["silicon"].youngs_modulus == pytest.approx(160e9)  # library untouched


def test_library_has_every_material_with_a_source():
    materials = library()
    assert set(materials) == {"copper", "silicon", "amorphous_silicon", "polyimide", "pvdf", "mix",
                              "silicon_alloy_film", "complex_oxide_film", "carbon_film",
                              "lithium"}
    assert all(material.source for material in materials.values())
    # the sources cite the literature, not a file outside the repository
    assert not [name for name, material in materials.items() if ".md" in material.source]
    assert "placeholder" in materials["mix"].source.lower()
    assert materials["copper"].thermal_expansion == pytest.approx(17e-6)


def test_repository_stands_alone():
    # docs, comments and sources cite the literature, never a file outside the repository
    text = {".py", ".toml", ".md", ".txt", ".json", ".yaml", ".cfg", ".sh", ""}
    files = [REPO / "README.md", REPO / "Makefile", REPO / "pyproject.toml"]
    for folder in ("solver", "docs", "cases", "tests", "bench", "meshes", "bin"):
        files += [path for path in (REPO / folder).rglob("*") if path.suffix in text
                  and "__pycache__" not in path.parts]
    outside = ("DOMAIN" + ".md", "shared" + "/", "SLURM" + ".md", "TOOLCHAIN" + ".md")
    found = [f"{path.relative_to(REPO)}: {word}" for path in files if path.is_file()
             for word in outside if word in path.read_text(errors="replace")]
    assert not found


@pytest.mark.parametrize(
    ("edit", "key", "message"),
    [
        (lambda t: t + "\n[outputs]\nformat = 1\n", "outputs",
         "unknown key; did you mean output?"),
        (lambda t: t + "\n[output]\nformat = 1\n", "output.format",
         "unknown key; did you mean formats?"),
        (lambda t: t + "\n[output]\ncolour = 1\n", "output.colour",
         "unknown key; known keys here: fields, formats, every"),
        (lambda t: t + '\n[output]\nfields = ["displacement", "strain"]\n', "output.fields[1]",
         "expected 'displacement' or 'stress' or"),
        (lambda t: t + '\n[output]\nformats = ["vtk"]\n', "output.formats[0]",
         "expected 'xdmf' or 'vtx', got 'vtk'"),
        (lambda t: t + '\n[output]\nat_times = ["30 min", "100 h"]\n', "output.at_times[1]",
         "after the end of the schedule (4500 s)"),
        (lambda t: t + '\n[output]\nat_temperatures = ["500 degC"]\n',
         "output.at_temperatures[0]", "the schedule never reaches it"),
        (lambda t: t + '\n[output]\nat_times = ["40 degC"]\n', "output.at_times[0]",
         "expected a time"),
        (
            lambda t: t.replace('mesh_size = "2 um"', 'mesh_size = "2 um"\nmesh_sise = 1'),
            "geometry.mesh_sise",
            "unknown key; did you mean mesh_size?",
        ),
        (
            lambda t: t.replace('"18 um" }', '"18 um", colour = 1 }'),
            "geometry.layers[0].colour",
            "unknown key",
        ),
        (
            lambda t: t.replace('"20 um"', '"20 blorbs"'),
            "geometry.layers[1].thickness",
            "expected a positive length (e.g. '2 um'), got '20 blorbs'",
        ),
        (
            lambda t: t.replace('mesh_size = "2 um"', 'mesh_size = "2 GPa"'),
            "geometry.mesh_size",
            "expected a positive length (e.g. '2 um'), got '2 GPa'",
        ),
        (
            lambda t: t.replace('"20 um"', '"-5 um"'),
            "geometry.layers[1].thickness",
            "expected a positive length (e.g. '2 um'), got '-5 um'",
        ),
        (
            lambda t: t.replace('material = "polyimide"', 'material = "xyz"'),
            "geometry.layers[1].material",
            "unknown material 'xyz'; known: copper, ",
        ),
        (
            lambda t: t.replace('length = "400 um"', "length = 400 um"),
            "(TOML syntax)",
            "line 7",
        ),
        (lambda t: t.replace('name = "bilayer-cu-pi"', ""), "case.name", "required key is missing"),
        (lambda t: t.replace('kind = "layers"', 'kind = "wavy"'), "geometry.kind", "'wavy'"),
        (
            lambda t: t.replace('length = "400 um"', 'length = "400 um"\nwidth = "50 um"'),
            "geometry.width",
            "width is only used in 3D",
        ),
        (lambda t: t.replace("dim = 2", "dim = 3"), "geometry.width", "required in 3D"),
        (lambda t: t.replace("dim = 2", "dim = 4"), "case.dim", "expected 2 or 3, got 4"),
        (
            lambda t: t.replace('youngs_modulus = "2.5 GPa"\n', "").replace(
                "[materials.polyimide]", "[materials.pi]"
            ),
            "materials.pi.youngs_modulus",
            "'pi' is not in the library",
        ),
        (
            lambda t: t.replace(
                'poisson_ratio = 0.34\nthermal_expansion = "40',
                ('poisson_ratio = 0.5\nthermal_expansion = "40'),
            ),
            "materials.polyimide.poisson_ratio",
            "between -1 and 0.5",
        ),
        (
            lambda t: t.replace('"25 degC"', '"400 degC"'),
            "schedule.steps[0].to",
            "a ramp must change the temperature",
        ),
        (
            lambda t: t.replace('rate = "5 K/min" }', 'rate = "5 K/min", hold = "1 h" }'),
            "schedule.steps[0]",
            "expected a ramp { to = ..., rate = ... } or a hold { hold = ... }",
        ),
        (
            lambda t: t.replace('"5 K/min"', '"5 degC"'),
            "schedule.steps[0].rate",
            "expected a positive heating rate",
        ),
        (
            lambda t: t + '\n[solver]\ntemperature_increment = "10 degC"\n',
            "solver.temperature_increment",
            "which is an absolute temperature",
        ),
    ],
)
def test_bad_case_gives_one_error_naming_the_key(edit, key, message):
    error = case_error(edit(BILAYER_TEXT))
    assert error.key == key
    assert message in error.expected


@pytest.mark.parametrize(
    ("edit", "key", "message"),
    [
        (lambda t: t.replace('start = "400 degC"', "start = 400"), "schedule.start",
         "400 is 400 K (126.85 degC) or 400 degC (673.15 K): give the unit, e.g. '400 degC' "
         "or '400 K'"),
        (lambda t: t.replace('to = "25 degC"', "to = 25.5"), "schedule.steps[0].to",
         "25.5 is 25.5 K (-247.65 degC) or 25.5 degC (298.65 K): give the unit"),
        (lambda t: t.replace('youngs_modulus = "2.5 GPa"', 'youngs_modulus = { temperatures = '
                             '["23 degC", 200], values = ["2.5 GPa", "2 GPa"] }'),
         "materials.polyimide.youngs_modulus",
         "temperatures[1]: 200 is 200 K (-73.15 degC) or 200 degC (473.15 K)"),
        (lambda t: t + "\n[output]\nat_temperatures = [300]\n", "output.at_temperatures[0]",
         "300 is 300 K (26.85 degC) or 300 degC (573.15 K)"),
        (lambda t: t + '\n[materials.copper.plasticity]\nrecrystallization_temperature = 450\n',
         "materials.copper.plasticity.recrystallization_temperature", "450 is 450 K"),
    ],
)
def test_bare_temperature_is_refused_naming_both_readings(edit, key, message):
    error = case_error(edit(BILAYER_TEXT))
    assert error.key == key
    assert message in error.expected


def test_temperature_difference_may_be_a_bare_number():
    # kelvin and degrees Celsius differences are the same size: 5 means 5 K
    case = load_case_text(BILAYER_TEXT + "\n[solver]\ntemperature_increment = 5\n")
    assert case.solver.temperature_increment == 5.0


def test_plastic_override_merges_over_defaults_in_si():
    # the override's validated values (SI floats, temperatures in K) merge over the
    # defaults and are validated again as SI, not refused as bare temperatures
    case = load_case_text(BILAYER_TEXT.replace("[materials.polyimide]", (
        'behaviour = "plastic"\n\n[materials.copper.plasticity]\n'
        'temperatures = ["25 degC", "300 degC"]\n\n[materials.polyimide]')))
    plasticity = case.materials["copper"].plasticity
    assert plasticity.temperatures == pytest.approx([298.15, 573.15])
    assert plasticity.recrystallization_temperature == pytest.approx(453.15)


def test_every_problem_is_listed_on_its_own_line():
    text = (BILAYER_TEXT.replace('mesh_size = "2 um"', 'mesh_sise = "2 um"')
            .replace('"20 um"', '"-5 um"').replace('start = "400 degC"', "start = 400")
            .replace("[case]", "[case]\ncolour = 1"))
    with pytest.raises(CaseError) as raised:
        load_case_text(text, file="cases/x.toml")
    # unknown keys first; mesh_size, the suggestion, is not also reported missing
    assert str(raised.value).splitlines() == [
        "cases/x.toml: case.colour: unknown key; known keys here: name, dim, plane, "
        "description",
        "cases/x.toml: geometry.mesh_sise: unknown key; did you mean mesh_size?",
        "cases/x.toml: geometry.layers[1].thickness: expected a positive length (e.g. '2 um'), "
        "got '-5 um'",
        "cases/x.toml: schedule.start: 400 is 400 K (126.85 degC) or 400 degC (673.15 K): give "
        "the unit, e.g. '400 degC' or '400 K'",
    ]
    assert raised.value.key == "case.colour" and len(raised.value.problems) == 4


def test_at_most_twenty_problems_are_listed():
    text = BILAYER_TEXT + "\n[output]\n" + "".join(f"zz{i} = 1\n" for i in range(25))
    with pytest.raises(CaseError) as raised:
        load_case_text(text, file="cases/x.toml")
    lines = str(raised.value).splitlines()
    assert len(lines) == 21
    assert lines[0].startswith("cases/x.toml: output.zz0: unknown key; known keys here: ")
    assert lines[-1] == "cases/x.toml: and 5 more problems"


def test_recurved_rules_name_the_offending_key():
    error = case_error(RECURVED.replace('head_width = "8 um"', 'head_width = "3 um"'))
    assert error.key == "geometry.head_width"
    assert error.expected == (
        "must be larger than neck_width (4 um) for a recurved projection, got 3 um"
    )
    assert case_error(RECURVED.replace('"30 um"', '"9 um"')).key == "geometry.height"
    error = case_error(RECURVED.replace('name = "recurved"', 'name = "recurved"\ndim = 2')
                       .replace("[schedule]", 'array = "hexagonal"\n[schedule]'))
    assert (error.key, error.expected) == (
        "geometry.array",
        "array is only used in 3D (case.dim = 3)",
    )
    error = case_error(
        RECURVED.replace('foil_material = "copper"', "").replace(
            "[schedule]", 'foil_material = "brass"\n[schedule]'
        )
    )
    assert error.key == "geometry.foil_material"


def test_missing_file_is_a_case_error(tmp_path):
    with pytest.raises(CaseError, match="cannot read"):
        load_case(tmp_path / "absent.toml")


def test_docs_keys_table_is_current():
    table = keys_table_markdown()
    assert "| `geometry.layers[].thickness` | length [m]" in table
    assert table in (REPO / "docs" / "case-keys.md").read_text()
