"""The virtual pull-off test (solver/stages/pulloff.py) on reduced meshes of the shipped cases."""

import csv
import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
from mpi4py import MPI

from solver.case import load_case, load_case_text
from solver.errors import CaseError
from solver.stages.pipeline import run_pulloff

from conftest import CASES, REPO, energy_imbalance

KINDS = ("flat", "plain", "recurved")


def reduced_case_text(kind, **replace):
    """The shipped case on a coarser mesh with fewer steps (the same geometry and law)."""
    text = (CASES / f"pulloff-{kind}-2d.toml").read_text()
    text = text.replace('mesh_size = "1.0 um"', 'mesh_size = "2 um"')
    text = text.replace('interface_mesh_size = "0.2 um"', 'interface_mesh_size = "0.4 um"')
    text = text.replace("steps = 40", "steps = 20")
    for old, new in replace.items():
        text = text.replace(old, new)
    return text


@pytest.fixture(scope="module")
def pulled(tmp_path_factory):
    """The reduced flat, plain and recurved pull-off results: kind -> (summary, directory)."""
    results = {}
    for kind in KINDS:
        out = tmp_path_factory.mktemp("pulloff") / kind
        case = load_case_text(reduced_case_text(kind), file=f"pulloff-{kind}-2d.toml")
        results[kind] = run_pulloff(case, out), out
    return results


def test_recurved_keeps_carrying_load_after_the_interface_has_debonded(pulled):
    """Mechanical interlock (seed 000): flat and plain cells carry nothing once their
    interface has separated; the recurved one still does, through the binder bearing on the
    head. Measured (reduced meshes): load_after_debond flat ~1e-11, plain ~1e-14,
    recurved 1.0 (the elastic mix keeps stretching around the head: the force still grows
    at the end of the test)."""
    after = {kind: pulled[kind][0]["pulloff"]["load_after_debond"] for kind in KINDS}
    assert abs(after["flat"]) < 0.01 and abs(after["plain"]) < 0.01
    assert after["recurved"] > 0.5
    assert pulled["flat"][0]["pulloff"]["fully_debonded"]
    assert pulled["plain"][0]["pulloff"]["fully_debonded"]
    assert not pulled["recurved"][0]["pulloff"]["fully_debonded"]


def test_flat_interface_fails_at_its_normal_strength_and_releases_its_toughness(pulled):
    """A flat interface under a uniform pull: the peak force over the area is the normal
    strength (50 MPa) within 1 %; the work of separation and the cohesive dissipation per
    debonded area are G_Ic (25 J/m^2) within 2 % (the residual stress of the flat cell has no
    interface traction)."""
    result = pulled["flat"][0]["pulloff"]
    assert result["strength"] == pytest.approx(50e6, rel=0.01)
    assert result["work_of_separation"] == pytest.approx(25.0, rel=0.02)
    assert result["energy_release_rate"] == pytest.approx(25.0, rel=0.02)
    assert result["debonded_fraction"] == 1.0


def test_pulloff_writes_its_files(pulled):
    summary, out = pulled["plain"]
    assert json.loads((out / "summary.json").read_text())["pulloff"]["strength"] \
        == pytest.approx(summary["pulloff"]["strength"])
    rows = list(csv.DictReader((out / "pulloff.csv").open()))
    assert float(rows[-1]["displacement_m"]) == pytest.approx(2e-6)
    nodes = list(csv.DictReader((out / "interface_damage.csv").open()))
    damage = np.array([float(row["damage"]) for row in nodes])
    assert damage.min() >= 0.0 and damage.max() == pytest.approx(1.0)
    assert (out / "pulloff.png").stat().st_size > 1000
    # the resolved case: loadable as the same case; the library's mix warns
    resolved, case = load_case(out / "resolved.toml"), load_case_text(reduced_case_text("plain"))
    assert [field.name for field in dataclasses.fields(case) if field.name not in
            ("source", "raw", "text") and getattr(case, field.name) != getattr(resolved,
                                                                          field.name)] == []
    assert [line.split(":")[0] for line in summary["warnings"]] == ["material 'mix'"]


def test_view_of_a_pulloff_draws_where_its_interface_debonded(pulled, capsys):
    """`sinter view` on a pull-off result: views/interface_damage.png, the interface nodes
    coloured by the displacement at which each debonded (all of the flat interface; the
    recurved head holds) and by the normal traction at the peak force, centred at 0."""
    from solver.cli import main
    from solver.report.views import interface_damage_figure

    for kind, held in (("flat", 0), ("recurved", "some")):
        summary, out = pulled[kind]
        assert main(["view", str(out)]) == 0
        assert "interface_damage.png" in capsys.readouterr().err
        assert (out / "views" / "interface_damage.png").stat().st_size > 10_000
        figure = interface_damage_figure(out, summary["case"])
        front, traction = figure.axes[:2]
        bonded, debonded = (len(c.get_offsets()) for c in front.collections)
        nodes = bonded + debonded
        assert nodes == len(traction.collections[0].get_offsets())
        fraction = summary["pulloff"]["debonded_fraction"]
        if held == 0:
            assert bonded == 0 and fraction == 1.0
        else:
            assert 0 < bonded < nodes and fraction < 1.0
        assert traction.collections[0].norm.vcenter == 0.0


def test_energy_balances_in_the_pulloff_test(tmp_path):
    """Without the residual stress: at every step the external work is the elastic energy +
    the recoverable cohesive energy + the cohesive dissipation, within 0.5 % of the total
    work (measured below 0.2 %)."""
    text = reduced_case_text("plain", **{"steps = 20": "steps = 20\nresidual_stress = false"})
    run_pulloff(load_case_text(text), tmp_path / "plain")
    assert energy_imbalance(tmp_path / "plain") <= 5e-3


@pytest.mark.parametrize("replace, key, message", [
    ({"steps = 20": "steps = 0"}, "pulloff.steps", "greater than or equal to 1"),
    ({'end_displacement = "2 um"': 'end_displacement = "-2 um"'}, "pulloff.end_displacement",
     "expected a positive length"),
    ({'mode_I_fracture_energy = "25 J/m^2"': 'mode_I_fracture_energy = "25 MPa"'},
     "interface.mode_I_fracture_energy", "expected a positive fracture energy"),
    ({'penalty_stiffness = "1e16 Pa/m"': 'penalty_stiffness = "1 GPa"'},
     "interface.penalty_stiffness", "expected a positive stiffness per area"),
    ({"steps = 20": "steps = 20\npull_speed = 1"}, "pulloff.pull_speed", "unknown key"),
])
def test_bad_pulloff_and_interface_keys_are_one_line_errors(replace, key, message):
    with pytest.raises(CaseError) as error:
        load_case_text(reduced_case_text("flat", **replace), file="x.toml")
    text = str(error.value)
    assert "\n" not in text
    assert text.startswith(f"x.toml: {key}: ") and message in text


def test_pulloff_is_the_same_on_one_and_two_ranks(tmp_path):
    """The reduced recurved pull-off (to 1 um in 8 steps) through the command line on 1 and 2
    ranks: every number of the pulloff summary equal to 1e-6 relative."""
    case = tmp_path / "recurved.toml"
    case.write_text(reduced_case_text("recurved", **{
        "steps = 20": "steps = 8", 'end_displacement = "2 um"': 'end_displacement = "1 um"'}))
    results = []
    for ranks in (1, 2):
        out = tmp_path / f"np{ranks}"
        command = [sys.executable, "-m", "solver.cli", "pulloff", str(case), "--out", str(out),
                   "-q"]
        if ranks > 1:
            command = ["mpirun", "-n", str(ranks), *command]
        finished = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                                  timeout=600)
        assert finished.returncode == 0, finished.stderr
        results.append(json.loads((out / "summary.json").read_text())["pulloff"])
    serial, parallel = results
    assert serial["dissipated_energy"] > 0  # the interface has started to soften
    for key, value in serial.items():
        if key != "process_time" and isinstance(value, int | float):
            assert parallel[key] == pytest.approx(value, rel=1e-6, abs=1e-12), key


def test_pulloff_of_a_case_without_a_pulloff_table_is_a_one_line_error(tmp_path, capsys):
    from solver.cli import main

    out = tmp_path / "out"
    assert main(["pulloff", str(CASES / "recurved-2d.toml"), "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert error == (f"sinter: error: {CASES / 'recurved-2d.toml'}: pulloff: required by "
                     "sinter pulloff: add a [pulloff] table (its keys: docs/case-keys.md)")
    assert not out.exists()


def swelling_case_text(kind, swelling_coefficient, formulation="small"):
    """The reduced cell without the residual stress, its mix swelling over SOC 0 -> 1."""
    return reduced_case_text(kind, **{"max_strength_loss = 0.3": (
        'max_strength_loss = 0.3\nload = "swelling"\nresidual_stress = false\n'
        f'[swelling]\nformulation = "{formulation}"\n'
        "path = [ { soc = 1.0, increments = 10 } ]\n"
        f"[materials.mix]\nswelling_coefficient = {swelling_coefficient}\n")})


def test_swelling_of_a_flat_cell_leaves_its_interface_unloaded(tmp_path, capsys):
    """Flat periodic cell, rollers on the sides, free top: the swelling mix is uniformly
    stressed in plane (sigma_yy = 0), so the interface carries no traction and nothing
    is damaged. Measured (beta = 0.3): tractions up to 3.6e-6 Pa against the in-plane
    stress E beta / 3 / (1 - nu) = 1.43 GPa at SOC 1. The eigenstrain's work is the mix's
    elastic energy, E/(1 - nu) (beta SOC / 3)^2 per volume (eps_e,xx = eps_e,zz = -beta SOC / 3),
    to 1e-9 (measured 1e-15), and so is the energy balance."""
    from solver.cli import main

    case_file = tmp_path / "flat-swelling.toml"
    case_file.write_text(swelling_case_text("flat", 0.3))
    case = load_case_text(case_file.read_text())
    # through `sinter pulloff`, whose closing line names what a swelling load measures
    assert main(["pulloff", str(case_file), "--out", str(tmp_path / "flat")]) == 0
    assert "damage onset at SOC none, max damage 0" in capsys.readouterr().out
    summary = json.loads((tmp_path / "flat" / "summary.json").read_text())
    result = summary["pulloff"]
    mix = case.materials["mix"]
    volume = result["projected_width"] * case.geometry.mix_thickness
    assert result["eigenstrain_work"] == pytest.approx(
        volume * mix.youngs_modulus / (1 - mix.poisson_ratio) * (0.3 / 3)**2, rel=1e-9)
    assert result["energy_balance_error"] < 1e-9
    assert result["soc_at_damage_onset"] is None and result["soc_at_delamination"] is None
    assert result["max_damage"] == 0.0 and result["dissipated_energy"] == 0.0
    nodes = list(csv.DictReader((tmp_path / "flat" / "interface_damage.csv").open()))
    tractions = np.array([[float(row["normal_traction_Pa"]), float(row["shear_traction_Pa"])]
                          for row in nodes])
    assert np.abs(tractions).max() < 1e-6 * 50e6  # of the interface strength


def test_swelling_of_the_mix_damages_the_recurved_interface(tmp_path):
    """Recurved cell: the swelling mix opens the interface over the head's top and shears it
    along the flanks, so it softens from some SOC on; damage and dissipation never decrease
    with SOC. Measured (beta = 0.05, 10 SOC steps): onset at SOC 0.4, D_max 0.91 at SOC 1,
    no node fully damaged."""
    summary = run_pulloff(load_case_text(swelling_case_text("recurved", 0.05)),
                          tmp_path / "recurved")
    result = summary["pulloff"]
    assert 0.0 < result["soc_at_damage_onset"] <= 1.0
    rows = list(csv.DictReader((tmp_path / "recurved" / "pulloff.csv").open()))
    soc = np.array([float(row["soc"]) for row in rows])
    damage = np.array([float(row["max_damage"]) for row in rows])
    dissipated = np.array([float(row["dissipated_energy_J_per_m"]) for row in rows])
    assert soc[-1] == pytest.approx(1.0) and np.all(np.diff(soc) > 0)
    assert np.all(np.diff(damage) >= 0) and np.all(np.diff(dissipated) >= -1e-15)
    assert damage[-1] == pytest.approx(result["max_damage"]) and damage[-1] > 0.5
    onset = np.flatnonzero(damage > 0)[0]
    assert soc[onset] == result["soc_at_damage_onset"] and damage[onset - 1] == 0.0
    assert abs(result["max_top_reaction"]) < 1e-6 * 50e6 * result["projected_width"]


def _swelling_energy_terms(out):
    rows = list(csv.DictReader((out / "pulloff.csv").open()))
    return {key: np.array([float(row[key]) for row in rows]) for key in rows[0]}


@pytest.mark.parametrize("residual_stress", [False, True])
def test_swelling_energy_balances(tmp_path, residual_stress):
    """The recurved cell swelling (beta = 0.05) to SOC 1, from a stress-free state and with
    the residual stress of the schedule: at every step the eigenstrain's work (trapezoidal in
    the SOC) is the change since SOC 0 of the bodies' energy + the cohesive energy + the
    dissipation. energy_balance_error (over the largest work) <= 2e-4, and the imbalance is
    within 2 % of the dissipated energy (which is about 1 % of the work). Measured:
    5.7e-5 (0.7 % of the dissipation) stress-free, 1.4e-5 (0.15 %) with the residual stress."""
    text = swelling_case_text("recurved", 0.05)
    if residual_stress:
        text = text.replace("residual_stress = false\n", "")
    result = run_pulloff(load_case_text(text), tmp_path / "recurved")["pulloff"]
    assert result["residual_stress"] == residual_stress
    terms = _swelling_energy_terms(tmp_path / "recurved")
    work = terms["eigenstrain_work_J_per_m"]  # 2D: energies per unit depth
    change = sum(terms[key] - terms[key][0]
                 for key in ("elastic_energy_J_per_m", "cohesive_free_energy_J_per_m",
                             "dissipated_energy_J_per_m"))
    imbalance = np.abs(work - change)
    assert result["energy_balance_error"] == pytest.approx(imbalance.max() / work.max())
    assert np.abs(terms["energy_balance_error"]).max() == result["energy_balance_error"]
    assert result["energy_balance_error"] <= 2e-4
    assert result["dissipated_energy"] > 0.005 * work[-1]
    assert imbalance.max() <= 0.02 * result["dissipated_energy"]
    print(f"residual stress {residual_stress}: error {result['energy_balance_error']:.2e}, "
          f"{imbalance.max() / result['dissipated_energy']:.2%} of the dissipation, "
          f"dissipation {result['dissipated_energy'] / work[-1]:.2%} of the work")


@pytest.mark.mpi
def test_swelling_pulloff_is_the_same_on_one_and_two_ranks(tmp_path_factory):
    """Under mpirun -n 2: the reduced recurved cell with its residual stress, swelling
    (beta = 0.05) to SOC 1, distributed over the ranks and on each rank alone: every number
    of the pulloff summary equal to 1e-6 relative (the top reaction is round-off, ~1e-12 N/m
    against forces of ~1 N/m: compared to 1e-9 absolute)."""
    comm = MPI.COMM_WORLD
    base = comm.bcast(str(tmp_path_factory.mktemp("swelling")) if comm.rank == 0 else None)
    text = swelling_case_text("recurved", 0.05).replace("residual_stress = false\n", "")
    case = load_case_text(text, file="swelling-recurved.toml")
    distributed = run_pulloff(case, f"{base}/np{comm.size}", comm=comm)
    serial = run_pulloff(case, f"{base}/serial-rank{comm.rank}", comm=MPI.COMM_SELF)
    assert distributed["ranks"] == comm.size and serial["ranks"] == 1
    assert serial["pulloff"]["soc_at_damage_onset"] is not None
    assert serial["dofs"] == distributed["dofs"] and serial["cells"] == distributed["cells"]
    for key, value in serial["pulloff"].items():
        if key in ("process_time", "max_top_reaction"):
            continue
        if isinstance(value, int | float):
            assert distributed["pulloff"][key] == pytest.approx(value, rel=1e-6), key
        else:
            assert distributed["pulloff"][key] == value, key
    assert distributed["pulloff"]["max_top_reaction"] == pytest.approx(
        serial["pulloff"]["max_top_reaction"], abs=1e-9)


@pytest.mark.parametrize("text, key, message", [
    (swelling_case_text("flat", 0.3, formulation="finite"), "swelling.formulation",
     "needs formulation = 'small'"),
    (swelling_case_text("flat", 0.3).split("[swelling]")[0], "pulloff.load",
     "'swelling' needs a [swelling] table"),
])
def test_swelling_load_needs_a_small_strain_swelling_table(tmp_path, text, key, message):
    with pytest.raises(CaseError) as error:
        run_pulloff(load_case_text(text, file="x.toml"), tmp_path / "out")
    assert "\n" not in str(error.value)
    assert str(error.value).startswith(f"x.toml: {key}: ") and message in str(error.value)
    assert not (tmp_path / "out").exists()
