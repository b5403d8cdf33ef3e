"""A schedule that crashes restarts from its checkpoint and ends as an uninterrupted run."""

import json

import numpy as np
import pytest

from solver.case import load_case_text
from solver.physics.inelastic import InelasticProblem
from solver.stages.pipeline import run_case

from conftest import CASES

# The full sintering schedule, coarser, so that the test takes seconds.
SCHEDULE = (CASES / "sinter-schedule-2d.toml").read_text() \
    .replace('mesh_size = "1.5 um"', 'mesh_size = "2.5 um"') \
    .replace('interface_mesh_size = "0.25 um"', 'interface_mesh_size = "0.5 um"') \
    .replace('temperature_increment = "25 K"', 'temperature_increment = "75 K"') \
    .replace("hold_steps = 10", "hold_steps = 4")


def numbers(summary):
    return {"max_von_mises": summary["final"]["max_von_mises"],
            "out_of_plane_strain": summary["final"]["out_of_plane_strain"],
            "face_displacement": summary["final"]["face_displacement"],
            "max_risk": summary["interfaces"]["interface_copper_mix"]["max_risk"],
            "newton_iterations": summary["schedule"]["newton_iterations"]}


def test_restart_reproduces_an_uninterrupted_run(tmp_path, monkeypatch):
    case = load_case_text(SCHEDULE, file="schedule.toml")
    uninterrupted = run_case(case, tmp_path / "whole", progress=False)

    advance = InelasticProblem.advance
    calls = {"count": 0}

    def crashing_advance(self, *args, **kwargs):
        calls["count"] += 1
        if calls["count"] == 12:  # in the hold, after checkpoints on the way up
            raise RuntimeError("simulated crash")  # a bug, a lost node: no result at all
        return advance(self, *args, **kwargs)

    monkeypatch.setattr(InelasticProblem, "advance", crashing_advance)
    with pytest.raises(RuntimeError):
        run_case(case, tmp_path / "crashed", progress=False, checkpoint_every=3)
    assert not (tmp_path / "crashed").exists()  # no result that looks complete
    assert (tmp_path / ".crashed.checkpoint.npz").exists()
    monkeypatch.setattr(InelasticProblem, "advance", advance)

    restarted = run_case(case, tmp_path / "crashed", progress=False, resume=True)
    assert not (tmp_path / ".crashed.checkpoint.npz").exists()
    # to the solvers' tolerances (measured 1.8e-9): the restart sets up afresh the
    # preconditioner that the uninterrupted run kept between Newton iterations
    for key, value in numbers(uninterrupted).items():
        assert numbers(restarted)[key] == pytest.approx(value, rel=1e-8), key
    # the peaks over the schedule continue from the checkpoint's
    assert restarted["warnings"] == uninterrupted["warnings"]
    whole = np.loadtxt(tmp_path / "whole" / "history.csv", delimiter=",", skiprows=1,
                       usecols=(0, 1, 5))
    again = np.loadtxt(tmp_path / "crashed" / "history.csv", delimiter=",", skiprows=1,
                       usecols=(0, 1, 5))
    np.testing.assert_allclose(again, whole, rtol=1e-8)
    state = np.load(tmp_path / "crashed" / "state.npz")
    assert json.loads(str(state["progress"]))["step"] == len(whole) - 1
