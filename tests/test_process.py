"""Process physics wired into the run: process eigenstrains and the process window."""

import json

import numpy as np
import pytest
from test_layers import TOLERANCE

from solver.case import load_case_text
from solver.geometry.mesh import build_mesh
from solver.physics.thermoelastic import ThermoElasticProblem
from solver.post.closed_forms import plane_strain_layers
from solver.stages.pipeline import run_case

from conftest import REPO, layers_case

CURING_HOLD = """
[case]
name = "curing-hold"
[geometry]
kind = "layers"
length = "160 um"
layers = [ { material = "copper", thickness = "8 um" },
           { material = "polyimide", thickness = "8 um" } ]
mesh_size = "2 um"
[schedule]
start = "200 degC"
steps = [ { hold = "10 min" } ]
atmosphere = "{atmosphere}"
[kinetics.curing]
prefactor = "1e8 1/s"
activation_energy = "100 kJ/mol"
reaction_order = 1.0
total_shrinkage = 0.02
materials = ["polyimide"]
"""


def test_isothermal_curing_shrinkage_bends_the_strip_as_the_closed_form(tmp_path):
    """A hold without a temperature change: only the binder's curing shrinkage loads the
    strip; degree of cure 1 - exp(-k t) (first order), then Timoshenko/Hsueh."""
    case = load_case_text(CURING_HOLD.replace("{atmosphere}", "argon"), file="curing.toml")
    summary = run_case(case, tmp_path / "out", progress=False)
    rate = 1e8 * np.exp(-100e3 / (8.314462618 * 473.15))
    cure = 1 - np.exp(-rate * 600.0)
    cu, pi = case.materials["copper"], case.materials["polyimide"]
    # an isotropic eigenstrain e enters like alpha*dT with alpha = e, dT = 1
    beam = plane_strain_layers([8e-6, 8e-6], [cu.youngs_modulus, pi.youngs_modulus],
                               [cu.poisson_ratio, pi.poisson_ratio], [0.0, -0.02 * cure], 1.0)
    assert 0.1 < cure < 0.99  # the hold cures the binder partly: a real test of the kinetics
    assert summary["bending"]["curvature"] == pytest.approx(beam.curvature, rel=TOLERANCE)
    window = {row["condition"].split(" (")[0]: row for row in summary["process_window"]}
    assert window["atmosphere"]["pass"] is True
    written = (tmp_path / "out" / "kinetics.csv").read_text().splitlines()
    assert len(written) > 2 and (tmp_path / "out" / "kinetics.png").stat().st_size > 1000


def test_air_fails_the_process_window(tmp_path):
    case = load_case_text(CURING_HOLD.replace("{atmosphere}", "air"), file="air.toml")
    run_case(case, tmp_path / "out", progress=False)
    window = json.loads((tmp_path / "out" / "summary.json").read_text())["process_window"]
    atmosphere = [row for row in window if row["condition"].startswith("atmosphere")][0]
    assert atmosphere == {"condition": "atmosphere (non-oxidizing)", "value": "air",
                          "limit": "non-oxidizing", "unit": "", "pass": False,
                          "verdict": "fail"}


def test_the_cell_follows_the_middle_wrap_of_a_roll(tmp_path):
    """With [furnace], the unit cell's temperature is the heat solution's at the followed
    position: it lags the furnace on heating, and the cool-down brings it back."""
    import pandas as pd

    text = (REPO / "cases" / "furnace-roll.toml").read_text()
    text = text.replace('behaviour = "plastic"', "").replace('behaviour = "viscoelastic"', "")
    case = load_case_text(text, file="furnace-roll.toml")
    summary = run_case(case, tmp_path / "out", progress=False)
    history = pd.read_csv(tmp_path / "out" / "history.csv")
    furnace = pd.read_csv(tmp_path / "out" / "furnace.csv")
    followed = np.interp(history["time_s"], furnace["time_s"], furnace["middle_K"])
    np.testing.assert_allclose(history["temperature_K"], followed, rtol=1e-9)
    set_point = case.schedule.temperature_at(history["time_s"].to_numpy())
    heating = history["step"] == "ramp"
    assert (set_point[heating] - history["temperature_K"][heating]).max() > 50  # it lags
    assert summary["furnace"]["positions"]["middle"]["max_lag"] > 50
    assert abs(summary["final"]["temperature"] - case.schedule.end_temperature) < 1.0


@pytest.mark.parametrize("plane", ["generalized", "strain"])
def test_a_process_eigenstrain_acts_as_the_equal_thermal_one(plane):
    """An isotropic process eigenstrain e in the polyimide at the start temperature gives the
    displacement of a thermal change dT with alpha_PI = e / dT and alpha_Cu = 0, also where
    the out-of-plane strain is a global unknown (generalized plane strain: the unit
    solutions must not carry the process eigenstrain)."""
    eigenstrain, change = -0.01, -100.0
    override = f"""
[materials.copper]
thermal_expansion = 0.0
[materials.polyimide]
thermal_expansion = {eigenstrain / change}
"""
    case = layers_case([("copper", "8 um"), ("polyimide", "8 um")], length="40 um",
                       mesh_size="4 um", plane=plane, start="400 degC", end="300 degC",
                       extra=override)
    emesh = build_mesh(case)
    thermal = ThermoElasticProblem(emesh, case)
    thermal_state = thermal.solve(change)
    process = ThermoElasticProblem(emesh, case)
    process_state, _ = process.advance(case.schedule.start, 1.0, {"polyimide": eigenstrain})
    scale = np.abs(thermal.u.x.array).max()
    assert scale > 1e-9
    np.testing.assert_allclose(process.u.x.array, thermal.u.x.array, atol=1e-9 * scale)
    assert process_state.out_of_plane_strain == pytest.approx(
        thermal_state.out_of_plane_strain, rel=1e-9, abs=1e-15)
