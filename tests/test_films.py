"""Thin-film electrodes (seed 002): the flat Cu / Si-alloy / carbon / Li stack against the
multilayer closed form, and films deposited conformally over a collector."""

import json

from test_layers import check_against_closed_form

from solver import cli
from solver.case import load_case

from conftest import CASES

# The stack is resolved with P2 elements through every layer: the closed form is met to 2e-8
# (curvature) and 1e-10 (mid-layer stresses); 1e-4 leaves room for solver settings only.
STACK_TOLERANCE = 1e-4


def test_thinfilm_stack_matches_the_multilayer_closed_form():
    case = load_case(CASES / "thinfilm-stack.toml")
    assert [layer.material for layer in case.geometry.layers] == [
        "copper", "silicon_alloy_film", "carbon_film", "lithium"]
    # Lithium melts at 180.5 degC: the schedule must stay below it.
    assert case.schedule.start < 180.5 + 273.15
    check_against_closed_form(case, tolerance=STACK_TOLERANCE)


def test_thinfilm_stack_case_runs(tmp_path):
    out = tmp_path / "thinfilm-stack"
    assert cli.main(["run", str(CASES / "thinfilm-stack.toml"), "--out", str(out), "-q",
                     "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["interfaces"]) == {"interface_0_1", "interface_1_2", "interface_2_3"}
    assert summary["interfaces"]["interface_2_3"]["materials"] == ["carbon_film", "lithium"]
    assert all(interface["max_risk"] > 0 for interface in summary["interfaces"].values())
    assert summary["bending"]["curvature"] < 0  # the stiff Si-alloy film contracts less than the Cu
    assert all(check["pass"] for check in summary["process_window"])
