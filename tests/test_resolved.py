"""The resolved case (resolved.toml, `sinter check --show`) and the placeholder warnings."""

import dataclasses
import json

import pytest
from test_cli import SMALL_BILAYER

from solver.case import load_case, load_case_text
from solver.case.resolved import resolved_toml
from solver.cli import main
from solver.errors import CaseError

from conftest import CASES, SHIPPED

# The Case's fields that say where it was read from, not what it is.
PROVENANCE = ("source", "raw", "text")

# SMALL_BILAYER with the library's mix (placeholder values) in place of the polyimide
SMALL_MIX = SMALL_BILAYER.replace('"small-bilayer"', '"small-mix"').replace(
    '"polyimide"', '"mix"')

MIX_WARNING = ("material 'mix': youngs_modulus, poisson_ratio, thermal_expansion are "
               "placeholders, not measured data: give measured values in [materials.mix] or "
               "its composition in [mix]")


def differing_fields(case, again) -> list[str]:
    return [field.name for field in dataclasses.fields(case) if field.name not in PROVENANCE
            and getattr(case, field.name) != getattr(again, field.name)]


@pytest.mark.parametrize("name", SHIPPED)
def test_resolved_case_loads_as_the_same_case(name):
    # every table, material (the [mix] homogenization, plastic and viscoelastic parameters
    # included) and SI value comes back equal, to the last bit
    case = load_case(CASES / name)
    again = load_case_text(resolved_toml(case), file="resolved.toml")
    assert differing_fields(case, again) == []
    assert again.warnings() == case.warnings()


def test_resolved_marks_defaults_units_and_sources():
    text = resolved_toml(load_case(CASES / "bilayer-cu-pi.toml"))
    lines = text.splitlines()
    assert 'start = "673.15 K"  # 400 degC' in lines
    assert 'steps = [{ to = "298.15 K", rate = "0.08333333333333333 K/s" }]' in lines
    assert 'atmosphere = "argon"  # default' in lines
    assert 'temperature_increment = "10.0 K"  # default' in lines
    assert 'normal_strength = "50000000.0 Pa"  # default, 50 MPa' in lines
    # the case file gives copper's modulus; polyimide's density is the library's
    copper = lines[lines.index("[materials.copper]"):]
    assert 'youngs_modulus = "120000000000.0 Pa"  # case file, 120 GPa' in copper
    polyimide = lines[lines.index("[materials.polyimide]"):]
    assert 'density = "1420.0 kg/m^3"  # library: polyimide' in polyimide
    assert any(line.startswith('source = "Polyimide film, DuPont Kapton HN') for line in polyimide)
    # only the materials the case uses or changes
    assert "[materials.silicon]" not in lines


def test_resolved_shows_mix_values_computed_and_placeholders_marked():
    lines = resolved_toml(load_case(CASES / "rough-ra-2d.toml")).splitlines()
    mix = lines[lines.index("[materials.mix]"):]
    assert any(line.startswith("# youngs_modulus = ") and line.endswith("# computed from [mix]")
               for line in mix)
    assert 'density = "1800.0 kg/m^3"  # library: mix, PLACEHOLDER' in mix
    lines = resolved_toml(load_case(CASES / "recurved-2d.toml")).splitlines()
    assert f"# WARNING: {MIX_WARNING}" in lines
    assert 'youngs_modulus = "10000000000.0 Pa"  # library: mix, PLACEHOLDER, 10 GPa' in lines


def test_placeholder_values_give_warnings():
    assert load_case_text(SMALL_MIX).warnings() == [MIX_WARNING]
    # measured values for the mechanical keys: the thermal ones the unit cell does not use
    measured = SMALL_MIX + ('[materials.mix]\nyoungs_modulus = "8 GPa"\npoisson_ratio = 0.3\n'
                            'thermal_expansion = "9e-6 1/K"\n')
    case = load_case_text(measured)
    assert case.warnings() == []
    assert case.materials["mix"].placeholders == ("density", "thermal_conductivity",
                                                  "specific_heat")
    # a case marks its own placeholders
    own = SMALL_MIX.replace('"mix"', '"paste"') + (
        '[materials.paste]\nyoungs_modulus = "8 GPa"\npoisson_ratio = 0.3\n'
        'thermal_expansion = "9e-6 1/K"\nplaceholders = ["poisson_ratio"]\n')
    assert load_case_text(own).warnings() == [
        "material 'paste': poisson_ratio is a placeholder, not measured data: give measured "
        "values in [materials.paste]"]
    with pytest.raises(CaseError, match=r"materials\.paste\.placeholders: 'colour' is not a "):
        load_case_text(own.replace('["poisson_ratio"]', '["colour"]'))
    # the shipped thin-film stack uses the library's estimate for the alloy film
    warnings = load_case(CASES / "thinfilm-stack.toml").warnings()
    assert [message.split(":")[0] for message in warnings] == ["material 'silicon_alloy_film'"]


def test_check_show_prints_the_resolved_case(capsys):
    assert main(["check", str(CASES / "recurved-2d.toml"), "--show"]) == 0
    shown = capsys.readouterr()
    assert shown.out == resolved_toml(load_case(CASES / "recurved-2d.toml"))
    assert MIX_WARNING in shown.err


@pytest.fixture(scope="module")
def mix_runs(tmp_path_factory):
    """SMALL_MIX run by `sinter run`, then its resolved.toml run again: the two results."""
    base = tmp_path_factory.mktemp("resolved")
    (base / "small-mix.toml").write_text(SMALL_MIX)
    first, second = base / "first", base / "second"
    assert main(["run", str(base / "small-mix.toml"), "--out", str(first), "-q"]) == 0
    assert main(["run", str(first / "resolved.toml"), "--out", str(second), "-q"]) == 0
    return first, second


def test_run_of_resolved_toml_gives_the_same_summary(mix_runs):
    first, second = (json.loads((run / "summary.json").read_text()) for run in mix_runs)
    for summary in (first, second):
        del summary["wall_time"], summary["case_file"], summary["timestamp"]
    assert first == second  # every number, bit for bit
    # the placeholder warning first, then the stages' (elastic copper above its flow stress)
    assert first["warnings"][0] == MIX_WARNING
    assert [warning.split(" ")[0] for warning in first["warnings"][1:]] == ["copper"]
    assert (mix_runs[1] / "resolved.toml").exists()


def test_report_shows_the_warnings(mix_runs):
    from solver.report.report import report_page

    page = report_page(mix_runs[0])
    assert '<div class="warning"><strong>Warnings</strong>' in page
    assert "youngs_modulus, poisson_ratio, thermal_expansion are placeholders" in page
