"""Field output on demand ([output], solver/io/output.py FieldOutput): which fields, in which
formats, when; the VTX files of the stress and the internal variables read back; the size of
a default run directory."""

import json
import os
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest

from solver.case import load_case
from solver.case.output_section import OutputSettings
from solver.geometry.mesh import build_mesh
from solver.io.output import FieldOutput
from solver.stages.pipeline import run_case
from solver.stages.process import field_sources, make_problem
from solver.stages.schedule import arrival_times

from conftest import CASES, layers_case

PLASTIC_COPPER = """
[materials.copper]
behaviour = "plastic"
[materials.polyimide]
behaviour = "viscoelastic"
"""

# A small elastic strip cooled from 400 to 25 degC at 5 K/min (4500 s) in steps of at most
# 10 K: 38 steps of 375/38 K, 4500/38 s each, after the start.
STRIP = [("copper", "8 um"), ("polyimide", "8 um")]


def read_vtx(path, names):
    """{name: [array per step]} read back with the ADIOS2 Python bindings."""
    # Debian sid ships only the MPI bindings; they load only when this is set
    os.environ.setdefault("ADIOS2_ALWAYS_USE_MPI", "1")
    import adios2

    series = {name: [] for name in names}
    with adios2.FileReader(str(path)) as reader:
        for step in range(reader.num_steps()):
            for name in names:
                series[name].append(reader.read(name, step_selection=[step, 1]))
    return series


def xdmf_series(path) -> dict:
    """{field name in the file: [time values]} of an XDMF file's time series."""
    domain = ET.parse(path).getroot().find("Domain")
    return {series.get("Name"): [float(step.find("Time").get("Value"))
                                 for step in series.findall("Grid")]
            for series in domain.findall("Grid[@GridType='Collection']")}


def run_strip(tmp_path, output=""):
    case = layers_case(STRIP, length="40 um", mesh_size="4 um", extra=output)
    out = tmp_path / "strip"
    return run_case(case, out, progress=False), out


def vtx_writer(tmp_path, problem, emesh, wanted, temperature):
    return FieldOutput(tmp_path, "fields", "", emesh, problem.V.ufl_element().degree,
                       field_sources(problem, emesh, lambda: temperature[0]),
                       OutputSettings(fields=wanted, formats=["vtx"]), "process")


def test_stress_and_internal_variables_are_written_to_vtx_and_read_back(tmp_path):
    """A plastic Cu / viscoelastic PI strip cooled in two steps: stress.bp holds, at every
    step, the DG1 stress, its von Mises stress and the projected internal variables, equal
    to the problem's own projections, and the copper has yielded (a nonzero plastic strain
    is what is compared)."""
    case = layers_case(STRIP, length="40 um", mesh_size="4 um", extra=PLASTIC_COPPER)
    emesh = build_mesh(case)
    problem = make_problem(emesh, case)
    names = ["equivalent_plastic_strain", "recrystallized_fraction", "viscous_stress_norm"]
    temperature = [case.schedule.start]
    writer = vtx_writer(tmp_path, problem, emesh, ["stress", "von_mises", *names], temperature)
    functions = writer.functions["stress.bp"]
    in_memory = []
    try:
        for time, temperature[0] in ((600.0, 473.15), (1200.0, 298.15)):
            problem.advance(temperature[0], 600.0, {})
            writer.write(time)
            in_memory.append({name: f.x.array.copy() for name, f in functions.items()})
            for name in names:  # the problem's own projection, not the writer's copy
                expected = functions[name].copy()
                problem.internal_variable_into(name, expected)
                np.testing.assert_array_equal(in_memory[-1][name], expected.x.array)
    finally:
        writer.close()
    assert writer.files == ["stress.bp"]  # no point field asked for
    assert in_memory[-1]["equivalent_plastic_strain"].max() > 1e-4
    stored = read_vtx(tmp_path / "stress.bp", ["sigma", "von_mises", *names])
    for step, fields in enumerate(in_memory):
        for name, values in fields.items():
            file_name = {"stress": "sigma"}.get(name, name)
            np.testing.assert_allclose(stored[file_name][step].ravel(), values, rtol=1e-12,
                                       atol=1e-12 * np.abs(values).max(), err_msg=name)
    sigma = in_memory[-1]["stress"].reshape(-1, 3, 3)
    deviator = sigma - np.trace(sigma, axis1=1, axis2=2)[:, None, None] * np.eye(3) / 3
    np.testing.assert_allclose(in_memory[-1]["von_mises"],
                               np.sqrt(1.5 * (deviator**2).sum(axis=(1, 2))), rtol=1e-12)


@pytest.mark.parametrize("degree", [1, 2])
def test_elastic_stress_in_vtx_is_the_displacement_elements_stress(tmp_path, degree):
    """An elastic strip: stress.bp holds the exact stress of the displacement element
    (DG of degree - 1), displacement.bp the displacement at its degree; the internal
    variables an elastic case has not are left out."""
    case = layers_case(STRIP, length="40 um", mesh_size="4 um", degree=degree)
    emesh = build_mesh(case)
    problem = make_problem(emesh, case)
    writer = vtx_writer(tmp_path, problem, emesh, ["displacement", "stress",
                                                   "equivalent_plastic_strain"], [0.0])
    try:
        problem.advance(case.schedule.end_temperature, 1.0, {})
        writer.write(1.0)
    finally:
        writer.close()
    assert writer.names == ["displacement", "stress"]
    assert writer.files == ["displacement.bp", "stress.bp"]
    stress = writer.functions["stress.bp"]["stress"]
    assert stress.function_space.ufl_element().degree == degree - 1
    expected = stress.copy()
    problem.stress_into(expected)
    stored = read_vtx(tmp_path / "stress.bp", ["sigma"])["sigma"][0].ravel()
    np.testing.assert_allclose(stored, expected.x.array, rtol=1e-12)
    assert np.abs(stored).max() > 1e6  # a real thermal-mismatch stress, Pa
    displacement = read_vtx(tmp_path / "displacement.bp", ["u"])["u"][0].reshape(-1, 3)
    assert not displacement[:, 2].any()  # VTX pads a 2D vector with z = 0
    np.testing.assert_allclose(displacement[:, :2].ravel(), problem.u.x.array, rtol=1e-12)


def test_defaults_write_the_final_state_once_in_xdmf(tmp_path):
    """No [output]: fields.xdmf with the displacement, the stress, von Mises and the
    material at the end of the schedule only, no VTX; the tables at every step."""
    summary, out = run_strip(tmp_path)
    assert xdmf_series(out / "fields.xdmf") == {name: [4500.0] for name in
                                                ("u", "sigma", "von_mises", "material")}
    assert not list(out.glob("*.bp"))
    assert summary["outputs"] == {"files": ["fields.xdmf"], "times": [4500.0], "fields": [
        "displacement", "stress", "von_mises", "material"]}
    assert len(pd.read_csv(out / "history.csv")) == 39
    assert (out / "interface.csv").exists() and (out / "summary.json").exists()


def test_every_n_steps_writes_those_steps_and_the_final_state(tmp_path):
    summary, out = run_strip(tmp_path, '[output]\nevery = 10\nfields = ["von_mises", '
                             '"temperature"]\n')
    times = [4500.0 * k / 38 for k in (0, 10, 20, 30, 38)]  # and 38: the last
    assert xdmf_series(out / "fields.xdmf") == {"von_mises": pytest.approx(times, rel=1e-15),
                                                "T": pytest.approx(times, rel=1e-15)}
    assert summary["outputs"]["times"] == times
    assert summary["schedule"]["time_steps"] == 38  # no step added


def test_listed_times_and_temperatures_get_a_step_each(tmp_path):
    """11 min (between the steps at 592 and 711 s) and 333 degC (at 804 s, between the steps
    at 711 and 829 s) become time steps at exactly that time and temperature; 25 degC is
    the end, written once; nothing else is written."""
    summary, out = run_strip(tmp_path, '[output]\nfields = ["displacement"]\n'
                             'at_times = ["11 min"]\nat_temperatures = ["333 degC", '
                             '"25 degC"]\n')
    assert xdmf_series(out / "fields.xdmf") == {"u": [660.0, 804.0, 4500.0]}
    history = pd.read_csv(out / "history.csv").set_index("time_s")
    assert len(history) == 41 and summary["schedule"]["time_steps"] == 40
    assert history.loc[660.0, "temperature_K"] == pytest.approx(673.15 - 55.0, rel=1e-14)
    assert history.loc[804.0, "temperature_K"] == pytest.approx(333.0 + 273.15, rel=1e-14)
    assert summary["final"]["temperature"] == pytest.approx(298.15)


def test_no_fields_writes_the_tables_alone(tmp_path):
    summary, out = run_strip(tmp_path, "[output]\nfields = []\nevery = 1\n")
    assert sorted(p.name for p in out.iterdir()) == [
        "case.toml", "history.csv", "interface.csv", "kinetics.csv", "kinetics.png",
        "resolved.toml", "run.log", "state.npz", "summary.json"]
    assert summary["outputs"] == {"files": [], "fields": [], "times": []}


def test_arrival_times_count_a_hold_once_and_both_ways():
    """Up from 25 to 400 degC (0..1 h), a hold to 2 h, down to 25 degC at 3 h (in K)."""
    times, temperatures = [0.0, 3600.0, 7200.0, 10800.0], [298.15, 673.15, 673.15, 298.15]
    assert arrival_times(times, temperatures, 473.15) == pytest.approx([1680.0, 9120.0])
    assert arrival_times(times, temperatures, 673.15) == [3600.0]
    assert arrival_times(times, temperatures, 298.15) == [0.0, 10800.0]
    assert arrival_times(times, temperatures, 700.0) == []


def test_recurved_2d_run_directory_is_under_5_mb(tmp_path):
    """The shipped recurved cell with the default [output]: under 5 MB (0.85 MB measured;
    57 MB when every step was written in three files)."""
    out = tmp_path / "recurved-2d"
    run_case(load_case(CASES / "recurved-2d.toml"), out, progress=False)
    size = sum(path.stat().st_size for path in out.rglob("*") if path.is_file())
    assert size < 5e6, f"{size / 1e6:.1f} MB"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["outputs"]["times"] == [summary["schedule"]["duration"]]
